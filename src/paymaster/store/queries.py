"""The ledger's read queries, written once for SQLite and Postgres: each returns (SQL with `?`
placeholders, arguments); Postgres numbers the placeholders (`numbered`). Portable SQL only: booleans
are CAST to integers before they are summed, sums CAST back to BIGINT."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .row import LedgerRow

LEDGER_COLS = [f.name for f in fields(LedgerRow)]
SAVINGS_NAMES = (
    "calls",
    "cost",
    "uncached",
    "response_cache_saved",
    "response_cache_hits",
    "prompt_cache_hits",
    "input_tokens",
    "cache_read_tokens",
    "exposure_removed",
    "unbounded_requests",
)


def days(period: str, key: str) -> tuple[str, str]:
    """The first and last `day` of a day ('2026-11-28') or a month ('2026-11': '2026-11-01' … '2026-11-31'): the
    same width and digits in the same places, so they compare alike in any collation (Postgres's included)."""
    return (key + "-01", key + "-31") if period == "month" else (key, key)


def numbered(sql: str) -> str:
    """`?` placeholders as Postgres's `$1, $2, …` (no query here has a `?` inside a string literal)."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def spend(agent: str | None, period: str, key: str) -> tuple[str, list[Any]]:
    lo, hi = days(period, key)
    if agent is None:
        return "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM ledger WHERE day >= ? AND day <= ?", [lo, hi]
    q = "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM ledger WHERE agent = ? AND day >= ? AND day <= ?"
    return q, [agent, lo, hi]


def ledger(
    *,
    agent: str | None = None,
    status: str | None = None,
    model: str | None = None,
    since: float | None = None,
    until: float | None = None,
    reconcile: bool | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[str, list[Any]]:
    where, args = ["seq > ?"], list[Any]([after])
    for col, val in (("agent", agent), ("status", status), ("model", model)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    if status is None:  # refused calls (booked for reports) are listed only when asked for by status
        where.append("status != 'refused'")
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    if reconcile is not None:
        where.append("reconcile = ?")
        args.append(int(reconcile))
    q = f"SELECT seq, {', '.join(LEDGER_COLS)} FROM ledger WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
    return q, [*args, limit]


ROW = f"SELECT seq, {', '.join(LEDGER_COLS)}, reconciled_at FROM ledger WHERE id = ?"
ROW_NAMES = ["seq", *LEDGER_COLS, "reconciled_at"]
RECONCILE = (
    "UPDATE ledger SET booked_nanos = cost_nanos, cost_usd = ?, cost_nanos = ?, reconcile = 0, "
    "reconciled_at = ? WHERE id = ?"
)


def savings(agent: str, period: str, key: str) -> tuple[str, list[Any]]:
    """What the levers saved an agent in a day or month, and how often the caches hit (SAVINGS_NAMES)."""
    lo, hi = days(period, key)
    q = (
        "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(uncached_cost_nanos), 0), "
        "COALESCE(SUM(CASE WHEN status = 'response_cache' THEN uncached_cost_nanos ELSE 0 END), 0), "
        "COALESCE(SUM(CAST(status = 'response_cache' AS INTEGER)), 0), "
        "COALESCE(SUM(CAST(cache_read_tokens > 0 AS INTEGER)), 0), "
        "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), "
        "COALESCE(SUM(exposure_removed_nanos), 0), COALESCE(SUM(CAST(max_tokens_requested = 0 AS INTEGER)), 0) "
        "FROM ledger WHERE agent = ? AND day >= ? AND day <= ? AND status IN ('ok', 'response_cache')"
    )
    return q, [agent, lo, hi]


def totals(period: str, key: str) -> tuple[str, list[Any]]:
    """Per agent: calls, input and output tokens, nano-dollars, calls that failed."""
    lo, hi = days(period, key)
    q = (
        "SELECT agent, COUNT(*), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), "
        "CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(CAST(status != 'ok' AS INTEGER)) AS BIGINT) "
        "FROM ledger WHERE day >= ? AND day <= ? AND status != 'refused' GROUP BY agent"
    )
    return q, [lo, hi]


def totals_dict(rows: Any) -> dict[str, dict[str, int]]:
    return {
        a: {"calls": n, "input_tokens": i, "output_tokens": o, "cost_nanos": c, "failed": f}
        for a, n, i, o, c, f in rows
    }
