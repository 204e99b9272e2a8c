"""The gateway's answers, checked against the providers' documented shapes, independently of its code.

Anthropic: the schemas below are written from docs.claude.com (Messages API reference: the Message object and
its content blocks and usage; "Streaming Messages": the event flow — `message_start`, then per content block
`content_block_start`, `content_block_delta`s and `content_block_stop` (index from 0, in order), one
`message_delta` carrying `usage.output_tokens`, `message_stop`, with `ping`s anywhere and `error` events;
every SSE `event:` name equal to its data's `type`; token counting `{"input_tokens"}`; Models
`{"data", "has_more", "first_id", "last_id"}`; Message Batches; errors). OpenAI: the schemas of OpenAI's
published OpenAPI specification, vendored in tests/data/openai_schemas.json (Responses answers and stream
events with their `sequence_number`, embeddings, batches and files). The refusals the gateway makes itself (402,
429, 503) are checked through each official SDK: each must raise its typed exception and read the headers it
reads (`request-id` / `x-request-id`, `retry-after`, `x-should-retry`).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import anthropic
import httpx2
import jsonschema
import openai
import pytest

from tests.test_openai_schema import SPEC

CLAUDE, GPT = "claude-haiku-4-5", "gpt-4.1-mini"
MIXED = {
    "alice": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 5, "monthly_usd": 50},
    "olivia": {"model": GPT, "models": [GPT, CLAUDE, "text-embedding-3-small"], "daily_usd": 5, "monthly_usd": 50},
    "bob": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 0.000001},
}

# -- Anthropic, from the documentation --------------------------------------------------------------------

NULL_INT = {"type": ["integer", "null"], "minimum": 0}
USAGE = {
    "type": "object",
    "required": ["input_tokens", "output_tokens"],
    "properties": {
        "input_tokens": {"type": "integer", "minimum": 0},
        "output_tokens": {"type": "integer", "minimum": 0},
        "cache_creation_input_tokens": NULL_INT,
        "cache_read_input_tokens": NULL_INT,
        "cache_creation": {
            "type": ["object", "null"],
            "properties": {"ephemeral_5m_input_tokens": NULL_INT, "ephemeral_1h_input_tokens": NULL_INT},
        },
        "server_tool_use": {"type": ["object", "null"], "properties": {"web_search_requests": NULL_INT}},
        "service_tier": {"enum": ["standard", "priority", "batch", None]},
    },
}
TEXT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}, "citations": {"type": ["array", "null"]}},
}
TOOL_USE = {
    "type": "object",
    "required": ["type", "id", "name", "input"],
    "properties": {
        "type": {"const": "tool_use"},
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "input": {"type": "object"},
    },
}
THINKING = {
    "type": "object",
    "required": ["type", "thinking", "signature"],
    "properties": {"type": {"const": "thinking"}, "thinking": {"type": "string"}, "signature": {"type": "string"}},
}
REDACTED = {"type": "object", "required": ["type", "data"], "properties": {"type": {"const": "redacted_thinking"}}}
SERVER_TOOL = {"type": "object", "required": ["type", "id", "name", "input"],
               "properties": {"type": {"const": "server_tool_use"}}}  # fmt: skip
SEARCH_RESULT = {"type": "object", "required": ["type", "tool_use_id", "content"],
                 "properties": {"type": {"const": "web_search_tool_result"}}}  # fmt: skip
BLOCK = {"oneOf": [TEXT, TOOL_USE, THINKING, REDACTED, SERVER_TOOL, SEARCH_RESULT]}
STOP_REASONS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                "model_context_window_exceeded"]  # fmt: skip
MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "content": {"type": "array", "items": BLOCK},
        "model": {"type": "string", "minLength": 1},
        "stop_reason": {"enum": [*STOP_REASONS, None]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": USAGE,
    },
}
DELTA = {
    "oneOf": [
        {"type": "object", "required": ["type", "text"],
         "properties": {"type": {"const": "text_delta"}, "text": {"type": "string"}}},
        {"type": "object", "required": ["type", "partial_json"],
         "properties": {"type": {"const": "input_json_delta"}, "partial_json": {"type": "string"}}},
        {"type": "object", "required": ["type", "thinking"],
         "properties": {"type": {"const": "thinking_delta"}, "thinking": {"type": "string"}}},
        {"type": "object", "required": ["type", "signature"],
         "properties": {"type": {"const": "signature_delta"}, "signature": {"type": "string"}}},
        {"type": "object", "required": ["type", "citation"], "properties": {"type": {"const": "citations_delta"}}},
    ]
}  # fmt: skip
INDEX = {"type": "integer", "minimum": 0}
ERROR_TYPES = ["invalid_request_error", "authentication_error", "billing_error", "permission_error",
               "not_found_error", "request_too_large", "rate_limit_error", "api_error", "timeout_error",
               "overloaded_error"]  # fmt: skip
ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },  # fmt: skip
        "request_id": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}
EVENTS: dict[str, dict[str, Any]] = {
    "message_start": {"required": ["type", "message"], "properties": {"message": MESSAGE}},
    "content_block_start": {"required": ["type", "index", "content_block"],
                            "properties": {"index": INDEX, "content_block": BLOCK}},
    "content_block_delta": {"required": ["type", "index", "delta"], "properties": {"index": INDEX, "delta": DELTA}},
    "content_block_stop": {"required": ["type", "index"], "properties": {"index": INDEX}},
    "message_delta": {
        "required": ["type", "delta", "usage"],
        "properties": {
            "delta": {"type": "object", "required": ["stop_reason"], "properties": {
                "stop_reason": {"enum": [*STOP_REASONS, None]}, "stop_sequence": {"type": ["string", "null"]}}},
            "usage": {"type": "object", "required": ["output_tokens"],
                      "properties": {**USAGE["properties"], "input_tokens": NULL_INT}},
        },
    },
    "message_stop": {"required": ["type"]},
    "ping": {"required": ["type"]},
    "error": ERROR,
}  # fmt: skip
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
MODEL = {
    "type": "object",
    "required": ["type", "id", "display_name", "created_at"],
    "properties": {"type": {"const": "model"}, "id": {"type": "string"}, "display_name": {"type": "string"},
                   "created_at": {"type": "string", "pattern": RFC3339}},
}  # fmt: skip
MODEL_LIST = {
    "type": "object",
    "required": ["data", "has_more", "first_id", "last_id"],
    "properties": {"data": {"type": "array", "items": MODEL}, "has_more": {"type": "boolean"},
                   "first_id": {"type": ["string", "null"]}, "last_id": {"type": ["string", "null"]}},
}  # fmt: skip
COUNT = {"type": "object", "required": ["input_tokens"], "properties": {"input_tokens": INDEX}}
TIME = {"type": ["string", "null"]}
COUNTS = {"type": "object", "required": ["processing", "succeeded", "errored", "canceled", "expired"],
          "additionalProperties": INDEX}  # fmt: skip
MESSAGE_BATCH = {
    "type": "object",
    "required": ["id", "type", "processing_status", "request_counts", "ended_at", "created_at", "expires_at",
                 "archived_at", "cancel_initiated_at", "results_url"],
    "properties": {"id": {"type": "string"}, "type": {"const": "message_batch"},
                   "processing_status": {"enum": ["in_progress", "canceling", "ended"]}, "request_counts": COUNTS,
                   "ended_at": TIME, "created_at": {"type": "string"}, "expires_at": {"type": "string"},
                   "archived_at": TIME, "cancel_initiated_at": TIME, "results_url": TIME},
}  # fmt: skip
BATCH_LIST = {
    "type": "object",
    "required": ["data", "has_more", "first_id", "last_id"],
    "properties": {"data": {"type": "array", "items": MESSAGE_BATCH}, "has_more": {"type": "boolean"}},
}
BATCH_RESULT = {
    "type": "object",
    "required": ["custom_id", "result"],
    "properties": {"custom_id": {"type": "string"}, "result": {"oneOf": [
        {"type": "object", "required": ["type", "message"],
         "properties": {"type": {"const": "succeeded"}, "message": MESSAGE}},
        {"type": "object", "required": ["type", "error"], "properties": {"type": {"const": "errored"}, "error": ERROR}},
        {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["canceled", "expired"]}}},
    ]}},
}  # fmt: skip
BATCH_DELETED = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {"type": {"const": "message_batch_deleted"}},
}


def check(schema: dict[str, Any], value: Any, what: str = "") -> None:
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}: {json.dumps(value)[:800]}"


def sse(text: str) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for every SSE event in `text`; comments skipped."""
    out: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            joined = "\n".join(data)
            out.append((name, joined if joined == "[DONE]" else json.loads(joined)))
    return out


