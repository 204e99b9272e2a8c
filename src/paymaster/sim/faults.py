"""Queued faults: injected by tests (from any thread), consumed FIFO by matching requests.

"429"      rate limited (with retry-after)
"500"      internal error
"529"      overloaded (Anthropic 529; OpenAI answers 503)
"timeout"  no answer: the request is held open until the client gives up
"cut"      streaming: a few events, then the connection drops; otherwise dropped at once
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

KINDS = ("429", "500", "529", "timeout", "cut")


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    model: str | None = None
    retry_after: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "fault": self.kind,
            "count": self.remaining,
            "model": self.model,
            "retry_after": self.retry_after,
        }


class Faults:
    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, kind: str, count: int = 1, model: str | None = None, retry_after: float | None = None) -> None:
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if model is not None and not isinstance(model, str):
            raise ValueError(f"model must be a string, got {model!r}")
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int | float)):
            raise ValueError(f"retry_after must be a number of seconds, got {retry_after!r}")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        with self._lock:
            self._queue.append(Fault(kind, count, model, retry_after))

    def take(self, model: str) -> Fault | None:
        """The first queued fault matching `model` (one use of it), or None."""
        if not self._queue:  # the common case, without the lock
            return None
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.model is None or fault.model == model:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._queue[i]
                    return Fault(fault.kind, 1, fault.model, fault.retry_after)
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._queue]

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
