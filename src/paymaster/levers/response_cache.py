"""The response cache (per agent, off by default): an identical deterministic request — temperature
0, same model and content — within the agent's TTL is answered from the gateway's store at zero
cost, marked `x-paymaster-cache: hit`. Entries are keyed by agent, so no agent ever sees another's
answer. Only complete, successful, non-streamed answers are stored; the store is bounded (LRU).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from ..call import Call


@dataclass(frozen=True, slots=True)
class Entry:
    expires: float
    body: bytes
    cost_nanos: int  # what the stored answer cost when it was made
    model: str


class ResponseCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    @staticmethod
    def key(call: Call) -> bytes | None:
        """The request's identity, or None when it is not deterministic (and must not be cached)."""
        body = call.body
        if call.stream or body.get("temperature") != 0 or (body.get("n") or 1) != 1:
            return None
        canon = orjson.dumps([call.agent, call.api, body], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canon).digest()

    def get(self, key: bytes, now: float) -> Entry | None:
        e = self._entries.get(key)
        if e is None:
            return None
        if e.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return e

    def put(self, key: bytes, now: float, ttl: float, body: bytes, cost_nanos: int, model: str) -> None:
        self._entries[key] = Entry(now + ttl, body, cost_nanos, model)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["ResponseCache", "Entry"]
