"""Query strings: read the same way on every endpoint, numbers checked (a 400 naming the parameter, never a
500 from `int("abc")` or a number SQLite cannot hold)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from .errors import BadRequest
from .http import Scope

N = TypeVar("N", int, float)
D = TypeVar("D", int, float, None)


def params(scope: Scope) -> dict[str, str]:
    """The query's parameters (a repeated one: its last value). Read as latin-1, so any bytes decode."""
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def number(q: dict[str, str], k: str, cast: Callable[[str], N], default: D, lo: float, hi: float) -> N | D:
    """Parameter `k` as a number from `lo` to `hi`, or `default` when absent."""
    if k not in q:
        return default
    try:
        v = cast(q[k])
    except ValueError:
        raise BadRequest(f"{k}: not a number: {q[k]!r}", param=k) from None
    if not lo <= v <= hi:  # also NaN
        raise BadRequest(f"{k}: must be from {lo:g} to {hi:g}, got {q[k]!r}", param=k)
    return v
