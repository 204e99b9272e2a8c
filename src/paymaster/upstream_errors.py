"""What a failed provider exchange means, in one table at one boundary (as httpx maps transport errors):
the ledger status it is booked under, the HTTP status the caller gets, and whether another model might
succeed where this one failed."""

from __future__ import annotations

from typing import NoReturn

from .errors import UpstreamFailed
from .providers import Unreachable, UpstreamError, UpstreamTimeout

RETRYABLE = {429, 500, 502, 503, 504, 529}
"""Provider answers another model may not give (rate limited, overloaded, server errors)."""

# (exception, ledger status, caller's HTTP status, another model may succeed) — first match wins
FAILURES: tuple[tuple[type[UpstreamError], str, int, bool], ...] = (
    (UpstreamTimeout, "timeout", 504, True),
    (Unreachable, "unreachable", 502, True),
    (UpstreamError, "error", 502, False),
)


class Retry(Exception):
    """The provider failed in a way another model may not (429, 5xx, overloaded, timeout), before
    any byte reached the agent; the attempt is already settled."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def status_of(e: UpstreamError) -> str:
    """The ledger status of a failed exchange."""
    return next(status for kind, status, _, _ in FAILURES if isinstance(e, kind))


def fail(e: UpstreamError, provider: str, *, may_retry: bool = False) -> NoReturn:
    """Raise what the caller's side of the gateway makes of `e`: `Retry` when another model is lined up
    and might succeed, else `UpstreamFailed` with the table's HTTP status."""
    for kind, _, http, retryable in FAILURES:
        if isinstance(e, kind):
            if may_retry and retryable:
                raise Retry(status_of(e)) from e
            raise UpstreamFailed(f"provider {provider!r}: {e}", status=http) from e
    raise AssertionError("FAILURES ends with UpstreamError")
