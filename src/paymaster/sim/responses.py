"""The OpenAI Responses API as the simulator speaks it (developers.openai.com/api/reference/resources/responses):
validation, input counting (stored context included), stored responses, reasoning usage, replies and the
semantic event stream.

- `input` (a string or items), `instructions`, function tools, `text.format` (json_schema / json_object),
  `max_output_tokens` (at least 16; visible output and reasoning together), `tool_choice`, `store`
  (default true), `previous_response_id` (its whole context — input and output, reasoning left out — is
  input again, billed), `prompt_cache_key` / `prompt_cache_retention` (automatic caching, as for Chat).
- Reasoning models (gpt-5*, o1/o3/o4*): a reasoning item first; its tokens by `reasoning.effort`
  (`REASONING`), counted in output_tokens and output_tokens_details.reasoning_tokens. When they use up
  max_output_tokens the response is `incomplete` (reason max_output_tokens) with no message.
- The tool loop (openai-agents' default run): the last user message's `[sim:tool=NAME]` directives are a
  script; step k (k function calls since that message, in the stored context and the input) calls the
  k-th tool, and past the last one the answer is text (`[sim:tokens=N]`).
- Stream: `event: <type>` / `data: {type, sequence_number, …}`: response.created, response.in_progress,
  output_item.added / done per item, content_part.added / done, output_text.delta … done,
  function_call_arguments.delta … done, then response.completed (or response.incomplete).
- Web search (a `web_search*` tool and `[sim:web_search=N]` in the last user message): N searches (at most
  `max_tool_calls`), each a `web_search_call` output item adding `SEARCH_RESULT_TOKENS` to the context, and
  each sampling round after a search reads the whole context again (billed as input).
- GET /v1/responses/{id}, DELETE, GET …/input_items, POST …/cancel (only background responses, which the
  simulator does not run: a 400).
- Conversations (POST /v1/conversations, optional initial `items`): a request naming `conversation` reads its
  items (billed as input) before its own; when the response is made (stored or not) its input and output
  items (reasoning left out) are appended — so a request that starts while another in the same conversation
  is streaming already reads that one's items.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson

from ..costmodel.tokenizer import encoding, encoding_for
from ..prompt_cache import OPENAI_EXTENDED_TTL_SECONDS, OPENAI_MIN_TOKENS, OPENAI_TTL_SECONDS
from .answer import Answer, Ask, Tool, ToolMode
from .asgi import EVENT_STREAM, NO_CACHE, Reply, Stream, json_reply
from .cache import Automatic, prefix_hashes
from .faults import Fault
from .ids import new_id
from .openai import MODELS, OpenAIWire, cache_details, served_tier
from .openai import Invalid as ChatInvalid
from .openai import _tool_choice as chat_tool_choice
from .text import char_deltas, seed, word_deltas
from .tokens import ENCODING, MESSAGE_TOKENS, MODEL, REPLY_TOKENS, count_json, count_text, count_tokens, openai_image

MIN_OUTPUT = 16
REASONING = {"none": 0, "minimal": 0, "low": 16, "medium": 64, "high": 256, "xhigh": 512}
REASONING_MODELS = re.compile(r"^(gpt-5|o\d)")
_TOOL = re.compile(r"\[sim:tool(?:=([^\]\s]+))?\]")
_SEARCH = re.compile(r"\[sim:web_search=(\d+)\]")
SEARCH_RESULT_TOKENS = 1000
STORE_LIMIT = 10_000
WORDS_PER_DELTA = 3


class Invalid(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


@dataclass(slots=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]  # every item the next response reads: stored context, input, output
    tokens: int  # what the next response is billed for reading that context


@dataclass(slots=True)
class Conversation:
    items: list[dict[str, Any]]
    tokens: int  # what the next response is billed for reading its items


@dataclass(slots=True)
class ResponsesAsk(Ask):
    body: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)  # the input, as items with ids
    context: list[dict[str, Any]] = field(default_factory=list)  # stored context + input
    reasoning: int = 0  # reasoning tokens this answer spends first
    searches: int = 0  # web searches made before answering
    conversation: Conversation | None = None  # the conversation it was made in
    own_tokens: int = 0  # its input items' tokens (what it adds to its conversation)


class ResponsesWire(OpenAIWire):
    name = "responses"

    def __init__(self) -> None:
        self.stored: OrderedDict[str, Stored] = OrderedDict()
        self.conversations: dict[str, Conversation] = {}

    def create_conversation(self, body: Any) -> Reply:
        """POST /v1/conversations: a conversation, with its initial `items` (up to 20)."""
        raw = body.get("items") if isinstance(body, dict) else None
        if raw is not None and not (isinstance(raw, list) and len(raw) <= 20 and all(isinstance(i, dict) for i in raw)):
            return self.error(400, "Invalid 'items': expected an array of at most 20 items.", param="items")
        items = _items(raw or [])
        cid = new_id("conv_")
        self.conversations[cid] = Conversation(items, _tokens_of(MODEL.get(), items))
        return json_reply(200, {"id": cid, "object": "conversation", "created_at": int(time.time()), "metadata": {}})

    # -- requests

    def ask(self, body: Any, raw: bytes) -> Ask | Reply:
        try:
            return self._ask(body)
        except Invalid as e:
            return self.error(e.status, str(e), param=e.param, code=e.code)

    def _ask(self, body: Any) -> ResponsesAsk:
        limit = _validate(body)
        try:
            served_tier(body.get("service_tier"))  # an unknown tier is a 400
        except ChatInvalid as e:
            raise Invalid(str(e), e.param, e.code) from e
        prior: Stored | None = None
        prev = body.get("previous_response_id")
        if prev is not None:
            prior = self.stored.get(prev)
            if prior is None:
                raise Invalid(
                    f"Previous response with id '{prev}' not found.",
                    "previous_response_id",
                    "previous_response_not_found",
                )
        conv: Conversation | None = None
        named = body.get("conversation")
        if named is not None:
            cid = named if isinstance(named, str) else named["id"]
            conv = self.conversations.get(cid)
            if conv is None:
                raise Invalid(f"Conversation with id '{cid}' not found.", "conversation", "not_found", 404)
            prior = Stored({"id": cid}, [], list(conv.items), conv.tokens)
        items = _items(body.get("input"))
        context = (prior.context if prior else []) + items
        tools = [
            Tool(t["name"], t.get("parameters") if isinstance(t.get("parameters"), dict) else {})
            for t in body.get("tools") or ()
            if t.get("type") == "function"
        ]
        mode, name = _tool_choice(body.get("tool_choice"))
        fmt = (body.get("text") or {}).get("format") or {}
        model = body["model"]
        total, cacheable = _measure(body, items, prior)
        reasoning = 0
        if REASONING_MODELS.match(model):
            effort = (body.get("reasoning") or {}).get("effort") or "medium"
            reasoning = REASONING.get(effort, REASONING["medium"])
        prompt = _step_prompt(context)
        searches = 0
        asked = _SEARCH.search(prompt)
        if asked and any(str(t.get("type", "")).startswith("web_search") for t in body.get("tools") or ()):
            searches = min(int(asked.group(1)), body.get("max_tool_calls") or 10**6)
            # every round after a search reads the context again: the results so far and the reasoning
            # written before the first search (reasoning items stay in context within a response)
            thought = reasoning if limit is None else min(reasoning, limit)
            total += sum(total + k * SEARCH_RESULT_TOKENS + thought for k in range(1, searches + 1))
        return ResponsesAsk(
            model=model,
            stream=body.get("stream") is True,
            input_tokens=total,
            seed=seed(items),
            prompt=prompt,
            max_tokens=None if limit is None else max(0, limit - reasoning),
            tools=tools,
            tool_mode=mode,
            tool_name=name,
            json=fmt.get("type") in ("json_object", "json_schema"),
            json_schema=fmt.get("schema") if isinstance(fmt.get("schema"), dict) else None,
            cacheable=cacheable,
            body=body,
            items=items,
            context=context,
            reasoning=reasoning if limit is None else min(reasoning, limit),
            searches=searches,
            conversation=conv,
            own_tokens=_tokens_of(model, items),
        )

    # -- answers

    def _response(self, ask: ResponsesAsk, answer: Answer, status: str) -> dict[str, Any]:
        body = ask.body
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        return {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": ask.model,
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": served_tier(body.get("service_tier")),
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _output(self, ask: ResponsesAsk, answer: Answer) -> tuple[list[dict[str, Any]], int, bool]:
        """The output items, output tokens, and whether max_output_tokens cut the answer."""
        out: list[dict[str, Any]] = []
        if REASONING_MODELS.match(ask.model):
            out.append({"type": "reasoning", "id": new_id("rs_"), "summary": []})
        for _ in range(ask.searches):
            action = {"type": "search", "query": ask.prompt[:40]}
            out.append({"type": "web_search_call", "id": new_id("ws_"), "status": "completed", "action": action})
        limit = ask.body.get("max_output_tokens")
        if limit is not None and ask.reasoning >= limit:
            return out, limit, True
        if answer.tool is not None and answer.stop != "max_tokens":
            out.append(
                {
                    "type": "function_call",
                    "id": new_id("fc_"),
                    "call_id": new_id("call_"),
                    "name": answer.tool.name,
                    "arguments": answer.arguments,
                    "status": "completed",
                }
            )
        else:
            part = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
            out.append(
                {"type": "message", "id": new_id("msg_"), "status": "completed", "role": "assistant", "content": [part]}
            )
        return out, ask.reasoning + answer.output_tokens, answer.stop == "max_tokens"

    def _finish(self, ask: ResponsesAsk, answer: Answer) -> dict[str, Any]:
        output, out_tokens, cut = self._output(ask, answer)
        resp = self._response(ask, answer, "incomplete" if cut else "completed")
        resp["output"] = output
        if cut:
            resp["incomplete_details"] = {"reason": "max_output_tokens"}
            for item in output:
                if item["type"] != "reasoning":
                    item["status"] = "incomplete"
        resp["usage"] = {
            "input_tokens": ask.input_tokens,
            "input_tokens_details": {"cache_write_tokens": 0, **cache_details(ask)},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": ask.reasoning if output else 0},
            "total_tokens": ask.input_tokens + out_tokens,
        }
        visible = [i for i in output if i["type"] != "reasoning"]
        if ask.conversation is not None:  # appended when the response is made, stored or not
            ask.conversation.items += ask.items + visible
            ask.conversation.tokens += ask.own_tokens + out_tokens - ask.reasoning
        if ask.body.get("store", True):
            self.stored[resp["id"]] = Stored(
                resp, ask.items, ask.context + visible, ask.input_tokens + out_tokens - ask.reasoning
            )
            while len(self.stored) > STORE_LIMIT:
                self.stored.popitem(last=False)
        return resp

    def reply(self, ask: Ask, answer: Answer) -> Reply:
        assert isinstance(ask, ResponsesAsk)
        return json_reply(200, self._finish(ask, answer), [(b"x-request-id", new_id("req_").encode())])

    def stream(self, ask: Ask, answer: Answer) -> Stream:
        assert isinstance(ask, ResponsesAsk)
        final = self._finish(ask, answer)
        events = _Events()
        start = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
        chunks = [(events("response.created", response=start), 0), (events("response.in_progress", response=start), 0)]
        for index, item in enumerate(final["output"]):
            chunks += _item_events(events, index, item)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        chunks.append((events(kind, response=final), 0))
        headers = [EVENT_STREAM, NO_CACHE, (b"x-request-id", new_id("req_").encode())]
        return Stream(headers, chunks, cut_at=min(4, len(chunks) - 1))

    # -- stored responses

    def stored_endpoint(self, method: str, rid: str, action: str) -> Reply:
        hit = self.stored.get(rid)
        if hit is None:
            return self.error(404, f"No response found with id '{rid}'.")
        if (method, action) == ("GET", ""):
            return json_reply(200, hit.response)
        if (method, action) == ("DELETE", ""):
            del self.stored[rid]
            return json_reply(200, {"id": rid, "object": "response", "deleted": True})
        if (method, action) == ("GET", "input_items"):
            data = list(reversed(hit.input_items))  # newest first, the API's default order
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return json_reply(
                200, {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
            )
        if (method, action) == ("POST", "cancel"):
            return self.error(400, "Only responses created with background=true can be cancelled.", param=None)
        return self.error(405, f"Method not allowed: {method}")

    def models(self, query: bytes) -> Reply:
        return json_reply(200, {"object": "list", "data": MODELS})

    def fault(self, fault: Fault) -> Reply:
        return super().fault(fault)


class _Events:
    """Numbered SSE events."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, kind: str, **data: Any) -> bytes:
        body = orjson.dumps({"type": kind, "sequence_number": self.n, **data})
        self.n += 1
        return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


