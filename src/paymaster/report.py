"""`paymaster report`: spend, calls, refusals and savings from the ledger file alone.

No provider credentials and no running gateway are needed: the ledger is opened read-only (a running
gateway keeps writing; the report sees what it has committed). For a period of local days (ISO dates,
both ends included) it gives:

- totals and groups by any of `agent`, `model`, `task`, `status`, `day`, `week`, `month` (or several:
  `--by agent,day`): calls, refusals, failures, spend, the counterfactual baseline, the saving and its
  split by lever (exact nano-dollars; savings.py), prompt- and response-cache hits;
- savings by lever;
- blocked and degraded events, read from the ledger (a `budget_exceeded` refusal blocks its agent; a
  call routed one tier down past `routing.degrade_at` is degraded);
- burn-rate projections (burn.py) for today and this month, per agent and for the fleet, with each
  window's projected time to its cap.

As a terminal table, CSV (the group rows, one fixed header) or JSON (everything; schema in
`data/report.schema.json`).
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from . import savings
from .burn import project
from .pricing import to_nanos, usd_str

DIMENSIONS = ("agent", "model", "task", "status", "day", "week", "month", "lever")
NOT_CALLS = ("refused",)  # booked for reports, never sent
FREE_OK = ("ok", "response_cache")


@dataclass(frozen=True, slots=True)
class Caps:
    """What the report needs from fleet.yaml: the clock and the caps (USD, None: no cap)."""

    timezone: ZoneInfo = ZoneInfo("UTC")
    agents: Mapping[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)  # daily, monthly
    fleet: tuple[Decimal | None, Decimal | None] = (None, None)

    @classmethod
    def of(cls, config: Any) -> Caps:
        agents = {n: (a.daily_usd, a.monthly_usd) for n, a in config.agents.items()}
        return cls(config.timezone, agents, (config.fleet_daily_usd, config.fleet_monthly_usd))


# -- reading ------------------------------------------------------------------------------------------

COLUMNS_READ = (
    "ts, agent, model, task, status, day, cost_nanos, baseline_cost_nanos, input_tokens, output_tokens, "
    "cache_read_tokens, reconcile, route, error"
)


def open_ledger(path: str | Path) -> sqlite3.Connection:
    """The ledger, read-only: never takes its lock, never writes (a gateway may be running on it)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no ledger at {p}")
    return sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True)


