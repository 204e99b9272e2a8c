"""An OpenAI Chat Completions request as the Anthropic Messages request asking the same of a Claude
model (see `wire.translate` for the policy and the refusals). Tool call ids pass through unchanged,
so an id the caller sends back in a tool result is the id the provider issued.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..http import MAX_JSON_DEPTH, too_deep
from .fields import whole
from .translate_openai_options import json_object_tool, metadata_user, names, prefill, thinking
from .translate_refuse import TO_ANTHROPIC, Drops, Unmappable, check_fields, number, only, refuse

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")  # what Claude reads

# Fields that only steer where OpenAI caches the prompt: neither the answer nor the meaning of its
# usage fields depends on them. Claude caches at cache_control breakpoints, which the gateway's
# caching lever places; so they are not forwarded.
CACHE_HINTS = frozenset({"prompt_cache_key", "prompt_cache_retention", "prompt_cache_options"})

UNMAPPABLE: Unmappable = {
    "n": ((1,), "Claude returns one choice per request"),
    "logprobs": ((False,), "Claude does not return log probabilities"),
    "top_logprobs": ((), "Claude does not return log probabilities"),
    "logit_bias": (({},), "Claude has no logit bias"),
    "frequency_penalty": ((0,), "Claude has no frequency penalty"),
    "presence_penalty": ((0,), "Claude has no presence penalty"),
    "seed": ((), "Claude has no sampling seed"),
    "modalities": ((["text"],), "Claude answers in text only"),
    "audio": ((), "Claude has no audio output"),
    "prediction": ((), "Claude has no predicted outputs"),
    "verbosity": ((), "Claude has no verbosity setting"),
    "web_search_options": ((), "web search is a provider-side tool with its own results and prices on each side"),
    "functions": ((), "the deprecated functions API is not translated; send tools"),
    "function_call": ((), "the deprecated functions API is not translated; send tool_choice"),
    "moderation": ((), "Anthropic has no moderation option"),
}
MAPPED = frozenset(
    "model messages max_tokens max_completion_tokens stream stream_options stop temperature top_p tools"
    " tool_choice parallel_tool_calls response_format user safety_identifier service_tier store metadata"
    " reasoning_effort".split()
)
_TIERS = {"auto": "auto", "default": "standard_only"}  # service_tier → Anthropic


def openai_request_to_anthropic(body: dict[str, Any], target_model: str, drops: Drops | None = None) -> dict[str, Any]:
    """An OpenAI Chat Completions body as the Anthropic Messages body asking the same of `target_model`.

    `drops` collects what was left out because it cannot change the answer's meaning; without one
    (or with a strict one), such fields are refused."""
    to = TO_ANTHROPIC
    drops = Drops() if drops is None else drops
    check_fields(body, MAPPED, UNMAPPABLE, to, CACHE_HINTS)
    system, messages = _messages_to_anthropic(body.get("messages"), drops)
    out: dict[str, Any] = {"model": target_model, "max_tokens": _openai_limit(body)}
    if system:
        out["system"] = system
    out["messages"] = messages
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            refuse("stop", "must be a string or a list of strings", to)
        if stop:
            out["stop_sequences"] = stop
    temperature = number(body, "temperature", to, 2)
    if temperature is not None:
        if temperature > 1:
            refuse("temperature", "Claude's temperature goes from 0 to 1", to)
        out["temperature"] = temperature
    top_p = number(body, "top_p", to, 1)
    if top_p is not None:
        out["top_p"] = top_p
    _tools_to_anthropic(body, out)
    fmt = _format_to_anthropic(body.get("response_format"))
    if fmt == "json_object":
        json_object_tool(out)
    elif fmt is not None:
        out["output_config"] = {"format": fmt}
    thinking(body.get("reasoning_effort"), out, drops)
    if body.get("store") is not None and not isinstance(body["store"], bool):
        refuse("store", "must be a boolean", to)
    if body.get("store"):
        drops.drop("store", "Anthropic keeps no completions; the answer is the same", to)
    users = [(k, body[k]) for k in ("safety_identifier", "user") if body.get(k) is not None]
    users += metadata_user(body.get("metadata"), drops)
    for key, user in users:
        if not isinstance(user, str):
            refuse(key, "must be a string", to)
    if len({user for _, user in users}) > 1:
        refuse("user", "differs from safety_identifier, and Anthropic takes one user id", to)
    if users:
        out["metadata"] = {"user_id": users[0][1]}
    tier = body.get("service_tier")
    if tier is not None:
        if not isinstance(tier, str) or tier not in _TIERS:
            refuse("service_tier", "Anthropic offers 'auto' and standard ('default') capacity only", to)
        out["service_tier"] = _TIERS[tier]
    stream = body.get("stream")
    if stream:
        out["stream"] = True
    options = body.get("stream_options")
    if isinstance(options, dict):  # usage always arrives on an Anthropic stream; obfuscation is padding only
        only(options, {"include_usage", "include_obfuscation"}, "stream_options", to)
    return out


def _openai_limit(body: dict[str, Any]) -> int:
    """max_completion_tokens or its deprecated name max_tokens (the smaller, when both are given)."""
    limits = []
    for key in ("max_completion_tokens", "max_tokens"):
        v = whole(body.get(key))
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            refuse(key, "must be a positive integer", TO_ANTHROPIC)
        limits.append(v)
    if not limits:
        refuse("max_completion_tokens", "is required by Claude, which has no default output limit", TO_ANTHROPIC)
    return min(limits)


def _messages_to_anthropic(msgs: Any, drops: Drops) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """(system prompt, messages). System and developer messages become the system prompt, in order,
    wherever they stand (Claude takes system text up front only; instructions an agent framework
    injects between turns still read as instructions). Content keeps its form: a string stays a string,
    a list of parts becomes a list of blocks. A conversation ending on an assistant turn becomes a
    prefill: Claude continues that text."""
    to = TO_ANTHROPIC
    if not isinstance(msgs, list) or not msgs:
        refuse("messages", "must be a non-empty list", to)
    names(msgs, drops)
    system: list[dict[str, Any]] = []
    leading: list[Any] = []  # the leading system messages' contents
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the user turn that tool results are being gathered into
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            refuse(where, "must be an object", to)
        role = m.get("role")
        if role in ("system", "developer"):
            only(m, {"role", "content", "name"}, where, to)
            system += _text_parts(m.get("content"), where, to)
            leading.append(m["content"])
        elif role == "user":
            only(m, {"role", "content", "name"}, where, to)
            content = _user_content(m.get("content"), where, drops)
            if results is not None:  # text after tool results joins their turn, as Claude needs
                results.extend([{"type": "text", "text": content}] if isinstance(content, str) else content)
                results = None
            else:
                out.append({"role": "user", "content": content})
        elif role == "tool":
            only(
                m, {"role", "content", "tool_call_id", "name"}, where, to
            )  # name: the function, which the id names too
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                refuse(f"{where}.tool_call_id", "must be a string", to)
            block = {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": _like(m.get("content"), _text_parts(m.get("content"), where, to)),
            }
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(block)
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_to_anthropic(m, where, drops)})
            results = None
        else:
            refuse(f"{where}.role", f"{role!r} messages are not translated", to)
    if not out:
        refuse("messages", "holds only system messages, and Claude needs a turn to answer", to)
    if out[-1]["role"] == "assistant":
        out[-1]["content"] = prefill(out[-1]["content"])
    return (leading[0] if len(leading) == 1 and isinstance(leading[0], str) else system), out


def _like(original: Any, blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Content in the form it came in: the string itself, or the translated blocks of a list."""
    return original if isinstance(original, str) else blocks


