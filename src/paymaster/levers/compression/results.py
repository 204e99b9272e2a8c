"""Tool results, both APIs: find them, compress each (pruning, HTML → text, stripping), count what
each technique removed.

Anthropic: `tool_result` blocks in user messages (content a string or text/image/document blocks;
only text is touched). OpenAI: `tool` messages (content a string or text parts). A result's
compressed form depends only on its own text, its tool's rule and the results before it, so the
conversation's prefix keeps its bytes as it grows.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...config import Compression, ToolRule
from . import prune as pruning
from .html_text import html_to_text, looks_like_html
from .strip import Boilerplate, parse_json, strip_base64


def approx_tokens(n_bytes: int) -> int:
    """Tokens a text of `n_bytes` bytes is about (4 bytes a token, the usual rule for English and JSON)."""
    return (n_bytes + 3) // 4


@dataclass(slots=True)
class Tally:
    """Tokens removed per technique (estimated from bytes), and how many results were touched."""

    removed: dict[str, int] = field(default_factory=lambda: {"prune": 0, "html": 0, "strip": 0})
    results: int = 0

    def add(self, technique: str, before: int, after: int) -> None:
        if before > after:
            self.removed[technique] += approx_tokens(before) - approx_tokens(after)


@dataclass(frozen=True, slots=True)
class Done:
    """One text, compressed: the new text and bytes removed per technique."""

    text: str
    removed: tuple[tuple[str, int, int], ...]  # (technique, bytes before, bytes after)


_WS_RUN = re.compile(r"[ \t]{2,}(?=\S)")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")


def compact_whitespace(text: str) -> str:
    """Trailing spaces, runs of blank lines and runs of spaces inside a line go; indentation stays."""
    out = _TRAILING.sub("\n", text)
    out = _BLANK_RUN.sub("\n\n", out)
    return "\n".join(line[: len(line) - len(line.lstrip(" \t"))] + _WS_RUN.sub(" ", line.lstrip(" \t"))
                     for line in out.split("\n"))  # fmt: skip


def compress_text(text: str, rule: ToolRule | None, s: Compression) -> Done:
    """One tool result's text, compressed by the techniques `s` turns on."""
    size = len(text.encode())
    removed: list[tuple[str, int, int]] = []
    notes: list[str] = []
    value = parse_json(text) if (s.prune.enabled or s.strip.enabled) else None
    if value is not None:
        keep = rule.keep if rule is not None and s.prune.enabled else ()
        max_items = rule.max_items if rule is not None and rule.max_items is not None else s.prune.max_items
        strip = pruning.Stripping(s.strip.base64_min_chars, html=s.html.enabled) if s.strip.enabled else None
        p = pruning.prune(
            value,
            noise_keys=noise_keys(s),
            max_items=max_items if s.prune.enabled else None,
            drop_empty=s.prune.drop_empty,
            keep=keep,
            strip=strip,
        )
        out = orjson.dumps(p.value).decode()
        after = len(out.encode())
        rest = size - p.html_bytes - p.stripped_bytes
        if p.html:
            removed.append(("html", size, size - p.html_bytes))
            notes.append(f"{p.html} HTML string{'s' if p.html > 1 else ''} reduced to text")
        if strip is not None:
            removed.append(("strip", size - p.html_bytes, rest))
        if s.prune.enabled:  # the rest is pruning's, the whitespace the JSON was sent with included
            removed.append(("prune", rest, after))
        if p.kept_by_rule:
            notes.append("kept only " + ", ".join(keep))
        notes += _said(p.dropped_keys, "noise or empty field") + _said(p.dropped_items, "array item")
        notes += _said(p.blobs, "base64 blob") + _said(p.repeats, "repeated string")
        if p.unwrapped:
            notes.append(f"{p.unwrapped} JSON string{'s' if p.unwrapped > 1 else ''} unwrapped")
    elif s.html.enabled and looks_like_html(text):
        out = html_to_text(text)
        removed.append(("html", size, len(out.encode())))
        notes.append("HTML reduced to its text")
        if s.strip.enabled:
            out = _strip_text(out, s, removed, notes)
    else:
        out = text
        if s.strip.enabled:
            out = _strip_text(out, s, removed, notes)
        if s.prune.enabled:
            before = len(out.encode())
            out = compact_whitespace(out)
            removed.append(("prune", before, len(out.encode())))
    if notes:
        out = f"[gateway-compressed tool result: {'; '.join(notes)}]\n{out}"
    if len(out.encode()) >= size:  # nothing gained (the note included): the result goes as it came
        return Done(text, ())
    return Done(out, tuple(removed))


