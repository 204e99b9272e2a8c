"""OpenAI Responses requests: every billable input, bounded from above (figures in data/responses.yaml).

- Text, wherever it sits (`instructions`, `input` items of every type, tool definitions, `text.format`'s
  schema): by the request's bytes, plus the chat format's per-item and per-tool tokens (as for Chat
  Completions, `costmodel.openai`).
- Images and files in `input_image` / `input_file` parts: as in Chat Completions (documented formulas,
  else the documented maximum).
- Stored context the body does not show (`previous_response_id`, `conversation`): the tokens the
  gateway's own book says it holds (`response_book.py`: the earlier response's input + output), or the
  model's context window when the gateway never served it. The request part, stored context included,
  is capped by the context window (the provider truncates or refuses past it).
- Built-in tools: each use's fee, and each sampling round after a tool call reads the context again
  with the tool's results: round k reads at most min(window, request + k × result bound), for k up to
  `max_tool_calls` (set to the default when absent). A tool with no rule here is refused.
"""

from __future__ import annotations

import importlib.resources
from decimal import Decimal
from functools import cache
from typing import Any

import yaml

from ..pricing import Rates
from . import Measure, Unbounded, data, margin, rounds, spec_for
from .media import b64_prefix
from .openai import TOKENIZE_LIMIT, _Walk, billed_tier
from .tokenizer import Counter, encoding, encoding_for


