"""A provider (or an openai-compatible server) answering 200 with fields of the wrong shape: the agent
gets an error in its own API's shape (never a plain-text 500 or a stream that just stops), and the call
is booked exactly once, never below what the provider may bill."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
import transport_kit

from paymaster.server import ServerThread


class Canned:
    """An upstream that answers every POST with one fixed 200 body (JSON or an event stream)."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.ctype = b"application/json"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await transport_kit.asgi_lifespan(receive, send)
        await transport_kit.asgi_body(receive)
        headers = [(b"content-type", self.ctype), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture(scope="module")
def canned() -> Iterator[tuple[Canned, str]]:
    app = Canned()
    with ServerThread(app) as srv:
        yield app, srv.url


def gateway_on(gateway: Any, url: str) -> Any:
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": url, "api_key_env": "SIM_KEY", "timeout_s": 5},
        "openai": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }
    both = ["claude-haiku-4-5", "gpt-4.1-mini"]
    return gateway(providers=providers, agents={"x": {"model": "claude-haiku-4-5", "models": both, "daily_usd": 5}})


MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 3},
}
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "model": "gpt-4.1-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}


@pytest.mark.parametrize(
    "caller, model, answer",
    [
        ("openai", "claude-haiku-4-5", {**MESSAGE, "content": [None]}),
        ("openai", "claude-haiku-4-5", {**MESSAGE, "content": [{"type": "text", "text": 5}]}),
        ("openai", "claude-haiku-4-5", {**MESSAGE, "stop_reason": ["end_turn"]}),
        ("anthropic", "gpt-4.1-mini", {**COMPLETION, "choices": ["x"]}),
        ("anthropic", "gpt-4.1-mini", {**COMPLETION, "choices": {"0": 1}}),
        (
            "anthropic",
            "gpt-4.1-mini",
            {**COMPLETION, "choices": [{"index": 0, "message": "x", "finish_reason": "stop"}]},
        ),
    ],
)
def test_a_translated_answer_of_the_wrong_shape_is_a_502_in_the_callers_shape(
    gateway: Any, canned: tuple[Canned, str], caller: str, model: str, answer: dict[str, Any]
) -> None:
    app, url = canned
    app.body, app.ctype = orjson.dumps(answer), b"application/json"
    gw = gateway_on(gateway, url)
    msgs = [{"role": "user", "content": "hi"}]
    # the SDKs' default retries: the provider already answered and billed, so the gateway says not to retry
    if caller == "openai":
        with pytest.raises(openai.APIStatusError) as e:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["x"], max_retries=2)
            client.chat.completions.create(model=model, max_tokens=20, messages=msgs)
        assert e.value.status_code == 502 and isinstance(e.value.body, dict) and "message" in e.value.body
    else:
        with pytest.raises(anthropic.APIStatusError) as e2:
            claude = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["x"], max_retries=2)
            claude.messages.create(model=model, max_tokens=20, messages=msgs)
        assert e2.value.status_code == 502 and isinstance(e2.value.body, dict) and e2.value.body["type"] == "error"
    rows = gw.ledger("x")
    assert len(rows) == 1 and rows[0]["cost_nanos"] > 0  # the provider answered: its bill is booked, once
    assert not gw.gw.budget.open


def sse(*events: tuple[str, Any]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + (d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n\n"
        for name, d in events
    )


@pytest.mark.parametrize("bad", [b"[1]", b"{not json", b'"x"'])
def test_an_unreadable_stream_event_ends_the_stream_with_an_error_and_is_booked_as_cut(
    gateway: Any, canned: tuple[Canned, str], bad: bytes
) -> None:
    app, url = canned
    start = {**MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}
    app.ctype = b"text/event-stream"
    app.body = sse(
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("message_delta", bad),
        ("message_stop", {"type": "message_stop"}),
    )
    gw = gateway_on(gateway, url)
    got = b""
    with gw.anthropic("x").messages.with_streaming_response.create(
        model="claude-haiku-4-5", max_tokens=40, stream=True, messages=[{"role": "user", "content": "hi"}]
    ) as r:
        for chunk in r.iter_bytes():
            got += chunk
    assert b"event: error" in got  # the agent is told, in Anthropic's words
    row = gw.ledger("x")[-1]
    assert row["status"] == "cut" and row["reconcile"] == 1
    assert row["output_tokens"] == 40 and row["cost_nanos"] <= row["worst_nanos"]
    assert not gw.gw.budget.open