def _strip_text(text: str, s: Compression, removed: list[tuple[str, int, int]], notes: list[str]) -> str:
    before = len(text.encode())
    out, blobs = strip_base64(text, s.strip.base64_min_chars)
    if blobs:
        removed.append(("strip", before, len(out.encode())))
        notes += _said(blobs, "base64 blob")
    return out


def _said(n: int, what: str) -> list[str]:
    return [f"{n} {what}{'s' if n > 1 else ''} omitted"] if n else []


def noise_keys(s: Compression) -> frozenset[str]:
    base = pruning.NOISE_KEYS if s.prune.noise_keys is None else s.prune.noise_keys
    return base | s.prune.extra_noise_keys if s.prune.extra_noise_keys else base


class Memo:
    """Compressed texts by (settings, tool, text): a conversation re-sends every earlier result on
    every call, and each is compressed once. Bounded by total characters held."""

    def __init__(self, max_chars: int = 64_000_000) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.items: OrderedDict[tuple[int, str, str], Done] = OrderedDict()

    def get(self, s: Compression, tool: str, text: str) -> Done:
        key = (id(s), tool, text)
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            return hit
        done = compress_text(text, s.prune.tools.get(tool), s)
        self.items[key] = done
        self.chars += len(text) + len(done.text)
        while self.chars > self.max_chars and self.items:
            (_, _, t), d = self.items.popitem(last=False)
            self.chars -= len(t) + len(d.text)
        return done


def compress_results(messages: list[Any], api: str, s: Compression, memo: Memo, tally: Tally) -> list[Any]:
    """`messages` with every tool result above the size threshold compressed; the list and the
    messages it changes are new (the caller's request stays as it was, for a fallback)."""
    names = _tool_names(messages, api)
    boiler = Boilerplate(s.strip.boilerplate_min_chars) if s.strip.enabled else None
    out: list[Any] = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)
            continue
        if api == "openai":
            if m.get("role") == "tool":
                content = _compress_content(m.get("content"), names.get(m.get("tool_call_id")), s, memo, tally, boiler)
                if content is not m.get("content"):
                    m = {**m, "content": content}
        elif m.get("role") == "user" and isinstance(m.get("content"), list):
            blocks = m["content"]
            new = None
            for i, b in enumerate(blocks):
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    content = _compress_content(
                        b.get("content"), names.get(b.get("tool_use_id")), s, memo, tally, boiler
                    )
                    if content is not b.get("content"):
                        if new is None:
                            new = list(blocks)
                        new[i] = {**b, "content": content}
            if new is not None:
                m = {**m, "content": new}
        out.append(m)
    return out


def _compress_content(
    content: Any, tool: Any, s: Compression, memo: Memo, tally: Tally, boiler: Boilerplate | None
) -> Any:
    name = tool if isinstance(tool, str) else ""
    if isinstance(content, str):
        return _one(content, name, s, memo, tally, boiler)
    if not isinstance(content, list):
        return content
    new = None
    for i, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            text = _one(part["text"], name, s, memo, tally, boiler)
            if text is not part["text"]:
                if new is None:
                    new = list(content)
                new[i] = {**part, "text": text}
    return content if new is None else new


def _one(text: str, tool: str, s: Compression, memo: Memo, tally: Tally, boiler: Boilerplate | None) -> str:
    out = text
    if len(text) >= 4 * s.prune.min_tokens:
        done = memo.get(s, tool, text)
        for technique, before, after in done.removed:
            tally.add(technique, before, after)
        out = done.text
    if boiler is not None:
        stripped, dropped = boiler.strip(out)
        if dropped:
            tally.add("strip", len(out.encode()), len(stripped.encode()))
            out = stripped
    if out is not text:
        tally.results += 1
    return out


def _tool_names(messages: list[Any], api: str) -> dict[Any, str]:
    """tool_use / tool_call id → the tool's name, from the assistant turns."""
    names: dict[Any, str] = {}
    for m in messages:
        if not isinstance(m, dict) or m.get("role") != "assistant":
            continue
        if api == "openai":
            for tc in m.get("tool_calls") or ():
                if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                    names[tc.get("id")] = tc["function"].get("name", "")
        elif isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict) and b.get("type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
                    names[b.get("id")] = b.get("name", "")
    return names
