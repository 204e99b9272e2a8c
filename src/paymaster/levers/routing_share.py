"""Shares that hold on any traffic: the heavy threshold follows a running quantile of recent scores.

    keeper = ShareKeeper(state, window=1000, warmup=50)
    keeper.observe("agent-a/extract", score)                # every classified call, before deciding
    keeper.above("agent-a/extract", score, 0.3, fallback)   # in the top 30 % of recent scores?
    keeper.cut("agent-a/extract", 0.3, fallback)            # the score at or above which 30 % fall

The classifier's scores sit in a band of their own for every kind of traffic (each benchmark's prompts
score in a narrow range), so a threshold read off a reference distribution sends anywhere from a few
per cent to all of a new workload to the top tier. Here the threshold is the (1 − share) quantile of
the last `window` scores seen for the same agent and task type, so the share holds on whatever that
agent sends. Until `warmup` scores are seen, `fallback` (the reference-distribution threshold) is used.

Windows are written to the routing state file every `FLUSH_EVERY` observations and on `close`, so a
restart resumes with the window it had (at most FLUSH_EVERY − 1 scores short after a crash).

Replicas (routing_sync.py): each keeps the window of the traffic it sees; each replica's window is stored
in Postgres, and a replica starting loads the merge of the stored windows (bounded to `window`), so it does
not start cold.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque

from .routing_state import State

__all__ = ["FLUSH_EVERY", "ShareKeeper"]

FLUSH_EVERY = 32
KIND = "share"


class _Window:
    __slots__ = ("arrival", "ordered", "unsaved")

    def __init__(self, scores: list[float], size: int) -> None:
        self.arrival: deque[float] = deque(scores[-size:], maxlen=size)
        self.ordered = sorted(self.arrival)
        self.unsaved = 0

    def add(self, score: float) -> None:
        if len(self.arrival) == self.arrival.maxlen:
            old = self.arrival[0]
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.arrival.append(score)
        bisect.insort(self.ordered, score)
        self.unsaved += 1


class ShareKeeper:
    def __init__(self, state: State, window: int = 1000, warmup: int = 50) -> None:
        if window < 1 or not 1 <= warmup <= window:
            raise ValueError("need window >= 1 and 1 <= warmup <= window")
        self.state = state
        self.window = window
        self.warmup = warmup
        self._windows: dict[str, _Window] = {}
        self._rng = random.Random(0)  # ties at the cut: a fixed sequence, so a replay routes alike

    def _get(self, key: str) -> _Window:
        w = self._windows.get(key)
        if w is None:
            stored = self.state.get(KIND, key)
            scores = [float(x) for x in stored if isinstance(x, int | float)] if isinstance(stored, list) else []
            w = self._windows[key] = _Window(scores, self.window)
        return w

    def observe(self, key: str, score: float) -> None:
        if not math.isfinite(score):
            return
        w = self._get(key)
        w.add(score)
        if w.unsaved >= FLUSH_EVERY:
            self._save(key, w)

    def seen(self, key: str) -> int:
        return len(self._get(key).arrival)

    def cut(self, key: str, share: float, fallback: float) -> float:
        """The score at or above which `share` of this key's recent calls fall (`fallback` while warming up)."""
        w = self._get(key)
        n = len(w.ordered)
        if n < self.warmup:
            return fallback
        if share <= 0.0:
            return math.inf
        if share >= 1.0:
            return -math.inf
        k = n - max(1, round(share * n))  # the top round(share * n) of the window are at or above ordered[k]
        return w.ordered[k]

    def above(self, key: str, score: float, share: float, fallback: float) -> bool:
        """Whether `score` falls in the top `share` of this key's recent scores (at or above `fallback` while
        warming up). Scores tied at the cut go over in the proportion that keeps the share: a workload of
        identical prompts still sends `share` of them, not all or none."""
        cut = self.cut(key, share, fallback)
        if score != cut or self.seen(key) < self.warmup:
            return score >= cut
        ordered = self._windows[key].ordered
        n = len(ordered)
        over = n - bisect.bisect_right(ordered, cut)
        tied = bisect.bisect_right(ordered, cut) - bisect.bisect_left(ordered, cut)
        room = max(1, round(share * n)) - over  # of the top round(share * n), how many are ties
        return self._rng.random() * tied < room

    def _save(self, key: str, w: _Window) -> None:
        self.state.put(KIND, key, list(w.arrival))
        w.unsaved = 0

    def flush(self) -> None:
        for key, w in self._windows.items():
            if w.unsaved:
                self._save(key, w)

    def sizes(self) -> dict[str, int]:
        """Scores held per key (for the admin view): those stored too, before a call of theirs loads them."""
        out = {k: min(len(v), self.window) for k, v in self.state.items(KIND) if isinstance(v, list)}
        out.update((k, len(w.arrival)) for k, w in self._windows.items())
        return dict(sorted(out.items()))
