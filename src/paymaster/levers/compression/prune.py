"""Tool-result pruning for JSON: noise keys out, long arrays shortened, per-tool keep-rules.

Everything here is a pure function of its input and the settings, so the same tool result always
prunes to the same bytes: a conversation's earlier results keep their compressed form as it grows,
and a cached prompt prefix stays cached.

Keep-rules are paths of a small syntax: `data.price`, `items[*].title`, `items[0].url`, `[*].name`
(a top-level array). A rule keeps that value and the structure leading to it; everything else goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .html_text import html_to_text, looks_like_html
from .strip import parse_json, strip_base64

# keys that carry nothing an answer needs: paging, hypermedia links, etags, request and trace ids
# (compared lower-cased, with '-' read as '_')
NOISE_KEYS = frozenset(
    {
        "etag",
        "_etag",
        "request_id",
        "requestid",
        "x_request_id",
        "trace_id",
        "traceid",
        "span_id",
        "correlation_id",
        "_links",
        "links",
        "pagination",
        "paging",
        "next_page",
        "next_page_token",
        "nextpagetoken",
        "next_page_url",
        "prev_page_url",
        "next_cursor",
        "cursor",
        "prev_page",
        "previous_page",
        "page_token",
        "_meta",
        "node_id",
        "gravatar_id",
    }
)

MORE = "[… {n} more items omitted]"
REPEATED = "[repeated: {text}…]"
_URL_TEMPLATE = re.compile(r"https?://\S*\{[/?&]")  # GitHub-style `…/events{/privacy}`: a template, not a fact


@dataclass(frozen=True, slots=True)
class Stripping:
    """Verbose-response stripping inside a JSON value (see strip.py): JSON strings unwrapped, base64
    blobs replaced, long strings said once; with `html`, HTML strings (an API's `body_html`) made text."""

    base64_min_chars: int = 256
    repeat_min_chars: int = 60
    html: bool = False


@dataclass(frozen=True, slots=True)
class Pruned:
    value: Any
    dropped_keys: int = 0
    dropped_items: int = 0
    kept_by_rule: bool = False
    unwrapped: int = 0  # JSON strings turned into the values they held
    blobs: int = 0  # base64 blobs replaced by a placeholder
    repeats: int = 0  # long strings said before
    stripped_bytes: int = 0  # what stripping removed (the rest of the difference is pruning's)
    html_bytes: int = 0  # what turning HTML strings into text removed
    html: int = 0  # HTML strings made text


@dataclass(slots=True)
class _Walk:
    noise: frozenset[str]
    max_items: int | None  # None: pruning off
    drop_empty: bool
    strip: Stripping | None
    keys: int = 0
    items: int = 0
    unwrapped: int = 0
    blobs: int = 0
    repeats: int = 0
    stripped: int = 0
    html: int = 0
    html_bytes: int = 0
    seen: set[str] = field(default_factory=set)
    norm: dict[str, str] = field(default_factory=dict)

    def value(self, v: Any) -> Any:
        t = type(v)
        if t is dict:
            return self.mapping(v)
        if t is list:
            return self.array(v)
        if t is str and self.strip is not None:
            return self.string(v)
        return v

    def mapping(self, v: dict[str, Any]) -> dict[str, Any]:
        # the hot loop of a cold call (every key of every result): types compared directly, leaves
        # handled inline, a string looked at only when it could be JSON, base64 or a repeat
        out: dict[str, Any] = {}
        pruning = self.max_items is not None
        drop_empty = pruning and self.drop_empty
        noise, norm = self.noise, self.norm
        strip = self.strip
        least = min(strip.base64_min_chars, strip.repeat_min_chars) if strip is not None else 0
        for k, x in v.items():
            tx = type(x)
            if pruning:
                nk = norm.get(k)
                if nk is None:
                    nk = norm[k] = k.lower().replace("-", "_") if isinstance(k, str) else ""
                if nk in noise:
                    self.keys += 1
                    continue
                if tx is str and "{" in x and _URL_TEMPLATE.match(x):
                    self.keys += 1
                    continue
            if tx is str:
                if strip is not None and (len(x) >= least or (len(x) > 1 and x[0] in "{[")):
                    x = self.string(x)
                elif drop_empty and not x:
                    self.keys += 1
                    continue
                else:
                    out[k] = x
                    continue
            elif tx is dict:
                x = self.mapping(x)
            elif tx is list:
                x = self.array(x)
            elif x is None and drop_empty:
                self.keys += 1
                continue
            else:
                out[k] = x
                continue
            if drop_empty and (x is None or x == "" or x == [] or x == {}):
                self.keys += 1
                continue
            out[k] = x
        return out

    def array(self, v: list[Any]) -> list[Any]:
        n = self.max_items
        if n is None or len(v) <= n:
            return [self.value(x) for x in v]
        self.items += len(v) - n
        return [*(self.value(x) for x in v[:n]), MORE.format(n=len(v) - n)]

    def string(self, s: str) -> Any:
        strip = self.strip
        assert strip is not None
        if len(s) > 1 and s[0] in "{[":
            inner = parse_json(s)
            if inner is not None:
                self.unwrapped += 1
                self.stripped += len(orjson.dumps(s)) - len(s)  # the escaping the string carried
                return self.value(inner)
        if strip.html and len(s) >= 200 and s.lstrip()[:1] == "<" and looks_like_html(s):
            text = html_to_text(s)
            if len(text) < len(s):
                self.html += 1
                self.html_bytes += len(orjson.dumps(s)) - len(orjson.dumps(text))
                s = text
        if len(s) >= strip.base64_min_chars:
            out, n = strip_base64(s, strip.base64_min_chars)
            if n:
                self.blobs += n
                self.stripped += len(s) - len(out)
                s = out
        if len(s) >= strip.repeat_min_chars:
            if s in self.seen:
                self.repeats += 1
                marker = REPEATED.format(text=s[:24])
                self.stripped += len(s) - len(marker)
                return marker
            self.seen.add(s)
        return s


def prune(
    value: Any,
    *,
    noise_keys: frozenset[str] = NOISE_KEYS,
    max_items: int | None = 20,
    drop_empty: bool = True,
    keep: tuple[str, ...] = (),
    strip: Stripping | None = None,
) -> Pruned:
    """`value` with noise keys, null and empty values dropped and arrays past `max_items` cut to
    `max_items` plus a marker (`max_items=None`: no pruning); with `keep` rules, only the values the
    rules name (when none matches, the tool's answer changed shape: the whole value is pruned as if
    there were none); with `strip`, its string values stripped too — all in one walk."""
    kept_by_rule = False
    if keep and max_items is not None:
        selected = select(value, keep)
        if selected is not _MISSING:
            value, kept_by_rule = selected, True
    w = _Walk(noise_keys, max_items, drop_empty, strip)
    out = w.value(value)
    return Pruned(out, w.keys, w.items, kept_by_rule, w.unwrapped, w.blobs, w.repeats, w.stripped, w.html_bytes, w.html)


# -- keep-rules -------------------------------------------------------------------------------------

_MISSING: Any = object()
_STEP = re.compile(r"\[(\*|\d+)\]|([^.\[\]]+)")


class BadPath(ValueError):
    """A keep-rule that is not `name`, `name[*]`, `name[3]` steps joined by dots."""


def parse_path(path: str) -> tuple[str | int | None, ...]:
    """`items[*].title` → ("items", None, "title"): a name is a key, an int an index, None every item."""
    steps: list[str | int | None] = []
    pos = 0
    text = path.strip()
    if not text:
        raise BadPath("an empty path")
    while pos < len(text):
        if text[pos] == "." and steps:
            pos += 1
        m = _STEP.match(text, pos)
        if m is None:
            raise BadPath(f"{path!r}: cannot read from {text[pos:]!r}")
        index, name = m.groups()
        steps.append(name if name is not None else (None if index == "*" else int(index)))
        pos = m.end()
    return tuple(steps)


def select(value: Any, paths: Iterable[str]) -> Any:
    """The parts of `value` the paths name, in its own structure (arrays keep their order);
    `_MISSING` when no path matches anything."""
    out: Any = _MISSING
    for p in paths:
        picked = _pick(value, parse_path(p))
        if picked is not _MISSING:
            out = picked if out is _MISSING else _merge(out, picked)
    return _MISSING if out is _MISSING else _clean(out)


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, _Items):  # the holes that lined positions up go
        return [_clean(x) for x in v if x is not None]
    return v


def _pick(v: Any, steps: tuple[str | int | None, ...]) -> Any:
    if not steps:
        return v
    head, rest = steps[0], steps[1:]
    if isinstance(head, str):
        if not isinstance(v, dict) or head not in v:
            return _MISSING
        sub = _pick(v[head], rest)
        return _MISSING if sub is _MISSING else {head: sub}
    if not isinstance(v, list):
        return _MISSING
    if head is None:  # every item, positions kept (a missing one as None, merged away later)
        picked = [_pick(x, rest) for x in v]
        if all(p is _MISSING for p in picked):
            return _MISSING
        return _Items([None if p is _MISSING else p for p in picked])
    if head >= len(v):
        return _MISSING
    sub = _pick(v[head], rest)
    return _MISSING if sub is _MISSING else _Items([None] * head + [sub])


class _Items(list[Any]):
    """A picked array: positions line up with the source, so two rules' picks merge item by item."""


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        n = max(len(a), len(b))
        a2, b2 = list(a) + [None] * (n - len(a)), list(b) + [None] * (n - len(b))
        return _Items(y if x is None else x if y is None else _merge(x, y) for x, y in zip(a2, b2, strict=True))
    return a
