"""The Anthropic Messages API as the simulator speaks it: admission, validation, input token
counting, the prompt's blocks and breakpoints for the cache, replies, event streams, errors, and
the models list.

Stream order, as the API sends it: message_start (usage with input tokens, output_tokens 1) →
content_block_start → ping → content_block_delta × n → content_block_stop → message_delta
(stop_reason, final usage) → message_stop; each as `event: NAME\\ndata: JSON\\n\\n`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..prompt_cache import MAX_BREAKPOINTS, TTL_SECONDS, min_cacheable_tokens
from ..wire.fields import whole
from .answer import Answer, Ask, Tool, ToolMode
from .asgi import EVENT_STREAM, JSON, NO_CACHE, Reply, Stream, bearer, json_reply, seconds
from .cache import Marked, prefix_hashes
from .faults import Fault
from .ids import new_id
from .text import char_deltas, seed, word_deltas
from .tokens import (
    MESSAGE_TOKENS,
    MODEL,
    anthropic_document,
    anthropic_image,
    count_json,
    count_json_items,
    count_text,
    count_tokens,
)

WORDS_PER_DELTA = 3
# platform.claude.com/docs/en/build-with-claude/fast-mode ("supportedModels"): the models `speed: "fast"`
# runs on; on any other the request is refused
FAST_MODELS = ("claude-fable-5-2", "claude-mythos-5-2", "claude-opus-5-5", "claude-opus-5", "claude-opus-4-8")
# platform.claude.com/docs/en/manage-claude/data-residency: `inference_geo` ("global" | "us") is taken by
# Claude Opus 4.6 and every later model; "requests with inference_geo on legacy models return a 400 error"
GEOS = ("global", "us")
GEO_LEGACY = re.compile(r"claude-(3|(opus|sonnet|haiku)-4(-[015])?(-\d{8})?$)")
JSON_CHARS_PER_DELTA = 24

_STOP_REASONS = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool": "tool_use",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_FAULTS = {
    "429": (429, "Number of request tokens has exceeded your per-minute rate limit (simulated)"),
    "500": (500, "Internal server error (simulated)"),
    "529": (529, "Overloaded (simulated)"),
}
_TOOL_MODES: dict[str, ToolMode] = {"auto": "auto", "none": "none", "any": "any", "tool": "named"}

MODELS: list[dict[str, Any]] = [
    {"id": "claude-opus-4-8", "display_name": "Claude Opus 4.8", "created_at": "2026-05-28T00:00:00Z"},
    {"id": "claude-opus-4-7", "display_name": "Claude Opus 4.7", "created_at": "2026-04-16T00:00:00Z"},
    {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-17T00:00:00Z"},
    {"id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-05T00:00:00Z"},
    {
        "id": "claude-haiku-4-5-20251001",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-01T00:00:00Z",
    },
    {
        "id": "claude-opus-4-1-20250805",
        "display_name": "Claude Opus 4.1",
        "created_at": "2025-08-05T00:00:00Z",
    },
]
for _m in MODELS:
    _m.update(type="model", lifecycle="active", max_input_tokens=200_000, max_tokens=64_000)
MODELS.sort(key=lambda m: m["created_at"], reverse=True)

_UNCACHEABLE = ("thinking", "redacted_thinking")
_TTL_NAMES = {seconds: name for name, seconds in TTL_SECONDS.items()}


class Invalid(Exception):
    """A request the API would refuse with 400 invalid_request_error."""


class AnthropicWire:
    name = "anthropic"
    workspace_geo = "global"  # the workspace's default_inference_geo (data residency), for requests naming none

    # -- admission and errors

    def admit(self, headers: dict[str, str], accepted: Callable[[str], bool]) -> Reply | None:
        key = headers.get("x-api-key") or bearer(headers.get("authorization", ""))
        if not key:
            return self.error(401, "x-api-key header is required")
        if not accepted(key):
            return self.error(401, "invalid x-api-key")
        if "anthropic-version" not in headers:
            return self.error(400, "anthropic-version: header is required")
        return None

    def error(self, status: int, message: str, retry_after: float | None = None) -> Reply:
        request_id = new_id("req_")
        body = {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": request_id,
        }
        headers = [(b"request-id", request_id.encode())]
        if retry_after is not None:
            headers.append((b"retry-after", seconds(retry_after)))
        return json_reply(status, body, headers)

    def fault(self, fault: Fault) -> Reply:
        status, message = _FAULTS[fault.kind]
        retry_after = fault.retry_after if fault.retry_after is not None or status != 429 else 1
        return self.error(status, message, retry_after)

    def not_found(self, method: str, path: str) -> Reply:
        return self.error(404, f"Not found: {method} {path}")

    # -- requests

    def ask(self, body: Any, raw: bytes) -> Ask | Reply:
        """Validate a Messages request (`raw`: its bytes). `max_tokens` takes a whole-number float, as the
        API's validation does (the recorded body is kept as sent)."""
        if isinstance(body, dict) and isinstance(body.get("max_tokens"), float):
            body = {**body, "max_tokens": whole(body["max_tokens"])}
        try:
            _validate(body, counting=False)
            total, cacheable = measure(body, raw)
        except Invalid as e:
            return self.error(400, str(e))
        messages: list[dict[str, Any]] = body["messages"]
        system = body.get("system")
        if cacheable is not None:  # caching changes no answer
            system, messages = _without_cache_control(system), [_without_cache_control(m) for m in messages]
        tools = [
            Tool(t["name"], s if isinstance(s := t.get("input_schema"), dict) else {})
            for t in body.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        ]
        choice = body.get("tool_choice") or {}
        fmt = (body.get("output_config") or {}).get("format") or {}
        schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
        prompt, turns = _prompt(messages)
        return Ask(
            model=body["model"],
            stream=body.get("stream") is True,
            input_tokens=total,
            seed=seed(system, messages),
            prompt=prompt,
            max_tokens=body["max_tokens"],
            stop=[s for s in body.get("stop_sequences") or () if isinstance(s, str)],
            tools=tools,
            tool_mode=_TOOL_MODES.get(choice.get("type", "auto"), "auto"),
            tool_name=choice.get("name"),
            tool_turns=turns,
            parallel=not (isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True),
            json_schema=schema if isinstance(schema, dict) else None,
            cacheable=cacheable,
            modifiers=self._modifiers(body),
        )

    def _modifiers(self, body: dict[str, Any]) -> dict[str, str]:
        """How the call runs, as usage reports it: the speed and geography asked for, else the workspace's
        default geography (on a model that takes one) when that is not global."""
        out: dict[str, str] = {k: body[k] for k in ("speed", "inference_geo") if k in body}
        if "inference_geo" not in out and self.workspace_geo != "global" and not GEO_LEGACY.match(body["model"]):
            out["inference_geo"] = self.workspace_geo
        return out

    def count(self, body: Any, raw: bytes) -> Reply:
        """POST /v1/messages/count_tokens: the same total a Messages call reports, cached or not."""
        try:
            _validate(body, counting=True)
            total, _ = measure(body, raw)
        except Invalid as e:
            return self.error(400, str(e))
        return json_reply(200, {"input_tokens": total})

    # -- answers

    def reply(self, ask: Ask, answer: Answer) -> Reply:
        request_id = new_id("req_")
        message = _message(ask, answer, final=True)
        message["content"] = _blocks_of(answer, whole=True) if ask.max_tokens else []  # 0: a pre-warming call
        return Reply(200, [JSON, (b"request-id", request_id.encode())], orjson.dumps(message))

    def stream(self, ask: Ask, answer: Answer) -> Stream:
        start = {"type": "message_start", "message": _message(ask, answer, final=False)}
        events: list[tuple[bytes, dict[str, Any], int]] = [(b"message_start", start, 0)]
        for i, (block, deltas) in enumerate(zip(_blocks_of(answer, whole=False), _deltas(answer), strict=True)):
            events.append(
                (b"content_block_start", {"type": "content_block_start", "index": i, "content_block": block}, 0)
            )
            if i == 0:
                events.append((b"ping", {"type": "ping"}, 0))
            for delta, tokens in deltas:
                event = {"type": "content_block_delta", "index": i, "delta": delta}
                events.append((b"content_block_delta", event, tokens))
            events.append((b"content_block_stop", {"type": "content_block_stop", "index": i}, 0))
        usage = _usage(ask, answer.output_tokens)
        for key in ("cache_creation", "service_tier", *ask.modifiers):  # message_delta carries the counts alone
            del usage[key]
        end = {"stop_reason": _STOP_REASONS[answer.stop], "stop_sequence": answer.stop_sequence}
        events += [
            (b"message_delta", {"type": "message_delta", "delta": end, "usage": usage}, 0),
            (b"message_stop", {"type": "message_stop"}, 0),
        ]
        chunks = [(_event(name, data), tokens) for name, data, tokens in events]
        headers = [EVENT_STREAM, NO_CACHE, (b"request-id", new_id("req_").encode())]
        # a "cut" drops the connection after the first delta (or after ping, when there is none)
        return Stream(headers, chunks, cut_at=min(4, len(chunks) - 3))

    # -- models

    def models(self, query: bytes) -> Reply:
        """GET /v1/models, paged by limit / after_id / before_id, newest first."""
        params = parse_qs(query.decode("latin-1"))
        limit = _int(params.get("limit", ["20"])[0], 20)
        if not 1 <= limit <= 1000:
            return self.error(400, "limit: Input should be between 1 and 1000")
        ids = [m["id"] for m in MODELS]
        before, after = params.get("before_id", [""])[0], params.get("after_id", [""])[0]
        for given in (before, after):
            if given and given not in ids:
                return self.error(400, f"unknown model id for paging: {given}")
        if before:
            stop = ids.index(before)
            start = max(0, stop - limit)
            page, more = MODELS[start:stop], start > 0
        else:
            start = ids.index(after) + 1 if after else 0
            page, more = MODELS[start : start + limit], start + limit < len(MODELS)
        return json_reply(
            200,
            {
                "data": page,
                "has_more": more,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
        )

    def model(self, model_id: str) -> Reply:
        for m in MODELS:
            if m["id"] == model_id:
                return json_reply(200, m)
        return self.error(404, f"model: {model_id}")


def input_tokens(body: dict[str, Any], size: int) -> int:
    """System + messages (+ per-message overhead) + tool definitions, never above the request's bytes."""
    total = 0
    system = body.get("system")
    if isinstance(system, str):
        total += count_tokens(system)
    elif isinstance(system, list):
        total += _content_tokens(system)
    for message in body["messages"]:
        total += MESSAGE_TOKENS + _content_tokens(message.get("content"))
    if tools := body.get("tools"):
        total += count_json(tools)
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and "schema" in fmt:
        total += count_json(fmt["schema"])
    return total


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if isinstance(block, dict):
            total += _block_tokens(block)
    return total


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return count_text(block.get("text"))
    if kind == "image":
        return anthropic_image(block.get("source"))
    if kind == "document":
        source = block.get("source")
        source = source if isinstance(source, dict) else {}
        if source.get("type") == "text":
            return count_text(source.get("data"))
        if source.get("type") == "content":
            return _content_tokens(source.get("content"))
        return anthropic_document(source)
    if kind == "tool_use":
        return count_text(block.get("name")) + count_json(block.get("input") or {})
    if kind == "tool_result":
        return _content_tokens(block.get("content"))
    if kind == "thinking":
        return count_text(block.get("thinking"))
    return count_json(_bare(block))


# -- the prompt as the cache sees it


def measure(body: dict[str, Any], raw: bytes) -> tuple[int, Marked | None]:
    """Input tokens, and the prompt as the cache sees it when the request asks for caching.

    Caching needs the prompt block by block. A request whose bytes never say "cache_control" has
    no breakpoint, so it is only counted, by `input_tokens` (the common case, kept fast); a request
    that merely mentions the word takes the longer way to the same total.
    """
    MODEL.set(body["model"])
    if b'"cache_control"' not in raw:
        return input_tokens(body, len(raw)), None
    blocks = _blocks(body)
    marks = _breakpoints(blocks, body.get("cache_control"))
    total = sum(b.tokens for b in blocks)
    if not marks:
        return total, None
    ends = [min(end, total) for end in accumulate(b.tokens for b in blocks)]
    last = marks[-1][0]  # nothing past the last breakpoint is looked up
    hashes = prefix_hashes(["anthropic", body["model"]], (b.value for b in blocks[: last + 1]))
    return total, Marked(ends, hashes, [(pos, ttl) for pos, ttl, _ in marks], min_cacheable_tokens(body["model"]))


@dataclass(slots=True)
class _Block:
    tokens: int
    value: Any  # what the cache hashes: the block without its cache_control, after whatever leads to it
    where: str  # its path in the request, for error messages
    kind: Any  # its type
    control: Any  # its cache_control, or None
    empty: bool = False  # an empty text block, or a message without blocks
    nested: list[tuple[Any, str]] = field(default_factory=list)  # (cache_control, path) of blocks inside it

    @property
    def target(self) -> bool:
        """May the automatic (top-level) breakpoint land here?"""
        return not self.empty and self.kind not in _UNCACHEABLE and self.kind != "deferred tool"


def _blocks(body: dict[str, Any]) -> list[_Block]:
    """Tools, system blocks, message content blocks, in order, each with its tokens.

    What counts but is no block (a message's role and overhead, the output schema, settings that
    invalidate the system or message cache) rides on the next block, in its tokens and its hash.
    """
    blocks: list[_Block] = []
    tools = list(body.get("tools") or ())
    if tools:
        bare = [_bare(t) for t in tools]
        for i, n in enumerate(count_json_items(bare)):
            kind = "deferred tool" if tools[i].get("defer_loading") is True else "tool"
            blocks.append(_Block(n, bare[i], f"tools.{i}", kind, tools[i].get("cache_control")))
    lead: list[Any] = ["system", body.get("speed")]
    extra = 0
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and "schema" in fmt:
        extra += count_json(fmt["schema"])
        lead.append(fmt["schema"])
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}] if system else []
    for j, block in enumerate(system or ()):
        blocks.append(_prompt_block(extra, lead, block, f"system.{j}"))
        lead, extra = [], 0
    lead += ["messages", body.get("tool_choice"), body.get("thinking")]
    for i, message in enumerate(body["messages"]):
        lead.append(message["role"])
        extra += MESSAGE_TOKENS
        content = message["content"]
        if isinstance(content, str):
            blocks.append(_prompt_block(extra, lead, {"type": "text", "text": content}, f"messages.{i}.content"))
            lead, extra = [], 0
            continue
        for j, block in enumerate(content):
            blocks.append(_prompt_block(extra, lead, block, f"messages.{i}.content.{j}"))
            lead, extra = [], 0
    if extra:  # the last message has no blocks
        blocks.append(_Block(extra, lead, f"messages.{len(body['messages']) - 1}.content", None, None, empty=True))
    return blocks


