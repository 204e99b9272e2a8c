"""Learning from outcomes: per agent and task type, the cheapest tier that keeps a success rate.

    bandit = Bandit(state, floor=0.9, explore=0.05)
    tier, why = bandit.choose("agent-a/extract", ["light", "standard", "heavy"])   # cheapest first
    bandit.record("agent-a/extract", "light", 1.0)   # feedback: success (1.0), failure (0.0) or a score

Each tier's success rate has a Beta(1 + successes, 1 + failures) posterior (a score s counts as s of
a success and 1 − s of a failure). The tier that is *safe* is the cheapest whose posterior mean is at
least `floor` after `MIN_EVIDENCE` rated calls; before any tier has shown that, the top tier. Each call,
Thompson sampling draws a rate per tier and proposes the cheapest whose draw reaches the floor (the
top tier when none does). A proposal cheaper than the safe tier is exploration — it risks quality —
and is taken only while explored calls stay within `explore` of all calls for that key; otherwise the
safe tier runs. So quality risk is bounded by the exploration budget, and the choice settles on the
cheapest tier that meets the floor once the evidence is in.

State (counts per tier, calls, explored calls) is kept in the routing state file (routing_state.py),
written every `FLUSH_EVERY` updates and on `flush`. Replicas share it instead (routing_sync.py): with
`deltas` on, every count a call adds here is also kept apart, pushed to Postgres as an increment (so two
replicas counting at once both count) and the merged totals pulled back (`merge`); a rating is not `record`ed
but written to Postgres in its own transaction (`RoutingSync.rate`) and then `add`ed here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .routing_state import State

__all__ = ["MIN_EVIDENCE", "Arm", "Bandit", "Record"]

MIN_EVIDENCE = 10  # rated calls before a tier's mean can make it the safe tier
FLUSH_EVERY = 16
KIND = "bandit"


@dataclass(slots=True)
class Arm:
    success: float = 0.0
    failure: float = 0.0
    picks: int = 0

    @property
    def rated(self) -> float:
        return self.success + self.failure

    def mean(self) -> float:
        return (1 + self.success) / (2 + self.rated)


@dataclass(slots=True)
class Record:
    arms: dict[str, Arm] = field(default_factory=dict)
    calls: int = 0
    explored: int = 0
    unsaved: int = 0

    def arm(self, tier: str) -> Arm:
        return self.arms.setdefault(tier, Arm())


class Bandit:
    def __init__(self, state: State, floor: float, explore: float, rng: random.Random | None = None) -> None:
        if not 0.0 < floor <= 1.0 or not 0.0 <= explore <= 1.0:
            raise ValueError("floor must be in (0, 1] and explore in [0, 1]")
        self.state = state
        self.floor = floor
        self.explore = explore
        self.rng = rng or random.Random()
        self._records: dict[str, Record] = {}
        self.deltas: dict[str, Record] | None = None  # replicas: counts added here since the last push

    def _get(self, key: str) -> Record:
        r = self._records.get(key)
        if r is None:
            r = self._records[key] = _load(self.state.get(KIND, key))
        return r

    def safe(self, key: str, tiers: Sequence[str]) -> str:
        """The cheapest tier whose success rate has been shown to meet the floor (else the top tier)."""
        r = self._get(key)
        for t in tiers:
            a = r.arms.get(t)
            if a is not None and a.rated >= MIN_EVIDENCE and a.mean() >= self.floor:
                return t
        return tiers[-1]

    def choose(self, key: str, tiers: Sequence[str]) -> tuple[str, str]:
        """(tier, why) for the next call of `key`; `tiers` cheapest first."""
        if not tiers:
            raise ValueError("no tiers")
        r = self._get(key)
        safe = self.safe(key, tiers)
        proposal = tiers[-1]
        for t in tiers:
            a = r.arm(t)
            if self.rng.betavariate(1 + a.success, 1 + a.failure) >= self.floor:
                proposal = t
                break
        r.calls += 1
        explored = False
        if tiers.index(proposal) < tiers.index(safe):
            if r.explored + 1 <= self.explore * r.calls:
                r.explored += 1
                explored = True
                tier, why = proposal, f"bandit: exploring {proposal} (safe tier {safe})"
            else:
                tier, why = safe, f"bandit: {safe} (exploration budget spent)"
        else:
            tier, why = proposal, f"bandit: {proposal}"
        r.arm(tier).picks += 1
        if self.deltas is not None:
            d = self.deltas.get(key) or self.deltas.setdefault(key, Record())
            if len(d.arms) != len(r.arms):  # every tier a choice looked at, so the other replicas list the same
                for t in r.arms:
                    d.arm(t)
            d.calls += 1
            d.explored += explored
            d.arm(tier).picks += 1
            return tier, why
        self._touch(key, r)
        return tier, why

    def record(self, key: str, tier: str, score: float, undo: float | None = None) -> None:
        """Feedback for one call that ran on `tier`: `score` in [0, 1]; `undo` = an earlier score for the
        same call, taken back (a call rated twice counts once, at its latest score)."""
        if not 0.0 <= score <= 1.0:
            raise ValueError("score must be between 0 and 1")
        self.add(key, tier, *rating(score, undo))

    def add(self, key: str, tier: str, success: float, failure: float) -> None:
        """Counts a rating adds (`rating`), here only: replicas add a rating committed to Postgres with this."""
        a = self._get(key).arm(tier)
        a.success = max(0.0, a.success + success)
        a.failure = max(0.0, a.failure + failure)
        if self.deltas is None:
            self._touch(key, self._get(key))

    # -- replicas (routing_sync.py) ---------------------------------------------------------------

    def take(self) -> dict[str, Record]:
        """The counts added since the last push, handed to the push (`restore` them if it fails)."""
        taken, self.deltas = self.deltas or {}, {}
        return taken

    def restore(self, taken: dict[str, Record]) -> None:
        """A push that failed: its counts go back to be pushed next time."""
        deltas = self.deltas if self.deltas is not None else {}
        for key, t in taken.items():
            d = deltas.setdefault(key, Record())
            d.calls += t.calls
            d.explored += t.explored
            for tier, a in t.arms.items():
                b = d.arm(tier)
                b.success, b.failure, b.picks = b.success + a.success, b.failure + a.failure, b.picks + a.picks
        self.deltas = deltas

    def merge(self, calls: dict[str, tuple[int, int]], arms: dict[tuple[str, str], tuple[float, float, int]]) -> None:
        """The fleet's totals pulled from Postgres (per key: calls, explored; per key and tier: success, failure,
        picks), each plus what this replica added since its last push."""
        deltas = self.deltas or {}
        for key, (n, explored) in calls.items():
            r, d = self._get(key), deltas.get(key)
            r.calls, r.explored = (n + d.calls, explored + d.explored) if d else (n, explored)
        for (key, tier), (success, failure, picks) in arms.items():
            a, d = self._get(key).arm(tier), deltas.get(key)
            b = d.arms.get(tier) if d else None
            if b is None:
                a.success, a.failure, a.picks = success, failure, picks
            else:
                a.success, a.failure, a.picks = success + b.success, failure + b.failure, picks + b.picks

    def _touch(self, key: str, r: Record) -> None:
        r.unsaved += 1
        if r.unsaved >= FLUSH_EVERY:
            self._save(key, r)

    def _save(self, key: str, r: Record) -> None:
        arms = {t: [a.success, a.failure, a.picks] for t, a in r.arms.items()}
        self.state.put(KIND, key, {"arms": arms, "calls": r.calls, "explored": r.explored})
        r.unsaved = 0

    def flush(self) -> None:
        for key, r in self._records.items():
            if r.unsaved:
                self._save(key, r)

    def view(self, tiers: Sequence[str] = ("light", "standard", "heavy")) -> dict[str, Any]:
        """Per key: calls, explored, the safe tier, and per tier its share of picks and success rate."""
        self.flush()
        out: dict[str, Any] = {}
        keys = {k for k, _ in self.state.items(KIND)} | set(self._records)
        for key in sorted(keys):
            r = self._get(key)
            have = [t for t in tiers if t in r.arms] or list(tiers)
            out[key] = {
                "calls": r.calls,
                "explored": r.explored,
                "floor": self.floor,
                "safe_tier": self.safe(key, have),
                "tiers": {
                    t: {
                        "share": round(a.picks / r.calls, 4) if r.calls else 0.0,
                        "rated": round(a.rated, 4),
                        "success": round(a.success / a.rated, 4) if a.rated else None,
                    }
                    for t, a in r.arms.items()
                },
            }
        return out


def rating(score: float, undo: float | None) -> tuple[float, float]:
    """What a rating adds to (success, failure): `score` of a success and 1 − score of a failure, less the call's
    earlier rating `undo` (a call rated twice counts once, at its latest score)."""
    if undo is None:
        return score, 1.0 - score
    return score - undo, undo - score


def _load(stored: Any) -> Record:
    r = Record()
    if not isinstance(stored, dict):
        return r
    for t, v in (stored.get("arms") or {}).items():
        if isinstance(v, list) and len(v) == 3:
            r.arms[t] = Arm(float(v[0]), float(v[1]), int(v[2]))
    r.calls, r.explored = int(stored.get("calls", 0)), int(stored.get("explored", 0))
    return r