def read_rows(conn: sqlite3.Connection, since: str, until: str) -> Iterator[dict[str, Any]]:
    """Ledger rows booked on local days `since` … `until` (ISO dates, both included)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
    extra = ", savings" if "savings" in cols else ", '{}' AS savings"
    q = f"SELECT {COLUMNS_READ}{extra} FROM ledger WHERE day >= ? AND day <= ? ORDER BY seq"
    cur = conn.execute(q, (since, until))
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))


# -- aggregating --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    calls: int = 0  # sent to a provider or answered by the response cache
    refused: int = 0
    failed: int = 0  # sent, and not answered 200
    spend: int = 0  # nano-dollars
    baseline: int = 0
    by_lever: dict[str, int] = field(default_factory=dict)
    prompt_cache_hits: int = 0
    response_cache_hits: int = 0
    answered: int = 0  # answered 200 by a provider
    input_tokens: int = 0
    output_tokens: int = 0
    reconcile: int = 0

    def add(self, row: Mapping[str, Any], by_lever: Mapping[str, int]) -> None:
        status = row["status"]
        if status in NOT_CALLS:
            self.refused += 1
            return
        self.calls += 1
        self.spend += row["cost_nanos"]
        self.baseline += row["baseline_cost_nanos"] or row["cost_nanos"]
        savings.add(self.by_lever, by_lever)
        self.input_tokens += row["input_tokens"]
        self.output_tokens += row["output_tokens"]
        self.reconcile += row["reconcile"]
        if status == "response_cache":
            self.response_cache_hits += 1
        elif status == "ok":
            self.answered += 1
            self.prompt_cache_hits += row["cache_read_tokens"] > 0
        else:
            self.failed += 1

    def view(self) -> dict[str, Any]:
        served = self.answered + self.response_cache_hits
        return {
            "calls": self.calls,
            "refused": self.refused,
            "failed": self.failed,
            "spend_usd": usd_str(self.spend),
            "spend_nanos": self.spend,
            "baseline_usd": usd_str(self.baseline),
            "baseline_nanos": self.baseline,
            "saved_usd": usd_str(self.baseline - self.spend),
            "saved_nanos": self.baseline - self.spend,
            "saved_by_lever_nanos": {k: self.by_lever.get(k, 0) for k in savings.ORDER},
            "prompt_cache_hit_rate": round(self.prompt_cache_hits / self.answered, 4) if self.answered else None,
            "response_cache_hit_rate": round(self.response_cache_hits / served, 4) if served else None,
            "response_cache_hits": self.response_cache_hits,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reconcile_pending": self.reconcile,
        }


def _key(row: Mapping[str, Any], dim: str) -> str:
    if dim == "week":
        y, w, _ = date.fromisoformat(row["day"]).isocalendar()
        return f"{y}-W{w:02d}"
    if dim == "month":
        return str(row["day"])[:7]
    return str(row[dim]) or "(none)"


def build(
    conn: sqlite3.Connection,
    caps: Caps,
    since: str | None = None,
    until: str | None = None,
    by: Sequence[str] = ("agent",),
    now: float | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-able dict (the shape `data/report.schema.json` describes)."""
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, caps.timezone).date()
    since = since or today.replace(day=1).isoformat()
    until = until or today.isoformat()
    for d in by:
        if d not in DIMENSIONS:
            raise ValueError(f"cannot group by {d!r} (use: {', '.join(DIMENSIONS)})")
    total = Tally()
    groups: dict[tuple[str, ...], Tally] = {}
    levers: dict[str, list[int]] = {k: [0, 0] for k in savings.ORDER}  # calls it acted on, nano-dollars
    blocked: dict[tuple[str, str, str], dict[str, Any]] = {}
    degraded: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_rows(conn, since, until):
        by_lever = savings.parse(row["savings"]) if row["status"] not in NOT_CALLS else {}
        total.add(row, by_lever)
        for lever, n in by_lever.items():
            acc = levers.setdefault(lever, [0, 0])
            acc[0] += 1
            acc[1] += n
        if "lever" not in by:
            k = tuple(_key(row, d) for d in by)
            groups.setdefault(k, Tally()).add(row, by_lever)
        _events(row, blocked, degraded, caps.timezone)
    if "lever" in by:
        rows = [{"lever": k, "calls": c, "saved_usd": usd_str(n), "saved_nanos": n} for k, (c, n) in levers.items()]
        group_rows: list[dict[str, Any]] = rows
    else:
        group_rows = [{**dict(zip(by, k, strict=True)), **t.view()} for k, t in sorted(groups.items())]
    return {
        "period": {"since": since, "until": until, "timezone": str(caps.timezone)},
        "generated_at": datetime.fromtimestamp(now, caps.timezone).isoformat(),
        "by": list(by),
        "totals": total.view(),
        "groups": group_rows,
        "savings_by_lever": [
            {"lever": k, "calls": c, "saved_usd": usd_str(n), "saved_nanos": n} for k, (c, n) in levers.items()
        ],
        "events": sorted([*blocked.values(), *degraded.values()], key=lambda e: e["first_at"]),
        "projection": projection(conn, caps, now),
    }


def _events(
    row: Mapping[str, Any], blocked: dict[Any, dict[str, Any]], degraded: dict[Any, dict[str, Any]], tz: ZoneInfo
) -> None:
    """Blocked and degraded events as the ledger shows them, one per agent, day (and window)."""
    if row["status"] == "refused" and str(row["error"]).startswith("budget_exceeded"):
        window = str(row["error"]).split(": ", 1)[-1]
        e = blocked.setdefault(
            (row["agent"], row["day"], window),
            {"type": "agent.blocked", "agent": row["agent"], "day": row["day"], "window": window, "calls": 0},
        )
    elif ", degraded" in (row["route"] or ""):
        e = degraded.setdefault(
            (row["agent"], row["day"]),
            {"type": "agent.degraded", "agent": row["agent"], "day": row["day"], "window": "", "calls": 0},
        )
    else:
        return
    e.setdefault("first_at", datetime.fromtimestamp(row["ts"], tz).isoformat(timespec="seconds"))
    e["calls"] += 1


