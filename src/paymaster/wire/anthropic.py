"""The Anthropic Messages API on the wire: request checks, usage, stream events, error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call, Usage
from ..errors import BadRequest, GatewayError
from . import data_of
from .fields import plain, whole
from .usage_fields import Known, optional_count, paths, read_counts, unknown_counts

API = "anthropic"
MAX_TOKENS_LIMIT = 1_000_000  # anything above is a mistake, not a budget question
INTEGERS = frozenset({"max_tokens", "top_k"})  # integer fields a whole-number float is accepted in


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    """Validate the fields the gateway interprets; returns (model, max_tokens, stream)."""
    plain(body, INTEGERS)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and "budget_tokens" in thinking:
        thinking["budget_tokens"] = whole(thinking["budget_tokens"])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a model name string)", param="model")
    mt = body.get("max_tokens")
    if mt is None:
        raise BadRequest("max_tokens: field required", param="max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or not 0 <= mt <= MAX_TOKENS_LIMIT:
        raise BadRequest(f"max_tokens: must be an integer from 0 to {MAX_TOKENS_LIMIT}, got {mt!r}", param="max_tokens")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages: must be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: must be 'user' or 'assistant'", param=f"messages.{i}.role")
        content = m.get("content")
        if isinstance(content, list):
            _check_blocks(content, "messages.", i, ".content")
    system = body.get("system")
    if isinstance(system, list):
        _check_blocks(system, "system")
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("type", ""), str) for t in tools)
    ):
        raise BadRequest("tools: must be a list of tool objects, each with a string type", param="tools")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", param="stream")
    if mt == 0:
        _prewarm(body)
    return model, mt, stream


def _check_blocks(content: list[Any], *where: object) -> None:
    """Content blocks are objects with a string `type` (the levers read it before the provider does).
    `where`: the list's path in parts, joined only for an error (most calls have none)."""
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            at = "".join(map(str, where))
            raise BadRequest(f"{at}.{j}.type: required (a string)", param=f"{at}.{j}.type")
        if block["type"] == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                _check_blocks(inner, *where, ".", j, ".content")


def _prewarm(body: dict[str, Any]) -> None:
    """`max_tokens: 0` pre-warms the prompt cache (prefill, no output); the API refuses it with the
    settings that need an answer."""
    thinking, choice, config = body.get("thinking"), body.get("tool_choice"), body.get("output_config")
    if body.get("stream") is True:
        refused = "stream"
    elif isinstance(thinking, dict) and thinking.get("type") == "enabled":
        refused = "thinking"
    elif isinstance(config, dict) and config.get("format") is not None:
        refused = "output_config"
    elif isinstance(choice, dict) and choice.get("type") in ("tool", "any"):
        refused = "tool_choice"
    else:
        return
    raise BadRequest(
        f"{refused}: not allowed with max_tokens 0 (a cache pre-warming call generates nothing)", param=refused
    )


MIN_THINKING_BUDGET = 1024  # extended thinking: budget_tokens is at least 1,024 and below max_tokens


def set_max_tokens(body: dict[str, Any], n: int, provider_kind: str) -> None:
    """Set max_tokens; when that lowers the caller's, a thinking budget that no longer fits under it
    (platform.claude.com …/extended-thinking: `budget_tokens` must be less than `max_tokens`) is lowered
    with it, so the fitted call stays one the provider accepts."""
    before = body.get("max_tokens")
    body["max_tokens"] = n
    thinking = body.get("thinking")
    if not (
        isinstance(before, int) and n < before and isinstance(thinking, dict) and thinking.get("type") == "enabled"
    ):
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= n > MIN_THINKING_BUDGET:
        body["thinking"] = {**thinking, "budget_tokens": n - 1}


