"""Verbose-response stripping: JSON inside strings unwrapped, base64 blobs replaced by a placeholder
with their size, boilerplate lines said once.

Pure functions; `Boilerplate` carries what earlier tool results of the same conversation said, in
order, so a result's stripped form depends only on it and the results before it (stable as the
conversation grows).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_BASE64 = re.compile(r"(data:[\w.+-]+/[\w.+-]+;base64,)?([A-Za-z0-9+/_-]{%d,}={0,2})")
_DIGIT, _UPPER, _LOWER = re.compile(r"\d"), re.compile(r"[A-Z]"), re.compile(r"[a-z]")


def base64_placeholder(blob: str, media: str = "") -> str:
    size = len(blob) * 3 // 4 - (len(blob) - len(blob.rstrip("=")))  # the decoded size
    kind = f"{media} " if media else ""
    return f"[{kind}base64 data omitted: {size:,} bytes]"


def strip_base64(text: str, min_chars: int = 256) -> tuple[str, int]:
    """Base64 runs of at least `min_chars` (and data: URIs) → a placeholder with the decoded size;
    a run must mix digits, upper and lower case (a long word or hex digest is not base64)."""
    pattern = _pattern(min_chars)
    n = 0

    def swap(m: re.Match[str]) -> str:
        nonlocal n
        blob = m.group(2)
        if not (_DIGIT.search(blob) and _UPPER.search(blob) and _LOWER.search(blob)):
            return m.group(0)
        n += 1
        media = m.group(1)[5:].split(";")[0] if m.group(1) else ""
        return base64_placeholder(blob, media)

    out = pattern.sub(swap, text) if len(text) >= min_chars else text
    return out, n


_patterns: dict[int, re.Pattern[str]] = {}


def _pattern(min_chars: int) -> re.Pattern[str]:
    p = _patterns.get(min_chars)
    if p is None:
        p = _patterns[min_chars] = re.compile(_BASE64.pattern % min_chars)
    return p


def parse_json(text: str) -> Any:
    """The JSON value `text` holds (also when encoded twice: a JSON string of JSON), else None."""
    t = text.strip()
    if not t or t[0] not in '{["':
        return None
    try:
        v = orjson.loads(t)
    except orjson.JSONDecodeError:
        return None
    if isinstance(v, str):
        inner = parse_json(v)
        return inner if inner is not None else None
    return v if isinstance(v, dict | list) else None


def unwrap_json_strings(v: Any) -> tuple[Any, int]:
    """Strings inside a JSON value that are themselves JSON objects or arrays → those values, so they
    lose their escaping and can be pruned like the rest. Returns (value, strings unwrapped)."""
    n = 0

    def walk(x: Any) -> Any:
        nonlocal n
        if isinstance(x, dict):
            return {k: walk(y) for k, y in x.items()}
        if isinstance(x, list):
            return [walk(y) for y in x]
        if isinstance(x, str) and len(x) > 1 and x[0] in "{[":
            inner = parse_json(x)
            if inner is not None:
                n += 1
                return walk(inner)
        return x

    return walk(v), n


def strip_blobs(v: Any, min_chars: int = 256) -> tuple[Any, int]:
    """Base64 blobs anywhere in the strings of a JSON value → placeholders."""
    n = 0

    def walk(x: Any) -> Any:
        nonlocal n
        if isinstance(x, dict):
            return {k: walk(y) for k, y in x.items()}
        if isinstance(x, list):
            return [walk(y) for y in x]
        if isinstance(x, str) and len(x) >= min_chars:
            out, k = strip_base64(x, min_chars)
            n += k
            return out
        return x

    return walk(v), n


REPEATED = "[repeated: {text}…]"


def dedupe_strings(v: Any, min_chars: int = 60) -> tuple[Any, int]:
    """Long string values that repeat inside one JSON value (the same disclaimer on every item):
    the first kept, later ones replaced by a short reference to it."""
    seen: set[str] = set()
    n = 0

    def walk(x: Any) -> Any:
        nonlocal n
        if isinstance(x, dict):
            return {k: walk(y) for k, y in x.items()}
        if isinstance(x, list):
            return [walk(y) for y in x]
        if isinstance(x, str) and len(x) >= min_chars:
            if x in seen:
                n += 1
                return REPEATED.format(text=x[:24])
            seen.add(x)
        return x

    return walk(v), n


class Boilerplate:
    """Lines said before in this conversation's tool results (cookie banners, footers, legal text):
    a repeat is left out, and the result says how many lines were."""

    def __init__(self, min_chars: int = 40) -> None:
        self.min_chars = min_chars
        self.seen: set[str] = set()

    def strip(self, text: str) -> tuple[str, int]:
        out: list[str] = []
        dropped = 0
        for line in text.split("\n"):
            key = line.strip()
            if self.min_chars <= len(key) <= 500:  # boilerplate is short lines; a long one is content
                if key in self.seen:
                    dropped += 1
                    continue
                self.seen.add(key)
            out.append(line)
        if not dropped:
            return text, 0
        out.append(f"[{dropped} repeated boilerplate line{'s' if dropped > 1 else ''} omitted]")
        return "\n".join(out), dropped
