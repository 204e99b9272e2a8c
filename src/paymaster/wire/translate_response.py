"""Answers across the two wire formats: whole responses, usage, stop reasons, ids and error bodies
(see `wire.translate` for the policy). Streams build on the same tables (`wire.translate_stream`).

Usage is exact both ways. Anthropic's `input_tokens` leaves out cache reads and writes, OpenAI's
`prompt_tokens` includes them:

    prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens
    prompt_tokens_details.cached_tokens = cache_read_input_tokens
    prompt_tokens_details.cache_write_tokens = cache_creation_input_tokens
    completion_tokens = output_tokens (thinking included on both sides, as reasoning_tokens / thinking_tokens)
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from ..errors import UpstreamFailed
from ..http import MAX_JSON_DEPTH, too_deep
from .translate_openai_options import JSON_TOOL

# Anthropic stop_reason → OpenAI finish_reason. pause_turn (a server tool's long turn) cannot occur:
# server tools are refused on the way in.
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI finish_reason → Anthropic stop_reason. OpenAI does not say whether "stop" was the model's own
# end or a stop sequence, nor which one: it comes back as end_turn.
STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_TIERS_TO_OPENAI = {"standard": "default", "priority": "priority"}
_TIERS_TO_ANTHROPIC = {"default": "standard", "priority": "priority"}


def unmappable(what: str) -> UpstreamFailed:
    """An answer the caller's API cannot express: refused, as a provider failure, never bent."""
    return UpstreamFailed(f"the provider's answer cannot be translated: {what}")


def finish_reason(stop_reason: Any, tool_calls: Any = True) -> str:
    """`tool_calls`: whether the answer called a tool of the caller's (a json_object answer given
    through the answer tool ends as "stop")."""
    if stop_reason not in FINISH:
        raise unmappable(f"stop_reason {stop_reason!r} has no OpenAI finish_reason")
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"
    return FINISH[stop_reason]


def stop_reason(finish: Any, tool_calls: bool) -> str:
    if finish not in STOP:
        raise unmappable(f"finish_reason {finish!r} has no Anthropic stop_reason")
    if tool_calls:  # OpenAI says "stop" when tool_choice named the function; Claude says tool_use
        return "tool_use"
    return STOP[finish]


def chat_id(message_id: Any) -> str:
    """A chatcmpl- id for an Anthropic message id (the same suffix, so logs can be matched)."""
    if isinstance(message_id, str) and message_id:
        return "chatcmpl-" + message_id.removeprefix("msg_")
    return f"chatcmpl-{uuid.uuid4().hex}"


def message_id(completion_id: Any) -> str:
    if isinstance(completion_id, str) and completion_id:
        return "msg_" + completion_id.removeprefix("chatcmpl-")
    return f"msg_{uuid.uuid4().hex}"


def usage_to_openai(u: dict[str, Any]) -> dict[str, Any]:
    read = u.get("cache_read_input_tokens") or 0
    written = u.get("cache_creation_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + read + written
    completion = u.get("output_tokens") or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }
    details = u.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    return out


def usage_to_anthropic(u: dict[str, Any]) -> dict[str, Any]:
    details = u.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    out: dict[str, Any] = {
        "input_tokens": (u.get("prompt_tokens") or 0) - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": u.get("completion_tokens") or 0,
    }
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


# -- whole answers


def anthropic_response_to_openai(resp: dict[str, Any], requested_model: str) -> dict[str, Any]:
    """A Messages response as the chat.completion the caller asked `requested_model` for.

    Thinking blocks are left out, as OpenAI's own reasoning models keep their reasoning to themselves;
    their tokens stay in completion_tokens."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:  # a json_object answer (see translation)
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind not in ("thinking", "redacted_thinking"):
            raise unmappable(f"a {kind!r} content block has no OpenAI counterpart")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    usage = resp.get("usage")
    if not isinstance(usage, dict) or not {"input_tokens", "output_tokens"} <= usage.keys():
        raise unmappable("it carries no usage")
    stop = resp.get("stop_reason")
    out: dict[str, Any] = {
        "id": chat_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": requested_model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(stop, calls)}],
        "usage": usage_to_openai(usage),
    }
    if usage.get("service_tier") in _TIERS_TO_OPENAI:
        out["service_tier"] = _TIERS_TO_OPENAI[usage["service_tier"]]
    return out


def openai_response_to_anthropic(resp: dict[str, Any], requested_model: str) -> dict[str, Any]:
    """A chat.completion as the Messages response the caller asked `requested_model` for.

    A refusal (`message.refusal`) becomes the text of the answer, with stop_reason "refusal"."""
    choices = resp.get("choices") or []
    if len(choices) != 1:
        raise unmappable(f"{len(choices)} choices, where a Message holds one")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    if refusal:
        text = (text or "") + refusal
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") if call.get("type", "function") == "function" else None
        if not isinstance(fn, dict):
            raise unmappable(f"a {call.get('type')!r} tool call has no Anthropic counterpart")
        content.append(
            {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": _tool_input(fn.get("arguments"))}
        )
    usage = resp.get("usage")
    if not isinstance(usage, dict) or not {"prompt_tokens", "completion_tokens"} <= usage.keys():
        raise unmappable("it carries no usage")
    u = usage_to_anthropic(usage)
    if resp.get("service_tier") in _TIERS_TO_ANTHROPIC:
        u["service_tier"] = _TIERS_TO_ANTHROPIC[resp["service_tier"]]
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": requested_model,
        "content": content,
        "stop_reason": "refusal" if refusal else stop_reason(choice.get("finish_reason"), bool(calls)),
        "stop_sequence": None,
        "usage": u,
    }


def _tool_input(arguments: Any) -> dict[str, Any]:
    """OpenAI's arguments are JSON text the model wrote, not always valid; Claude's input is an object."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or too_deep(value):
        shown = str(arguments)[:80]
        raise unmappable(f"tool call arguments {shown!r} are not a JSON object of at most {MAX_JSON_DEPTH} levels")
    return value