# The Messages API's usage object (API reference: Messages → `Usage`, and `MessageDeltaUsage` in a stream).
SERVER_TOOLS = {"web_search_requests": "web_search", "web_fetch_requests": "web_fetch"}
"""server_tool_use counts the gateway knows, by the name Usage.server_tool_uses gives them (other tools'
counts are still carried, and flagged as unpriced)."""
STANDARD_GEO = (None, "", "global", "not_available")  # inference_geo values billed at the standard rate
PRICED_GEOS = ("us",)  # inference_geo values billed at a premium the price table knows (pricing.Rates.modified)
BILLED_ITERATIONS = ("compaction",)  # usage iterations billed at the call's model, outside the top-level counts
PRICED_SPEEDS = ("fast",)  # speed values billed at their own prices (genai-prices' `speed` variants)
READ_GEOS = (*STANDARD_GEO, *PRICED_GEOS)
READ_SPEEDS = (None, "standard", *PRICED_SPEEDS)
KNOWN: Known = {
    "input_tokens": None,
    "output_tokens": None,
    "cache_creation_input_tokens": None,
    "cache_read_input_tokens": None,
    "cache_creation": {"ephemeral_5m_input_tokens": None, "ephemeral_1h_input_tokens": None},
    "output_tokens_details": {"thinking_tokens": None},  # a part of output_tokens
    "server_tool_use": dict.fromkeys(SERVER_TOOLS),
    "service_tier": None,
    "speed": None,
    "inference_geo": None,
    "iterations": None,  # `message` entries are in the totals; any other kind is not (see `usage`)
}


