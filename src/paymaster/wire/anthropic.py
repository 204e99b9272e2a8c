"""The Anthropic Messages API on the wire: request checks, usage, stream events, error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call, Usage
from ..errors import BadRequest, GatewayError
from . import data_of

API = "anthropic"
MAX_TOKENS_LIMIT = 1_000_000  # anything above is a mistake, not a budget question


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    """Validate the fields the gateway interprets; returns (model, max_tokens, stream)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a model name string)", param="model")
    mt = body.get("max_tokens")
    if mt is None:
        raise BadRequest("max_tokens: field required", param="max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or not 1 <= mt <= MAX_TOKENS_LIMIT:
        raise BadRequest(f"max_tokens: must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {mt!r}", param="max_tokens")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages: must be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: must be 'user' or 'assistant'", param=f"messages.{i}.role")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", param="stream")
    return model, mt, stream


def set_max_tokens(body: dict[str, Any], n: int, provider_kind: str) -> None:
    body["max_tokens"] = n


def usage(u: dict[str, Any] | None) -> Usage:
    """Anthropic reports input_tokens *excluding* cache reads and writes; Usage counts the total."""
    if not u:
        return Usage()
    uncached = u.get("input_tokens") or 0
    cr = u.get("cache_read_input_tokens") or 0
    cw = u.get("cache_creation_input_tokens") or 0
    cc = u.get("cache_creation") or {}
    cw1h = cc.get("ephemeral_1h_input_tokens") or 0 if isinstance(cc, dict) else 0
    return Usage(uncached + cr + cw, u.get("output_tokens") or 0, cr, cw, cw1h)


class StreamWatch:
    """Follows a /v1/messages event stream for its usage. Frames pass through unchanged, except that a
    structured answer's forced tool call is turned back into text (see `unwrap_structured`)."""

    __slots__ = ("usage_in", "output_tokens", "finished", "tool", "tool_blocks")

    def __init__(self, call: Call) -> None:
        self.usage_in: dict[str, Any] = {}
        self.output_tokens = 0
        self.finished = False
        self.tool = call.structured_tool
        self.tool_blocks: set[int] = set()

    def frame(self, f: bytes) -> bytes | None:
        if f.startswith(b"event: message_start"):
            d = orjson.loads(data_of(f) or b"{}")
            self.usage_in = dict(d.get("message", {}).get("usage") or {})
            self.output_tokens = self.usage_in.get("output_tokens") or 0
        elif f.startswith(b"event: message_delta"):
            d = orjson.loads(data_of(f) or b"{}")
            u = d.get("usage") or {}
            if u.get("output_tokens") is not None:
                self.output_tokens = u["output_tokens"]
            for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"):
                if u.get(k) is not None:  # newer API versions repeat cumulative input usage here
                    self.usage_in[k] = u[k]
            if self.tool and (d.get("delta") or {}).get("stop_reason") == "tool_use":
                d["delta"]["stop_reason"] = "end_turn"
                return _event("message_delta", d)
        elif f.startswith(b"event: message_stop"):
            self.finished = True
        elif self.tool and f.startswith(b"event: content_block_"):
            return self._untool(f)
        return f

    def _untool(self, f: bytes) -> bytes:
        d = orjson.loads(data_of(f) or b"{}")
        i = d.get("index")
        if f.startswith(b"event: content_block_start"):
            block = d.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name") == self.tool:
                self.tool_blocks.add(i)
                d["content_block"] = {"type": "text", "text": ""}
                return _event("content_block_start", d)
        elif f.startswith(b"event: content_block_delta") and i in self.tool_blocks:
            delta = d.get("delta") or {}
            if delta.get("type") == "input_json_delta":
                d["delta"] = {"type": "text_delta", "text": delta.get("partial_json", "")}
                return _event("content_block_delta", d)
        return f

    def usage(self) -> Usage:
        u = usage(self.usage_in)
        u.output_tokens = self.output_tokens
        return u

    def saw_start(self) -> bool:
        return bool(self.usage_in)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def unwrap_structured(data: bytes, tool: str) -> bytes:
    """A forced-tool answer as the JSON text answer the caller asked for."""
    obj = orjson.loads(data)
    content = obj.get("content")
    if not isinstance(content, list):
        return data
    obj["content"] = [
        {"type": "text", "text": orjson.dumps(b.get("input", {})).decode()}
        if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("name") == tool
        else b
        for b in content
    ]
    if obj.get("stop_reason") == "tool_use":
        obj["stop_reason"] = "end_turn"
    return orjson.dumps(obj)


def error_body(e: GatewayError) -> bytes:
    err: dict[str, Any] = {"type": e.kind, "message": e.message}
    err.update(e.extra)
    return orjson.dumps({"type": "error", "error": err})


def stream_error(message: str) -> bytes:
    """An `error` event, as the API sends mid-stream; the SDK raises it as an APIError."""
    body = orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return b"event: error\ndata: " + body + b"\n\n"


def models_body(models: list[str]) -> bytes:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in models]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    )
