"""The crash guarantee, attacked (hypothesis): whatever writes fail (full disk, short writes, failed syncs, a cut
that cannot be made), whenever the ledger stops taking commits, and wherever the process stops, a restart reads
back exactly what was acknowledged — no torn line glued to a whole one, no refused entry, no acknowledged entry
lost — and books every call once: at its cost if it had settled, at its worst case only if it was in flight."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.store import journal
from paymaster.store.journal import Journal, Reservation
from paymaster.store.row import LedgerRow
from paymaster.store.sqlite import SQLiteStore

FAULTS = [None, None, None, "enospc", "short", "nothing", "uncuttable", "sync"]


class Faulty:
    """`os` for the journal: each write takes the next fault from the plan."""

    def __init__(self, plan: list[str | None]) -> None:
        self.plan = plan
        self.cut_fails = self.sync_fails = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        fault = self.plan.pop(0) if self.plan else None
        if fault is None or fault == "sync":
            self.sync_fails = fault == "sync"
            return os.write(fd, data)
        if fault == "nothing":
            raise OSError(errno.EIO, "I/O error")
        written = os.write(fd, data[: len(data) // 2])
        if fault == "short":
            return written
        self.cut_fails = fault == "uncuttable"
        raise OSError(errno.ENOSPC, "No space left on device")

    def fdatasync(self, fd: int) -> None:
        if self.sync_fails:
            self.sync_fails = False
            raise OSError(errno.EIO, "I/O error")
        os.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        if self.cut_fails:
            self.cut_fails = False
            raise OSError(errno.EIO, "I/O error")
        os.ftruncate(fd, size)


def row(rid: str, nanos: int) -> LedgerRow:
    return LedgerRow(rid, 1.0, "alice", "anthropic", "anthropic", "m", "m", "ok", "0", nanos, "2026-12-01", "2026-12")


ops = st.lists(
    st.tuples(st.sampled_from(["reserve", "reserve", "settle", "done"]), st.sampled_from(FAULTS), st.integers(0, 99)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, fsync=st.booleans())
def test_a_restart_reads_back_exactly_what_was_acknowledged(ops, fsync):
    segment_lines, real_os = journal.SEGMENT_LINES, journal.os
    journal.SEGMENT_LINES = 3  # many segments: rollover and deletion under faults too
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = os.path.join(tmp, "ledger.db")
            j = Journal(base, fsync=fsync)
            j.start()
            faulty = Faulty([fault for _, fault, _ in ops])
            journal.os = faulty
            reserved: dict[str, int] = {}  # acknowledged reservations -> worst
            settled: dict[str, int] = {}  # acknowledged settlements -> cost
            done: set[str] = set()
            for n, (op, _, pick) in enumerate(ops):
                live = [rid for rid in reserved if rid not in done]
                if op == "reserve":
                    rid = f"r{n}"
                    try:
                        j.append(Reservation(rid, "alice", 1.0, "m", "anthropic", "2026-12-01", "2026-12", n + 1))
                        reserved[rid] = n + 1
                    except OSError:
                        pass
                elif op == "settle" and live:
                    rid = live[pick % len(live)]
                    try:
                        j.settled(row(rid, pick))
                        settled[rid] = pick
                    except OSError:
                        pass
                elif op == "done" and live:
                    faulty.plan.insert(0, None)  # no write happens here: keep the plan aligned
                    j.done(live[pick % len(live)])
                    done.add(live[pick % len(live)])
                else:
                    faulty.plan.insert(0, None)
            journal.os = real_os  # the process stops here, its journal as it is on disk

            scan = Journal(base).scan()
            assert scan.bad == []  # never a torn line glued onto a whole one
            assert set(scan.reservations) <= set(reserved)  # nothing refused is read back
            assert set(scan.settled) <= set(settled)
            for rid, worst in reserved.items():
                if rid not in done:
                    assert scan.reservations[rid].worst_nanos == worst  # nothing acknowledged is lost
            for rid, cost in settled.items():
                if rid not in done:
                    assert scan.settled[rid].cost_nanos == cost
            j.close()
    finally:
        journal.SEGMENT_LINES, journal.os = segment_lines, real_os


store_ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "reserve", "settle", "settle", "commit", "break", "mend"]),
        st.sampled_from(FAULTS),
        st.integers(0, 99),
    ),
    max_size=30,
)


class Recording(Faulty):
    """`Faulty`, remembering whether the last write landed whole."""

    def write(self, fd: int, data: bytes) -> int:
        self.landed = False
        n = super().write(fd, data)
        self.landed = n == len(data)  # (the store's journal here does not sync: durability "process")
        return n


@settings(max_examples=40, deadline=None)
@given(ops=store_ops)
def test_a_crash_books_settled_calls_at_their_cost_and_only_calls_in_flight_at_worst(ops):
    """Reserve, settle and commit under journal faults and a ledger that stops and starts taking writes;
    then the process dies. After a restart every acknowledged call is booked once: at its cost when its
    row was committed or its settlement journaled, at its worst case otherwise; nothing refused is booked."""
    real_os = journal.os

    async def life(path: str) -> dict[str, int]:
        store = SQLiteStore(path)
        store.recover(0.0)
        disk = Recording([fault for _, fault, _ in ops])
        journal.os = disk
        expected: dict[str, int] = {}  # acknowledged call -> what a restart must book
        settled_ids: set[str] = set()
        for n, (op, _, pick) in enumerate(ops):
            open_ids = [rid for rid in expected if rid not in settled_ids]
            if op == "reserve":
                try:
                    store.reserve(Reservation(f"r{n}", "alice", 1.0, "m", "anthropic", "2026-12-01", "2026-12", 10**6))
                    expected[f"r{n}"] = 10**6
                except OSError:
                    pass
                continue
            disk.plan.insert(0, None)  # only reserve and settle write: keep the plan aligned
            if op == "settle" and open_ids:
                rid = open_ids[pick % len(open_ids)]
                disk.plan.pop(0)
                store.settle(rid, row(rid, pick))
                settled_ids.add(rid)
                if disk.landed:
                    expected[rid] = pick
            elif op == "commit":
                store.flush()
            elif op == "break":
                store.conn.execute("PRAGMA query_only=1")
            elif op == "mend":
                store.conn.execute("PRAGMA query_only=0")
        journal.os = real_os
        committed = {r[0] for r in store.conn.execute("SELECT id FROM ledger")}
        for rid in committed:
            expected[rid] = int(store.conn.execute("SELECT cost_nanos FROM ledger WHERE id = ?", (rid,)).fetchone()[0])
        # the process dies: nothing more is flushed, the files stay as they are
        if store._later is not None:
            store._later.cancel()
        store._stop.set()
        store.journal.close()
        store.conn.close()
        assert store.lock is not None
        store.lock.release()
        return expected

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ledger.db")
            expected = asyncio.run(life(path))
            again = SQLiteStore(path)
            again.recover(0.0)
            booked = {r["id"]: r["cost_nanos"] for r in again.ledger(limit=1000)}
            again.close()
            assert booked == expected
    finally:
        journal.os = real_os