def _prompt_block(extra: int, lead: list[Any], block: dict[str, Any], where: str) -> _Block:
    kind = block.get("type")
    empty = kind == "text" and not block.get("text")
    value = [*lead, _bare(block)]
    inner = block.get("content") if kind == "tool_result" else None
    source = block.get("source") if kind == "document" else None
    if isinstance(source, dict) and source.get("type") == "content":
        inner = source.get("content")
    nested = [
        (b["cache_control"], f"{where}.content.{k}")
        for k, b in enumerate(inner if isinstance(inner, list) else ())
        if isinstance(b, dict) and b.get("cache_control") is not None
    ]
    return _Block(extra + _block_tokens(block), value, where, kind, block.get("cache_control"), empty, nested)


def _breakpoints(blocks: list[_Block], top: Any) -> list[tuple[int, int, str]]:
    """The breakpoints as (position, TTL seconds, path), the automatic one included; checked as the API does."""
    marks: list[tuple[int, int, str]] = []
    for pos, block in enumerate(blocks):
        for control, where in block.nested:  # a breakpoint inside a block: its entry is at the block's end
            marks.append((pos, _ttl(control, f"{where}.cache_control"), where))
        if block.control is None:
            continue
        if block.kind == "deferred tool":
            name = blocks[pos].value.get("name") if isinstance(blocks[pos].value, dict) else None
            raise Invalid(
                f"Tool '{name}' cannot have both defer_loading=true and cache_control set. "
                "Tools with defer_loading cannot use prompt caching."
            )
        if block.kind in _UNCACHEABLE:
            raise Invalid(f"{block.where}.{block.kind}.cache_control: Extra inputs are not permitted")
        if block.empty:
            raise Invalid("cache_control cannot be set for empty text blocks")
        marks.append((pos, _ttl(block.control, f"{block.where}.cache_control"), block.where))
    if top is not None:
        ttl = _ttl(top, "cache_control")
        if len(marks) >= MAX_BREAKPOINTS:  # no slot left for the automatic one, even where it would add nothing
            raise Invalid(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks) + 1}."
            )
        target = next((pos for pos in range(len(blocks) - 1, -1, -1) if blocks[pos].target), None)
        given = next((m for m in marks if m[0] == target and m[2] == blocks[target].where), None)
        if given is not None and given[1] != ttl:
            raise Invalid(
                f"Top-level cache_control has ttl='{_TTL_NAMES[ttl]}' but the target block already has "
                f"cache_control with ttl='{_TTL_NAMES[given[1]]}'"
            )
        if target is not None and given is None:
            marks.append((target, ttl, blocks[target].where))
            marks.sort(key=lambda m: m[0])  # stable: blocks nested in a block come before its own mark
    if len(marks) > MAX_BREAKPOINTS:
        raise Invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}.")
    shortest = None
    for _, ttl, where in marks:
        if shortest is not None and ttl > shortest:
            raise Invalid(
                f"{where}.cache_control.ttl: a ttl='{_TTL_NAMES[ttl]}' cache_control block must not come after a "
                f"ttl='{_TTL_NAMES[shortest]}' cache_control block. Note that blocks are processed in the "
                "following order: `tools`, `system`, `messages`."
            )
        shortest = ttl if shortest is None else min(shortest, ttl)
    return marks