def _text_parts(content: Any, where: str, to: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        refuse(f"{where}.content", "must be a string or a list of text parts", to)
    blocks = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            refuse(at, "only text parts can be translated here", to)
        only(part, {"type", "text"}, at, to, hints=("prompt_cache_breakpoint",))
        blocks.append({"type": "text", "text": part["text"]})
    return blocks


def _user_content(content: Any, where: str, drops: Drops) -> str | list[dict[str, Any]]:
    to = TO_ANTHROPIC
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        refuse(f"{where}.content", "must be a string or a list of content parts", to)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            assert isinstance(part, dict)
            if not isinstance(part.get("text"), str):
                refuse(f"{at}.text", "must be a string", to)
            only(part, {"type", "text"}, at, to, hints=("prompt_cache_breakpoint",))
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            assert isinstance(part, dict)
            only(part, {"type", "image_url"}, at, to, hints=("prompt_cache_breakpoint",))
            blocks.append(_image_to_anthropic(part.get("image_url"), f"{at}.image_url", drops))
        elif kind in ("input_audio", "file"):
            refuse(
                at, f"{kind} parts have no Claude counterpart here (Claude reads no audio; files go by other means)", to
            )
        else:
            refuse(at, f"content parts of type {kind!r} are not translated", to)
    return blocks


def _image_to_anthropic(image: Any, where: str, drops: Drops) -> dict[str, Any]:
    to = TO_ANTHROPIC
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        refuse(f"{where}.url", "must be a string", to)
    only(image, {"url", "detail"}, where, to)
    if image.get("detail") not in (None, "auto", "high"):  # Claude has one fidelity: the full image
        if not isinstance(image["detail"], str):
            refuse(f"{where}.detail", "must be a string", to)
        drops.drop(f"{where}.detail", "Claude reads every image at its own full resolution", to)
    url: str = image["url"]
    if not url.startswith("data:"):
        if not url.startswith(("https://", "http://")):
            refuse(f"{where}.url", "must be an http(s) URL or a base64 data URL", to)
        return {"type": "image", "source": {"type": "url", "url": url}}
    head, sep, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    if not sep or encoding != "base64":
        refuse(f"{where}.url", "data URLs must be base64-encoded", to)
    if media_type not in IMAGE_TYPES:
        refuse(f"{where}.url", f"Claude reads {', '.join(IMAGE_TYPES)} images, not {media_type!r}", to)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _assistant_to_anthropic(m: dict[str, Any], where: str, drops: Drops) -> str | list[dict[str, Any]]:
    to = TO_ANTHROPIC
    only(m, {"role", "content", "tool_calls", "name"}, where, to, hints=("annotations",))
    content = m.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content or not m.get("tool_calls"):
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "refusal":
                refuse(f"{where}.content[{j}]", "Claude has no refusal parts", to)
        blocks += [b for b in _text_parts(content, where, to) if b["text"]]
    elif content is not None:
        refuse(f"{where}.content", "must be a string, a list of text parts, or null", to)
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        refuse(f"{where}.tool_calls", "must be a list", to)
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            refuse(at, "only function tool calls can be translated", to)
        only(call, {"id", "type", "function"}, at, to)
        fn = call.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
            refuse(at, "needs an id and a function name", to)
        only(fn, {"name", "arguments"}, f"{at}.function", to)
        args = fn.get("arguments") or "{}"
        try:
            value = args if isinstance(args, dict) else orjson.loads(args) if isinstance(args, str) else None
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):  # the model's own malformed output, kept as text in an object
            drops.drop(f"{at}.function.arguments", 'not a JSON object: sent as {"arguments": <its text>}', to)
            value = {"arguments": args if isinstance(args, str) else ""}
        if too_deep(value):
            refuse(f"{at}.function.arguments", f"nests more than {MAX_JSON_DEPTH} levels deep", to)
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": value})
    return content if isinstance(content, str) and not calls else blocks


