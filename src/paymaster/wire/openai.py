"""The OpenAI Chat Completions API on the wire (also what vLLM, Ollama and other OpenAI-compatible
servers speak): request checks, usage, stream chunks, error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call, Usage
from ..errors import BadRequest, GatewayError
from . import data_of
from .fields import plain
from .usage_fields import Known, paths, read_counts, unknown_counts

API = "openai"
MAX_TOKENS_LIMIT = 1_000_000
MAX_CHOICES = 128


INTEGERS = frozenset({"max_tokens", "max_completion_tokens", "n", "top_logprobs", "seed"})


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    plain(body, INTEGERS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a model name string)", param="model")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages: must be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}].role: required", param=f"messages[{i}].role")
    for i, m in enumerate(msgs):
        content = m.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"messages[{i}].content[{j}].type: required", param=f"messages[{i}].content")
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("type", ""), str) for t in tools)
    ):
        raise BadRequest("tools: must be a list of tool objects, each with a string type", param="tools")
    limits = []
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_TOKENS_LIMIT:
            raise BadRequest(f"{key}: must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {v!r}", param=key)
        limits.append(v)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", param="stream")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise BadRequest("stream_options: must be an object", param="stream_options")
    return model, (min(limits) if limits else None), stream


def choices(body: dict[str, Any]) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise BadRequest(f"n: must be an integer from 1 to {MAX_CHOICES}, got {n!r}", param="n")
    return n


def set_max_tokens(body: dict[str, Any], n: int, provider_kind: str) -> None:
    """Keep the caller's field; a request without one gets the field its provider understands."""
    present = [k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None]
    if not present:
        present = ["max_completion_tokens" if provider_kind == "openai" else "max_tokens"]
    for k in present:
        body[k] = n


def ask_usage(body: dict[str, Any]) -> bool:
    """Make a stream report usage; returns whether the caller asked for the usage chunk itself."""
    so = body.get("stream_options") or {}
    wanted = bool(so.get("include_usage"))
    if not wanted:
        body["stream_options"] = {**so, "include_usage": True}
    return wanted


# The Chat Completions usage object (API reference: `CompletionUsage`); `service_tier` is on the answer.
KNOWN: Known = {
    "prompt_tokens": None,
    "completion_tokens": None,
    "total_tokens": None,
    "prompt_tokens_details": {
        "cached_tokens": None,
        "audio_tokens": None,
        "cache_write_tokens": None,
        "text_tokens": None,  # parts of prompt_tokens at the text input rate
        "image_tokens": None,
        "cached_tokens_details": {"text_tokens": None, "audio_tokens": None},
    },
    "completion_tokens_details": {
        "reasoning_tokens": None,  # parts of completion_tokens, billed as output
        "audio_tokens": None,
        "accepted_prediction_tokens": None,
        "rejected_prediction_tokens": None,
        "text_tokens": None,
    },
    "prompt_cache_hit_tokens": None,  # DeepSeek's name for cached_tokens
    "prompt_cache_miss_tokens": None,
}


REQUIRED = paths("prompt_tokens", "completion_tokens")
OPTIONAL = paths(
    "prompt_tokens_details.cached_tokens",
    "prompt_cache_hit_tokens",
    "prompt_tokens_details.cache_write_tokens",
    "prompt_tokens_details.audio_tokens",
    "prompt_tokens_details.cached_tokens_details.audio_tokens",
    "completion_tokens_details.audio_tokens",
    "completion_tokens_details.reasoning_tokens",
)


def answer_usage(answer: Any) -> Usage | None:
    if not isinstance(answer, dict):
        return None
    return usage(answer.get("usage"), answer.get("service_tier"))


def usage(u: Any, service_tier: Any = None) -> Usage | None:
    """The usage the provider will bill, normalised; None when it is missing or a count is missing or
    malformed (the call is then booked at its worst case and flagged). prompt_tokens already include
    cached tokens; billable-looking fields without a rule here land in `Usage.unpriced`."""
    if not isinstance(u, dict):
        return None
    counts = read_counts(u, REQUIRED, OPTIONAL)
    if counts is None:
        return None
    prompt, completion, cached, hit, written, audio_in, audio_read, audio_out, reasoning = counts
    return Usage(
        prompt,
        completion,
        max(cached, hit),
        written,
        0,
        input_audio_tokens=audio_in,
        cache_audio_read_tokens=audio_read,
        output_audio_tokens=audio_out,
        reasoning_tokens=reasoning,
        service_tier=service_tier if isinstance(service_tier, str) else "",
        unpriced=tuple(unknown_counts(u, KNOWN)),
    )


class StreamWatch:
    """Follows a chat.completion.chunk stream for its usage chunk, hiding it if the caller did not ask."""

    __slots__ = ("wants_usage_chunk", "usage_raw", "tier", "finished", "started")

    def __init__(self, call: Call) -> None:
        self.wants_usage_chunk = call.wants_usage_chunk
        self.usage_raw: dict[str, Any] | None = None
        self.tier: Any = None
        self.finished = False
        self.started = False

    def frame(self, f: bytes) -> bytes | None:
        d = data_of(f)
        if d is None:
            return f
        if d == b"[DONE]":
            self.finished = True
            return f
        self.started = True
        if b'"usage":{' in d or b'"usage": {' in d:
            obj = orjson.loads(d)
            u = obj.get("usage")
            if u:
                self.usage_raw = u
                self.tier = obj.get("service_tier")
                if not self.wants_usage_chunk and not obj.get("choices"):
                    return None
        return f

    def usage(self) -> Usage | None:
        """The whole call's usage, or None when the stream carried no (usable) usage chunk."""
        return usage(self.usage_raw, self.tier)

    def input_usage(self) -> Usage | None:
        """OpenAI reports input only in the closing usage chunk: a stream that broke off has none."""
        u = self.usage()
        if u is not None:
            u.output_tokens = u.output_audio_tokens = u.reasoning_tokens = 0
        return u


_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error"}


def error_body(e: GatewayError, rid: str | None = None) -> bytes:
    err: dict[str, Any] = {
        "message": e.message,
        "type": _TYPES.get(e.status, e.kind),
        "param": e.param,
        "code": e.code if e.code is not None else (e.kind if e.status not in _TYPES else None),
    }
    err.update(e.extra)
    return orjson.dumps({"error": err})


def stream_error(message: str, seq: int = 0) -> bytes:
    """An error chunk; the SDK raises a chunk carrying `error` as an APIError."""
    body = orjson.dumps({"error": {"message": message, "type": "api_error", "param": None, "code": None}})
    return b"data: " + body + b"\n\n"


def _model(m: str) -> dict[str, Any]:
    return {"id": m, "object": "model", "created": 1735689600, "owned_by": "paymaster"}


def models_body(models: list[str]) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model(m) for m in models]})


def model_body(model: str) -> bytes:
    return orjson.dumps(_model(model))