def _item_events(events: _Events, index: int, item: dict[str, Any]) -> list[tuple[bytes, int]]:
    kind = item["type"]
    if kind == "message":
        part = item["content"][0]
        opened = {**item, "status": "in_progress", "content": []}
        empty = {**part, "text": ""}
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        out = [(events("response.output_item.added", output_index=index, item=opened), 0)]
        out.append((events("response.content_part.added", **ids, part=empty), 0))
        for text, n in word_deltas(part["text"], WORDS_PER_DELTA):
            out.append((events("response.output_text.delta", **ids, delta=text, logprobs=[]), n))
        out.append((events("response.output_text.done", **ids, text=part["text"], logprobs=[]), 0))
        out.append((events("response.content_part.done", **ids, part=part), 0))
        out.append((events("response.output_item.done", output_index=index, item=item), 0))
        return out
    if kind == "function_call":
        opened = {**item, "status": "in_progress", "arguments": ""}
        ids = {"item_id": item["id"], "output_index": index}
        out = [(events("response.output_item.added", output_index=index, item=opened), 0)]
        for piece in char_deltas(item["arguments"], 24):
            out.append((events("response.function_call_arguments.delta", **ids, delta=piece), count_tokens(piece)))
        out.append(
            (events("response.function_call_arguments.done", **ids, name=item["name"], arguments=item["arguments"]), 0)
        )
        out.append((events("response.output_item.done", output_index=index, item=item), 0))
        return out
    return [
        (events("response.output_item.added", output_index=index, item=item), 0),
        (events("response.output_item.done", output_index=index, item=item), 0),
    ]