def projection(conn: sqlite3.Connection, caps: Caps, now: float) -> list[dict[str, Any]]:
    """Today's and this month's burn per agent (every agent in fleet.yaml or the ledger) and for the fleet."""
    tz = caps.timezone
    local = datetime.fromtimestamp(now, tz).date()
    day, month = local.isoformat(), local.isoformat()[:7]
    spent: dict[str | None, list[int]] = {None: [0, 0]}
    q = "SELECT agent, day = ?, SUM(cost_nanos) FROM ledger WHERE day >= ? AND day < ? GROUP BY agent, day = ?"
    for agent, is_today, nanos in conn.execute(q, (day, month, month + "~", day)):
        for who in (agent, None):
            s = spent.setdefault(who, [0, 0])
            s[1] += nanos
            if is_today:
                s[0] += nanos
    out = []
    names: list[str | None] = [*caps.agents, *sorted(a for a in spent if a is not None and a not in caps.agents)]
    for who in [*names, None]:
        daily_cap, monthly_cap = caps.fleet if who is None else caps.agents.get(who, (None, None))
        s = spent.get(who, [0, 0])
        d = project(tz, now, "day", s[0], _nanos(daily_cap))
        m = project(tz, now, "month", s[1], _nanos(monthly_cap))
        hits = [t for t in (d.hits_cap_at, m.hits_cap_at) if t is not None]
        out.append(
            {
                "agent": who,  # None: the fleet
                "spent_today_usd": usd_str(d.spent_nanos),
                "daily_cap_usd": _usd(daily_cap),
                "projected_today_usd": usd_str(d.projected_nanos),
                "spent_month_usd": usd_str(m.spent_nanos),
                "monthly_cap_usd": _usd(monthly_cap),
                "projected_month_usd": usd_str(m.projected_nanos),
                "burn_usd_per_hour": usd_str(round(d.rate_per_s * 3600)),
                "hits_cap_at": datetime.fromtimestamp(min(hits), tz).isoformat(timespec="seconds") if hits else None,
                "hits_cap_in_hours": round((min(hits) - now) / 3600, 2) if hits else None,
            }
        )
    return out


def _nanos(usd: Decimal | None) -> int | None:
    return None if usd is None else to_nanos(usd)


def _usd(usd: Decimal | None) -> str | None:
    return None if usd is None else usd_str(to_nanos(usd))


# -- output -------------------------------------------------------------------------------------------

METRICS = (
    "calls",
    "refused",
    "failed",
    "spend_usd",
    "baseline_usd",
    "saved_usd",
    *(f"saved_{k}_usd" for k in savings.ORDER),
    "prompt_cache_hit_rate",
    "response_cache_hits",
    "input_tokens",
    "output_tokens",
    "reconcile_pending",
)
LEVER_COLUMNS = ("lever", "calls", "saved_usd")


def csv_columns(by: Sequence[str]) -> tuple[str, ...]:
    return LEVER_COLUMNS if "lever" in by else (*by, *METRICS)


