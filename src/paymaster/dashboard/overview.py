"""`GET /admin/overview`: everything the dashboard draws, in one JSON answer read from the ledger and the budget.

fleet      the fleet's daily and monthly windows (cap, spent, reserved, remaining, reset time)
agents     each agent as `GET /admin/agents` shows it (status, windows, savings)
spend      spend over time: today by hour and this month by day, per agent (fleet time zone)
savings    what each lever saved the fleet today and this month: the ledger's per-lever column when it has
           one, else routing (cost on the model asked for − cost), caching (uncached − cost) and the
           response cache (the cached answer's cost)
recent     the last calls booked, newest first
events     the last events of the blackboard's stream
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..pricing import usd_str
from ..store.queries import days as day_range

if TYPE_CHECKING:
    from ..admin import Admin
    from ..store.shared import SharedStore
    from ..store.sqlite import SQLiteStore

    Reader = SQLiteStore | SharedStore

RECENT = 15
EVENTS = 20
RECENT_COLUMNS = (
    "id, ts, agent, model_requested, model, status, stream, input_tokens, output_tokens, cache_read_tokens, "
    "cost_usd, latency_ms, route, task, reconcile"
)


def overview(gw: Admin) -> dict[str, Any]:
    """The page's data. The month's sums read every row of the month, on the event loop: the live stream
    asks a page to redraw at most once a second, so a busy gateway pays this about once a second per page."""
    from ..admin import agent_view  # admin imports the dashboard's session check; this way round at call time

    now = gw.clock()
    p = gw.budget.calendar.periods(now)
    gw.store.flush()
    conn = gw.store  # SQLite or the shared (Postgres) ledger: `query` takes `?` placeholders on both
    first = next(iter(gw.config.agents))
    fleet = [w for w in gw.budget.view(first) if str(w["window"]).startswith("fleet")]
    return {
        "now": gw.budget.calendar.iso(now),
        "timezone": str(gw.config.timezone),
        "day": p.day,
        "month": p.month,
        "fleet": {"windows": fleet},
        "agents": [agent_view(gw, a) for a in gw.config.agents],
        "spend": {"today": _by_hour(gw, conn, p.day), "month": _by_day(conn, p.month)},
        "savings": {
            "today": _savings(conn, *day_range("day", p.day)),
            "month": _savings(conn, *day_range("month", p.month)),
        },
        "recent": _recent(conn),
        "events": _events(gw),
    }


def _by_hour(gw: Admin, conn: Reader, day: str) -> dict[str, Any]:
    """Today's spend per agent in each local hour."""
    start = datetime.fromisoformat(day).replace(tzinfo=gw.config.timezone)
    edges = [(start + timedelta(hours=h)).timestamp() for h in range(25)]
    per: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    rows = conn.query("SELECT agent, ts, cost_nanos FROM ledger WHERE day = ?", (day,))
    for agent, ts, nanos in rows:
        h = max(0, min(23, bisect_right(edges, ts) - 1))
        per[agent][h] += int(nanos)
    return {
        "labels": [f"{h:02d}:00" for h in range(24)],
        "agents": {a: [usd_str(v) for v in vs] for a, vs in sorted(per.items())},
    }


def _by_day(conn: Reader, month: str) -> dict[str, Any]:
    """This month's spend per agent per day."""
    rows = conn.query(
        "SELECT agent, day, SUM(cost_nanos) FROM ledger WHERE day >= ? AND day <= ? GROUP BY agent, day",
        day_range("month", month),
    )
    first = datetime.fromisoformat(month + "-01")
    days = []
    d = first
    while d.month == first.month:
        days.append(d.date().isoformat())
        d += timedelta(days=1)
    index = {day: i for i, day in enumerate(days)}
    per: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for agent, day, nanos in rows:
        per[agent][index[day]] += int(nanos)
    return {"labels": days, "agents": {a: [usd_str(v) for v in vs] for a, vs in sorted(per.items())}}


def _has_savings_column(conn: Reader) -> bool:
    from ..store.sqlite import SQLiteStore

    if not isinstance(conn, SQLiteStore):
        return False  # the shared ledger's per-lever column is read with the plain columns below
    return any(r[1] == "savings" for r in conn.query("PRAGMA table_info(ledger)"))


def _savings(conn: Reader, lo: str, hi: str) -> dict[str, str]:
    """Nano-dollars saved per lever over days lo ≤ day ≤ hi, as dollar strings (largest first)."""
    out: dict[str, int] = {}
    if _has_savings_column(conn):  # per-lever attribution, summing exactly to the total saving
        q = (
            "SELECT j.key, SUM(j.value) FROM ledger, json_each(ledger.savings) AS j "
            "WHERE ledger.day >= ? AND ledger.day <= ? GROUP BY j.key"
        )
        out = {lever: int(nanos) for lever, nanos in conn.query(q, (lo, hi))}
    else:
        r = conn.query(
            "SELECT COALESCE(SUM(CASE WHEN status = 'ok' THEN baseline_cost_nanos - cost_nanos END), 0), "
            "COALESCE(SUM(CASE WHEN status = 'ok' THEN uncached_cost_nanos - cost_nanos END), 0), "
            "COALESCE(SUM(CASE WHEN status = 'response_cache' THEN uncached_cost_nanos END), 0) "
            "FROM ledger WHERE day >= ? AND day <= ?",
            (lo, hi),
        )[0]
        out = {"routing": max(0, int(r[0])), "caching": max(0, int(r[1])), "response_cache": int(r[2])}
    return {k: usd_str(v) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def _recent(conn: Reader) -> list[dict[str, Any]]:
    rows = conn.query(f"SELECT {RECENT_COLUMNS} FROM ledger ORDER BY seq DESC LIMIT ?", (RECENT,))
    names = [c.strip() for c in RECENT_COLUMNS.split(",")]
    return [dict(zip(names, r, strict=True)) for r in rows]


def _events(gw: Admin) -> list[dict[str, Any]]:
    out = []
    for seq, frame in list(gw.board.history)[-EVENTS:]:
        data = frame.split(b"\ndata: ", 1)[1].rstrip(b"\n")
        out.append({"id": seq, **json.loads(data)})
    return out[::-1]
