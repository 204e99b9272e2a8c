"""Streams across the two wire formats: feed the provider's complete SSE frames (`wire.SSEFrames`), get
the caller's frames back. `close()` ends a stream whose answer is complete but whose last frame never
came; a stream broken off mid-answer gets nothing from it (the gateway reports the break in the
caller's own words, `wire.*.stream_error`).

    Anthropic events                       OpenAI chunks
    message_start                          (held: the first chunk carries the first delta, with the role)
    content_block_start  text              {"role": "assistant", "content": ""}
    content_block_start  tool_use          {"tool_calls": [{index, id, type, function: {name, arguments: ""}}]}
    content_block_delta  text_delta        {"content": …}
    content_block_delta  input_json_delta  {"tool_calls": [{index, function: {arguments: …}}]}
    (the json_object answer tool's input arrives as content instead, and ends as "stop")
    thinking blocks                        (left out, as OpenAI's reasoning models do)
    message_delta                          {} with finish_reason
    message_stop                           the usage chunk (choices: []) if asked for, then [DONE]
    error                                  {"error": {…}}

OpenAI reports usage only at the end, so the translated message_start carries zero tokens and the
message_delta carries the whole usage, input included (its cumulative input fields, which the
Anthropic SDK copies into the final message).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..errors import UpstreamFailed
from . import data_of
from .translate_openai_options import JSON_TOOL
from .translate_response import (
    STOP,
    chat_id,
    error_to_anthropic,
    error_to_openai,
    finish_reason,
    message_id,
    usage_to_anthropic,
    usage_to_openai,
)

DONE = b"data: [DONE]\n\n"


def _event(name: str, **data: Any) -> bytes:
    """An Anthropic event: its name, and the same name as its data's type."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class AnthropicToOpenAIStream:
    """A /v1/messages event stream as chat.completion.chunk frames for `requested_model`.

    `include_usage`: whether the caller asked for the usage chunk (`stream_options.include_usage`)."""

    def __init__(self, requested_model: str, include_usage: bool) -> None:
        self.model = requested_model
        self.include_usage = include_usage
        self.id = chat_id(None)
        self.created = int(time.time())
        self.role_sent = False
        self.tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self.args_sent: set[int] = set()  # tool calls whose arguments have begun
        self.answer_tool: int | None = None  # the block of a json_object answer given through its tool
        self.usage: dict[str, Any] = {}
        self.counted = False  # message_delta gave the final output count (message_start's is not final)
        self.finish: str | None = None
        self.done = False

    def frame(self, f: bytes) -> list[bytes]:
        raw = data_of(f)
        if self.done or raw is None:
            return []
        d = orjson.loads(raw)
        kind = d.get("type")
        if kind == "message_start":
            message = d.get("message") or {}
            self.id = chat_id(message.get("id"))
            self.usage = dict(message.get("usage") or {})
            return []
        if kind == "content_block_start":
            return self._start(d.get("index"), d.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(d.get("index"), d.get("delta") or {})
        if kind == "content_block_stop":
            i = d.get("index")
            if i in self.tools and i not in self.args_sent:  # a tool without arguments: its input is {}
                return [self._chunk({"tool_calls": [{"index": self.tools[i], "function": {"arguments": "{}"}}]})]
            if i == self.answer_tool and i not in self.args_sent:
                return [self._chunk({"content": "{}"})]
            return []
        if kind == "message_delta":
            for k, v in (d.get("usage") or {}).items():  # cumulative counts
                if v is not None:
                    self.usage[k] = v
                    self.counted = self.counted or k == "output_tokens"
            try:
                self.finish = finish_reason((d.get("delta") or {}).get("stop_reason"), self.tools)
            except UpstreamFailed as e:
                return self._fail(e.message)
            out = [] if self.role_sent else [self._chunk({"content": ""})]
            return out + [self._chunk({}, self.finish)]
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            self.done = True
            return [_data({"error": error_to_openai(d.get("error"))})]
        return []  # ping, and events this version does not know

    def _fail(self, message: str) -> list[bytes]:
        self.done = True
        return [_data({"error": {"message": message, "type": "api_error", "param": None, "code": None}})]

    def close(self) -> list[bytes]:
        return self._end() if self.finish is not None and not self.done else []

    def _start(self, i: Any, block: dict[str, Any]) -> list[bytes]:
        kind = block.get("type")
        if kind == "text":
            return [self._chunk({"content": block.get("text") or ""})]
        if kind == "tool_use" and block.get("name") == JSON_TOOL:
            self.answer_tool = i
            if block.get("input"):
                self.args_sent.add(i)
                return [self._chunk({"content": orjson.dumps(block["input"]).decode()})]
            return [self._chunk({"content": ""})]
        if kind == "tool_use":
            k = self.tools[i] = len(self.tools)
            arguments = ""
            if block.get("input"):
                arguments = orjson.dumps(block["input"]).decode()
                self.args_sent.add(i)
            call = {
                "index": k,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }
            return [self._chunk({"content": None, "tool_calls": [call]})]
        if kind in ("thinking", "redacted_thinking"):
            return []
        return self._fail(f"the provider's answer cannot be translated: a {kind!r} block has no OpenAI counterpart")

    def _delta(self, i: Any, delta: dict[str, Any]) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text") or ""})]
        if kind == "input_json_delta" and i == self.answer_tool and delta.get("partial_json"):
            self.args_sent.add(i)
            return [self._chunk({"content": delta["partial_json"]})]
        if kind == "input_json_delta" and i in self.tools and delta.get("partial_json"):
            self.args_sent.add(i)
            fn = {"arguments": delta["partial_json"]}
            return [self._chunk({"tool_calls": [{"index": self.tools[i], "function": fn}]})]
        return []  # thinking, signatures, citations

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        obj["choices"] = [choice]
        if self.include_usage:
            obj["usage"] = None
        return _data(obj)

    def _end(self) -> list[bytes]:
        self.done = True
        out = []
        if self.include_usage and self.counted and "input_tokens" in self.usage:  # no made-up usage
            obj = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            out.append(_data({**obj, "choices": [], "usage": usage_to_openai(self.usage)}))
        return [*out, DONE]


class OpenAIToAnthropicStream:
    """A chat.completion.chunk stream (asked with `stream_options.include_usage`) as /v1/messages events
    for `requested_model`."""

    def __init__(self, requested_model: str) -> None:
        self.model = requested_model
        self.started = False
        self.blocks = 0  # content blocks opened so far
        self.open: int | None = None  # the block being written
        self.open_kind = ""
        self.tools: dict[int, int] = {}  # OpenAI tool call index → Anthropic block index
        self.refused = False
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def frame(self, f: bytes) -> list[bytes]:
        raw = data_of(f)
        if self.done or raw is None:
            return []
        if raw == b"[DONE]":
            return self._end()
        d = orjson.loads(raw)
        if d.get("error") is not None:
            self.done = True
            return [_event("error", error=error_to_anthropic(d["error"]))]
        out = []
        if not self.started:
            self.started = True
            message = {
                "id": message_id(d.get("id")),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},  # OpenAI tells usage at the end only
            }
            out.append(_event("message_start", message=message))
        for choice in d.get("choices") or ():
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                if delta.get(key):
                    self.refused = self.refused or key == "refusal"
                    out += self._text(delta[key])
            for call in delta.get("tool_calls") or ():
                out += self._tool(call)
            if choice.get("finish_reason") is not None:
                out += self._close()
                self.finish = choice["finish_reason"]
        if d.get("usage"):
            self.usage = d["usage"]
        return out

    def close(self) -> list[bytes]:
        return self._end() if self.finish is not None and self.usage is not None and not self.done else []

    def _text(self, text: str) -> list[bytes]:
        out = self._open({"type": "text", "text": ""}) if self.open is None or self.open_kind != "text" else []
        return [*out, _event("content_block_delta", index=self.open, delta={"type": "text_delta", "text": text})]

    def _tool(self, call: dict[str, Any]) -> list[bytes]:
        j = call.get("index", 0)
        fn = call.get("function") or {}
        out = []
        if j not in self.tools:
            out = self._open({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}})
            self.tools[j] = self.blocks - 1
        if fn.get("arguments"):  # pieces of an earlier call, should they come late, still find their block
            delta = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            out.append(_event("content_block_delta", index=self.tools[j], delta=delta))
        return out

    def _open(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.open, self.open_kind = self.blocks, block["type"]
        self.blocks += 1
        return [*out, _event("content_block_start", index=self.open, content_block=block)]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        i, self.open = self.open, None
        return [_event("content_block_stop", index=i)]

    def _end(self) -> list[bytes]:
        self.done = True
        if self.finish is None:
            return []  # [DONE] without a finish_reason: broken off, the gateway says so
        if self.usage is None:
            return [_error("the provider's stream carried no usage (ask with stream_options.include_usage)")]
        if self.refused:
            reason = "refusal"
        elif self.finish not in STOP:
            return [_error(f"finish_reason {self.finish!r} has no Anthropic stop_reason")]
        else:  # OpenAI says "stop" when tool_choice named the function; Claude says tool_use
            reason = "tool_use" if self.tools else STOP[self.finish]
        delta = {"stop_reason": reason, "stop_sequence": None}
        return [
            *self._close(),
            _event("message_delta", delta=delta, usage=usage_to_anthropic(self.usage)),
            _event("message_stop"),
        ]


def _error(message: str) -> bytes:
    return _event("error", error={"type": "api_error", "message": message})