# a billed iteration's counts (`iterations[]` of type compaction): those the decoder adds to the totals
ITERATION_KNOWN: Known = {
    "type": None,
    "model": None,
    **{k: KNOWN[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_creation")},
    **{k: KNOWN[k] for k in ("cache_read_input_tokens", "output_tokens_details")},
}


REQUIRED = paths("input_tokens", "output_tokens")
OPTIONAL = paths(
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens_details.thinking_tokens",
)


def answer_usage(answer: Any) -> Usage | None:
    return usage(answer.get("usage")) if isinstance(answer, dict) else None


def usage(u: Any) -> Usage | None:
    """The usage the provider will bill, normalised; None when it is missing or a count is missing or
    malformed (the call is then booked at its worst case and flagged).

    Anthropic reports input_tokens *excluding* cache reads and writes; Usage counts the total.
    Everything billable-looking without a rule here lands in `Usage.unpriced`: unknown counts, other
    server tools, a `speed` or `inference_geo` other than those priced (fast; global, us), usage
    `iterations` other than the `message` ones the totals include and the `compaction` ones added to them
    (advisor, fallback), and any count of a compaction iteration the sum does not read.
    """
    if not isinstance(u, dict):
        return None
    counts = read_counts(u, REQUIRED, OPTIONAL)
    if counts is None:
        return None
    uncached, out, read, written, w5m, w1h, thinking = counts
    written = max(written, w5m + w1h)  # the split never makes the writes smaller than their sum
    unpriced = unknown_counts(u, KNOWN)
    tools: dict[str, int] = {}
    stu = u.get("server_tool_use")
    for key, value in stu.items() if isinstance(stu, dict) else ():
        n = optional_count(value)
        if n is None:  # a malformed count: nothing can price it
            unpriced.append(f"server_tool_use.{key}")
        elif n:
            tools[SERVER_TOOLS.get(key, key.removesuffix("_requests"))] = n
    iterations = u.get("iterations")
    for it in iterations if isinstance(iterations, list) else ():
        if not isinstance(it, dict) or it.get("type") == "message":
            continue
        more = read_counts(it, REQUIRED, OPTIONAL) if it.get("type") in BILLED_ITERATIONS else None
        where = f"iterations.{it.get('type')}"
        if more is None:
            unpriced += unknown_counts(it, {"type": None, "model": None}, where)
            continue
        unpriced += unknown_counts(it, ITERATION_KNOWN, where)  # what the sum below leaves out (server tools…)
        # a compaction step's tokens are not in the top-level counts (platform.claude.com …/compaction:
        # an additional sampling step, billed; the summary is made by the requested model, at its prices)
        uncached, out, read, written, w5m, w1h, thinking = (
            a + b for a, b in zip((uncached, out, read, written, w5m, w1h, thinking), more, strict=True)
        )
        written = max(written, w5m + w1h)
    speed, geo = u.get("speed"), u.get("inference_geo")
    if speed not in READ_SPEEDS:
        unpriced.append(f"speed={speed}")
    if geo not in READ_GEOS:
        unpriced.append(f"inference_geo={geo}")
    tier = u.get("service_tier")
    return Usage(
        uncached + read + written,
        out,
        read,
        written,
        w1h,
        reasoning_tokens=thinking,
        server_tool_uses=tools,
        service_tier=tier if isinstance(tier, str) else "",
        speed=speed if speed in PRICED_SPEEDS else "",
        inference_geo=geo if geo in PRICED_GEOS else "",
        unpriced=tuple(dict.fromkeys(unpriced)) if unpriced else (),
    )


class StreamWatch:
    """Follows a /v1/messages event stream for its usage. Frames pass through unchanged, except that a
    structured answer's forced tool call is turned back into text (see `unwrap_structured`).

    The input side comes from message_start (and message_delta's cumulative repeats of it, newer API
    versions), the output count from message_delta alone: message_start's `output_tokens` is not the
    final count, so a stream whose message_delta carries none has no usable usage."""

    __slots__ = ("usage_in", "output_tokens", "finished", "tool", "tool_blocks")

    def __init__(self, call: Call) -> None:
        self.usage_in: dict[str, Any] = {}
        self.output_tokens: Any = None
        self.finished = False
        self.tool = call.structured_tool
        self.tool_blocks: set[int] = set()

    def frame(self, f: bytes) -> bytes | None:
        if not f.startswith(b"event: message_"):  # content blocks and pings (most frames): no usage in them
            return self._untool(f) if self.tool and f.startswith(b"event: content_block_") else f
        if f.startswith(b"event: message_start"):
            d = orjson.loads(data_of(f) or b"{}")
            message = d.get("message")
            u = message.get("usage") if isinstance(message, dict) else None
            self.usage_in = {k: v for k, v in u.items() if k != "output_tokens"} if isinstance(u, dict) else {}
        elif f.startswith(b"event: message_delta"):
            d = orjson.loads(data_of(f) or b"{}")
            u = d.get("usage")
            for k, v in u.items() if isinstance(u, dict) else ():
                if k == "output_tokens":
                    self.output_tokens = v
                elif v is not None:  # cumulative counts: input, cache, server tool use
                    self.usage_in[k] = v
            if self.tool and (d.get("delta") or {}).get("stop_reason") == "tool_use":
                d["delta"]["stop_reason"] = "end_turn"
                return _event("message_delta", d)
        elif f.startswith(b"event: message_stop"):
            self.finished = True
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

    def usage(self) -> Usage | None:
        """The whole call's usage, or None when the stream did not report it all."""
        if self.output_tokens is None:
            return None
        return usage({**self.usage_in, "output_tokens": self.output_tokens})

    def input_usage(self) -> Usage | None:
        """The input side the stream reported, output left at zero (for a stream that broke off)."""
        return usage({**self.usage_in, "output_tokens": 0}) if "input_tokens" in self.usage_in else None


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


def error_body(e: GatewayError, rid: str | None = None) -> bytes:
    """`{"type": "error", "error": {type, message, …}, "request_id"}`: the documented shape, the request id
    (the `request-id` header's) beside the error when the answer has one."""
    err: dict[str, Any] = {"type": e.kind, "message": e.message}
    err.update(e.extra)
    if rid is None:
        return orjson.dumps({"type": "error", "error": err})
    return orjson.dumps({"type": "error", "error": err, "request_id": rid})


def stream_error(message: str, seq: int = 0) -> bytes:
    """An `error` event, as the API sends mid-stream; the SDK raises it as an APIError."""
    body = orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return b"event: error\ndata: " + body + b"\n\n"


def _model(m: str) -> dict[str, Any]:
    return {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}


def model_body(model: str) -> bytes:
    return orjson.dumps(_model(model))


def models_body(models: list[str], limit: int = 20, after_id: str | None = None, before_id: str | None = None) -> bytes:
    """A page of the model list as Anthropic documents it: `limit` models right after `after_id` (from the
    start when it names none) or right before `before_id`; `has_more` when more lie that way."""
    if before_id in models:
        end = models.index(before_id)
        start = max(0, end - limit)
        page, more = models[start:end], start > 0
    else:
        start = models.index(after_id) + 1 if after_id in models else 0
        page, more = models[start : start + limit], start + limit < len(models)
    return orjson.dumps(
        {
            "data": [_model(m) for m in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )
