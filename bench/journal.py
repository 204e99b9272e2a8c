"""CPU per reserve + settle in the ledger store, with and without the settlement line in the journal.

    python bench/journal.py [--calls N] [--rounds R] [--durability process|power]

A reservation is one journal append; a settlement queues the ledger row for the group commit (one batched
SQLite insert per `--batch` rows, as the 50 ms group commit does under load) and, since issue 7, appends the
row to the journal as well, so a crash books a finished call at its actual cost. "without" replays the
store with that append switched off (the journal as it was); "with" is the store as it is. Rounds
alternate, on fresh ledgers in a temp folder; the figure is process CPU time (all threads, the WAL
checkpointer included) per call, median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from paymaster.store.journal import Reservation
from paymaster.store.sqlite import LedgerRow, SQLiteStore


def calls(n: int) -> list[tuple[Reservation, LedgerRow]]:
    out = []
    for i in range(n):
        rid = f"pm_{i:024x}"
        r = Reservation(
            rid, "writer", 1764633600.0 + i, "claude-haiku-4-5", "anthropic", "2026-12-02", "2026-12", 6_350_000
        )
        row = LedgerRow(
            id=rid,
            ts=r.created,
            agent="writer",
            api="anthropic",
            provider="anthropic",
            model_requested="claude-haiku-4-5",
            model="claude-haiku-4-5",
            status="ok",
            cost_usd="0.000218",
            cost_nanos=218_000,
            day=r.day,
            month=r.month,
            worst_nanos=r.worst_nanos,
            input_tokens=18,
            output_tokens=40,
            max_tokens=1024,
            latency_ms=1.234,
            upstream_request_id="req_011CSim" + rid[-12:],
            max_tokens_requested=1024,
            uncached_cost_nanos=218_000,
            baseline_cost_nanos=218_000,
        )
        out.append((r, row))
    return out


async def run(
    folder: Path, work: list[tuple[Reservation, LedgerRow]], journal_rows: bool, durability: str, batch: int
) -> float:
    store = SQLiteStore(str(folder / "ledger.db"), durability)
    store.recover(time.time())
    if not journal_rows:
        store.journal.settled = lambda row: None  # type: ignore[method-assign]
    t0 = time.process_time()
    for i, (r, row) in enumerate(work, 1):
        store.reserve(r)
        store.settle(r.id, row)
        if i % batch == 0:
            store.flush()
    store.flush()
    cpu = time.process_time() - t0
    store.close()
    return cpu / len(work)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000, help="reserve + settle pairs per measurement (default 20000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating without/with rounds (default 3)")
    ap.add_argument("--batch", type=int, default=200, help="rows per group commit (default 200)")
    ap.add_argument("--durability", choices=["process", "power"], default="process")
    args = ap.parse_args()
    work = calls(args.calls)
    figures: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for journal_rows in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                figures[journal_rows].append(
                    asyncio.run(run(Path(tmp), work, journal_rows, args.durability, args.batch))
                )
    before, after = statistics.median(figures[False]) * 1e6, statistics.median(figures[True]) * 1e6
    print(
        f"reserve + settle, {args.calls} calls x {args.rounds} rounds, durability {args.durability}, "
        f"group commit every {args.batch} rows (CPU µs per call, median)"
    )
    print(f"  without the settlement line (before)  {before:7.2f}")
    print(f"  with the settlement line (now)        {after:7.2f}")
    print(f"  added per call                        {after - before:7.2f}")


if __name__ == "__main__":
    main()
