"""The OpenAI Responses API on the wire (POST /v1/responses): request checks, usage, the semantic event
stream, error bodies (the same `{"error": {message, type, param, code}}` shape as Chat Completions).

A Responses request carries its output bound in `max_output_tokens` (visible output and reasoning
together: developers.openai.com/api/reference/resources/responses/methods/create), its input in
`input` (a string or a list of items) and `instructions`, and may name stored context the body does not
show: `previous_response_id` or `conversation`. The stream is `event: <type>` / `data: {…}` frames, from
`response.created` to one terminal event carrying the whole response and its usage:
`response.completed`, `response.incomplete` (stopped at max_output_tokens) or `response.failed`.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call, Usage
from ..costmodel import responses as responses_cost
from ..errors import BadRequest, GatewayError
from . import data_of
from . import openai as wire_openai
from .usage_fields import Known, paths, read_counts, unknown_counts

API = "responses"
MAX_OUTPUT_LIMIT = 1_000_000
TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed")

# output items that say a built-in tool ran (each billed per use); code interpreter bills per container
TOOL_ITEMS = ("web_search_call", "file_search_call")


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a model name string)", param="model")
    inp = body.get("input")
    stored = body.get("previous_response_id") is not None or body.get("conversation") is not None
    if inp is None and not stored and body.get("prompt") is None:
        raise BadRequest("input: field required (a string or a list of input items)", param="input")
    if inp is not None and not isinstance(inp, str | list):
        raise BadRequest("input: must be a string or a list of input items", param="input")
    for i, item in enumerate(inp if isinstance(inp, list) else ()):
        _check_item(item, i)
    for key in ("instructions", "previous_response_id", "prompt_cache_key"):
        v = body.get(key)
        if v is not None and not isinstance(v, str):
            raise BadRequest(f"{key}: must be a string", param=key)
    conv = body.get("conversation")
    if conv is not None and not (isinstance(conv, str) or (isinstance(conv, dict) and isinstance(conv.get("id"), str))):
        raise BadRequest("conversation: must be a conversation id or an object with its id", param="conversation")
    if conv is not None and body.get("previous_response_id") is not None:
        raise BadRequest("previous_response_id and conversation cannot be used together", param="conversation")
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("type"), str) for t in tools)
    ):
        raise BadRequest("tools: must be a list of tool objects, each with a string type", param="tools")
    for key in ("text", "reasoning", "metadata"):
        v = body.get(key)
        if v is not None and not isinstance(v, dict):
            raise BadRequest(f"{key}: must be an object", param=key)
    v = body.get("max_output_tokens")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_OUTPUT_LIMIT):
        raise BadRequest(
            f"max_output_tokens: must be an integer from 1 to {MAX_OUTPUT_LIMIT}, got {v!r}", param="max_output_tokens"
        )
    v = body.get("max_tool_calls")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
        raise BadRequest("max_tool_calls: must be a non-negative integer", param="max_tool_calls")
    for key in ("stream", "store", "background", "parallel_tool_calls"):
        v = body.get(key)
        if v is not None and not isinstance(v, bool):
            raise BadRequest(f"{key}: must be a boolean", param=key)
    if body.get("background") is True:
        # a background response runs and is billed after this call returns: nothing the gateway could settle
        raise BadRequest(
            "background: background responses are not supported through the gateway (their cost is "
            "incurred after the call returns and could not be settled against the agent's budget)",
            param="background",
        )
    return model, body.get("max_output_tokens"), body.get("stream") is True


def _check_item(item: Any, i: int) -> None:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: must be an input item object", param=where)
    kind = item.get("type")
    if kind is not None and not isinstance(kind, str):
        raise BadRequest(f"{where}.type: must be a string", param=f"{where}.type")
    if kind in (None, "message"):
        if not isinstance(item.get("role"), str):
            raise BadRequest(f"{where}.role: required", param=f"{where}.role")
        content = item.get("content")
        if not isinstance(content, str | list):
            raise BadRequest(f"{where}.content: must be a string or a list of content parts", param=f"{where}.content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"{where}.content[{j}].type: required", param=f"{where}.content")
    elif kind is None:
        raise BadRequest(f"{where}.type: required", param=f"{where}.type")


def set_max_tokens(body: dict[str, Any], n: int, provider_kind: str) -> None:
    body["max_output_tokens"] = n


def stored_reference(body: dict[str, Any]) -> tuple[str, str] | None:
    """The stored context a request names: ("response", id) or ("conversation", id), or None."""
    prev = body.get("previous_response_id")
    if isinstance(prev, str):
        return "response", prev
    conv = body.get("conversation")
    if isinstance(conv, dict):
        conv = conv.get("id")
    return ("conversation", conv) if isinstance(conv, str) else None


# The Responses usage object (API reference: `ResponseUsage`)
KNOWN: Known = {
    "input_tokens": None,
    "input_tokens_details": {"cached_tokens": None, "cache_write_tokens": None},
    "output_tokens": None,
    "output_tokens_details": {"reasoning_tokens": None},
    "total_tokens": None,
}
REQUIRED = paths("input_tokens", "output_tokens")
OPTIONAL = paths(
    "input_tokens_details.cached_tokens",
    "input_tokens_details.cache_write_tokens",
    "output_tokens_details.reasoning_tokens",
)


def answer_usage(answer: Any) -> Usage | None:
    """A Response object's usage (or an `Answer`'s): None when missing or malformed."""
    if not isinstance(answer, dict):
        return None
    return usage(answer.get("usage"), answer.get("service_tier"), answer.get("output"))


def usage(u: Any, service_tier: Any = None, output: Any = None) -> Usage | None:
    """input_tokens include cached ones; output_tokens include reasoning ones. Built-in tool uses are
    read from the output items (`web_search_call`, `file_search_call`; code interpreter: one per container)."""
    if not isinstance(u, dict):
        return None
    counts = read_counts(u, REQUIRED, OPTIONAL)
    if counts is None:
        return None
    inp, out, cached, written, reasoning = counts
    if cached + written > inp or reasoning > out:
        return None
    return Usage(
        inp,
        out,
        cached,
        written,
        reasoning_tokens=reasoning,
        server_tool_uses=tool_uses(output),
        service_tier=service_tier if isinstance(service_tier, str) else "",
        unpriced=tuple(unknown_counts(u, KNOWN)),
    )


def tool_uses(output: Any) -> dict[str, int]:
    uses: dict[str, int] = {}
    containers: set[str] = set()
    shells: set[str] = set()  # a hosted shell's containers (a client-run shell's calls are priced at nothing)
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in TOOL_ITEMS:
            uses[kind] = uses.get(kind, 0) + 1
        elif kind == "code_interpreter_call":
            containers.add(str(item.get("container_id")))
        elif kind == "shell_call":
            shells.add(str(item.get("container_id")))
        elif isinstance(kind, str) and kind.endswith("_call") and kind not in responses_cost.conf()["client_items"]:
            uses[kind] = uses.get(kind, 0) + 1  # a built-in tool with no rule: unpriced, booked at the worst case
    if containers:
        uses["code_interpreter_call"] = len(containers)
    if shells:
        uses["shell_call"] = len(shells)
    return uses


def response_id(answer: bytes | None) -> str | None:
    if not answer:
        return None
    try:
        rid = orjson.loads(answer).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return rid if isinstance(rid, str) else None


class StreamWatch:
    """Follows a Responses event stream to its terminal event, whose `response` carries the usage. Every
    frame is relayed as it came; the response's id is noted on the call (the stored-context book)."""

    __slots__ = ("call", "response", "finished", "started", "seq")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.response: dict[str, Any] | None = None
        self.finished = False
        self.started = False
        self.seq = 0  # the next event's sequence_number: the provider numbers its events from 0, one by one

    def frame(self, f: bytes) -> bytes | None:
        self.started = True
        if b"data:" in f:
            self.seq += 1
        if b"response.created" in f or any(t in f for t in TERMINAL):
            d = data_of(f)
            obj = orjson.loads(d) if d else None
            kind = obj.get("type") if isinstance(obj, dict) else None
            resp = obj.get("response") if isinstance(obj, dict) else None
            if isinstance(resp, dict):
                if kind == "response.created" and isinstance(resp.get("id"), str):
                    self.call.response_id = resp["id"]
                elif isinstance(kind, str) and kind.encode() in TERMINAL:
                    self.response = resp
                    self.finished = True
        return f

    def usage(self) -> Usage | None:
        return answer_usage(self.response)

    def input_usage(self) -> Usage | None:
        """Usage comes only with the terminal event: a stream that broke off has none."""
        return None