def _ttl(control: Any, where: str) -> int:
    if not isinstance(control, dict):
        raise Invalid(f"{where}: Input should be a valid dictionary")
    if control.get("type") != "ephemeral":
        raise Invalid(f"{where}.type: Input should be 'ephemeral'")
    name = control.get("ttl", "5m")
    if not isinstance(name, str) or name not in TTL_SECONDS:
        raise Invalid(f"{where}.ttl: Input should be {' or '.join(repr(n) for n in TTL_SECONDS)}")
    return TTL_SECONDS[name]


def _without_cache_control(value: Any) -> Any:
    """A system prompt or message with no cache_control on it or its blocks."""
    if isinstance(value, dict):
        value = _bare(value)
        if isinstance(value.get("content"), list):
            value = {**value, "content": [_bare(b) if isinstance(b, dict) else b for b in value["content"]]}
        return value
    if isinstance(value, list):
        return [_bare(b) if isinstance(b, dict) else b for b in value]
    return value


def _bare(block: dict[str, Any]) -> dict[str, Any]:
    """The block without its cache_control (which neither costs tokens nor changes the prefix)."""
    if "cache_control" not in block:
        return block
    return {k: v for k, v in block.items() if k != "cache_control"}


def _validate(body: Any, *, counting: bool) -> None:
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise Invalid("model: Field required")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Input should be a non-empty string")
    if not counting:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise Invalid("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise Invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            raise Invalid("max_tokens: Input should be greater than or equal to 0")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise Invalid("stream: Input should be a valid boolean")
        if max_tokens == 0:
            _prewarm(body)
        _validate_modifiers(body, model)
    messages = body.get("messages")
    if messages is None:
        raise Invalid("messages: Field required")
    if not isinstance(messages, list):
        raise Invalid("messages: Input should be a valid list")
    if not messages:
        raise Invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            raise Invalid(f"messages.{i}.content: Field required")
        if not isinstance(content, str | list):
            raise Invalid(f"messages.{i}.content: Input should be a valid string or list of content blocks")
        if isinstance(content, list):
            _validate_blocks(content, f"messages.{i}.content")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise Invalid("system: Input should be a valid string or list of text blocks")
    if isinstance(system, list):
        _validate_blocks(system, "system")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) and "name" in t for t in tools)):
        raise Invalid("tools: Input should be a valid list of tools, each with a name")
    choice = body.get("tool_choice")
    if choice is not None and not (isinstance(choice, dict) and str(choice.get("type")) in _TOOL_MODES):
        raise Invalid("tool_choice: Input should be an object with type 'auto', 'any', 'tool' or 'none'")
    if isinstance(choice, dict) and choice.get("type") == "tool" and not isinstance(choice.get("name"), str):
        raise Invalid("tool_choice.name: Field required")
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise Invalid("output_config: Input should be a valid dictionary")


