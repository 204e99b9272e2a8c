"""Every answer shape the gateway gives an OpenAI caller validates against OpenAI's published OpenAPI
specification (the vendored subset in tests/data/openai_schemas.json names its source commit;
scripts/vendor_openai_schemas.py makes it): completions and stream chunks, direct and translated from
Claude, errors (the gateway's own and the provider's), the model list and a model."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest

GPT, CLAUDE = "gpt-4.1-mini", "claude-haiku-4-5"
MIXED = {
    "alice": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 5},
    "olivia": {"model": GPT, "models": [GPT, CLAUDE], "daily_usd": 5},
    "bob": {"model": GPT, "models": [GPT], "daily_usd": 0.000001},
}
SPEC = json.loads((Path(__file__).parent / "data" / "openai_schemas.json").read_text())
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
ASKS: dict[str, dict[str, Any]] = {
    "text": {"messages": [{"role": "user", "content": "hi [sim:tokens=7]"}]},
    "tool": {"messages": [{"role": "user", "content": "weather? [sim:tool]"}], "tools": [TOOL]},
    "json": {"messages": [{"role": "user", "content": "JSON please"}], "response_format": {"type": "json_object"}},
    "length": {"messages": [{"role": "user", "content": "go [sim:tokens=50]"}], "max_tokens": 5},
}


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/$defs/{name}", "$defs": SPEC["$defs"]}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def valid(name: str, value: Any) -> None:
    errors = sorted(validator(name).iter_errors(value), key=str)
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def post(gw: Any, body: dict[str, Any], agent: str = "olivia") -> httpx2.Response:
    headers = {"authorization": f"Bearer {gw.keys[agent]}"}
    return httpx2.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def chunks(r: httpx2.Response) -> list[dict[str, Any]]:
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def test_the_vendored_subset_names_its_source() -> None:
    source = SPEC["source"]
    assert source["repository"].endswith("openai/openai-openapi") and len(source["commit"]) == 40
    assert {"CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "ErrorResponse"} <= SPEC[
        "$defs"
    ].keys()


def test_the_schemas_reject_a_wrong_answer() -> None:  # the check can fail
    with pytest.raises(AssertionError):
        valid("CreateChatCompletionResponse", {"id": "x", "object": "chat.completion", "choices": []})
    with pytest.raises(AssertionError):
        valid("ErrorResponse", {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}})


@pytest.mark.parametrize("model", [GPT, CLAUDE])
@pytest.mark.parametrize("ask", list(ASKS))
def test_completions_and_chunks_validate(gateway: Any, model: str, ask: str) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": model, "max_tokens": 50, **ASKS[ask]}
    r = post(gw, body)
    assert r.status_code == 200, r.text
    valid("CreateChatCompletionResponse", r.json())
    streamed = post(gw, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.status_code == 200
    got = chunks(streamed)
    assert got and got[-1]["usage"]
    for chunk in got:
        valid("CreateChatCompletionStreamResponse", chunk)


def test_choices_and_logprobs_validate(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": GPT, "max_tokens": 20, "n": 2, "logprobs": True, "top_logprobs": 2, **ASKS["text"]}
    valid("CreateChatCompletionResponse", post(gw, body).json())
    for chunk in chunks(post(gw, {**body, "stream": True})):
        valid("CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_errors_validate(gateway: Any, sim: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    refused = [
        post(gw, {"model": model, "messages": []}),  # the gateway's own 400
        post(gw, {"model": "gpt-nope", "messages": ASKS["text"]["messages"]}),  # 404
        post(gw, {"model": GPT, "max_tokens": 50_000, **ASKS["text"]}, agent="bob"),  # 402, over the cap
        httpx2.post(gw.url + "/v1/chat/completions", json={}, headers={"authorization": "Bearer nope"}),  # 401
    ]
    sim.inject("500", count=1, model=model)
    refused.append(post(gw, {"model": model, "max_tokens": 20, **ASKS["text"]}))  # the provider's, relayed
    assert [r.status_code for r in refused] == [400, 404, 402, 401, 500]
    for r in refused:
        valid("ErrorResponse", r.json())


def test_models_validate(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    headers = {"authorization": f"Bearer {gw.keys['olivia']}"}
    listed = httpx2.get(gw.url + "/v1/models", headers=headers)
    valid("ListModelsResponse", listed.json())
    one = httpx2.get(gw.url + f"/v1/models/{CLAUDE}", headers=headers)
    valid("Model", one.json())


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_a_broken_stream_ends_in_an_error_that_validates(gateway: Any, sim: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    sim.inject("cut", count=1, model=model)
    r = post(gw, {"model": model, "max_tokens": 50, "stream": True, **ASKS["text"]})
    got = chunks(r)
    *answer, last = got
    assert "error" in last and "choices" not in last
    valid("ErrorResponse", last)
    for chunk in answer:
        valid("CreateChatCompletionStreamResponse", chunk)
