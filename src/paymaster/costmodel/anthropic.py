"""Anthropic Messages requests: every billable input, bounded from above.

Text is bounded by bytes: Claude's tokenizer is not public, and a byte-level BPE token covers at
least one byte, so the request's JSON bytes (without the base64 of the images and PDFs priced on
their own) bound the tokens of all its text — system, messages, tool definitions, tool inputs
(text to the provider, whatever they contain) and tool results. The exact count comes from the
provider's `POST /v1/messages/count_tokens` (`counted`), asked only when the byte bound is too
coarse for the budget; it covers text, images and documents, and gets a safety margin
(data/costmodel.yaml `count_tokens_margin`).

What sits where (platform.claude.com/docs/en/api/messages): images and documents are content blocks
of a message, of a tool_result's content, or of a `content` document; anything inside `tool_use.input`
is JSON text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from . import Measure, Unbounded, data, margin, rounds, spec_for
from .images import anthropic_tokens
from .media import HEAD, PDF_SCAN, b64_prefix, image_size, pdf_pages, pdf_text_bytes

BASE = 16  # tokens of the chat template the JSON does not show (ours; JSON syntax covers per-message markers)
# what count_tokens takes that can change the count (API reference, "Count tokens in a Message"): a
# structured output's schema is billed input too
COUNT_TOKENS_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
    "output_config",
    "output_format",
    "context_management",
)


def bound_server_tools(body: dict[str, Any]) -> dict[str, str]:
    """Give each server tool without `max_uses` the configured default, in place, or refuse it; and a tool
    whose per-use content has a request limit (web fetch's `max_content_tokens`) the ceiling its bound
    assumes, when the request sets none.

    Returns the call's notes (header → what was set). Anthropic server tools run inside one call and
    charge per use (platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool: `max_uses`
    "limits the number of searches"); without it nothing bounds them. A fetch retrieves a page's or a PDF's
    "full content" (…/web-fetch-tool), which only `max_content_tokens` limits.
    """
    if body.get("mcp_servers"):  # remote tools whose results join the input: nothing bounds them
        raise Unbounded("mcp_servers: the cost of remote MCP tool results cannot be bounded", "mcp_servers")
    tools = body.get("tools")
    if not isinstance(tools, list):
        return {}
    conf = data()["anthropic"]
    uses_set: list[str] = []
    content_set: list[str] = []
    for t in tools:
        if not isinstance(t, dict):
            continue
        kind = _server_kind(t, conf)
        if kind is None:
            continue
        rule = conf["server_tools"][kind]
        param = rule.get("content_param")
        own = t.get(param) if param else None
        if param and not (isinstance(own, int) and not isinstance(own, bool) and own > 0):
            t[param] = rule["result_tokens"]
            content_set.append(f"{t.get('name', kind)}={rule['result_tokens']}")
        uses = t.get("max_uses")
        if isinstance(uses, int) and not isinstance(uses, bool) and uses >= 0:
            continue
        default = rule.get("default_max_uses")
        if default is None:
            raise Unbounded(f"server tool {t.get('name')!r} has no max_uses: its cost cannot be bounded", "tools")
        t["max_uses"] = default
        uses_set.append(f"{t.get('name', kind)}={default}")
    notes = {}
    if uses_set:
        notes["x-paymaster-max-uses"] = ", ".join(uses_set)
    if content_set:
        notes["x-paymaster-max-content-tokens"] = ", ".join(content_set)
    return notes


def _server_kind(tool: dict[str, Any], conf: dict[str, Any]) -> str | None:
    """The server tool a tool definition names (web_search, web_fetch), None for client tools;
    refuses a server tool type the model does not know how to bound."""
    kind = tool.get("type")
    if not isinstance(kind, str) or kind == "custom":
        return None
    for name in conf["server_tools"]:
        if kind.startswith(name + "_"):
            return str(name)
    for name in conf["client_tools"]:
        if kind.startswith(name + "_"):
            return None
    raise Unbounded(f"tool type {kind!r} is not one the gateway can bound the cost of", "tools")


LONG_CONTEXT = 1_000_000  # a request whose context window is this or more may carry `pdf.max_pages_1m` pages


def measure(
    body: dict[str, Any],
    size: int,
    model: str,
    counted: int | None = None,
    default_geo: str = "",
    context: int | None = None,
) -> Measure:
    """Bound the input of an Anthropic request of `size` JSON bytes; `counted` is count_tokens' answer;
    `default_geo` the workspace's inference geography, where a request naming none runs; `context` the
    request's context window (None: not known, or the 1M-token beta), which sets how many PDF pages it
    can carry."""
    conf = data()["anthropic"]
    m = Measure()
    if "speed" in body or "inference_geo" in body or default_geo not in ("", "global"):  # most name neither
        _modifiers(m, body, default_geo)
    img = spec_for(conf["images"], model)
    pdf = conf["pdf"]
    # pdf-support: "600 (100 when the request's context window is under 1M tokens)"
    most = pdf["max_pages"] if context is not None and context < LONG_CONTEXT else pdf["max_pages_1m"]
    w = _Walk(m, img, pdf, most)
    sections: list[Any] = []  # in cache order: tools, system, messages
    tools = body.get("tools")
    overhead = BASE
    if isinstance(tools, list) and tools:
        overhead += spec_for(conf["tool_system_prompt"], model)
        for t in tools:
            if not isinstance(t, dict):
                continue
            kind = _server_kind(t, conf)
            ttype = t.get("type")
            if kind is not None:
                _server_tool(m, t, kind, conf["server_tools"][kind])
            elif isinstance(ttype, str) and ttype != "custom":
                overhead += next(v for k, v in conf["client_tools"].items() if ttype.startswith(k + "_"))
            w.marks(t, len(sections))
        sections.append(tools)
        w.media_upto.append(m.media)
    system = body.get("system")
    if isinstance(system, list):
        w.blocks(system, len(sections))
    if system is not None:
        sections.append(system)
        w.media_upto.append(m.media)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            w.content(message.get("content"), len(sections))
        sections.append(message)
        w.media_upto.append(m.media)
    if isinstance(body.get("cache_control"), dict) and sections:  # automatic caching: a breakpoint at the end
        w.mark(body["cache_control"], len(sections) - 1)
    m.text = size - m.media_bytes + overhead
    if counted is not None:
        ratio, extra = conf["count_tokens_margin"]["ratio"], conf["count_tokens_margin"]["tokens"]
        refined = margin(counted, ratio, extra)
        if refined < m.text + m.media:
            m.text, m.media, m.exact = max(0, refined - m.media), min(m.media, refined), True
    if w.last:
        _cache_prefixes(m, w, sections, overhead)
    if m.server_uses:
        _server_iterations(m, body, context, w.last)
    if "context_management" in body or "compaction" in body:
        _compaction(m, body, model, conf["compaction"])
    return m


def _compaction(m: Measure, body: dict[str, Any], model: str, conf: dict[str, Any]) -> None:
    """How many server-side compaction steps the request can run (data/costmodel.yaml `compaction`): a
    `compact_*` context-management edit whose trigger the input can reach — once per sampling iteration,
    and server tools add iterations — plus one for a top-level `compaction` request."""
    cm = body.get("context_management")
    edits = cm.get("edits") if isinstance(cm, dict) else None
    steps = 1 if body.get("compaction") is not None else 0
    for e in edits if isinstance(edits, list) else ():
        if not (isinstance(e, dict) and isinstance(e.get("type"), str) and e["type"].startswith("compact_")):
            continue
        trigger = e.get("trigger")
        value = trigger.get("value") if isinstance(trigger, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            value = conf["trigger_default"]  # absent (the default) or malformed (refused by the provider)
        if (m.round_max or m.tokens) >= value:  # checked at each iteration, on what that iteration reads
            steps += 1 + sum(m.server_uses.values())
    if steps:
        m.compactions, m.summary_tokens = steps, int(spec_for(conf["summary_tokens"], model))


def _modifiers(m: Measure, body: dict[str, Any], default_geo: str) -> None:
    """The request's pricing modifiers: fast mode (platform.claude.com/docs/en/build-with-claude/fast-mode)
    and the inference geography (…/manage-claude/data-residency: "if not specified, the workspace's
    default_inference_geo is used"); an unknown value is kept, so pricing refuses it rather than bounding
    it at the standard price."""
    speed, geo = body.get("speed"), body.get("inference_geo", default_geo or None)
    if speed is not None and speed != "standard":
        m.speed = speed if isinstance(speed, str) else repr(speed)
    if geo is not None and geo != "global":
        m.geo = geo if isinstance(geo, str) else repr(geo)


def _server_tool(m: Measure, tool: dict[str, Any], kind: str, conf: dict[str, Any]) -> None:
    uses = tool.get("max_uses")
    if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
        raise Unbounded(f"server tool {tool.get('name')!r} has no max_uses: its cost cannot be bounded", "tools")
    per_use = conf["result_tokens"]
    own = tool.get("max_content_tokens")  # web fetch's own bound on what one fetch adds
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        per_use = min(per_use, own)
    if uses:
        m.round_max = max(m.round_max, per_use)  # until _server_iterations: the largest result one use adds
    m.server_uses[kind] = m.server_uses.get(kind, 0) + uses
    m.fee_defaults[kind] = Decimal(str(conf["fee_usd"]))


def _server_iterations(m: Measure, body: dict[str, Any], window: int | None, breakpoints: dict[str, int]) -> None:
    """What the server-side loop reads as input (platform.claude.com/docs/en/agents-and-tools/tool-use/
    web-search-tool, "Usage and pricing": results "are counted as input tokens, in search iterations executed
    during a single turn"): each tool use adds an iteration, and iteration k reads the request, the k
    results so far and everything the model wrote before (at most `max_tokens` in all), at most the context
    window. The written part is priced per output token (`Measure.rereads`: one more input read of each
    output token per iteration that has room for it), so a max_tokens lowered to fit the budget lowers it
    too. With a cache breakpoint every iteration may write what it reads to the cache ("Prompt caching":
    cached "up until the last web_search_tool_result block")."""
    uses, per_use = sum(m.server_uses.values()), m.round_max
    written = body.get("max_tokens")
    if not isinstance(written, int) or isinstance(written, bool) or written < 0:
        written = 0  # required by the API: a request without it is refused, not billed
    full = window if window is not None else 1 << 62  # no window known (the 1M beta): nothing caps a read
    base = min(m.text + m.media, full)
    read, below = rounds(base, per_use, uses, full)
    m.server_results += read
    m.rereads += below  # the iterations with room for what was written before them
    m.round_max = min(base + uses * per_use + written, full) if uses else base  # the last iteration
    m.reread_tokens = written
    if breakpoints:
        m.results_ttl = "1h" if "1h" in breakpoints else "5m"


class _Walk:
    """One pass over content blocks: media priced, base64 bytes noted, cache breakpoints found."""

    __slots__ = ("m", "img", "pdf", "pages", "last", "media_upto")

    def __init__(self, m: Measure, img: dict[str, Any], pdf: dict[str, Any], pages: int) -> None:
        self.m, self.img, self.pdf, self.pages = m, img, pdf, pages  # pages: the most a request can carry
        self.last: dict[str, int] = {}  # ttl → index of the section holding its last breakpoint
        self.media_upto: list[int] = []  # media tokens up to the end of each section

    def content(self, content: Any, section: int) -> None:
        if isinstance(content, list):
            self.blocks(content, section)

    def blocks(self, blocks: list[Any], section: int) -> None:
        for b in blocks:  # every block of the request: its media priced, its breakpoint noted, no call for the rest
            if isinstance(b, dict):
                kind = b.get("type")
                if kind == "image":
                    self.image(b.get("source"))
                elif kind == "document":
                    self.document(b.get("source"), section)
                elif kind == "tool_result":
                    self.content(b.get("content"), section)
                cc = b.get("cache_control")
                if isinstance(cc, dict):
                    self.mark(cc, section)

    def marks(self, b: dict[str, Any], section: int) -> None:
        cc = b.get("cache_control")
        if isinstance(cc, dict):
            self.mark(cc, section)

    def mark(self, cc: dict[str, Any], section: int) -> None:
        self.last["1h" if cc.get("ttl") == "1h" else "5m"] = max(section, 0)

    def image(self, source: Any) -> None:
        size = None
        if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
            data_ = source["data"]
            self.m.media_bytes += len(data_)
            size = image_size(b64_prefix(data_, HEAD))
        self.m.media += anthropic_tokens(size, self.img)

    def document(self, source: Any, section: int) -> None:
        source = source if isinstance(source, dict) else {}  # unreadable: bounded at the page limit below
        kind = source.get("type")
        if kind == "content" and isinstance(source.get("content"), list | str):
            self.content(source.get("content"), section)  # a document made of content blocks: its images are images
            return
        if kind == "text" and isinstance(source.get("data"), str):
            return  # plain text: its bytes bound it
        pages = text = None
        data_ = source.get("data")
        if kind == "base64" and isinstance(data_, str):
            self.m.media_bytes += len(data_)
            if len(data_) <= PDF_SCAN * 4 // 3:
                raw = b64_prefix(data_, PDF_SCAN)
                pages, text = pdf_pages(raw), pdf_text_bytes(raw)
        pages = min(pages or self.pages, self.pages)
        most_text = pages * int(self.pdf["text_tokens_per_page"])
        # platform.claude.com/docs/en/build-with-claude/pdf-support: each page is its text plus its image
        self.m.media += pages * anthropic_tokens(None, self.img) + (most_text if text is None else text)


def _cache_prefixes(m: Measure, w: _Walk, sections: list[Any], overhead: int) -> None:
    """Tokens of the prefix up to the last breakpoint of each TTL: its sections' bytes (without the
    base64 of media, priced by their tokens instead), bounded by the whole input."""
    sizes = [len(orjson.dumps(s)) for s in sections]
    whole = m.text + m.media
    for ttl, section in w.last.items():
        # the whole section holding the breakpoint: its JSON bytes bound its text, plus its media tokens
        prefix = overhead + sum(sizes[: section + 1]) + w.media_upto[section]
        bound = min(whole, prefix)
        if ttl == "1h":
            m.cache_1h = bound
        else:
            m.cache_5m = bound
    if m.cache_5m < m.cache_1h:  # a 5-minute breakpoint before a 1-hour one: the longer prefix rules
        m.cache_5m = 0


def count_tokens_body(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a Messages request that count_tokens accepts (the rest change no token)."""
    return {k: body[k] for k in COUNT_TOKENS_FIELDS if k in body}
