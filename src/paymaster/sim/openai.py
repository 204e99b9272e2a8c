"""OpenAI Chat Completions as the simulator speaks it (and so do vLLM and other compatible servers):
admission, validation, input token counting, replies, chunk streams, errors, the models list.

Stream: `data: {chat.completion.chunk}\\n\\n` lines: a first chunk with the role, content deltas
(or tool-call argument deltas), a chunk with an empty delta and the finish_reason; with
`stream_options.include_usage` every chunk carries `"usage": null` and a last chunk with no
choices carries the usage; then `data: [DONE]`. With `n` > 1 the choices follow one another (each
chunk names its choice's index) and usage counts them all; with `logprobs: true` each choice (each
content chunk) carries `logprobs.content` for its tokens (see `sim.logprobs`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson

from ..costmodel.tokenizer import encoding, encoding_for
from ..prompt_cache import OPENAI_EXTENDED_TTL_SECONDS, OPENAI_MIN_TOKENS, OPENAI_TTL_SECONDS
from ..wire.fields import plain
from .answer import Answer, Ask, Tool, ToolMode
from .asgi import EVENT_STREAM, JSON, NO_CACHE, Reply, Stream, bearer, json_reply, seconds
from .cache import Automatic, prefix_hashes
from .faults import Fault
from .ids import new_id
from .logprobs import MAX_TOP
from .logprobs import content as logprob_content
from .text import char_deltas, seed, word_deltas
from .tokens import (
    AUDIO,
    ENCODING,
    MESSAGE_TOKENS,
    MODEL,
    REPLY_TOKENS,
    count_json,
    count_text,
    count_tokens,
    openai_audio,
    openai_file,
    openai_image,
)

WORDS_PER_DELTA = 3
JSON_CHARS_PER_DELTA = 24
FINGERPRINT = "fp_5153a7e0c1"

_FINISH = {"end": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool": "tool_calls"}
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ERROR_TYPES = {429: "requests", 500: "server_error", 503: "server_error"}
_FAULTS = {
    "429": (
        429,
        "Rate limit reached for requests (simulated). Please try again later.",
        "rate_limit_exceeded",
    ),
    "500": (
        500,
        "The server had an error while processing your request. Sorry about that! (simulated)",
        None,
    ),
    "529": (503, "The engine is currently overloaded, please try again later. (simulated)", None),
}
_DONE = b"data: [DONE]\n\n"
# service_tier (API reference, chat/create and responses/create): the values a request may name, and the tier
# a project with no Scale Tier capacity serves each at. "auto" is the project's tier ("default" unless it is
# configured otherwise); "fast" is priority under its new name and "The response will show
# `service_tier=priority` regardless of if you specify `service_tier=fast` or `priority`"; the response
# names "the processing mode actually used to serve the request".
_TIERS = {
    "auto": "default",
    "default": "default",
    "flex": "flex",
    "scale": "default",
    "priority": "priority",
    "fast": "priority",
}


def served_tier(requested: Any) -> str:
    """The tier the simulated project serves a request naming `requested` at (None: "auto")."""
    if requested is None:
        return _TIERS["auto"]
    tier = _TIERS.get(requested) if isinstance(requested, str) else None
    if tier is None:
        names = ", ".join(f"'{t}'" for t in _TIERS)
        raise Invalid(f"Invalid value: '{requested}'. Supported values are: {names}.", "service_tier", "invalid_value")
    return tier


MODELS: list[dict[str, Any]] = [
    {"id": model, "object": "model", "created": created, "owned_by": owner}
    for model, created, owner in (
        ("gpt-5.5", 1776902400, "system"),
        ("gpt-5.4", 1773705600, "system"),
        ("gpt-5.4-mini", 1773705600, "system"),
        ("gpt-5", 1754425777, "system"),
        ("gpt-5-mini", 1754425928, "system"),
        ("gpt-4.1", 1744316542, "system"),
        ("gpt-4o", 1715367049, "system"),
        ("gpt-4o-mini", 1721172741, "system"),
    )
]


class Invalid(Exception):
    """A request the API would refuse with 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class OpenAIWire:
    name = "openai"

    # -- admission and errors

    def admit(self, headers: dict[str, str], accepted: Callable[[str], bool]) -> Reply | None:
        key = bearer(headers.get("authorization", ""))
        if not key:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        if not accepted(key):
            return self.error(401, f"Incorrect API key provided: {_masked(key)}.", code="invalid_api_key")
        return None

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        kind = _ERROR_TYPES.get(status, "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        headers = [(b"x-request-id", new_id("req_").encode())]
        if retry_after is not None:
            headers.append((b"retry-after", seconds(retry_after)))
        return json_reply(status, body, headers)

    def fault(self, fault: Fault) -> Reply:
        status, message, code = _FAULTS[fault.kind]
        retry_after = fault.retry_after if fault.retry_after is not None or status != 429 else 1
        return self.error(status, message, code=code, retry_after=retry_after)

    def not_found(self, method: str, path: str) -> Reply:
        return self.error(404, f"Invalid URL ({method} {path})", code="unknown_url")

    # -- requests

    def ask(self, body: Any, raw: bytes) -> Ask | Reply:
        """Validate a Chat Completions request (`raw`: its bytes). Null fields are not set, and integer
        fields take whole-number floats, as the API's own validation has it (the recorded body is kept as sent)."""
        if isinstance(body, dict):
            body = {**body}
            plain(body, ("max_tokens", "max_completion_tokens", "n", "top_logprobs", "seed"))
        try:
            max_tokens = _validate(body)
            tier = served_tier(body.get("service_tier"))
        except Invalid as e:
            return self.error(400, str(e), param=e.param, code=e.code)
        messages: list[dict[str, Any]] = body["messages"]
        tools = [
            Tool(f["name"], p if isinstance(p := f.get("parameters"), dict) else {})
            for t in body.get("tools") or ()
            if t.get("type", "function") == "function" and isinstance(f := t.get("function"), dict)
        ]
        mode, name = _tool_choice(body.get("tool_choice"))
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        stop = body.get("stop")
        total, cacheable = measure(body, len(raw))
        prompt, turns = _prompt(messages)
        return Ask(
            model=body["model"],
            stream=body.get("stream") is True,
            input_tokens=total,
            seed=seed(messages),
            prompt=prompt,
            max_tokens=max_tokens,
            stop=[stop] if isinstance(stop, str) else list(stop or ()),
            tools=tools,
            tool_mode=mode,
            tool_name=name,
            tool_turns=turns,
            json=fmt.get("type") in ("json_object", "json_schema"),
            json_schema=schema if isinstance(schema, dict) else None,
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            cacheable=cacheable,
            audio_tokens=AUDIO.get([0])[0],
            parallel=body.get("parallel_tool_calls") is not False,
            choices=body.get("n") or 1,
            logprobs=(body.get("top_logprobs") or 0) if body.get("logprobs") is True else None,
            modifiers={"service_tier": tier},
        )

    # -- answers

    def reply(self, ask: Ask, answer: Answer) -> Reply:
        choices = []
        for i, one in enumerate(answer.all):
            message: dict[str, Any] = {"role": "assistant", "content": one.text, "refusal": None, "annotations": []}
            if one.tool is not None:
                message["content"] = None
                message["tool_calls"] = [_tool_call(t, args, k, whole=True) for k, (t, args) in enumerate(one.calls)]
            logprobs = _logprobs(ask, one.text if one.tool is None else None)
            choices.append({"index": i, "message": message, "logprobs": logprobs, "finish_reason": _FINISH[one.stop]})
        body = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ask.model,
            "choices": choices,
            "usage": _usage(ask, answer),
            "service_tier": ask.modifiers.get("service_tier", "default"),
            "system_fingerprint": FINGERPRINT,
        }
        return Reply(200, [JSON, (b"x-request-id", new_id("req_").encode())], orjson.dumps(body))

    def stream(self, ask: Ask, answer: Answer) -> Stream:
        head = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ask.model,
            "service_tier": ask.modifiers.get("service_tier", "default"),
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            logprobs = _logprobs(ask, delta.get("content")) if "content" in delta and delta["content"] else None
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            data: dict[str, Any] = {**head, "choices": [choice]}
            if ask.include_usage:
                data["usage"] = None
            return b"data: " + orjson.dumps(data) + b"\n\n"

        chunks: list[tuple[bytes, int]] = []
        for i, one in enumerate(answer.all):  # with n > 1, one choice after the other
            if one.tool is not None:  # each call opens with its id and name, then its arguments in pieces
                first: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
                deltas: list[tuple[dict[str, Any], int]] = []
                for k, (t, args) in enumerate(one.calls):
                    deltas.append(({"tool_calls": [_tool_call(t, args, k, whole=False)]}, count_tokens(t.name)))
                    deltas += [
                        ({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}, count_tokens(piece))
                        for piece in char_deltas(args, JSON_CHARS_PER_DELTA)
                    ]
                first["tool_calls"] = deltas.pop(0)[0]["tool_calls"]
            else:
                first = {"role": "assistant", "content": "", "refusal": None}
                deltas = [({"content": text}, n) for text, n in word_deltas(one.text, WORDS_PER_DELTA)]
            if i == 0:
                cut_at = min(2, len(deltas) + 1)  # a "cut" drops the stream after the first delta
            chunks.append((chunk(i, first), 0))
            chunks += [(chunk(i, delta), tokens) for delta, tokens in deltas]
            chunks.append((chunk(i, {}, _FINISH[one.stop]), 0))
        if ask.include_usage:
            last = {**head, "choices": [], "usage": _usage(ask, answer)}
            chunks.append((b"data: " + orjson.dumps(last) + b"\n\n", 0))
        chunks.append((_DONE, 0))
        headers = [EVENT_STREAM, NO_CACHE, (b"x-request-id", new_id("req_").encode())]
        return Stream(headers, chunks, cut_at=cut_at)

    # -- models

    def models(self, query: bytes) -> Reply:
        return json_reply(200, {"object": "list", "data": MODELS})

    def model(self, model_id: str) -> Reply:
        for m in MODELS:
            if m["id"] == model_id:
                return json_reply(200, m)
        return self.error(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
        )