def _tools_to_anthropic(body: dict[str, Any], out: dict[str, Any]) -> None:
    to = TO_ANTHROPIC
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        refuse("tools", "must be a list", to)
    choice = body.get("tool_choice")
    converted: list[dict[str, Any]] = []
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            refuse(where, "only function tools can be translated (custom tools have no Claude counterpart)", to)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            refuse(f"{where}.function.name", "required", to)
        only(fn, {"name", "description", "parameters", "strict"}, f"{where}.function", to)
        # "Omitting parameters defines a function with an empty parameter list."
        t: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description") is not None:
            t["description"] = fn["description"]
        t["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        if fn.get("strict"):
            t["strict"] = True
        converted.append(t)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        refuse("parallel_tool_calls", "must be a boolean", to)
    mode: dict[str, Any] | None = None
    if choice == "auto":
        mode = {"type": "auto"}
    elif choice == "required":
        mode = {"type": "any"}
    elif choice == "none":
        mode = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str):
            refuse("tool_choice.function.name", "required", to)
        mode = {"type": "tool", "name": name}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or () if isinstance(t, dict)}
        if allowed.get("mode") not in ("auto", "required") or any(
            not isinstance(t, dict) or t.get("type") != "function" for t in allowed.get("tools") or ()
        ):
            refuse("tool_choice.allowed_tools", "must list function tools with mode 'auto' or 'required'", to)
        converted = [t for t in converted if t["name"] in names]  # the same choice, offered as the whole list
        mode = {"type": "auto" if allowed["mode"] == "auto" else "any"}
    elif choice is not None:
        refuse("tool_choice", "must be 'auto', 'required', 'none', a function, or allowed_tools", to)
    if parallel is False and converted and (mode is None or mode["type"] != "none"):
        mode = {**(mode or {"type": "auto"}), "disable_parallel_tool_use": True}
    if mode is not None and not converted:  # a choice among no tools: Claude (like OpenAI) takes none
        if mode["type"] in ("any", "tool"):
            refuse("tool_choice", "asks for a tool call, and no tools are given", to)
        mode = None
    if converted:
        out["tools"] = converted
    if mode is not None:
        out["tool_choice"] = mode


def _format_to_anthropic(fmt: Any) -> dict[str, Any] | str | None:
    """json_schema → Claude's structured output (`output_config.format`): constrained decoding to the
    schema, the answer in the text. json_object returns "json_object": Claude's format needs a schema,
    so the answer goes through a tool (`translate_openai_options.json_object_tool`)."""
    to = TO_ANTHROPIC
    if fmt is None or fmt == {"type": "text"}:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return "json_object"
    if kind != "json_schema" or not isinstance(fmt.get("json_schema"), dict):
        refuse("response_format", "must be text or json_schema", to)
    spec = fmt["json_schema"]
    # name is a label; strict=false asks less than Claude's constrained decoding gives, never more
    only(spec, {"name", "schema", "strict"}, "response_format.json_schema", to)
    if not isinstance(spec.get("schema"), dict):
        refuse("response_format.json_schema.schema", "required (Claude's output format needs the schema)", to)
    return {"type": "json_schema", "schema": spec["schema"]}