def _items(inp: Any) -> list[dict[str, Any]]:
    """The input as items with ids (as input_items lists them): a string is one user message."""
    if inp is None:
        return []
    raw = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp
    out = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            if isinstance(content, str):
                part = "output_text" if item["role"] == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            out.append({"type": "message", "id": item.get("id") or new_id("msg_"), "role": item["role"],
                        "content": content, "status": "completed"})  # fmt: skip
        else:
            out.append({**item, "id": item.get("id") or new_id(_ID_PREFIX.get(kind, "item_"))})
    return out


_ID_PREFIX = {"function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}


def _item_tokens(item: dict[str, Any]) -> int:
    kind = item.get("type")
    if kind == "message":
        n = MESSAGE_TOKENS
        for part in item["content"]:
            if part.get("type") in ("input_text", "output_text"):
                n += count_text(part.get("text"))
            elif part.get("type") == "input_image":
                n += openai_image({"url": part.get("image_url"), "detail": part.get("detail")})
            else:
                n += count_json(part)
        return n
    if kind == "function_call":
        return MESSAGE_TOKENS + count_text(item.get("name")) + count_text(item.get("arguments"))
    if kind == "function_call_output":
        out = item.get("output")
        return MESSAGE_TOKENS + (count_text(out) if isinstance(out, str) else count_json(out))
    return count_json({k: v for k, v in item.items() if k != "id"})


def _tokens_of(model: str, items: list[dict[str, Any]]) -> int:
    """The tokens of input items as the model reads them."""
    token = ENCODING.set(encoding(encoding_for(model)))
    try:
        return sum(_item_tokens(i) for i in items)
    finally:
        ENCODING.reset(token)


def _measure(body: dict[str, Any], items: list[dict[str, Any]], prior: Stored | None) -> tuple[int, Automatic | None]:
    """Input tokens (stored context, instructions, tools, format, items, reply priming) and the prompt as
    the cache sees it."""
    MODEL.set(body["model"])
    token = ENCODING.set(encoding(encoding_for(body["model"])))
    try:
        parts: list[tuple[int, Any]] = []
        if prior is not None:
            parts.append((prior.tokens, ("context", prior.response["id"])))
        if body.get("instructions"):
            parts.append((MESSAGE_TOKENS + count_text(body["instructions"]), body["instructions"]))
        if tools := body.get("tools"):
            parts.append((count_json(tools), tools))
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            parts.append((count_json(fmt.get("schema")), fmt.get("schema")))
        for item in items:
            parts.append((_item_tokens(item), {k: v for k, v in item.items() if k != "id"}))
        parts.append((REPLY_TOKENS, "reply"))
    finally:
        ENCODING.reset(token)
    total = sum(n for n, _ in parts)
    if total < OPENAI_MIN_TOKENS:
        return total, None
    ends = list(accumulate(n for n, _ in parts))
    hashes = prefix_hashes(["openai", body["model"], body.get("prompt_cache_key")], (v for _, v in parts))
    ttl = OPENAI_EXTENDED_TTL_SECONDS if body.get("prompt_cache_retention") == "24h" else OPENAI_TTL_SECONDS
    return total, Automatic(ends, hashes, ttl)


def _step_prompt(context: list[dict[str, Any]]) -> str:
    """The directives for this step of the last user message's script (module docstring)."""
    last = max((i for i, item in enumerate(context) if item.get("type") == "message" and item.get("role") == "user"),
               default=None)  # fmt: skip
    if last is None:
        return ""
    text = " ".join(
        p.get("text", "") for p in context[last]["content"] if isinstance(p, dict) and isinstance(p.get("text"), str)
    )
    script = _TOOL.findall(text)
    step = sum(1 for item in context[last + 1 :] if item.get("type") == "function_call")
    rest = _TOOL.sub("", text)
    if step < len(script):
        return f"[sim:tool={script[step]}] {rest}" if script[step] else f"[sim:tool] {rest}"
    return rest


def _tool_choice(choice: Any) -> tuple[ToolMode, str | None]:
    """Chat's rule, for the Responses shape of a named function ({"type": "function", "name"})."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    return chat_tool_choice(choice)


def _validate(body: Any) -> int | None:
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.", code="invalid_type")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    inp = body.get("input")
    if inp is None and body.get("previous_response_id") is None and body.get("conversation") is None:
        raise Invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if inp is not None and not isinstance(inp, str | list):
        raise Invalid(
            "Invalid type for 'input': expected one of a string or array of input items.", "input", "invalid_type"
        )
    for i, item in enumerate(inp if isinstance(inp, list) else ()):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise Invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system", "developer"):
                raise Invalid(f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', 'system', "
                              "'developer', and 'user'.", f"{where}.role", "invalid_value")  # fmt: skip
            content = item.get("content")
            if not isinstance(content, str | list):
                raise Invalid(f"Missing required parameter: '{where}.content'.", f"{where}.content",
                              "missing_required_parameter")  # fmt: skip
            for j, part in enumerate(content if isinstance(content, list) else ()):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise Invalid(f"Missing required parameter: '{where}.content[{j}].type'.",
                                  f"{where}.content[{j}].type", "missing_required_parameter")  # fmt: skip
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise Invalid(f"Missing required parameter: '{where}.call_id'.", f"{where}.call_id",
                              "missing_required_parameter")  # fmt: skip
        elif kind == "function_call":
            if not isinstance(item.get("name"), str) or not isinstance(item.get("call_id"), str):
                raise Invalid(f"Missing required parameter: '{where}.call_id'.", f"{where}.call_id",
                              "missing_required_parameter")  # fmt: skip
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise Invalid(
                "Invalid type for 'max_output_tokens': expected an integer.", "max_output_tokens", "invalid_type"
            )
        if limit < MIN_OUTPUT:
            raise Invalid(
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT}, "
                f"but got {limit} instead.",
                "max_output_tokens",
                "integer_below_min_value",
            )
    for key in ("stream", "store", "background"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise Invalid(f"Invalid type for '{key}': expected a boolean.", key, "invalid_type")
    if body.get("previous_response_id") is not None and body.get("conversation") is not None:
        raise Invalid("Mutually exclusive parameters: 'previous_response_id' and 'conversation'.", "conversation",
                      "mutually_exclusive_parameters")  # fmt: skip
    conv = body.get("conversation")
    if conv is not None and not (isinstance(conv, str) or (isinstance(conv, dict) and isinstance(conv.get("id"), str))):
        raise Invalid("Invalid type for 'conversation': expected a string or an object with an id.", "conversation",
                      "invalid_type")  # fmt: skip
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise Invalid("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    for i, t in enumerate(tools or ()):
        if t.get("type") == "function" and not isinstance(t.get("name"), str):
            raise Invalid(f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name",
                          "missing_required_parameter")  # fmt: skip
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema")):
        raise Invalid("Invalid value for 'text.format.type'.", "text.format.type", "invalid_value")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise Invalid("Missing required parameter: 'text.format.name'.", "text.format.name",
                          "missing_required_parameter")  # fmt: skip
        if not isinstance(fmt.get("schema"), dict):
            raise Invalid("Missing required parameter: 'text.format.schema'.", "text.format.schema",
                          "missing_required_parameter")  # fmt: skip
    cache_key = body.get("prompt_cache_key")
    if cache_key is not None and not isinstance(cache_key, str):
        raise Invalid("Invalid type for 'prompt_cache_key': expected a string.", "prompt_cache_key", "invalid_type")
    return limit
