"""`paymaster ledger check [--repair]`: what the ledger and its journal hold, what is wrong with them, and the fix.

Run with no gateway on the ledger (it takes the ledger's lock). It reports the ledger's integrity
(SQLite `quick_check`), what the next start will book from the journal, every torn last line (never
acknowledged; start-up drops them with a note) and every line that is not a journal entry (start-up
stops on those). `--repair` rewrites the journal without them; each line taken out is kept in
`<ledger>.journal-rejected` with where it was and why, and a whole entry found glued behind a torn one
(journals written before appends were all or nothing) stays in the journal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..pricing import usd_str
from .journal import Journal
from .lock import LedgerLock
from .sqlite import SQLiteStore


@dataclass(slots=True)
class Report:
    lines: list[str] = field(default_factory=list)
    problems: int = 0  # left unrepaired


def check(ledger: str, repair: bool = False) -> Report:
    """Raises `LedgerLocked` while a gateway runs on the ledger, `LedgerUnavailable` if it cannot be opened."""
    if not os.path.exists(ledger) and not Journal(ledger).segments():
        return Report([f"ledger {ledger} does not exist yet: nothing to check", "ok"])
    store = SQLiteStore(ledger)
    try:
        store.lock = LedgerLock(ledger).take()
        return _check(store, repair)
    finally:
        store.close()


def _check(store: SQLiteStore, repair: bool) -> Report:
    out = Report()
    j = store.journal
    rows = store.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    scan = j.scan()
    out.lines.append(
        f"ledger {store.path}: {rows} rows; journal: {len(j.segments())} segment(s) holding "
        f"{len(scan.reservations)} reservation(s) and {len(scan.settled)} settlement(s)"
    )
    verdict = [r[0] for r in store.conn.execute("PRAGMA quick_check")]
    if verdict != ["ok"]:
        out.problems += 1
        out.lines.append(f"PROBLEM ledger {store.path}: SQLite finds it damaged: {'; '.join(verdict[:5])}")
    left = store.unbooked(scan)
    exact = [r for r in left if r.status != "crashed"]
    worst = [r for r in left if r.status == "crashed"]
    if left:
        out.lines.append(
            f"the next start books {len(exact)} settled call(s) at their journaled cost "
            f"(${usd_str(sum(r.cost_nanos for r in exact))}) and {len(worst)} call(s) that were in flight at their "
            f"worst case (${usd_str(sum(r.cost_nanos for r in worst))}), flagged for reconciliation"
        )
    for path, n, data in scan.torn:
        out.lines.append(
            f"note {path} line {n}: torn last line ({len(data)} bytes), never acknowledged, so its call was "
            "not sent; start-up drops it (kept aside)"
        )
    for b in scan.bad:
        out.problems += 1
        found = f"; a whole entry behind a torn one: {b.salvaged[1].id}" if b.salvaged else ""
        out.lines.append(
            f"PROBLEM {b.where()}: not a journal entry ({len(b.data)} bytes: {b.data[:80]!r}){found}; "
            "start-up stops on it"
        )
    if repair and (scan.bad or scan.torn):
        out.lines.extend("repaired " + note for note in j.repair(scan))
        out.problems -= len(scan.bad)
    elif scan.bad:
        out.lines.append("run again with --repair to put these lines aside (kept, with why, in the rejected file)")
    out.lines.append("ok" if out.problems == 0 else f"{out.problems} problem(s)")
    return out