# -- errors: the status code stays; the body says the same in the caller's words

# Anthropic error type → (OpenAI type, code). The SDKs pick their exception by status code; these
# keep the body's words consistent with it.
_TO_OPENAI_ERRORS: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("requests", "rate_limit_exceeded"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}
_TO_ANTHROPIC_CODES = {
    "invalid_api_key": "authentication_error",
    "permission_denied": "permission_error",
    "model_not_found": "not_found_error",
    "unknown_url": "not_found_error",
    "not_found": "not_found_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",  # a 429 on OpenAI, and Anthropic's 429 is a rate limit
    "request_too_large": "request_too_large",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}
_TO_ANTHROPIC_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "server_error": "api_error",
}


def error_to_openai(err: Any) -> dict[str, Any]:
    """The inner `error` object of an Anthropic error, as OpenAI's."""
    err = err if isinstance(err, dict) else {}
    given = err.get("type")
    kind, code = _TO_OPENAI_ERRORS.get(given, (given if isinstance(given, str) else "api_error", None))
    return {"message": str(err.get("message") or "unknown error"), "type": kind, "param": None, "code": code}


def error_to_anthropic(err: Any) -> dict[str, Any]:
    """The inner `error` object of an OpenAI error, as Anthropic's (its param kept in the message)."""
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or "unknown error")
    param = err.get("param")
    if isinstance(param, str) and param and param not in message:
        message = f"{param}: {message}"
    kind = _TO_ANTHROPIC_CODES.get(err.get("code")) or _TO_ANTHROPIC_TYPES.get(err.get("type")) or "api_error"
    return {"type": kind, "message": message}


def anthropic_error_to_openai(body: bytes) -> bytes:
    """An Anthropic error body as OpenAI's `{"error": {message, type, param, code}}`."""
    obj = _json(body)
    if obj is None:
        err: dict[str, Any] = {"type": "api_error", "message": _text(body)}
    else:
        inner = obj.get("error")
        err = inner if isinstance(inner, dict) else {"message": _text(body)}
    return orjson.dumps({"error": error_to_openai(err)})


def openai_error_to_anthropic(body: bytes) -> bytes:
    """An OpenAI error body as Anthropic's `{"type": "error", "error": {type, message}}`."""
    obj = _json(body)
    err = obj.get("error") if obj is not None and isinstance(obj.get("error"), dict) else {"message": _text(body)}
    out: dict[str, Any] = {"type": "error", "error": error_to_anthropic(err)}
    return orjson.dumps(out)


_BY_STATUS = {  # Anthropic's documented error type per status (docs.claude.com/en/api/errors)
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def is_error_body(api: str, body: bytes) -> bool:
    """Whether `body` is a JSON error of `api`'s shape ("anthropic", else OpenAI's): an object with an
    `error` object (and, Anthropic's, `"type": "error"`)."""
    obj = _json(body)
    return obj is not None and isinstance(obj.get("error"), dict) and (api != "anthropic" or obj.get("type") == "error")


def error_from_text(api: str, status: int, body: bytes) -> bytes:
    """A provider's error answer that is no API's error object (a CDN's or proxy's HTML page, an empty or cut
    body) as an error of `api`'s shape: its text (tags dropped) as the message, typed by its status."""
    message = _text(re.sub(rb"<[^>]*>", b" ", body) if body.lstrip()[:1] == b"<" else body)
    if api == "anthropic":
        kind = _BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _text(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:2000] or "the provider answered with an empty error body"
