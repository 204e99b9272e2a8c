"""What both simulated batch APIs share: scaled time, injectable faults, and running one request.

A batch's whole life takes `Simulator.batch_s` seconds (the providers take minutes to 24 hours); its
results are made when it ends, each request answered as the real-time endpoint would answer it (the
prompt cache included: Anthropic caches within a batch too), and listed in arbitrary order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from .asgi import Reply

Run = Callable[[str, Any], tuple[int, dict[str, Any]]]
"""(wire name, request body) → (HTTP status, response JSON) as the real-time endpoint would answer."""


@dataclass
class BatchFaults:
    """Faults the next batches suffer: `errored` / `expired` requests each, or the whole batch expiring."""

    errored: int = 0
    expired: int = 0
    expire_batch: bool = False
    hold: bool = False  # batches never end while set (restart tests)

    def clear(self) -> None:
        self.errored = self.expired = 0
        self.expire_batch = self.hold = False


@dataclass
class Outcomes:
    """Which requests of a batch fail how, drawn when the batch is created."""

    errored: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)

    @classmethod
    def draw(cls, ids: list[str], faults: BatchFaults) -> Outcomes:
        pool = list(ids)
        random.shuffle(pool)
        if faults.expire_batch:
            return cls(set(), set(pool))
        errored = set(pool[: faults.errored])
        expired = set(pool[faults.errored : faults.errored + faults.expired])
        return cls(errored, expired)


class BatchAPI:
    """One provider's simulated batch API: its batches, faults and time scale."""

    def __init__(self, run: Run, error: Callable[..., Reply], clock: Callable[[], float] = time.time) -> None:
        self.run = run
        self.error = error  # the provider's error reply (its wire's `error`)
        self.clock = clock
        self.batch_s = 0.3  # seconds from creation to the end of a batch
        self.faults = BatchFaults()
        self.batches: dict[str, Any] = {}

    def reset(self) -> None:
        self.batches.clear()
        self.faults.clear()

    def page(self, query: bytes, after: str) -> tuple[list[Any], bool]:
        """A page of batches, newest first, after the one the query's `after` parameter names (`limit`, default
        20); and whether more follow."""
        q = parse_qs(query.decode())
        limit = int(q.get("limit", ["20"])[0])
        items = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        ids = [b.id for b in items]
        if after in q and q[after][0] in ids:
            items = items[ids.index(q[after][0]) + 1 :]
        return items[:limit], len(items) > limit


def shuffled(items: list[Any]) -> list[Any]:
    out = list(items)
    random.shuffle(out)
    return out


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
