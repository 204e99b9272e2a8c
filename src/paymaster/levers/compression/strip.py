"""Verbose-response stripping in text: base64 blobs replaced by a placeholder with their size,
boilerplate lines said once, JSON found inside strings (inside a JSON value the same stripping runs in
pruning's walk, `prune.Stripping`: JSON strings unwrapped, blobs replaced, long repeated strings
said once).

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