error_body = wire_openai.error_body
models_body = wire_openai.models_body


def stream_error(message: str, seq: int = 0) -> bytes:
    """The stream's `error` event (the SDK yields it as a ResponseErrorEvent, whose `sequence_number` is
    required: `seq`, the one after the last event sent)."""
    body = orjson.dumps(
        {"type": "error", "code": "stream_interrupted", "message": message, "param": None, "sequence_number": seq}
    )
    return b"event: error\ndata: " + body + b"\n\n"


def error_of(e: GatewayError) -> bytes:
    return error_body(e)


# -- what output control writes into a Responses request (levers/output.py) ---------------------------


def structured(body: dict[str, Any], name: str, schema: dict[str, Any]) -> str:
    """Ask for a JSON answer matching `schema` through `text.format` (strict json_schema), unless the
    caller set a format of its own. Returns what was done (the x-paymaster-structured note)."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        return "caller's text.format kept"
    text = dict(text) if isinstance(text, dict) else {}
    text["format"] = {"type": "json_schema", "name": name, "schema": schema, "strict": True}
    body["text"] = text
    return "json_schema"


def append_instruction(body: dict[str, Any], addendum: str) -> None:
    """A closing system message after the caller's input (kept out of the cached prefix)."""
    inp = body.get("input")
    items: list[Any] = [{"role": "user", "content": inp}] if isinstance(inp, str) else list(inp or [])
    items.append({"role": "system", "content": addendum})
    body["input"] = items
