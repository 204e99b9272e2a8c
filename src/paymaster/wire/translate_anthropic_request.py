"""An Anthropic Messages request as the OpenAI Chat Completions request asking the same of an OpenAI
(or OpenAI-compatible) model (see `wire.translate` for the policy and the refusals). Tool call ids
pass through unchanged; `cache_control` is a cache hint, not forwarded (OpenAI caches automatically).
"""

from __future__ import annotations

from typing import Any

import orjson

from .translate_refuse import TO_OPENAI, Unmappable, check_fields, number, only, refuse

TOOL_ERROR = "Error: "  # leads a tool result the caller marked is_error
STRUCTURED_NAME = "output"  # OpenAI's json_schema needs a name; Anthropic's output format has none

UNMAPPABLE: Unmappable = {
    "top_k": ((), "OpenAI has no top-k sampling"),
    "thinking": (({"type": "disabled"},), "OpenAI's reasoning is hidden and has no thinking blocks or budget"),
    "container": ((), "OpenAI has no code-execution containers"),
    "context_management": ((), "OpenAI has no context editing"),
    "mcp_servers": ((), "OpenAI Chat Completions has no MCP connector"),
    "inference_geo": ((), "OpenAI has no per-request inference region"),
    "speed": (("standard",), "OpenAI has no fast mode"),
    "diagnostics": ((), "OpenAI has no cache diagnostics"),
}
MAPPED = frozenset(
    "model messages max_tokens system stop_sequences temperature top_p stream tools tool_choice metadata"
    " service_tier output_config"
    " cache_control".split()  # a cache hint, not forwarded: OpenAI caches prompts automatically
)
_TIERS = {"auto": "auto", "standard_only": "default"}  # service_tier → OpenAI


def anthropic_request_to_openai(body: dict[str, Any], target_model: str, provider_kind: str) -> dict[str, Any]:
    """An Anthropic Messages body as the Chat Completions body asking the same of `target_model`.

    `provider_kind` ("openai" | "openai-compatible") picks max_completion_tokens or max_tokens, and
    safety_identifier or user, as `wire.openai.set_max_tokens` does."""
    to = TO_OPENAI
    check_fields(body, MAPPED, UNMAPPABLE, to)
    out: dict[str, Any] = {"model": target_model, "messages": _system_to_openai(body.get("system"))}
    out["messages"] += _messages_to_openai(body.get("messages"))
    limit = body.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        refuse("max_tokens", "must be a positive integer (OpenAI cannot pre-warm a cache with 0)", to)
    out["max_completion_tokens" if provider_kind == "openai" else "max_tokens"] = limit
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            refuse("stop_sequences", "must be a list of strings", to)
        if len(stops) > 4:
            refuse("stop_sequences", "OpenAI takes at most 4 stop sequences", to)
        out["stop"] = stops
    for key in ("temperature", "top_p"):
        value = number(body, key, to, 1)
        if value is not None:
            out[key] = value
    _tools_to_openai(body, out)
    fmt = _format_to_openai(body["output_config"]) if body.get("output_config") is not None else None
    if fmt is not None:
        out["response_format"] = fmt
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            refuse("metadata", "must be an object", to)
        only(metadata, {"user_id"}, "metadata", to)
        if metadata.get("user_id") is not None:
            if not isinstance(metadata["user_id"], str):
                refuse("metadata.user_id", "must be a string", to)
            out["safety_identifier" if provider_kind == "openai" else "user"] = metadata["user_id"]
    tier = body.get("service_tier")
    if tier is not None:
        if not isinstance(tier, str) or tier not in _TIERS:
            refuse("service_tier", "must be 'auto' or 'standard_only'", to)
        out["service_tier"] = _TIERS[tier]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # an Anthropic stream always reports usage
    return out


