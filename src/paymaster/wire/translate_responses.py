"""A Responses API caller served by Claude: translated by way of the Chat Completions shape, whose
translation to and from Anthropic's Messages API (`translate.py`) already maps — or refuses — every
field. Only stateless requests are translated: stored state (`previous_response_id`, `conversation`,
`item_reference` items, reasoning items, `background`, `prompt` templates) lives at OpenAI and is refused
with a 400 naming the field, as is anything else with no exact mapping. `store: true` asks OpenAI to keep
the response: Claude keeps nothing, so, as for Chat Completions, it is left out with a note in
`x-paymaster-dropped` (the fleet's lenient translation policy) or refused (strict); the answer's id is
then not one the gateway or OpenAI can retrieve or continue.

    request:  Responses ──request_to_chat──▶ Chat Completions ──openai_request_to_anthropic──▶ Messages
    answer:   Messages ──anthropic_response_to_openai──▶ chat.completion ──chat_to_response──▶ Response
    stream:   Messages events ──AnthropicToOpenAIStream──▶ chunks ──ChatToResponsesStream──▶ Response events

Mapped: instructions and system/developer items (→ system messages), user / assistant messages with
input_text / output_text / input_image (URL or base64) parts, function_call and function_call_output
items, function tools, tool_choice, parallel_tool_calls, max_output_tokens, temperature, top_p,
text.format json_schema (→ Claude's output format), user / safety_identifier, service_tier, stream.
Not forwarded (they only steer caching, as in `translate.py`): prompt_cache_key, prompt_cache_retention,
stream_options. `store: false`, `truncation: "disabled"`, an empty `include` and `max_tool_calls` (no
built-in tool can be sent) change nothing and are dropped.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from ..errors import BadRequest
from . import data_of
from .translate_response import unmappable

PASS = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "service_tier", "stream")
QUIET = ("prompt_cache_key", "prompt_cache_retention", "stream_options", "max_tool_calls")
STATEFUL = ("previous_response_id", "conversation", "background", "prompt")


def _refuse(field: str, why: str) -> BadRequest:
    return BadRequest(f"{field}: {why} (the request is translated for a Claude model)", param=field)


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A stateless Responses request as a Chat Completions request (then translated for Claude)."""
    out: dict[str, Any] = {k: body[k] for k in PASS if k in body}
    for key, value in body.items():
        if key in PASS or key in QUIET or key in ("input", "instructions", "tools", "tool_choice", "text"):
            continue
        if key in STATEFUL and value is not None:
            raise _refuse(key, "stored or background state exists only at OpenAI")
        if key == "max_output_tokens":
            out["max_completion_tokens"] = value
        elif key == "store":
            if value is True:  # Chat's rule: left out with a note (lenient policy) or refused (strict)
                out["store"] = True
        elif key == "truncation":
            if value not in (None, "disabled"):
                raise _refuse("truncation", "Claude does not truncate the context; only 'disabled' maps")
        elif key == "include":
            if value:
                raise _refuse("include", "no included output maps to Claude")
        elif key == "reasoning":
            if value:
                out["reasoning_effort"] = value.get("effort") if isinstance(value, dict) else value
        elif key == "metadata":
            if value:
                out["metadata"] = value
        elif value is not None and key not in STATEFUL:
            raise _refuse(key, "this field has no mapping to Claude's Messages API")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    inp = body.get("input")
    items = [{"role": "user", "content": inp}] if isinstance(inp, str) else (inp or [])
    for i, item in enumerate(items):
        _item(item, f"input[{i}]", messages)
    out["messages"] = messages
    if "tools" in body and body["tools"] is not None:
        out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    text = body.get("text")
    if isinstance(text, dict):
        for key, value in text.items():
            if key == "format":
                fmt = _format(value)
                if fmt is not None:
                    out["response_format"] = fmt
            elif key == "verbosity":
                out["verbosity"] = value  # refused by the Chat translation, with its reason
            elif value is not None:
                raise _refuse(f"text.{key}", "this field has no mapping to Claude's Messages API")
    return out


def _item(item: dict[str, Any], where: str, messages: list[dict[str, Any]]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item["role"]
        if role not in ("user", "assistant", "system", "developer"):
            raise _refuse(f"{where}.role", f"role {role!r} does not map")
        content = item["content"]
        if isinstance(content, list):
            content = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
            if role == "assistant":
                content = "".join(p["text"] for p in content if p.get("type") == "text")
        messages.append({"role": role, "content": content})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
        }
        last = messages[-1] if messages else None
        if last is not None and last.get("role") == "assistant":
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = [_part(p, f"{where}.output") for p in output]
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output})
    else:
        raise _refuse(f"{where}.type", f"input items of type {kind!r} do not map to Claude")


def _part(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _refuse(where, "images by file_id do not map (send a URL or base64 data URL)")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") not in (None, "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _refuse(where, f"content parts of type {kind!r} do not map to Claude")


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise _refuse(where, f"built-in tool {tool.get('type')!r} does not map to Claude")
    fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
    extra = set(tool) - {"type", "name", "description", "parameters", "strict"}
    if extra:
        raise _refuse(f"{where}.{sorted(extra)[0]}", "this tool field has no mapping to Claude")
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _refuse("tool_choice", "only auto, none, required and a named function map to Claude")


def _format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict) or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt.get("type")}  # json_object: refused by the Chat translation, with its reason


