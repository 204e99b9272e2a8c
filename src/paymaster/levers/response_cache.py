"""The response cache (per agent, off by default): an identical deterministic request — temperature
0, same model and content — within the agent's TTL is answered from the gateway's store at zero
cost, marked `x-paymaster-cache: hit`. Entries are keyed by agent, so no agent ever sees another's
answer. Only complete, successful, non-streamed answers are stored; the store is bounded (LRU).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from ..call import Call, Usage
from ..config import Config
from .base import Answer, Bill, LeverContext, Services, Settlement


@dataclass(frozen=True, slots=True)
class Entry:
    expires: float
    body: bytes
    cost_nanos: int  # what the stored answer cost when it was made
    model: str
    usage: Usage  # what making it took


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
        if call.api == "responses" and body.get("store") is not False:  # a stored response has its own id
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

    def put(self, key: bytes, now: float, ttl: float, body: bytes, cost_nanos: int, model: str, usage: Usage) -> None:
        self._entries[key] = Entry(now + ttl, body, cost_nanos, model, usage)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class ResponseCacheLever:
    """Answers a hit in `apply`; stores a complete, exactly-priced answer in `settled`."""

    name = "response_cache"

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.answers = ResponseCache()

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        if not ctx.agent.response_cache.enabled:
            return None
        key = ResponseCache.key(call)
        if key is None:
            return None
        hit = self.answers.get(key, self.clock())
        if hit is None:
            ctx.state[self.name] = key  # a miss: the answer may be stored once settled
            return None
        answer = Answer(
            hit.body, hit.model, "response_cache", hit.usage, hit.cost_nanos, ((b"x-paymaster-cache", b"hit"),)
        )
        ctx.state[self.name] = answer
        return answer

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        key = ctx.state.get(self.name)
        if isinstance(key, bytes) and outcome.answer is not None and not outcome.usage.unpriced:
            ttl = ctx.agent.response_cache.ttl_s
            self.answers.put(key, self.clock(), ttl, outcome.answer, outcome.cost_nanos, outcome.model, outcome.usage)

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        """A hit: the call as it ran when its answer was made."""
        hit = ctx.state.get(self.name)
        return Bill(hit.model, hit.usage) if isinstance(hit, Answer) else bill


def make(config: Config, gateway: Services) -> ResponseCacheLever:
    return ResponseCacheLever(gateway.clock)


__all__ = ["Entry", "ResponseCache", "ResponseCacheLever", "make"]