@cache
def conf() -> dict[str, Any]:
    """data/responses.yaml, parsed once."""
    text = (importlib.resources.files("paymaster") / "data" / "responses.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def server_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's built-in (server-run) tools; a tool type with no rule is refused."""
    tools = body.get("tools")
    out = []
    c = conf()
    for t in tools if isinstance(tools, list) else ():
        kind = t.get("type") if isinstance(t, dict) else None
        if kind in c["client_tools"] and not hosted(t):
            continue
        base = _kind(kind)
        if base is None:
            raise Unbounded(
                f"built-in tool {kind!r} has no price or bound in the gateway's cost model, so its cost cannot be "
                "bounded; it is refused",
                "tools",
            )
        out.append(t)
    return out


def hosted(tool: Any) -> bool:
    """Whether a tool the caller can also run itself (`shell`) runs in a container OpenAI hosts instead:
    an `environment` of a container type (developers.openai.com/api/docs/guides/tools-shell)."""
    env = tool.get("environment") if isinstance(tool, dict) else None
    kind = env.get("type") if isinstance(env, dict) else None
    return isinstance(kind, str) and kind.startswith("container")


def _rule(tool: dict[str, Any]) -> str | None:
    """The rule of a request's tool, None for a tool the caller runs (no fee, no round)."""
    kind = tool.get("type")
    if kind in conf()["client_tools"] and not hosted(tool):
        return None
    return _kind(kind)


def _kind(kind: Any) -> str | None:
    """A tool type's rule name: dated variants (web_search_2025_08_26) share their tool's rule."""
    if not isinstance(kind, str):
        return None
    tools = conf()["tools"]
    if kind in tools:
        return kind
    best = max((k for k in tools if kind.startswith(k + "_")), key=len, default=None)
    return best


def bound_tool_calls(body: dict[str, Any]) -> int | None:
    """Give a request with built-in tools and no `max_tool_calls` the default, in place; returns the
    default it set, or None."""
    if not server_tools(body) or body.get("max_tool_calls") is not None:
        return None
    body["max_tool_calls"] = n = int(conf()["default_max_tool_calls"])
    return n


def measure(
    body: dict[str, Any],
    size: int,
    rates: Rates,
    stored: int | None,
    context_cap: int | None,
    default_tier: str = "",
    exact: bool = False,
) -> Measure:
    """Bound a Responses request of `size` JSON bytes (`exact`: its text counted with the model's public
    tokenizer, plus a margin). `stored`: tokens of the stored context it names (None: it names some the
    gateway does not know, bounded by the window)."""
    oa = data()["openai"]
    m = Measure(exact=exact, implicit_cache=True)
    m.service_tier = billed_tier(body.get("service_tier"), default_tier)
    counter = Counter(encoding(encoding_for(rates.model)), TOKENIZE_LIMIT) if exact else None
    w = _Walk(m, spec_for(oa["images"], rates.model), oa, counter)
    inp = body.get("input")
    items = inp if isinstance(inp, list) else [inp]
    text = oa["per_reply"] + oa["per_message"] * (len(items) + 1)  # +1: the instructions
    unseen = body.get("prompt") is not None  # a stored prompt template: its size is OpenAI's to know
    for item in items:
        if isinstance(item, dict):
            unseen = unseen or item.get("type") == "item_reference"  # a stored item, by id
            _media(w, item.get("content"), context_cap)
            _media(w, item.get("output"), context_cap)
        text += _strings(w, item)
    text += _strings(w, body.get("instructions"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        text += oa["tools_base"] + oa["per_tool"] * len(tools) + w.json(tools)
    fmt = body.get("text")
    text += w.json(fmt) if isinstance(fmt, dict) else 0
    if stored is None or unseen:
        if context_cap is None:
            raise Unbounded(
                "this request names stored context (a response, conversation, prompt or item) the gateway did not "
                "serve and the model's context window is unknown, so its size cannot be bounded",
                "previous_response_id" if body.get("previous_response_id") else "input",
            )
        stored = context_cap
    if exact:
        m.text = margin(text, oa["margin"]["ratio"], oa["margin"]["tokens"]) + stored
    else:  # every string is inside the JSON: its bytes bound all the text; the format's own tokens are added
        m.text = size - m.media_bytes + text + stored
    _tool_rounds(m, body, context_cap, rates)
    _compaction(m, body, context_cap)
    return m


def _compaction(m: Measure, body: dict[str, Any], window: int | None) -> None:
    """Server-side compaction (developers.openai.com/api/docs/guides/compaction): with a `context_management`
    entry of type "compaction", "if the context size crosses the threshold [`compact_threshold`], the server
    triggers a compaction pass ... and prunes context before continuing inference". A pass reads the context
    as it stands, so every sampling round whose context can reach the threshold may be read once more (its
    output is the response's own, bounded by max_output_tokens). The threshold is on one round's context (the
    "rendered token count"), the largest of which is the request or the last tool round (`Measure.round_max`),
    not on the rounds' reads summed. A threshold that is absent or malformed is taken as reachable."""
    cm = body.get("context_management")
    entries = cm if isinstance(cm, list) else [cm]
    thresholds = [e.get("compact_threshold") for e in entries if isinstance(e, dict) and e.get("type") == "compaction"]
    if not thresholds:
        return
    lowest = min(t if isinstance(t, int) and not isinstance(t, bool) else 0 for t in thresholds)
    request = m.text + m.media + m.audio
    if window is not None:
        request = min(request, window)
    reads = request + m.server_results  # every round's read (each already at most the window)
    if max(request, m.round_max) >= lowest:  # the largest round can reach the threshold
        m.server_results += reads
        m.rereads *= 2


MEDIA_KEYS = frozenset({"image_url", "file_data", "input_audio"})  # priced by `_media`, not as text


def _strings(w: _Walk, node: Any) -> int:
    """Tokens of every string in an input item (exact mode; 0 in byte mode, where the bytes bound them)."""
    if w.counter is None or node is None:
        return 0
    if isinstance(node, str):
        return w.text(node)
    if isinstance(node, list):
        return sum(_strings(w, v) for v in node)
    if isinstance(node, dict):
        total = sum(_strings(w, v) for k, v in node.items() if k not in MEDIA_KEYS and k != "encrypted_content")
        sealed = node.get("encrypted_content")  # reasoning the provider decrypts: no more tokens than its bytes
        return total + (len(sealed) if isinstance(sealed, str) else 0)
    return w.json(node)


def _media(w: _Walk, content: Any, window: int | None) -> None:
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "input_image":
            url = part.get("image_url")
            w.image(
                {"url": url, "detail": part.get("detail")} if isinstance(url, str) else {"detail": part.get("detail")}
            )
        elif kind == "input_file":
            _file(w, part, window)
        elif kind == "input_audio":
            w.audio(part.get("input_audio"))


ZIP = b"PK\x03\x04"  # .docx, .pptx, .xlsx: compressed, their text larger than their bytes


def _file(w: _Walk, part: dict[str, Any], window: int | None) -> None:
    """An `input_file`. The Responses API takes PDFs (text and page images: bounded as in Chat Completions)
    and other documents, text, code and spreadsheets, of which it reads the text only, with no page limit
    (developers.openai.com/api/docs/guides/file-inputs). Inline plain text is bounded by its bytes; a
    compressed document, or a file the gateway cannot see (`file_id`, `file_url`), by the context window."""
    data_url = part.get("file_data")
    name = part.get("filename")
    if isinstance(data_url, str):
        b64 = data_url[data_url.find(",") + 1 :] if data_url.startswith("data:") else data_url
        head = b64_prefix(b64, 8)
        if head.startswith(b"%PDF") and not (isinstance(name, str) and not name.lower().endswith(".pdf")):
            w.file({"file_data": data_url})
            return
        if not head.startswith(ZIP):
            w.m.media_bytes += len(data_url)
            w.m.media += len(b64) * 3 // 4 + 1  # its text: at most one token per byte
            return
    if window is None:
        raise Unbounded(
            "an input_file the gateway cannot read (a file_id, file_url or compressed document) is bounded by the "
            "model's context window, which is unknown for this model",
            "input",
        )
    w.m.media += window


def _tool_rounds(m: Measure, body: dict[str, Any], window: int | None, rates: Rates) -> None:
    """Each sampling round after a built-in tool call reads the whole context again: the request, every
    result so far, and everything the model wrote in earlier rounds (reasoning, tool calls, text) — at most
    `max_output_tokens` in all, which bounds a response's output across its rounds, at most the window. The
    written part is priced per output token (`Measure.rereads`: one more input read of each output token per
    round with room for it), so a `max_output_tokens` lowered to fit the budget lowers it too. A tool that
    imports definitions the request does not show (remote MCP's tool list) may fill the first round to the
    window."""
    tools = server_tools(body)
    if not tools:
        return
    uses = body.get("max_tool_calls")
    if not isinstance(uses, int):
        uses = int(conf()["default_max_tool_calls"])
    per_round = 0
    unbounded = imports = False
    for t in tools:
        kind = _kind(t.get("type"))
        assert kind is not None
        rule = conf()["tools"][kind]
        item = rule["item"]
        if isinstance(rule["fee_usd"], dict):  # code interpreter: one container per tool entry and response
            m.server_uses[item] = m.server_uses.get(item, 0) + 1
        else:  # the others: per use, at most max_tool_calls uses in all
            m.server_uses[item] = uses
        m.fee_defaults[item] = max(m.fee_defaults.get(item, Decimal(0)), tool_fee(rates, kind, t))
        imports = imports or bool(rule.get("imports_definitions"))
        if "chunk_tokens" in rule:
            asked = t.get("max_num_results")
            results = asked if isinstance(asked, int) and 0 < asked <= rule["max_results"] else rule["max_results"]
            per_round = max(per_round, results * rule["chunk_tokens"])
        elif rule.get("result_tokens") is None:
            unbounded = True
        else:
            per_round = max(per_round, rule["result_tokens"])
    written = body.get("max_output_tokens")
    if not isinstance(written, int) or isinstance(written, bool) or written < 0:
        written = None  # the pipeline always sets max_output_tokens; without it, the window bounds it
    if window is None and (unbounded or imports or written is None):
        raise Unbounded("a built-in tool's output is unbounded and the model's context window unknown", "tools")
    base = m.text + m.media + m.audio
    if window is not None:
        base = min(base, window)
        if imports:  # the first round reads the imported definitions too
            m.server_results += window - base
            m.round_max = window
    if uses > 0 and window is not None and (unbounded or written is None):  # every round may read the window
        m.server_results += uses * window
        m.round_max = max(m.round_max, window)
    elif uses > 0:
        total, below = rounds(base, per_round, uses, window)
        m.server_results += total
        m.rereads += below  # rounds with room for what was written: read again, priced per output token
        # the last round's whole context: what it reads and what was written before
        context = base + uses * per_round + (written or 0)
        m.round_max = max(m.round_max, context if window is None else min(window, context))
    m.reread_tokens = written or 0


def _container_fee(rule: dict[str, Any], tool: Any) -> Decimal:
    """A code-interpreter container's fee, by the memory limit the request asks for (1g when none)."""
    fees = rule["fee_usd"]
    container = (tool.get("container") or tool.get("environment")) if isinstance(tool, dict) else None
    limit = container.get("memory_limit", "1g") if isinstance(container, dict) else "1g"
    return Decimal(fees.get(limit, max(fees.values(), key=Decimal)))


def tool_fees(rates: Rates, uses: dict[str, int], body: dict[str, Any]) -> Decimal:
    """What a response's built-in tool uses (`wire.responses.tool_uses`) cost in fees: per output item, the
    fee of the request's tools that make it (the dearest, when two do), or the price table's when higher; a
    code-interpreter container at the memory limit the request asked for. Items with no rule add nothing
    (they stay unpriced: booked at the worst case)."""
    total = Decimal(0)
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    for item, n in uses.items():
        listed = [t for t in tools if (kind := _kind(t.get("type"))) and _item(kind) == item]
        fees = [tool_fee(rates, kind, t) for t in listed if (kind := _rule(t))]  # a client-run shell: no fee
        if not listed:  # the provider ran a tool the request did not list: its dearest rule
            if item in conf()["client_items"]:  # a client tool's call (a shell hosts only when asked to)
                continue
            fees = [tool_fee(rates, kind, None) for kind in conf()["tools"] if _item(kind) == item]
        total += n * max(fees, default=Decimal(0))
    return total


def _item(kind: str) -> str:
    item: str = conf()["tools"][kind]["item"]
    return item


def tool_fee(rates: Rates, kind: str, tool: Any) -> Decimal:
    """USD per use of built-in tool `kind` (per container for code interpreter and a hosted shell), as `tool`
    asks for it."""
    rule = conf()["tools"][kind]
    if isinstance(rule["fee_usd"], dict):
        return _container_fee(rule, tool)
    table = rates.fee("web_search") if kind.startswith("web_search") else None
    return max(Decimal(rule["fee_usd"]), table or Decimal(0))


@cache
def priced_items() -> frozenset[str]:
    """The output items whose uses `tool_fees` prices."""
    return frozenset(rule["item"] for rule in conf()["tools"].values())