def _validate_modifiers(body: dict[str, Any], model: str) -> None:
    """`speed` and `inference_geo`, as the Messages API takes them (API reference, "Create a Message")."""
    speed = body.get("speed")
    if speed is not None and speed not in ("standard", "fast"):
        raise Invalid("speed: Input should be 'standard' or 'fast'")
    if speed == "fast" and not any(model == m or model.startswith(m + "-2") for m in FAST_MODELS):
        raise Invalid(f"speed: fast mode is not supported for model {model}")
    geo = body.get("inference_geo")
    if geo is not None and not isinstance(geo, str):
        raise Invalid("inference_geo: Input should be a valid string")
    if geo is not None and GEO_LEGACY.match(model):
        raise Invalid(f"inference_geo: not supported for model {model}")
    if geo is not None and geo not in GEOS:
        raise Invalid(f"inference_geo: {geo!r} is not an available inference geography")


def _prewarm(body: dict[str, Any]) -> None:
    """`max_tokens: 0` writes the cache and generates nothing; refused where an answer is required."""
    thinking = body.get("thinking")
    choice = body.get("tool_choice")
    config = body.get("output_config")
    if body.get("stream") is True:
        raise Invalid("max_tokens: 0 is not supported with stream: true")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        raise Invalid("max_tokens: 0 is not supported with thinking enabled")
    if isinstance(config, dict) and config.get("format") is not None:
        raise Invalid("max_tokens: 0 is not supported with output_config.format")
    if isinstance(choice, dict) and choice.get("type") in ("tool", "any"):
        raise Invalid(f"max_tokens: 0 is not supported with tool_choice type '{choice['type']}'")