def _flat(g: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(g)
    for k, n in g.get("saved_by_lever_nanos", {}).items():
        out[f"saved_{k}_usd"] = usd_str(n)
    return out


def to_csv(report: Mapping[str, Any]) -> str:
    """The group rows, one per line, under a fixed header (the grouping columns, then `METRICS`)."""
    buf = io.StringIO()
    cols = csv_columns(report["by"])
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for g in report["groups"]:
        w.writerow({k: ("" if v is None else v) for k, v in _flat(g).items()})
    return buf.getvalue()


def render(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> str:
    """An aligned text table: words left, numbers right."""
    cells = [[str(c) for c in columns], *[[("" if v is None else str(v)) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(v.rjust(w) if _numeric(v) and n else v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(v: str) -> bool:
    return bool(v) and v.replace(".", "", 1).replace("-", "", 1).replace("%", "").isdigit()


def _pct(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"


def to_text(report: Mapping[str, Any]) -> str:
    p, t = report["period"], report["totals"]
    out = [
        f"Paymaster report {p['since']} … {p['until']} ({p['timezone']}), generated {report['generated_at']}",
        f"spent ${t['spend_usd']} on {t['calls']} calls ({t['refused']} refused, {t['failed']} failed); "
        f"without the levers ${t['baseline_usd']}: saved ${t['saved_usd']}; "
        f"prompt-cache hit rate {_pct(t['prompt_cache_hit_rate']) or '–'}",
        "",
    ]
    by = report["by"]
    if "lever" in by:
        out.append(render([[g["lever"], g["calls"], g["saved_usd"]] for g in report["groups"]], LEVER_COLUMNS))
    else:
        cols = (*by, "calls", "refused", "failed", "spent $", "baseline $", "saved $", "cache hits")
        rows = [
            [
                *(g[d] for d in by),
                g["calls"],
                g["refused"],
                g["failed"],
                g["spend_usd"],
                g["baseline_usd"],
                g["saved_usd"],
                _pct(g["prompt_cache_hit_rate"]),
            ]
            for g in report["groups"]
        ]
        out.append(render(rows, cols))
        out += ["", "saved by lever:"]
        out.append(
            render(
                [[s["lever"], s["calls"], s["saved_usd"]] for s in report["savings_by_lever"] if s["calls"]],
                LEVER_COLUMNS,
            )
        )
    if report["events"]:
        out += ["", "blocked / degraded:"]
        out.append(
            render(
                [[e["type"], e["agent"], e["day"], e["window"], e["calls"], e["first_at"]] for e in report["events"]],
                ("event", "agent", "day", "window", "calls", "first at"),
            )
        )
    out += ["", "burn rate (today's and this month's average, projected to the reset):"]
    out.append(
        render(
            [
                [
                    pr["agent"] or "(fleet)",
                    pr["spent_today_usd"],
                    pr["daily_cap_usd"] or "–",
                    pr["projected_today_usd"],
                    pr["spent_month_usd"],
                    pr["monthly_cap_usd"] or "–",
                    pr["projected_month_usd"],
                    pr["hits_cap_at"] or "not before reset",
                ]
                for pr in report["projection"]
            ],
            ("agent", "today $", "day cap $", "→ today $", "month $", "month cap $", "→ month $", "hits cap"),
        )
    )
    return "\n".join(out)


# -- a Postgres ledger (store: shared) ------------------------------------------------------------------

SHARED_COLUMNS = ("agent", "model", "calls", "failed", "in tokens", "out tokens", "spent today $", "left today $")


def print_report(config: Any) -> None:
    """Today's spend per agent from the fleet's ledger, Postgres included (`store: shared`): what a shared
    ledger offers until the full report's queries run on Postgres too."""
    from .store.shared import SharedStore
    from .store.sqlite import SQLiteStore

    sh = config.shared
    store = SQLiteStore(config.ledger) if sh is None else SharedStore(sh.redis_url, sh.postgres_url, config.timezone)
    try:
        day = datetime.fromtimestamp(time.time(), config.timezone).date().isoformat()
        totals = store.totals("day", day)
        rows = []
        for name, a in config.agents.items():
            t = totals.get(name, {"calls": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0, "cost_nanos": 0})
            left = "no cap" if a.daily_usd is None else usd_str(max(0, to_nanos(a.daily_usd) - t["cost_nanos"]))
            spent = usd_str(t["cost_nanos"])
            rows.append([name, a.model, t["calls"], t["failed"], t["input_tokens"], t["output_tokens"], spent, left])
        print(render(rows, SHARED_COLUMNS))
        open_ = store.unsettled_on_disk()
        if open_:
            print(f"\n{open_} reservation(s) not settled (a gateway is running, or one stopped mid-call)")
    finally:
        store.close()