def measure(body: dict[str, Any], size: int) -> tuple[int, Automatic | None]:
    """Input tokens: messages (+ per-message and reply overhead) + tools + response schema, at most
    the request's bytes for its text; and the prompt as the cache sees it, when it is long enough to be cached."""
    MODEL.set(body["model"])
    AUDIO.set([0])
    token = ENCODING.set(encoding(encoding_for(body["model"])))  # OpenAI's tokenizer is public: bill by it
    try:
        total, parts = _parts(body)
    finally:
        ENCODING.reset(token)
    if total < OPENAI_MIN_TOKENS:
        return total, None
    ends = list(accumulate(n for n, _ in parts))
    hashes = prefix_hashes(["openai", body["model"], body.get("prompt_cache_key")], (value for _, value in parts))
    extended = body.get("prompt_cache_retention") == "24h"
    return total, Automatic(ends, hashes, OPENAI_EXTENDED_TTL_SECONDS if extended else OPENAI_TTL_SECONDS)


def _parts(body: dict[str, Any]) -> tuple[int, list[tuple[int, Any]]]:
    """The prompt's tokens, and the prompt in the order the model reads it as (tokens, content)
    pairs: tool definitions, response schema, each message, and the priming of the reply."""
    parts: list[tuple[int, Any]] = []
    total = REPLY_TOKENS
    if tools := body.get("tools"):
        n = count_json(tools)
        parts.append((n, tools))
        total += n
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema") or {}
        n = count_json(schema)
        parts.append((n, schema))
        total += n
    for message in body["messages"]:
        n = MESSAGE_TOKENS + _content_tokens(message.get("content")) + count_text(message.get("name"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                n += count_text(function.get("name")) + count_text(function.get("arguments"))
        parts.append((n, message))
        total += n
    parts.append((REPLY_TOKENS, "reply"))
    return total, parts


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            total += count_text(part.get("text"))
        elif kind == "refusal":
            total += count_text(part.get("refusal"))
        elif kind == "image_url":
            total += openai_image(part.get("image_url"))
        elif kind == "input_audio":
            total += openai_audio(part.get("input_audio"))
        elif kind == "file":
            total += openai_file(part.get("file"))
        else:
            total += count_json(part)
    return total


def _validate(body: Any) -> int | None:
    """Check a request; return its output limit (max_completion_tokens, else max_tokens, else None)."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.", code="invalid_type")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise Invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise Invalid("Invalid type for 'messages': expected an array of objects.", "messages", "invalid_type")
    if not messages:
        raise Invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(f"Invalid type for 'messages[{i}]': expected an object.", f"messages[{i}]", "invalid_type")
        role = message.get("role")
        if role not in _ROLES:
            raise Invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                "'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and (message.get("tool_calls") or "content" in message)):
            raise Invalid(
                f"Missing required parameter: 'messages[{i}].content'.",
                f"messages[{i}].content",
                "missing_required_parameter",
            )
        if content is not None and not isinstance(content, str | list):
            raise Invalid(f"Invalid type for 'messages[{i}].content'.", f"messages[{i}].content", "invalid_type")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            where = f"messages[{i}].tool_calls"
            raise Invalid(f"Invalid type for '{where}': expected an array of objects.", where, "invalid_type")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            where = f"messages[{i}].content[{j}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise Invalid(
                    f"Missing required parameter: '{where}.type'.",
                    f"{where}.type",
                    "missing_required_parameter",
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise Invalid(f"Invalid type for '{where}.text': expected a string.", f"{where}.text", "invalid_type")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise Invalid(
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                f"messages[{i}].tool_call_id",
                "missing_required_parameter",
            )
    limit = None
    for param in ("max_tokens", "max_completion_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"Invalid type for '{param}': expected an integer.", param, "invalid_type")
        if value < 1:
            raise Invalid(
                f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param,
                "integer_below_min_value",
            )
        limit = value
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128):
        raise Invalid(f"Invalid 'n': expected an integer from 1 to 128, but got {n!r} instead.", "n", "invalid_value")
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise Invalid("Invalid type for 'logprobs': expected a boolean.", "logprobs", "invalid_type")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP:
            raise Invalid(
                f"Invalid 'top_logprobs': expected an integer from 0 to {MAX_TOP}.", "top_logprobs", "invalid_value"
            )
        if logprobs is not True:
            raise Invalid(
                "Invalid value for 'top_logprobs': 'logprobs' must be set to true when using 'top_logprobs'.",
                "top_logprobs",
                "invalid_value",
            )
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise Invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if body.get("stream_options") is not None and not isinstance(body["stream_options"], dict):
        raise Invalid("Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise Invalid("Invalid type for 'stop': expected a string or an array of strings.", "stop", "invalid_type")
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("function", {}), dict) for t in tools)
    ):
        raise Invalid("Invalid type for 'tools': expected an array of tool objects.", "tools", "invalid_type")
    for i, tool in enumerate(tools or ()):
        if tool.get("type", "function") == "function" and not isinstance((tool.get("function") or {}).get("name"), str):
            raise Invalid(
                f"Missing required parameter: 'tools[{i}].function.name'.",
                f"tools[{i}].function.name",
                "missing_required_parameter",
            )
    choice = body.get("tool_choice")
    if choice is not None and not (choice in ("none", "auto", "required") or isinstance(choice, dict)):
        raise Invalid(
            f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
            "tool_choice",
            "invalid_value",
        )
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema")):
        raise Invalid(
            "Invalid 'response_format': type must be 'text', 'json_object' or 'json_schema'.",
            "response_format",
            "invalid_value",
        )
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
        raise Invalid(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise Invalid("Invalid type for 'prompt_cache_key': expected a string.", "prompt_cache_key", "invalid_type")
    retention = body.get("prompt_cache_retention")
    if retention not in (None, "in_memory", "24h"):
        raise Invalid(
            f"Invalid value: '{retention}'. Supported values are: 'in_memory' and '24h'.",
            "prompt_cache_retention",
            "invalid_value",
        )
    return limit


def _tool_choice(choice: Any) -> tuple[ToolMode, str | None]:
    if choice == "none":
        return "none", None
    if choice == "required":
        return "any", None
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        return "named", function.get("name") if isinstance(function, dict) else None
    return "auto", None


def _prompt(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The last user message's text, and how many assistant tool-call turns came after it."""
    turns = 0
    for message in reversed(messages):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            turns += 1
        elif role == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return (content if isinstance(content, str) else ""), turns
    return "", turns


def _tool_call(tool: Tool, arguments: str, index: int, *, whole: bool) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": new_id("call_"),
        "type": "function",
        "function": {"name": tool.name, "arguments": arguments if whole else ""},
    }
    if not whole:
        call = {"index": index, **call}
    return call


def _logprobs(ask: Ask, text: str | None) -> dict[str, Any] | None:
    """A choice's (or a chunk's) `logprobs`, when the request asked for them."""
    if ask.logprobs is None:
        return None
    return {"content": logprob_content(text, ask.logprobs) if text is not None else None, "refusal": None}


# developers.openai.com/api/docs/guides/prompt-caching: "Cache writes have no additional fee on models before the
# GPT-5.6 family. For GPT-5.6 models and later model families, cache writes cost 1.25x the uncached input token
# rate ... OpenAI reports writes in cache_write_tokens and reads in cached_tokens"
WRITE_BILLED = re.compile(r"^gpt-(5\.(?:[6-9]|\d\d)|[6-9]|\d\d)")


def cache_details(ask: Ask) -> dict[str, int]:
    """The prompt-cache counts of a usage object: reads, and writes on the models that bill them."""
    details = {"cached_tokens": ask.cache.read}
    if WRITE_BILLED.match(ask.model):
        details["cache_write_tokens"] = ask.cache.written
    return details


def _usage(ask: Ask, answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": ask.input_tokens,
        "completion_tokens": answer.total_tokens,
        "total_tokens": ask.input_tokens + answer.total_tokens,
        "prompt_tokens_details": {**cache_details(ask), "audio_tokens": ask.audio_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _masked(key: str) -> str:
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
