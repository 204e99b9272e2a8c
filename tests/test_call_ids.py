"""Call ids grow with time, so the ledger's unique index on `id` takes each group commit at its right edge:
a commit of many rows writes a few index pages to the WAL, not one page per row (src/paymaster/ids.py)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from paymaster.ids import call_id
from paymaster.store.row import LedgerRow
from paymaster.store.sqlite import SQLiteStore


def test_the_gateway_hands_out_ids_in_time_order(gateway: Any) -> None:
    gw = gateway()
    client = gw.anthropic("alice")
    ids = []
    for _ in range(12):
        raw = client.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        ids.append(raw.headers["x-paymaster-call-id"])
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("pm_") and len(i) == 27 and int(i[3:], 16) >= 0 for i in ids)
    times = [i[3:14] for i in ids]  # the milliseconds part: never goes back
    assert times == sorted(times)
    assert {r["id"] for r in gw.ledger()} >= set(ids)


def test_ids_are_unique_and_sort_by_the_millisecond_they_were_made() -> None:
    made = [call_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert [m[3:14] for m in made] == sorted(m[3:14] for m in made)
    assert len({m[14:] for m in made}) == len(made)  # the random part alone tells them apart


def row(rid: str) -> LedgerRow:
    return LedgerRow(rid, 1.0, "a", "anthropic", "p", "m", "m", "ok", "0.000262", 262000, "2026-12-02", "2026-12")


def empty(store: SQLiteStore) -> None:
    """Checkpoint the WAL and truncate it, again while the store's background checkpointer is busy with it."""
    while tuple(store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()) != (0, 0, 0):
        time.sleep(0.01)


def wal_frames_of_one_commit(path: Path, ids: list[str], rows: int) -> int:
    """Frames (pages) the WAL gets from one group commit of `rows` rows, into a ledger of `len(ids) - rows`."""
    store = SQLiteStore(str(path))

    async def book(batch: list[str]) -> None:
        for rid in batch:
            store.book(row(rid))
        store.flush()

    try:
        old, new = ids[:-rows], ids[-rows:]
        for k in range(0, len(old), 500):
            asyncio.run(book(old[k : k + 500]))
        empty(store)  # what the WAL holds next is one commit
        asyncio.run(book(new))
        _, frames, _ = store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)
    finally:
        store.close()


def test_a_group_commit_writes_few_index_pages(tmp_path: Path) -> None:
    ids = [call_id() for _ in range(20_000)]
    time.sleep(0.002)  # made this fast, ~1000 ids share each millisecond, their order in it random: a commit's
    ids += [call_id() for _ in range(50)]  # rows come a millisecond after the ledger's, as calls do
    frames = wal_frames_of_one_commit(tmp_path / "ledger.db", ids, 50)
    # 50 rows of ~300 bytes fill ~4 table pages; each index and the sequence add a page or two (measured: 14-18)
    assert frames <= 22, frames
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT count(*) FROM ledger").fetchone()[0]
    assert rows == len(ids)
    drawn = ["pm_" + secrets.token_hex(12) for _ in ids]  # ids drawn at random, as before: a page per row
    assert wal_frames_of_one_commit(tmp_path / "random.db", drawn, 50) > 2 * frames
