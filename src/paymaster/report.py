"""Per-agent spend tables: from the ledger file (`paymaster report`) or a running gateway's admin API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .config import Config
from .pricing import to_nanos, usd_str
from .store.shared import SharedStore
from .store.sqlite import SQLiteStore

COLUMNS = (
    "agent",
    "model",
    "calls",
    "refused",
    "failed",
    "in tokens",
    "out tokens",
    "spent today $",
    "left today $",
    "status",
)
LEDGER_COLUMNS = ("agent", "model", "calls", "failed", "in tokens", "out tokens", "spent today $", "left today $")


def render(rows: Sequence[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> str:
    cells = [[str(c) for c in columns], *[[("" if v is None else str(v)) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                v.ljust(w) if i in (0, 1) or not v.replace(".", "").replace("-", "").isdigit() else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rows_from_ledger(config: Config, store: SQLiteStore | SharedStore, now: float | None = None) -> list[list[Any]]:
    day = datetime.fromtimestamp(now or time.time(), config.timezone).date().isoformat()
    totals = store.totals("day", day)
    out = []
    for name, a in config.agents.items():
        t = totals.get(name, {"calls": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0, "cost_nanos": 0})
        left = None
        if a.daily_usd is not None:
            left = usd_str(max(0, to_nanos(a.daily_usd) - t["cost_nanos"]))
        out.append(
            [
                name,
                a.model,
                t["calls"],
                t["failed"],
                t["input_tokens"],
                t["output_tokens"],
                usd_str(t["cost_nanos"]),
                left or "no cap",
            ]
        )
    return out


def print_report(config: Config) -> None:
    sh = config.shared  # replicas: the Postgres ledger
    store = SQLiteStore(config.ledger) if sh is None else SharedStore(sh.redis_url, sh.postgres_url, config.timezone)
    try:
        print(render(rows_from_ledger(config, store), LEDGER_COLUMNS))
        open_ = store.unsettled_on_disk()
        if open_:
            print(f"\n{open_} reservation(s) not settled (a gateway is running, or one stopped mid-call)")
    finally:
        store.close()