def _validate_blocks(blocks: list[Any], where: str) -> None:
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise Invalid(f"{where}.{j}.type: Field required")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise Invalid(f"{where}.{j}.text: Input should be a valid string")
        kinds = _SOURCE_TYPES.get(block["type"])
        if kinds is not None:  # Messages API reference: an image's or a document's `source` is one of these
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") not in kinds:
                raise Invalid(f"{where}.{j}.source: Input should be one of the {block['type']} source types")
            if source["type"] == "content" and not isinstance(source.get("content"), str | list):
                raise Invalid(f"{where}.{j}.source.content: Input should be a valid string or list")
            if source["type"] in ("base64", "text") and not isinstance(source.get("data"), str):
                raise Invalid(f"{where}.{j}.source.data: Input should be a valid string")
        if block["type"] == "tool_result" and isinstance(block.get("content"), list):
            _validate_blocks(block["content"], f"{where}.{j}.content")


_SOURCE_TYPES = {
    "image": ("base64", "url", "file"),
    "document": ("base64", "text", "content", "url", "file"),
}


def _prompt(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The last user message's text, and how many assistant tool-call turns came after it.

    A user message carrying only tool results continues the loop; one with anything else is a new prompt.
    """
    turns = 0
    for message in reversed(messages):
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if message.get("role") == "assistant":
            turns += any(b.get("type") == "tool_use" for b in blocks)
        elif isinstance(content, str):
            return content, turns
        elif any(b.get("type") != "tool_result" for b in blocks):
            return " ".join(
                b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
            ), turns
    return "", turns


def _message(ask: Ask, answer: Answer, *, final: bool) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": ask.model,
        "content": [],
        "stop_reason": _STOP_REASONS[answer.stop] if final else None,
        "stop_sequence": answer.stop_sequence if final else None,
        "usage": _usage(ask, answer.output_tokens if final else 1),
    }


def _usage(ask: Ask, output_tokens: int) -> dict[str, Any]:
    """`input_tokens` is what was neither read from the cache nor written to it."""
    cache = ask.cache
    return {
        "input_tokens": ask.input_tokens - cache.read - cache.written,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m, "ephemeral_1h_input_tokens": cache.write_1h},
        "output_tokens": output_tokens,
        "service_tier": "standard",
        **ask.modifiers,  # where it ran and at what speed (usage.speed / usage.inference_geo), when asked
    }


def _blocks_of(answer: Answer, *, whole: bool) -> list[dict[str, Any]]:
    """The answer's content blocks: its text, or one tool_use per tool call (empty while streaming)."""
    if answer.tool is None:
        return [{"type": "text", "text": answer.text if whole else ""}]
    return [
        {"type": "tool_use", "id": new_id("toolu_"), "name": t.name, "input": orjson.loads(args) if whole else {}}
        for t, args in answer.calls
    ]


def _deltas(answer: Answer) -> list[list[tuple[dict[str, Any], int]]]:
    """Each content block's deltas, each with the tokens it carries."""
    if answer.tool is None:
        return [[({"type": "text_delta", "text": t}, n) for t, n in word_deltas(answer.text, WORDS_PER_DELTA)]]
    return [
        [
            ({"type": "input_json_delta", "partial_json": p}, count_tokens(p))
            for p in char_deltas(args, JSON_CHARS_PER_DELTA)
        ]
        for _, args in answer.calls
    ]


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default
