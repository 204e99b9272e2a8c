"""What call ids cost the ledger's group commit: ids drawn at random (before) against ids that grow with time
(`paymaster.ids.call_id`, now), into a ledger already holding `--rows` rows.

    python bench/ledger_ids.py [--rows 200000] [--batch 50] [--commits 200]

Each id kind gets its own fresh ledger (the store as the gateway runs it: WAL, background checkpoints), filled
with `--rows` rows of that kind, then measured over `--commits` group commits of `--batch` rows each: process
CPU per row (the background checkpointer thread included), WAL frames (pages) per commit, and the page reads
the commits and their checkpoints made (read system calls, from /proc/self/io: pages SQLite had to fetch).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from paymaster.ids import call_id
from paymaster.store.row import LedgerRow
from paymaster.store.sqlite import SQLiteStore


def row(rid: str) -> LedgerRow:
    return LedgerRow(
        id=rid, ts=time.time(), agent="writer", api="anthropic", provider="anthropic",
        model_requested="claude-haiku-4-5", model="claude-haiku-4-5", status="ok", cost_usd="0.000218",
        cost_nanos=218_000, day="2026-12-02", month="2026-12", worst_nanos=6_350_000, input_tokens=18,
        output_tokens=40, max_tokens=1024, latency_ms=1.234, upstream_request_id="req_011CSim" + rid[-12:],
        max_tokens_requested=1024, uncached_cost_nanos=218_000, baseline_cost_nanos=218_000,
    )  # fmt: skip


def reads() -> int:
    return int(next(ln for ln in Path("/proc/self/io").read_text().splitlines() if ln.startswith("syscr")).split()[1])


def empty(store: SQLiteStore) -> None:
    """Checkpoint and truncate the WAL, again while the store's background checkpointer is busy with it."""
    while tuple(store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()) != (0, 0, 0):
        time.sleep(0.01)


async def commits(store: SQLiteStore, make: Callable[[], str], batch: int, n: int) -> tuple[float, float, float]:
    frames: list[int] = []
    r0, t0 = reads(), time.process_time()
    for _ in range(n):
        for _ in range(batch):
            store.book(row(make()))
        store.flush()
        frames.append(int(store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]))
        empty(store)  # each commit starts on an empty WAL
    cpu = time.process_time() - t0
    return cpu / (batch * n) * 1e6, statistics.median(frames), (reads() - r0) / n


async def measure(folder: Path, make: Callable[[], str], rows: int, batch: int, n: int) -> tuple[float, float, float]:
    store = SQLiteStore(str(folder / "ledger.db"))
    store.recover(time.time())
    try:
        for k in range(rows):
            store.book(row(make()))
            if k % 5000 == 4999:
                store.flush()
        store.flush()
        empty(store)
        return await commits(store, make, batch, n)
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows in the ledger before measuring (default 200000)")
    ap.add_argument("--batch", type=int, default=50, help="rows per group commit (default 50)")
    ap.add_argument("--commits", type=int, default=200, help="group commits measured (default 200)")
    args = ap.parse_args()
    kinds: list[tuple[str, Callable[[], str]]] = [
        ("random (before)", lambda: "pm_" + secrets.token_hex(12)),
        ("time-ordered (now)", call_id),
    ]
    print(f"ledger of {args.rows:,} rows; {args.commits} group commits of {args.batch} rows\n")
    print("| ids | CPU per row | WAL frames per commit | read calls per commit (its checkpoint included) |")
    print("| --- | ---: | ---: | ---: |")
    for label, make in kinds:
        with tempfile.TemporaryDirectory(prefix="paymaster-ids-") as tmp:
            cpu, frames, reads_ = asyncio.run(measure(Path(tmp), make, args.rows, args.batch, args.commits))
        print(f"| {label} | {cpu:.1f} µs | {frames:.0f} | {reads_:.1f} |", flush=True)


if __name__ == "__main__":
    main()
