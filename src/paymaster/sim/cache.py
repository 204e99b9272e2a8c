"""Prompt caching as the providers do it: one store per simulator, on an injectable clock.

A wire module describes a prompt as running token counts and hashes, one per position (the end of
a block), the hash covering the model and everything up to and including that block; the store
says how many of its tokens were read from and written to the cache, and updates itself.

Anthropic (`Marked`: positions are tool definitions, system blocks and message content blocks, in
that order; a block's hash leaves out its cache_control, and takes in what leads to it: the role
and overhead of its message, the output schema, and the settings that invalidate the system or
message cache: speed, tool_choice, thinking)

1. Only breakpoints whose prefix reaches the model's minimum cacheable length take part.
2. The read point A is the furthest position holding a live entry that some request wrote, found by
   looking back from each breakpoint over `LOOKBACK_BLOCKS` positions (the breakpoint included).
3. Each breakpoint past A writes an entry at its own position, with its own TTL: one-hour writes
   are the tokens from A to the last one-hour breakpoint (B), five-minute writes from B to the last
   breakpoint (C), as the API bills mixed TTLs. Tokens past max(A, C) are plain `input_tokens`.
4. Using a prefix refreshes it: every live entry at or before A lives its TTL again from now (the
   longer of its own and the one a breakpoint of this request puts on that very position).

OpenAI (`Automatic`: positions are the tools, the response schema, each message and the reply
priming) caches every prompt of `OPENAI_MIN_TOKENS`+ tokens, per model and `prompt_cache_key`. The
hit is the longest prefix, ending at a position, that a live entry covers, rounded down to
`OPENAI_MIN_TOKENS` + k·`OPENAI_STEP`; every request stores (or refreshes) all its positions.

Where the providers' rules are unwritten the sim picks one, deterministically:
- a prefix matches only up to a position: an OpenAI prompt that diverges inside a message shares
  the messages before it, none of that message (the real cache matches to the 128-token block);
- the refresh in rule 4 reaches every live entry inside the read prefix, not only the hit;
- a breakpoint on a block nested in a tool_result or document counts toward the limit and the TTL
  order like any other, and writes its entry at the end of the enclosing block;
- entries are per simulator and model, not per workspace or organization; they become readable
  once the request that writes them is answered (the API: once its response begins);
- no request ever overflows a cache: the providers' load-dependent misses are not simulated.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..prompt_cache import LOOKBACK_BLOCKS, OPENAI_MIN_TOKENS, OPENAI_STEP, TTL_SECONDS

Clock = Callable[[], float]

_ONE_HOUR = TTL_SECONDS["1h"]


@dataclass(slots=True, frozen=True)
class Usage:
    """Tokens read from the cache, and written to it by TTL."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        return self.write_5m + self.write_1h


UNCACHED = Usage()


@dataclass(slots=True)
class Marked:
    """An Anthropic prompt with `cache_control` breakpoints."""

    ends: list[int]  # tokens up to and including each position
    hashes: list[bytes]  # of the prefix through each position, as far as the last breakpoint
    breakpoints: list[tuple[int, int]]  # (position, TTL in seconds), in prompt order
    minimum: int  # the model's minimum cacheable prefix


@dataclass(slots=True)
class Automatic:
    """An OpenAI prompt long enough to be cached."""

    ends: list[int]
    hashes: list[bytes]
    ttl: int  # seconds without use before an entry goes


def prefix_hashes(scope: Any, values: Iterable[Any]) -> list[bytes]:
    """A digest of `scope` (provider, model, ...) and of every value so far, after each value."""
    digest = hashlib.blake2b(orjson.dumps(scope), digest_size=16).digest()
    out: list[bytes] = []
    for value in values:
        h = hashlib.blake2b(digest, digest_size=16)
        h.update(orjson.dumps(value))
        digest = h.digest()
        out.append(digest)
    return out


@dataclass(slots=True)
class _Entry:
    expires: float
    ttl: int


class PromptCache:
    PURGE_AT = 4096
    """Entries held before expired ones are swept out (the threshold then follows the live count)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._entries: dict[bytes, _Entry] = {}
        self._purge_at = self.PURGE_AT
        self._lock = threading.Lock()

    def settle(self, prompt: Marked | Automatic) -> Usage:
        """Read and write the cache for one answered request; what it read and wrote."""
        with self._lock:
            now = self.clock()
            usage = self._marked(prompt, now) if isinstance(prompt, Marked) else self._automatic(prompt, now)
            if len(self._entries) >= self._purge_at:
                self._entries = {h: e for h, e in self._entries.items() if e.expires > now}
                self._purge_at = max(self.PURGE_AT, 2 * len(self._entries))
            return usage

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._purge_at = self.PURGE_AT

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: bytes, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.expires > now else None

    def _marked(self, p: Marked, now: float) -> Usage:
        marks = [(pos, ttl) for pos, ttl in p.breakpoints if p.ends[pos] >= p.minimum]
        if not marks:
            return UNCACHED
        hit = -1
        for pos, _ in reversed(marks):
            for j in range(pos, max(pos - LOOKBACK_BLOCKS, hit), -1):
                if self._live(p.hashes[j], now) is not None:
                    hit = j
                    break
        asked = dict(marks)
        for j in range(hit + 1):
            entry = self._live(p.hashes[j], now)
            if entry is not None:
                entry.ttl = max(entry.ttl, asked.get(j, 0))
                entry.expires = now + entry.ttl
        last = last_1h = hit
        for pos, ttl in marks:
            if pos > hit:
                self._entries[p.hashes[pos]] = _Entry(now + ttl, ttl)
                last = pos
                if ttl >= _ONE_HOUR:
                    last_1h = pos
        start, mid, end = (p.ends[i] if i >= 0 else 0 for i in (hit, last_1h, last))
        return Usage(read=start, write_1h=mid - start, write_5m=end - mid)

    def _automatic(self, p: Automatic, now: float) -> Usage:
        common = 0
        for j in range(len(p.ends) - 1, -1, -1):
            if p.ends[j] < OPENAI_MIN_TOKENS:
                break
            if self._live(p.hashes[j], now) is not None:
                common = p.ends[j]
                break
        for j, end in enumerate(p.ends):
            if end >= OPENAI_MIN_TOKENS:
                entry = self._entries.get(p.hashes[j])
                if entry is None:
                    self._entries[p.hashes[j]] = _Entry(now + p.ttl, p.ttl)
                else:  # a 24-hour entry outlives a later in-memory request's refresh
                    entry.expires = max(entry.expires, now + p.ttl)
        read = OPENAI_MIN_TOKENS + (common - OPENAI_MIN_TOKENS) // OPENAI_STEP * OPENAI_STEP if common else 0
        stored = max((end for end in p.ends if end >= OPENAI_MIN_TOKENS), default=0)
        if not read and not stored:
            return UNCACHED
        # what the request wrote: its prompt past what it read, up to its last cached position (OpenAI reports
        # it as `cache_write_tokens`; wire code shows it only where the model bills it)
        return Usage(read=read, write_5m=max(0, stored - read))
