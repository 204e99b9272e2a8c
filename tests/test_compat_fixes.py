"""What agent frameworks and generated clients send, accepted on every model (issue 18, items 2–4 and 6):
null as "not set", whole-number floats, GET /v1/models/{model}, and a request id on every answer."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest

GPT, CLAUDE = "gpt-4.1-mini", "claude-haiku-4-5"
MIXED = {
    "alice": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 5},
    "olivia": {"model": GPT, "models": [GPT, CLAUDE], "daily_usd": 5},
}
# what a client generated from OpenAI's OpenAPI specification sends: every unset nullable field as null
GENERATED_NULLS = dict.fromkeys(
    "stream stream_options n temperature top_p tools tool_choice parallel_tool_calls response_format stop"
    " max_tokens user metadata store logprobs top_logprobs seed frequency_penalty presence_penalty logit_bias"
    " service_tier".split()
)


def post(gw: Any, agent: str, path: str, body: dict[str, Any]) -> httpx2.Response:
    headers = {"authorization": f"Bearer {gw.keys[agent]}"}
    if path == "/v1/messages":
        headers["anthropic-version"] = "2023-06-01"
    return httpx2.post(gw.url + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_null_means_not_set(gateway: Any, sim: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": model, "messages": [{"role": "user", "content": "hi [sim:tokens=3]"}], "max_completion_tokens": 20}
    r = post(gw, "olivia", "/v1/chat/completions", {**GENERATED_NULLS, **body})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "stop" and r.json()["usage"]["completion_tokens"] == 3
    assert None not in sim.requests[-1]["body"].values()  # nothing null reaches the provider


def test_null_means_not_set_for_an_anthropic_caller(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": CLAUDE, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], "stream": None}
    r = post(gw, "alice", "/v1/messages", {**body, "system": None, "tools": None, "temperature": None})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message"


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_whole_number_floats_are_integers(gateway: Any, sim: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    msgs = [{"role": "user", "content": "hi [sim:tokens=9]"}]
    r = post(gw, "olivia", "/v1/chat/completions", {"model": model, "messages": msgs, "max_tokens": 5.0, "n": 1.0})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "length" and r.json()["usage"]["completion_tokens"] == 5
    sent = sim.requests[-1]["body"]
    assert sent["max_tokens"] == 5 and type(sent["max_tokens"]) is int


def test_whole_number_floats_for_an_anthropic_caller(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    r = post(
        gw,
        "alice",
        "/v1/messages",
        {"model": CLAUDE, "max_tokens": 4.0, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["output_tokens"] == 4
    fraction = post(
        gw,
        "alice",
        "/v1/messages",
        {"model": CLAUDE, "max_tokens": 4.5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert fraction.status_code == 400 and fraction.json()["error"]["type"] == "invalid_request_error"


def test_models_retrieve(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    got = gw.openai().models.retrieve(CLAUDE)
    assert (got.id, got.object) == (CLAUDE, "model")
    info = gw.anthropic().models.retrieve(GPT)
    assert (info.id, info.type) == (GPT, "model")
    with pytest.raises(openai.NotFoundError):
        gw.openai().models.retrieve("gpt-4o")  # exists, but not for this agent
    with pytest.raises(anthropic.NotFoundError):
        gw.anthropic().models.retrieve("claude-nope")


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_every_openai_answer_has_a_request_id(gateway: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    client = gw.openai()
    msgs: Any = [{"role": "user", "content": "hi"}]
    done = client.chat.completions.create(model=model, messages=msgs, max_tokens=10)
    assert done._request_id and done._request_id.startswith("req_")
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=msgs, max_tokens=10, stream=True
    ) as s:
        assert s.headers.get("x-request-id", "").startswith("req_")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=msgs, max_tokens=-1)
    assert refused.value.request_id


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_every_anthropic_answer_has_a_request_id(gateway: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    client = gw.anthropic()
    msgs: Any = [{"role": "user", "content": "hi"}]
    done = client.messages.create(model=model, messages=msgs, max_tokens=10)
    assert done._request_id and done._request_id.startswith("req_")
    with client.messages.with_streaming_response.create(model=model, messages=msgs, max_tokens=10, stream=True) as s:
        assert s.headers.get("request-id", "").startswith("req_")
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model=model, messages=msgs, max_tokens=-1)
    assert refused.value.request_id
