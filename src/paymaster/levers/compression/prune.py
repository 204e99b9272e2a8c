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
_URL_TEMPLATE = re.compile(r"https?://\S*\{[/?&]")  # GitHub-style `…/events{/privacy}`: a template, not a fact


@dataclass(frozen=True, slots=True)
class Pruned:
    value: Any
    dropped_keys: int = 0
    dropped_items: int = 0
    kept_by_rule: bool = False


@dataclass(slots=True)
class _Count:
    keys: int = 0
    items: int = 0
    noise: set[str] = field(default_factory=set)


def prune(
    value: Any,
    *,
    noise_keys: frozenset[str] = NOISE_KEYS,
    max_items: int = 20,
    drop_empty: bool = True,
    keep: tuple[str, ...] = (),
) -> Pruned:
    """`value` with noise keys, null and empty values dropped and arrays past `max_items` cut to
    `max_items` plus a marker; with `keep` rules, only the values the rules name (when none
    matches, the tool's answer changed shape: the whole value is pruned as if there were none)."""
    kept_by_rule = False
    if keep:
        selected = select(value, keep)
        if selected is not _MISSING:
            value, kept_by_rule = selected, True
    c = _Count()
    out = _walk(value, noise_keys, max_items, drop_empty, c)
    return Pruned(out, c.keys, c.items, kept_by_rule)


def _walk(v: Any, noise: frozenset[str], max_items: int, drop_empty: bool, c: _Count) -> Any:
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            if isinstance(k, str) and k.lower().replace("-", "_") in noise:
                c.keys += 1
                continue
            if isinstance(x, str) and _URL_TEMPLATE.match(x):
                c.keys += 1
                continue
            y = _walk(x, noise, max_items, drop_empty, c)
            if drop_empty and (y is None or y == "" or y == [] or y == {}):
                c.keys += 1
                continue
            out[k] = y
        return out
    if isinstance(v, list):
        items = [_walk(x, noise, max_items, drop_empty, c) for x in v[:max_items]]
        if len(v) > max_items:
            n = len(v) - max_items
            c.items += n
            items.append(MORE.format(n=n))
        return items
    return v


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