def anthropic_stream(text: str) -> dict[str, Any]:
    """Assert the documented event flow; return the message the events build (as the SDK would)."""
    events = sse(text)
    for name, data in events:
        assert isinstance(data, dict) and name == data.get("type"), (name, data)
        assert data["type"] in EVENTS, data
        check({"type": "object", **EVENTS[data["type"]]}, data, data["type"])
    kinds = [d["type"] for _, d in events if d["type"] != "ping"]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"], kinds
    assert kinds.count("message_start") == kinds.count("message_delta") == kinds.count("message_stop") == 1, kinds
    message = events[0][1]["message"] if events[0][1]["type"] == "message_start" else None
    message = next(d["message"] for _, d in events if d["type"] == "message_start")
    assert message["content"] == [] and message["stop_reason"] is None, message
    open_at: int | None = None
    blocks: list[dict[str, Any]] = []
    for _, d in events:
        t = d["type"]
        if t == "content_block_start":
            assert open_at is None and d["index"] == len(blocks), (d, kinds)
            open_at = d["index"]
            blocks.append(dict(d["content_block"]))
        elif t == "content_block_delta":
            assert d["index"] == open_at, (d, kinds)
            b, delta = blocks[open_at], d["delta"]
            want = {"text_delta": "text", "input_json_delta": "tool_use", "thinking_delta": "thinking",
                    "signature_delta": "thinking", "citations_delta": "text"}[delta["type"]]  # fmt: skip
            assert b["type"] == want or (want == "tool_use" and b["type"] == "server_tool_use"), (b, delta)
            if delta["type"] == "text_delta":
                b["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                b["_json"] = b.get("_json", "") + delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                b["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                b["signature"] = b.get("signature", "") + delta["signature"]
        elif t == "content_block_stop":
            assert d["index"] == open_at, (d, kinds)
            b = blocks[open_at]
            if "_json" in b:
                b["input"] = json.loads(b.pop("_json") or "{}")
            open_at = None
        elif t == "message_delta":
            assert open_at is None, kinds
            message["stop_reason"] = d["delta"]["stop_reason"]
            message["stop_sequence"] = d["delta"].get("stop_sequence")
            message["usage"] = {**message["usage"], **{k: v for k, v in d["usage"].items() if v is not None}}
    message["content"] = blocks
    check(MESSAGE, message, "the streamed message")
    assert message["stop_reason"] is not None
    return message


def anthropic_error(r: httpx2.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    check(ERROR, body, "error")
    assert r.headers["request-id"] and r.headers["x-request-id"], r.headers
    return body["error"]


# -- OpenAI, from the vendored specification --------------------------------------------------------------


def optional_nullable(node: Any) -> Any:
    """The schemas with every optional property also allowed to be null: OpenAI's answers send null for
    optional fields the spec types as plain strings (a Response's `user`, a file's `status_details`), and the
    SDKs read an optional field as Optional. Required fields keep their exact types."""
    if isinstance(node, list):
        return [optional_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: optional_nullable(v) for k, v in node.items()}
    props = out.get("properties")
    if isinstance(props, dict) and all(isinstance(v, dict) for v in props.values()):
        required = set(out.get("required", []))
        out["properties"] = {k: v if k in required else {"anyOf": [v, {"type": "null"}]} for k, v in props.items()}
    return out


@cache
def openai_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": optional_nullable(SPEC["$defs"])})


def openai_valid(name: str, value: Any) -> None:
    errors = sorted(openai_validator(name).iter_errors(value), key=lambda e: len(list(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise AssertionError(f"{name}: {best.message[:500]} at {list(best.absolute_path)}: {json.dumps(value)[:800]}")


# -- the tests ----------------------------------------------------------------------------------------------

ASKS: dict[str, dict[str, Any]] = {
    "text": {"messages": [{"role": "user", "content": "hi [sim:tokens=7]"}]},
    "length": {"messages": [{"role": "user", "content": "go on [sim:tokens=50]"}], "max_tokens": 5},
    "stop": {"messages": [{"role": "user", "content": "go [sim:stop]"}], "stop_sequences": ["END"]},
    "tool": {
        "messages": [{"role": "user", "content": "weather? [sim:tool]"}],
        "tools": [
            {
                "name": "get_weather",
                "description": "w",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    },  # fmt: skip
    "system": {"system": [{"type": "text", "text": "Be brief."}], "messages": [{"role": "user", "content": "x"}]},
}


def a_post(gw: Any, path: str, body: dict[str, Any], agent: str = "alice") -> httpx2.Response:
    headers = {"x-api-key": gw.keys[agent], "anthropic-version": "2023-06-01"}
    return httpx2.post(gw.url + path, json=body, headers=headers, timeout=20)


def o_post(gw: Any, path: str, body: dict[str, Any], agent: str = "olivia") -> httpx2.Response:
    return httpx2.post(gw.url + path, json=body, headers={"authorization": f"Bearer {gw.keys[agent]}"}, timeout=20)


def test_the_anthropic_schemas_reject_wrong_answers() -> None:  # the checks can fail
    good = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "x"}],
            "model": CLAUDE, "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
    check(MESSAGE, good)
    for bad in ({**good, "stop_reason": "length"}, {**good, "usage": {"input_tokens": 1}},
                {**good, "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "{}"}]}):  # fmt: skip
        with pytest.raises(AssertionError):
            check(MESSAGE, bad)
    start = {"type": "message_start", "message": {**good, "content": [], "stop_reason": None}}
    stream = [("message_start", start), ("message_stop", {"type": "message_stop"})]
    with pytest.raises(AssertionError):  # no message_delta
        anthropic_stream("".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in stream))


@pytest.mark.parametrize("model", [CLAUDE, GPT])
@pytest.mark.parametrize("ask", list(ASKS))
def test_anthropic_messages_and_their_streams_are_documented_shapes(gateway: Any, model: str, ask: str) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": model, "max_tokens": 64, **ASKS[ask]}
    r = a_post(gw, "/v1/messages", body)
    assert r.status_code == 200, r.text
    check(MESSAGE, r.json(), "message")
    assert r.headers["request-id"] and r.headers["content-type"].startswith("application/json")
    s = a_post(gw, "/v1/messages", {**body, "stream": True})
    assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream"), s.text
    streamed = anthropic_stream(s.text)
    whole = r.json()
    assert streamed["stop_reason"] == whole["stop_reason"]
    assert [b["type"] for b in streamed["content"]] == [b["type"] for b in whole["content"]]
    if ask == "length":
        assert whole["stop_reason"] == "max_tokens"
    if ask == "stop" and model == CLAUDE:  # OpenAI's finish_reason "stop" does not say which sequence stopped it
        assert whole["stop_reason"] == "stop_sequence" and whole["stop_sequence"] == "END"
    if ask == "tool":
        assert whole["stop_reason"] == "tool_use" and streamed["content"][-1]["input"] == whole["content"][-1]["input"]


@pytest.mark.parametrize("model", [CLAUDE, GPT])
def test_a_cut_anthropic_stream_ends_in_a_documented_error_event(gateway: Any, sim: Any, model: str) -> None:
    gw = gateway(agents=MIXED)
    sim.inject("cut", count=1, model=model)
    s = a_post(gw, "/v1/messages", {"model": model, "max_tokens": 64, "stream": True, **ASKS["text"]})
    events = sse(s.text)
    assert events[-1][0] == "error", events
    for name, data in events:
        assert name == data["type"] and data["type"] in EVENTS, (name, data)
        check({"type": "object", **EVENTS[name]}, data, name)
    assert events[-1][1]["error"]["type"] in ERROR_TYPES


def test_anthropic_count_tokens_and_models_are_documented_shapes(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    r = a_post(gw, "/v1/messages/count_tokens", {"model": CLAUDE, **ASKS["tool"]})
    assert r.status_code == 200, r.text
    check(COUNT, r.json(), "count")
    h = {"x-api-key": gw.keys["alice"], "anthropic-version": "2023-06-01"}
    listed = httpx2.get(gw.url + "/v1/models", headers=h)
    check(MODEL_LIST, listed.json(), "models")
    data = listed.json()["data"]
    assert listed.json()["first_id"] == data[0]["id"] and listed.json()["last_id"] == data[-1]["id"]
    check(MODEL, httpx2.get(gw.url + f"/v1/models/{CLAUDE}", headers=h).json(), "model")
    sdk = gw.anthropic()
    assert [m.id for m in sdk.models.list()] == [m["id"] for m in data]
    assert sdk.models.retrieve(CLAUDE).id == CLAUDE


def test_anthropic_errors_are_documented_shapes_and_types(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    cases = [
        (a_post(gw, "/v1/messages", {"model": CLAUDE, "messages": []}), 400, "invalid_request_error"),
        (httpx2.post(gw.url + "/v1/messages", json={}, headers={"x-api-key": "nope"}), 401, "authentication_error"),
        (a_post(gw, "/v1/messages", {"model": "claude-nope", "max_tokens": 5, **ASKS["text"]}), 404,
         "not_found_error"),
    ]  # fmt: skip
    sim.inject("529", count=1, model=CLAUDE)
    cases.append((a_post(gw, "/v1/messages", {"model": CLAUDE, "max_tokens": 5, **ASKS["text"]}), 529,
                  "overloaded_error"))  # fmt: skip
    for r, status, kind in cases:
        assert anthropic_error(r, status)["type"] == kind


def test_message_batches_are_documented_shapes(gateway: Any) -> None:
    gw = gateway(agents=MIXED, batch={"flush_age_s": 0.05, "poll_s": 0.05})
    reqs = [{"custom_id": "a", "params": {"model": CLAUDE, "max_tokens": 16, **ASKS["text"]}},
            {"custom_id": "b", "params": {"model": CLAUDE, "max_tokens": 16, **ASKS["tool"]}}]  # fmt: skip
    r = a_post(gw, "/v1/messages/batches", {"requests": reqs})
    assert r.status_code == 200, r.text
    check(MESSAGE_BATCH, r.json(), "batch")
    bid = r.json()["id"]
    sdk = gw.anthropic()
    import time

    for _ in range(200):
        got = sdk.messages.batches.retrieve(bid)
        if got.processing_status == "ended":
            break
        time.sleep(0.1)
    h = {"x-api-key": gw.keys["alice"], "anthropic-version": "2023-06-01"}
    one = httpx2.get(gw.url + f"/v1/messages/batches/{bid}", headers=h).json()
    check(MESSAGE_BATCH, one, "batch")
    assert one["processing_status"] == "ended" and one["results_url"], one
    check(BATCH_LIST, httpx2.get(gw.url + "/v1/messages/batches", headers=h).json(), "batch list")
    lines = [
        json.loads(x)
        for x in httpx2.get(gw.url + f"/v1/messages/batches/{bid}/results", headers=h).text.split("\n")
        if x
    ]
    assert sorted(x["custom_id"] for x in lines) == ["a", "b"]
    for x in lines:
        check(BATCH_RESULT, x, "result line")
    assert {x.custom_id for x in sdk.messages.batches.results(bid)} == {"a", "b"}
    deleted = httpx2.delete(gw.url + f"/v1/messages/batches/{bid}", headers=h)
    check(BATCH_DELETED, deleted.json(), "deleted")


def test_the_vendored_openai_schemas_reject_wrong_answers() -> None:  # the checks can fail
    with pytest.raises(AssertionError):
        openai_valid("Response", {"id": "resp_1", "object": "response", "output": "text"})
    with pytest.raises(AssertionError):
        openai_valid("ResponseStreamEvent", {"type": "response.output_text.delta", "delta": "x"})
    with pytest.raises(AssertionError):
        openai_valid("CreateEmbeddingResponse", {"object": "list", "data": [{"embedding": "x"}]})


RESPONSES_ASKS: dict[str, dict[str, Any]] = {
    "text": {"input": "hi [sim:tokens=7]"},
    "length": {"input": "go on [sim:tokens=50]", "max_output_tokens": 16},
    "tool": {"input": [{"role": "user", "content": [{"type": "input_text", "text": "weather? [sim:tool]"}]}],
             "tools": [{"type": "function", "name": "get_weather", "strict": False,
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]},
    "instructions": {"instructions": "Be brief.", "input": [{"role": "user", "content": "x"}]},
    "json": {"input": "JSON please", "text": {"format": {"type": "json_object"}}},
}  # fmt: skip


@pytest.mark.parametrize("model", [GPT, CLAUDE])
@pytest.mark.parametrize("ask", list(RESPONSES_ASKS))
def test_responses_and_their_streams_validate(gateway: Any, model: str, ask: str) -> None:
    gw = gateway(agents=MIXED)
    body = {"model": model, "max_output_tokens": 64, **RESPONSES_ASKS[ask]}
    r = o_post(gw, "/v1/responses", body)
    assert r.status_code == 200, r.text
    openai_valid("Response", r.json())
    s = o_post(gw, "/v1/responses", {**body, "stream": True})
    assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream"), s.text
    events = sse(s.text)
    assert events and all(data != "[DONE]" for _, data in events), events[-1:]
    for n, (name, data) in enumerate(events):
        assert name == data["type"], (name, data)
        assert data["sequence_number"] == n, (n, data)  # documented: every event's, in order
        openai_valid("ResponseStreamEvent", data)
    kinds = [d["type"] for _, d in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
    final = events[-1][1]["response"]
    openai_valid("Response", final)
    assert final["status"] == r.json()["status"]
    assert [o["type"] for o in final["output"]] == [o["type"] for o in r.json()["output"]]


def test_stored_responses_validate(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    made = o_post(gw, "/v1/responses", {"model": GPT, "store": True, **RESPONSES_ASKS["text"]})
    rid = made.json()["id"]
    h = {"authorization": f"Bearer {gw.keys['olivia']}"}
    got = httpx2.get(gw.url + f"/v1/responses/{rid}", headers=h)
    assert got.status_code == 200, got.text
    openai_valid("Response", got.json())
    items = httpx2.get(gw.url + f"/v1/responses/{rid}/input_items", headers=h)
    assert items.status_code == 200, items.text
    openai_valid("ResponseItemList", items.json())
    sdk = gw.openai()
    assert sdk.responses.retrieve(rid).id == rid
    assert len(sdk.responses.input_items.list(rid).data) == 1
    missing = httpx2.get(gw.url + "/v1/responses/resp_nope", headers=h)
    assert missing.status_code == 404
    openai_valid("ErrorResponse", missing.json())


def test_embeddings_validate(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    for body in ({"input": "hi"}, {"input": ["a", "b"], "dimensions": 32}, {"input": "x", "encoding_format": "float"}):
        r = o_post(gw, "/v1/embeddings", {"model": "text-embedding-3-small", **body})
        assert r.status_code == 200, r.text
        openai_valid("CreateEmbeddingResponse", r.json())
    assert len(gw.openai().embeddings.create(model="text-embedding-3-small", input="x").data[0].embedding) > 0


def test_openai_batches_and_files_validate(gateway: Any) -> None:
    gw = gateway(agents=MIXED, batch={"flush_age_s": 0.05, "poll_s": 0.05})
    sdk = gw.openai()
    line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": GPT, "max_tokens": 16, "messages": [{"role": "user", "content": "q"}]}}  # fmt: skip
    f = sdk.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
    h = {"authorization": f"Bearer {gw.keys['olivia']}"}
    got = httpx2.get(gw.url + f"/v1/files/{f.id}", headers=h)
    openai_valid("OpenAIFile", got.json())
    b = o_post(gw, "/v1/batches", {"input_file_id": f.id, "endpoint": "/v1/chat/completions",
                                   "completion_window": "24h"})  # fmt: skip
    assert b.status_code == 200, b.text
    openai_valid("Batch", b.json())
    openai_valid("Batch", httpx2.get(gw.url + f"/v1/batches/{b.json()['id']}", headers=h).json())
    openai_valid("ListBatchesResponse", httpx2.get(gw.url + "/v1/batches", headers=h).json())
    import time

    for _ in range(200):
        done = sdk.batches.retrieve(b.json()["id"])
        if done.status == "completed":
            break
        time.sleep(0.05)
    got = httpx2.get(gw.url + f"/v1/batches/{done.id}", headers=h).json()
    openai_valid("Batch", got)
    assert got["status"] == "completed" and got["output_file_id"], got
    openai_valid("OpenAIFile", httpx2.get(gw.url + f"/v1/files/{got['output_file_id']}", headers=h).json())
    out = httpx2.get(gw.url + f"/v1/files/{got['output_file_id']}/content", headers=h).text.splitlines()
    for text in out:  # platform.openai.com/docs/guides/batch: one output line per request
        line = json.loads(text)
        assert set(line) >= {"id", "custom_id", "response", "error"} and line["error"] is None, line
        assert line["custom_id"] == "q1" and line["response"]["status_code"] == 200, line
        assert isinstance(line["response"]["request_id"], str), line
        openai_valid("CreateChatCompletionResponse", line["response"]["body"])


# -- the gateway's own refusals, through each SDK -------------------------------------------------------------


class Counting(httpx2.Client):
    """An SDK's HTTP client that counts the requests the SDK sends (its retries included)."""

    def __init__(self) -> None:
        super().__init__(timeout=20)
        self.sent = 0

    def send(self, request: Any, **kw: Any) -> Any:
        self.sent += 1
        return super().send(request, **kw)


LIMITED = {**MIXED, "carol": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 5,
                               "limits": {"requests_per_minute": 1}}}  # fmt: skip
ASK_A = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [CLAUDE, GPT])
def test_a_budget_refusal_is_each_sdks_typed_402_and_is_not_retried(gateway: Any, model: str, stream: bool) -> None:
    gw = gateway(agents=MIXED)
    a_http, o_http = Counting(), Counting()
    a = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["bob"], max_retries=2, http_client=a_http)
    o = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["bob"], max_retries=2, http_client=o_http)
    with pytest.raises(anthropic.PaymentRequiredError) as ea:
        a.messages.create(model=model, stream=stream, **ASK_A)  # type: ignore[call-overload]
    with pytest.raises(openai.APIStatusError) as eo:
        o.chat.completions.create(model=model, stream=stream, **ASK_A)  # type: ignore[call-overload]
    assert (a_http.sent, o_http.sent) == (1, 1)  # x-should-retry: false, read by both SDKs
    for e in (ea.value, eo.value):
        assert e.status_code == 402 and e.response.headers["x-should-retry"] == "false"
        assert e.request_id == e.response.headers["request-id"] == e.response.headers["x-request-id"]
    check(ERROR, ea.value.body, "anthropic 402")
    openai_valid("ErrorResponse", eo.value.body if "error" in eo.value.body else {"error": eo.value.body})
    assert ea.value.body["error"]["type"] in ("budget_exceeded", "call_too_large")
    assert eo.value.code in ("budget_exceeded", "call_too_large")


@pytest.mark.parametrize("model", [CLAUDE, GPT])
def test_a_rate_limit_refusal_is_each_sdks_typed_429_with_retry_after(gateway: Any, model: str) -> None:
    gw = gateway(agents=LIMITED)
    a = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["carol"], max_retries=0)
    o = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["carol"], max_retries=0)
    a.messages.create(model=model, **ASK_A)
    with pytest.raises(anthropic.RateLimitError) as ea:
        a.messages.create(model=model, **ASK_A)
    with pytest.raises(openai.RateLimitError) as eo:
        o.chat.completions.create(model=model, **ASK_A)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as er:
        o.responses.create(model=model, input="x", max_output_tokens=16)
    check(ERROR, ea.value.body, "anthropic 429")
    assert ea.value.body["error"]["type"] == "rate_limit_error"
    for e in (ea.value, eo.value, er.value):
        assert int(e.response.headers["retry-after"]) >= 1 and e.response.headers["request-id"]
    for e in (eo.value, er.value):
        openai_valid("ErrorResponse", e.response.json())


@pytest.mark.parametrize("model", [GPT, CLAUDE])
def test_a_cut_responses_stream_ends_in_an_error_event_that_validates(gateway: Any, sim: Any, model: str) -> None:
    """The `error` event a broken stream ends with is a ResponseErrorEvent: `sequence_number` is required, and
    follows the last event's (it was missing: the SDK's typed event could not be read)."""
    gw = gateway(agents=MIXED)
    sim.inject("cut", count=1, model=model)
    s = o_post(gw, "/v1/responses", {"model": model, "max_output_tokens": 64, "stream": True, "input": "hi"})
    events = sse(s.text)
    assert events[-1][0] == "error", events
    for n, (name, data) in enumerate(events):
        assert name == data["type"] and data["sequence_number"] == n, (n, data)
        openai_valid("ResponseStreamEvent", data)
    sim.inject("cut", count=1, model=model)
    stream = gw.openai().responses.create(model=model, max_output_tokens=64, stream=True, input="hi")
    last = list(stream)[-1]
    assert last.type == "error" and last.sequence_number == n


PROVIDER_PAGE_CASES = [
    ("anthropic", CLAUDE),  # each API's caller, on its own provider and translated to the other
    ("anthropic", GPT),
    ("openai", GPT),
    ("openai", CLAUDE),
    ("responses", GPT),
    ("responses", CLAUDE),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("api", "model"), PROVIDER_PAGE_CASES)
def test_a_providers_html_error_page_reaches_the_caller_in_its_own_error_shape(
    gateway: Any, sim: Any, api: str, model: str, stream: bool
) -> None:
    """A CDN or proxy in front of a provider answers 502 with an HTML page. It was relayed as it came (under
    content-type application/json) to a caller of the provider's own API: not the caller's documented error
    shape, and the SDK's error carried no error object. The status is kept; the page's text is the message."""
    gw = gateway(agents=MIXED)
    sim.inject("html", count=1, model=model)
    if api == "anthropic":
        r = a_post(gw, "/v1/messages", {"model": model, "stream": stream, **ASK_A})
        err = anthropic_error(r, 502)
        assert err["type"] == "api_error"
    else:
        path, body = ("/v1/chat/completions", ASK_A) if api == "openai" else ("/v1/responses", {"input": "x"})
        r = o_post(gw, path, {"model": model, "stream": stream, **body})
        assert r.status_code == 502 and r.headers["content-type"].startswith("application/json"), r.text
        openai_valid("ErrorResponse", r.json())
        err = r.json()["error"]
    assert "502 Bad Gateway" in err["message"] and "<" not in err["message"], err
    sim.inject("html", count=1, model=model)
    with pytest.raises((anthropic.InternalServerError, openai.InternalServerError)) as e:
        if api == "anthropic":
            gw.anthropic().messages.create(model=model, **ASK_A)
        elif api == "openai":
            gw.openai().chat.completions.create(model=model, **ASK_A)  # type: ignore[call-overload]
        else:
            gw.openai().responses.create(model=model, input="x", max_output_tokens=16)
    assert isinstance(e.value.body, dict) and "502 Bad Gateway" in str(e.value.body)


def test_the_gateways_own_anthropic_errors_carry_the_documented_request_id(gateway: Any) -> None:
    """docs.claude.com/en/api/errors: "The response also includes a request_id field" beside `error`; the
    gateway's own refusals carried only the header."""
    gw = gateway(agents=LIMITED)
    h = {"x-api-key": gw.keys["carol"], "anthropic-version": "2023-06-01"}
    refused = [
        a_post(gw, "/v1/messages", {"model": CLAUDE, "messages": []}),  # 400
        httpx2.post(gw.url + "/v1/messages", json={}, headers={"x-api-key": "nope"}),  # 401
        a_post(gw, "/v1/messages", {"model": GPT, **ASK_A}, agent="bob"),  # 402
        httpx2.get(gw.url + "/v1/messages", headers=h),  # 405
        httpx2.post(gw.url + "/v1/messages", content=b"x", headers={**h, "content-type": "text/plain"}),  # 415
        httpx2.get(gw.url + "/v1/models/nope", headers=h),  # 404
        httpx2.get(gw.url + "/v1/messages/batches/msgbatch_nope", headers=h),  # 404
    ]
    httpx2.post(gw.url + "/v1/messages", json={"model": CLAUDE, **ASK_A}, headers=h)
    refused.append(httpx2.post(gw.url + "/v1/messages", json={"model": CLAUDE, **ASK_A}, headers=h))  # 429
    assert [r.status_code for r in refused] == [400, 401, 402, 405, 415, 404, 404, 429]
    for r in refused:
        check(ERROR, r.json(), "error")
        assert r.json().get("request_id") == r.headers["request-id"], (r.status_code, r.text, r.headers)
    with pytest.raises(anthropic.NotFoundError) as e:
        gw.anthropic("carol").models.retrieve("nope")
    assert e.value.body["request_id"] == e.value.request_id  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("o4-mini", {"input": "think [sim:tokens=9]", "reasoning": {"effort": "low"}}),
        ("o4-mini", {"input": "think long [sim:tokens=40]", "reasoning": {"effort": "high"}, "max_output_tokens": 64}),
        ("gpt-4.1-mini", {"input": "find it [sim:web_search=2]", "tools": [{"type": "web_search_preview"}]}),
    ],
)
def test_reasoning_and_web_search_responses_validate(gateway: Any, model: str, extra: dict[str, Any]) -> None:
    gw = gateway(agents={"olivia": {"model": GPT, "models": [GPT, "o4-mini"], "daily_usd": 5}})
    body = {"model": model, "max_output_tokens": 2000, **extra}
    r = o_post(gw, "/v1/responses", body)
    assert r.status_code == 200, r.text
    openai_valid("Response", r.json())
    events = sse(o_post(gw, "/v1/responses", {**body, "stream": True}).text)
    for n, (name, data) in enumerate(events):
        assert name == data["type"] and data["sequence_number"] == n, (n, data)
        openai_valid("ResponseStreamEvent", data)
    assert [o["type"] for o in events[-1][1]["response"]["output"]] == [o["type"] for o in r.json()["output"]]


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
TASKS = {"short": {"max_tokens": 64, "brevity": "Be terse.", "schema": SCHEMA}}


@pytest.mark.parametrize("model", [CLAUDE, GPT])
@pytest.mark.parametrize("api", ["anthropic", "openai", "responses"])
def test_answers_the_levers_reshaped_are_documented_shapes(gateway: Any, api: str, model: str) -> None:
    """Structured output (a forced tool handed back as a JSON text answer for Claude), brevity and a fitted
    max_tokens change what is sent; what comes back must still be the caller's documented shapes."""
    agents = {n: {**a, "tasks": TASKS} for n, a in MIXED.items() if n != "bob"}
    gw = gateway(agents=agents)
    task = {"x-paymaster-task": "short"}
    if api == "anthropic":
        h = {"x-api-key": gw.keys["alice"], "anthropic-version": "2023-06-01", **task}
        body: dict[str, Any] = {"model": model, "max_tokens": 500, **ASKS["text"]}
        r = httpx2.post(gw.url + "/v1/messages", json=body, headers=h, timeout=20)
        assert r.status_code == 200 and r.headers.get("x-paymaster-structured"), (r.text, r.headers)
        check(MESSAGE, r.json(), "message")
        assert json.loads(r.json()["content"][0]["text"]) is not None
        s = httpx2.post(gw.url + "/v1/messages", json={**body, "stream": True}, headers=h, timeout=20)
        streamed = anthropic_stream(s.text)
        assert [b["type"] for b in streamed["content"]] == ["text"] and json.loads(streamed["content"][0]["text"])
        return
    h = {"authorization": f"Bearer {gw.keys['olivia']}", **task}
    if api == "openai":
        body = {"model": model, "max_tokens": 500, "messages": ASKS["text"]["messages"]}
        r = httpx2.post(gw.url + "/v1/chat/completions", json=body, headers=h, timeout=20)
        assert r.status_code == 200, r.text
        openai_valid("CreateChatCompletionResponse", r.json())
        assert json.loads(r.json()["choices"][0]["message"]["content"]) is not None
        s = httpx2.post(gw.url + "/v1/chat/completions", json={**body, "stream": True}, headers=h, timeout=20)
        for _, chunk in sse(s.text):
            if chunk != "[DONE]":
                openai_valid("CreateChatCompletionStreamResponse", chunk)
        return
    body = {"model": model, "max_output_tokens": 500, "input": "hi"}
    r = httpx2.post(gw.url + "/v1/responses", json=body, headers=h, timeout=20)
    assert r.status_code == 200, r.text
    openai_valid("Response", r.json())
    s = httpx2.post(gw.url + "/v1/responses", json={**body, "stream": True}, headers=h, timeout=20)
    for n, (_, event) in enumerate(sse(s.text)):
        assert event["sequence_number"] == n
        openai_valid("ResponseStreamEvent", event)


def test_a_model_the_agent_may_not_call_is_openais_model_not_found(gateway: Any) -> None:
    """OpenAI answers a model a key cannot use with 404, type invalid_request_error, code `model_not_found`
    (what callers and frameworks match on); the gateway's own 404 had code null."""
    gw = gateway(agents=MIXED)
    o = gw.openai()
    calls = [
        lambda: o.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}]),
        lambda: o.responses.create(model="gpt-4o", input="x"),  # a real model, not this agent's
        lambda: o.embeddings.create(model="text-embedding-3-large", input="x"),
        lambda: o.models.retrieve("gpt-nope"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert e.value.code == "model_not_found" and e.value.param == "model", e.value.body
        assert e.value.type == "invalid_request_error"
        openai_valid("ErrorResponse", e.value.response.json())
    with pytest.raises(anthropic.NotFoundError) as a:
        gw.anthropic().messages.create(model="claude-nope", **ASK_A)
    assert a.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_an_html_error_page_on_token_counts_and_embeddings_reaches_the_caller_in_its_shape(
    gateway: Any, sim: Any
) -> None:
    gw = gateway(agents=MIXED)
    sim.inject("html", count=1, model=CLAUDE)
    err = anthropic_error(a_post(gw, "/v1/messages/count_tokens", {"model": CLAUDE, **ASKS["text"]}), 502)
    assert err["type"] == "api_error" and "502 Bad Gateway" in err["message"] and "<" not in err["message"]
    sim.inject("html", count=1, model="text-embedding-3-small")
    r = o_post(gw, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"})
    assert r.status_code == 502 and r.headers["x-request-id"], r.text
    openai_valid("ErrorResponse", r.json())
    assert "502 Bad Gateway" in r.json()["error"]["message"] and "<" not in r.json()["error"]["message"]


def test_the_anthropic_model_list_pages_as_documented(gateway: Any) -> None:
    """GET /v1/models (Anthropic): `limit` 1–1000 (default 20), `after_id` / `before_id`, `has_more`,
    `first_id`, `last_id`. The gateway ignored the parameters: `limit=1` listed every model, `has_more` false."""
    gw = gateway(agents={"alice": {"model": CLAUDE, "models": [CLAUDE, "claude-sonnet-4-6", GPT], "daily_usd": 5}})
    h = {"x-api-key": gw.keys["alice"], "anthropic-version": "2023-06-01"}

    def page(q: str) -> dict[str, Any]:
        r = httpx2.get(gw.url + "/v1/models?" + q, headers=h)
        assert r.status_code == 200, r.text
        check(MODEL_LIST, r.json(), "models")
        return dict(r.json())

    every = [m["id"] for m in page("")["data"]]
    assert every == [CLAUDE, "claude-sonnet-4-6", GPT]
    one = page("limit=1")
    assert [m["id"] for m in one["data"]] == every[:1] and one["has_more"] and one["last_id"] == every[0]
    two = page(f"limit=1&after_id={one['last_id']}")
    assert [m["id"] for m in two["data"]] == every[1:2] and two["has_more"]
    last = page(f"after_id={every[1]}")
    assert [m["id"] for m in last["data"]] == every[2:] and not last["has_more"]
    before = page(f"before_id={every[2]}&limit=1")
    assert [m["id"] for m in before["data"]] == every[1:2] and before["has_more"]
    assert [m.id for m in gw.anthropic().models.list(limit=1)] == every  # the SDK pages through them all
    for bad in ("limit=0", "limit=1001", "limit=abc"):
        err = anthropic_error(httpx2.get(gw.url + "/v1/models?" + bad, headers=h), 400)
        assert "limit" in err["message"]
