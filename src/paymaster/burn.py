"""Burn rate: where a window's spend is heading by its reset, and when it reaches its cap.

The rate is the window's own average so far: spend since the window opened (local midnight, the 1st
of the month) divided by the time elapsed, counted as at least `MIN_ELAPSED_S` so that the first
call of a day does not project a fortune. The projection at reset is `spent + rate × time left`; the
time to cap is `(cap − spent) / rate`, reported only when it falls before the reset (after it, the
window resets first). `paymaster report` and the `budget.projected` alert both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_ELAPSED_S = 3600.0  # a rate is never taken over less than an hour


def bounds(tz: ZoneInfo, now: float, period: str) -> tuple[float, float]:
    """(start, reset) of the day ('day') or month ('month') holding `now`, as epoch seconds."""
    d = datetime.fromtimestamp(now, tz).date()
    if period == "day":
        first, nxt = d, d + timedelta(days=1)
    else:
        first, nxt = d.replace(day=1), date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return _midnight(tz, first), _midnight(tz, nxt)


def _midnight(tz: ZoneInfo, d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True)
class Projection:
    spent_nanos: int
    cap_nanos: int | None
    start: float
    resets: float
    now: float

    @property
    def rate_per_s(self) -> float:
        """Nano-dollars per second, the window's average so far."""
        return self.spent_nanos / max(self.now - self.start, MIN_ELAPSED_S)

    @property
    def projected_nanos(self) -> int:
        """Spend at the reset if the rate holds."""
        return self.spent_nanos + round(self.rate_per_s * max(0.0, self.resets - self.now))

    @property
    def hits_cap_at(self) -> float | None:
        """When spend reaches the cap at this rate, if before the reset (now, when it already has)."""
        if self.cap_nanos is None:
            return None
        if self.spent_nanos >= self.cap_nanos:
            return self.now
        rate = self.rate_per_s
        if rate <= 0:
            return None
        at = self.now + (self.cap_nanos - self.spent_nanos) / rate
        return at if at < self.resets else None


def project(tz: ZoneInfo, now: float, period: str, spent_nanos: int, cap_nanos: int | None) -> Projection:
    start, resets = bounds(tz, now, period)
    return Projection(spent_nanos, cap_nanos, start, resets, now)