# -- answers -----------------------------------------------------------------------------------------


def response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def usage_to_responses(u: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    inp, out = u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
    details = u.get("prompt_tokens_details") or {}
    cached, written = details.get("cached_tokens") or 0, details.get("cache_write_tokens") or 0
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0) or 0
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},  # both required
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def _shell(rid: str, model: str, status: str) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def _finish(resp: dict[str, Any], finish: Any) -> None:
    if finish == "length":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "content_filter"}
    else:
        resp["status"] = "completed"


def chat_to_response(chat: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat.completion (translated from Claude's answer) as a Response object."""
    resp = _shell(response_id(), model, "completed")
    choice = (chat.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    if msg.get("refusal"):
        raise unmappable("a refusal")
    text = msg.get("content")
    if text:
        resp["output"].append(_message_item("msg_" + secrets.token_hex(24), text, "completed"))
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        resp["output"].append(_call_item(call.get("id", ""), fn.get("name", ""), fn.get("arguments", ""), "completed"))
    _finish(resp, choice.get("finish_reason"))
    resp["usage"] = usage_to_responses(chat.get("usage"))
    return resp


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + secrets.token_hex(24),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


# -- streams -------------------------------------------------------------------------------------------


class ChatToResponsesStream:
    """chat.completion.chunk frames (with the usage chunk) as the Responses API's semantic events."""

    def __init__(self, model: str) -> None:
        self.resp = _shell(response_id(), model, "in_progress")
        self.seq = 0
        self.text: dict[str, Any] | None = None  # the open message item
        self.calls: dict[int, dict[str, Any]] = {}  # tool-call index → its open item
        self.finish: Any = None
        self.started = False
        self.done = False

    def _event(self, kind: str, **data: Any) -> bytes:
        body = orjson.dumps({"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        return [
            self._event("response.created", response=self.resp),
            self._event("response.in_progress", response=self.resp),
        ]

    def frame(self, f: bytes) -> list[bytes]:
        d = data_of(f)
        if d is None or self.done:
            return []
        if d == b"[DONE]":
            return self._end()
        chunk = orjson.loads(d)
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            self.done = True
            return [self._event("error", code=err.get("type"), message=err.get("message"), param=None)]
        out = self._start()
        if chunk.get("usage"):
            self.resp["usage"] = usage_to_responses(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += self._text_delta(delta["content"])
            for tc in delta.get("tool_calls") or ():
                out += self._call_delta(tc)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def _text_delta(self, piece: str) -> list[bytes]:
        out = []
        if self.text is None:
            self.text = _message_item("msg_" + secrets.token_hex(24), "", "in_progress")
            self.text["content"] = []
            self.text_index = len(self.resp["output"])
            self.resp["output"].append(self.text)
            out.append(self._event("response.output_item.added", output_index=self.text_index, item=self.text))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=self.text["id"],
                    output_index=self.text_index,
                    content_index=0,
                    part=part,
                )
            )
            self.text["content"] = [part]
        part = self.text["content"][0]
        part["text"] += piece
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=self.text["id"],
                output_index=self.text_index,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        )
        return out

    def _call_delta(self, tc: dict[str, Any]) -> list[bytes]:
        i = tc.get("index", 0)
        fn = tc.get("function") or {}
        out = []
        item = self.calls.get(i)
        if item is None:
            item = _call_item(tc.get("id", ""), fn.get("name", ""), "", "in_progress")
            item["_index"] = len(self.resp["output"])
            self.resp["output"].append(item)
            self.calls[i] = item
            shown = {k: v for k, v in item.items() if k != "_index"}
            out.append(self._event("response.output_item.added", output_index=item["_index"], item=shown))
        piece = fn.get("arguments") or ""
        if piece:
            item["arguments"] += piece
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=item["_index"],
                    delta=piece,
                )
            )
        return out

    def _end(self) -> list[bytes]:
        self.done = True
        out = self._start()
        if self.text is not None:
            part = self.text["content"][0]
            self.text["status"] = "completed"
            ids = {"item_id": self.text["id"], "output_index": self.text_index}
            out.append(self._event("response.output_text.done", **ids, content_index=0, text=part["text"], logprobs=[]))
            out.append(self._event("response.content_part.done", **ids, content_index=0, part=part))
            out.append(self._event("response.output_item.done", output_index=self.text_index, item=self.text))
        for item in self.calls.values():
            item["status"] = "completed"
            index = item.pop("_index")
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        _finish(self.resp, self.finish)
        kind = "response.completed" if self.resp["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self.resp))
        return out

    def close(self) -> list[bytes]:
        return [] if self.done else self._end()


class AnthropicToResponsesStream:
    """A /v1/messages event stream as Responses events: through the Chat chunk translation."""

    def __init__(self, model: str) -> None:
        from .translate_stream import AnthropicToOpenAIStream

        self.chat = AnthropicToOpenAIStream(model, True)
        self.out = ChatToResponsesStream(model)

    @property
    def seq(self) -> int:
        return self.out.seq

    def frame(self, f: bytes) -> list[bytes]:
        return [g for c in self.chat.frame(f) for g in self.out.frame(c)]

    def close(self) -> list[bytes]:
        return [g for c in self.chat.close() for g in self.out.frame(c)] + self.out.close()
