"""What both simulated batch APIs share: scaled time, injectable faults, and running one request.

A batch's whole life takes `Simulator.batch_s` seconds (the providers take minutes to 24 hours); its
results are made when it ends, each request answered as the real-time endpoint would answer it (the
prompt cache included: Anthropic caches within a batch too), and listed in arbitrary order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


def shuffled(items: list[Any]) -> list[Any]:
    out = list(items)
    random.shuffle(out)
    return out


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