def _system_to_openai(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    return [{"role": "system", "content": _text_to_openai(system, "system")}]


def _text_to_openai(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A system prompt, or a message of text blocks only, as OpenAI content (cache hints dropped)."""
    to = TO_OPENAI
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        refuse(where, "must be a string or a list of text blocks", to)
    parts = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            refuse(at, "only text blocks can be translated here", to)
        only(block, {"type", "text"}, at, to, hints=("cache_control",))
        parts.append({"type": "text", "text": block["text"]})
    return parts


def _messages_to_openai(msgs: Any) -> list[dict[str, Any]]:
    to = TO_OPENAI
    if not isinstance(msgs, list) or not msgs:
        refuse("messages", "must be a non-empty list", to)
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            refuse(where, "must be an object", to)
        only(m, {"role", "content"}, where, to)
        role, content = m.get("role"), m.get("content")
        if role == "system":
            out.append({"role": "system", "content": _text_to_openai(content, f"{where}.content")})
        elif role == "user":
            out += _user_to_openai(content, f"{where}.content")
        elif role == "assistant":
            out.append(_assistant_to_openai(content, f"{where}.content"))
        else:
            refuse(f"{where}.role", "must be 'user', 'assistant' or 'system'", to)
    if msgs[-1].get("role") == "assistant":
        refuse(
            f"messages.{len(msgs) - 1}",
            "is a prefill (a final assistant turn for Claude to continue), and OpenAI models cannot continue a message",
            to,
        )
    return out


def _user_to_openai(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as tool messages (they lead the turn), then the rest as one user message."""
    to = TO_OPENAI
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list) or not content:
        refuse(where, "must be a string or a non-empty list of content blocks", to)
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            assert isinstance(block, dict)
            if parts:
                refuse(at, "tool_result blocks must come before any other content in a user turn", to)
            out.append(_tool_result_to_openai(block, at))
        elif kind == "text":
            assert isinstance(block, dict)
            parts.append(_text_block(block, at))
        elif kind == "image":
            assert isinstance(block, dict)
            parts.append(_image_to_openai(block, at))
        elif kind == "document":
            refuse(at, "document (PDF and text document) blocks are not translated", to)
        else:
            refuse(at, f"{kind!r} blocks have no OpenAI counterpart", to)
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _text_block(block: dict[str, Any], at: str) -> dict[str, Any]:
    if not isinstance(block.get("text"), str):
        refuse(f"{at}.text", "must be a string", TO_OPENAI)
    only(block, {"type", "text"}, at, TO_OPENAI, hints=("cache_control",))  # citations refused here
    return {"type": "text", "text": block["text"]}


def _image_to_openai(block: dict[str, Any], at: str) -> dict[str, Any]:
    to = TO_OPENAI
    only(block, {"type", "source"}, at, to, hints=("cache_control",))
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        assert isinstance(source, dict)
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        refuse(f"{at}.source", "only base64 and URL images can be translated (file ids are Anthropic's own)", to)
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_to_openai(block: dict[str, Any], at: str) -> dict[str, Any]:
    to = TO_OPENAI
    only(block, {"type", "tool_use_id", "content", "is_error"}, at, to, hints=("cache_control",))
    if not isinstance(block.get("tool_use_id"), str):
        refuse(f"{at}.tool_use_id", "must be a string", to)
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        for k, b in enumerate(content):
            if not isinstance(b, dict) or b.get("type") != "text":
                refuse(f"{at}.content.{k}", "OpenAI tool messages carry text only", to)
        content = [_text_block(b, f"{at}.content.{k}") for k, b in enumerate(content)]
    elif not isinstance(content, str):
        refuse(f"{at}.content", "must be a string or a list of text blocks", to)
    if block.get("is_error"):  # OpenAI tool messages have no error flag: the result says so in its text
        content = (
            [{"type": "text", "text": TOOL_ERROR}, *content] if isinstance(content, list) else TOOL_ERROR + content
        )
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


def _assistant_to_openai(content: Any, where: str) -> dict[str, Any]:
    to = TO_OPENAI
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        refuse(where, "must be a string or a list of content blocks", to)
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            assert isinstance(block, dict)
            if calls:
                refuse(at, "text after a tool_use cannot keep its place in an OpenAI assistant message", to)
            parts.append(_text_block(block, at))
        elif kind == "tool_use":
            assert isinstance(block, dict)
            only(block, {"type", "id", "name", "input"}, at, to, hints=("cache_control",))
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                refuse(at, "needs an id and a name", to)
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind in ("thinking", "redacted_thinking"):
            refuse(at, "thinking blocks cannot be given to an OpenAI model", to)
        else:
            refuse(at, f"{kind!r} blocks have no OpenAI counterpart", to)
    # with tool calls, one text part reads as OpenAI writes it: a string
    text: Any = parts[0]["text"] if calls and len(parts) == 1 else parts or None
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools_to_openai(body: dict[str, Any], out: dict[str, Any]) -> None:
    to = TO_OPENAI
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        refuse("tools", "must be a list", to)
    converted = []
    for i, tool in enumerate(tools or ()):
        where = f"tools.{i}"
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            kind = tool.get("type") if isinstance(tool, dict) else None
            refuse(where, f"server tool {kind!r} runs at Anthropic and has no OpenAI counterpart", to)
        if not isinstance(tool.get("name"), str):
            refuse(f"{where}.name", "required", to)
        only(tool, {"type", "name", "description", "input_schema", "strict"}, where, to, hints=("cache_control",))
        fn: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description") is not None:
            fn["description"] = tool["description"]
        fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        if tool.get("strict"):
            fn["strict"] = True
        converted.append({"type": "function", "function": fn})
    if converted:
        out["tools"] = converted
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict):
        refuse("tool_choice", "must be an object", to)
    only(choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice", to)
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        refuse("tool_choice", "must be auto, any, tool (with a name) or none", to)
    if choice.get("disable_parallel_tool_use") and converted:
        out["parallel_tool_calls"] = False


def _format_to_openai(config: Any) -> dict[str, Any] | None:
    to = TO_OPENAI
    if not isinstance(config, dict):
        refuse("output_config", "must be an object", to)
    if config.get("effort") is not None:
        refuse(
            "output_config.effort", "OpenAI's reasoning effort applies to reasoning models only, and differently", to
        )
    only(config, {"format"}, "output_config", to)
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        refuse("output_config.format", "must be a json_schema format with a schema", to)
    only(fmt, {"type", "schema"}, "output_config.format", to)
    # Claude's output format is always enforced: OpenAI's strict mode is the same guarantee
    return {"type": "json_schema", "json_schema": {"name": STRUCTURED_NAME, "schema": fmt["schema"], "strict": True}}
