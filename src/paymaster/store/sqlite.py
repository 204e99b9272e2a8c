"""The ledger and the reservation journal in SQLite (the embedded default).

Writes are group-committed. A reservation is committed on the next turn of the event loop, together
with everything else pending, and its caller awaits that commit before the call is sent upstream
(the reservation is durable first). A settlement is not awaited and not hurried: it rides along with
the next reservation's commit, or is flushed within `SETTLE_DELAY` seconds when traffic is quiet.
If the process dies first, the reservation row is still there and is counted at its worst case on
restart — over-counted, never under.

WAL with `synchronous=NORMAL` survives a killed process; `durability: power` in fleet.yaml selects
`synchronous=FULL`, which also survives power loss at the cost of an fsync per commit. WAL
checkpoints (the only fsyncs in NORMAL mode) run in a background thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from ..pricing import from_nanos

SETTLE_DELAY = 0.05  # seconds a settlement may wait for a reservation commit to ride along with
CHECKPOINT_EVERY = 1.0  # seconds between background WAL checkpoints

SCHEMA_MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_ledger_and_reservations",
        """
        CREATE TABLE reservations (
            id TEXT PRIMARY KEY,
            agent TEXT NOT NULL,
            created REAL NOT NULL,
            model TEXT NOT NULL,
            api TEXT NOT NULL,
            day TEXT NOT NULL,
            month TEXT NOT NULL,
            worst_nanos INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            ts REAL NOT NULL,
            agent TEXT NOT NULL,
            api TEXT NOT NULL,
            provider TEXT NOT NULL,
            model_requested TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            stream INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            cache_write_1h_tokens INTEGER NOT NULL,
            max_tokens INTEGER NOT NULL,
            cost_usd TEXT NOT NULL,
            cost_nanos INTEGER NOT NULL,
            worst_nanos INTEGER NOT NULL,
            day TEXT NOT NULL,
            month TEXT NOT NULL,
            reconcile INTEGER NOT NULL DEFAULT 0,
            latency_ms REAL NOT NULL DEFAULT 0,
            upstream_request_id TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            task TEXT NOT NULL DEFAULT '',
            max_tokens_requested INTEGER NOT NULL DEFAULT 0,
            uncached_cost_nanos INTEGER NOT NULL DEFAULT 0,
            exposure_removed_nanos INTEGER NOT NULL DEFAULT 0,
            reconciled_at REAL,
            booked_nanos INTEGER
        );
        CREATE INDEX ledger_agent_day ON ledger (agent, day);
        CREATE INDEX ledger_day ON ledger (day);
        """,
    ),
]
# Every ledger insert writes one page per b-tree it touches into the WAL, so indexes are few: (agent,
# day) and (day) serve the per-agent and fleet sums, months included (a month is a range of days).


@dataclass(slots=True)
class Reservation:
    id: str
    agent: str
    created: float
    model: str
    api: str
    day: str
    month: str
    worst_nanos: int


@dataclass(slots=True)
class LedgerRow:
    id: str
    ts: float
    agent: str
    api: str
    provider: str
    model_requested: str
    model: str
    status: str  # ok | upstream_error | timeout | disconnected | cut | crashed
    stream: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    max_tokens: int
    cost_usd: str
    cost_nanos: int
    worst_nanos: int
    day: str
    month: str
    reconcile: int = 0
    latency_ms: float = 0.0
    upstream_request_id: str = ""
    error: str = ""
    task: str = ""
    max_tokens_requested: int = 0  # 0: the caller set none
    uncached_cost_nanos: int = 0  # what the call would have cost with no prompt or response caching
    exposure_removed_nanos: int = 0  # worst case the max_tokens ceiling took off this call


_LEDGER_COLS = [f.name for f in fields(LedgerRow)]
_INSERT_LEDGER = f"INSERT INTO ledger ({', '.join(_LEDGER_COLS)}) VALUES ({', '.join('?' * len(_LEDGER_COLS))})"
_RES_COLS = [f.name for f in fields(Reservation)]
_DELETE_RES = "DELETE FROM reservations WHERE id = ?"
_INSERT_RES = f"INSERT INTO reservations ({', '.join(_RES_COLS)}) VALUES ({', '.join('?' * len(_RES_COLS))})"


def _ledger_values(row: LedgerRow) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in _LEDGER_COLS)


class SQLiteStore:
    def __init__(self, path: str, durability: str = "process") -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'power' else 'NORMAL'}")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._urgent = 0  # how many of the pending ops are reservations someone awaits
        self._waiters: list[asyncio.Future[None]] = []
        self._soon = False
        self._later: asyncio.TimerHandle | None = None
        self.on_error: Callable[[BaseException], None] = lambda e: None
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if path != ":memory:":
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoints, name="wal-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Move the WAL into the database file every CHECKPOINT_EVERY seconds, on this thread's connection:
        the fsyncs this takes never stall the event loop."""
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue
        finally:
            conn.close()

    def _migrate(self) -> None:
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        done = {r[0] for r in c.execute("SELECT name FROM migrations")}
        for name, sql in SCHEMA_MIGRATIONS:
            if name in done:
                continue
            c.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    # -- group commit ------------------------------------------------------------------------------

    def _submit(self, ops: Iterable[tuple[str, tuple[Any, ...]]], urgent: bool) -> None:
        self._pending.extend(ops)
        loop = asyncio.get_running_loop()
        if urgent:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._flush)
        elif self._later is None and not self._soon:
            self._later = loop.call_later(SETTLE_DELAY, self._flush)

    def _flush(self) -> None:
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        ops, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        if not ops:
            return
        err: BaseException | None = None
        try:
            self.conn.execute("BEGIN")
            for sql, params in ops:
                self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException as e:  # disk full, I/O error: reservations waiting on this commit fail
            err = e
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.on_error(e)
            # settlements are kept for the next commit; until then their reservations still count
            self._pending[:0] = [op for op in ops if op[0] is not _INSERT_RES]
        for w in waiters:
            if not w.done():
                w.set_exception(err) if err else w.set_result(None)

    async def reserve(self, r: Reservation) -> None:
        """Record a reservation; returns once it is committed."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._submit([(_INSERT_RES, tuple(getattr(r, c) for c in _RES_COLS))], urgent=True)
        await fut

    def settle(self, reservation_id: str, row: LedgerRow) -> None:
        """Replace a reservation by its ledger row, in one transaction (committed with the next reservation,
        or within SETTLE_DELAY)."""
        self._submit([(_DELETE_RES, (reservation_id,)), (_INSERT_LEDGER, _ledger_values(row))], urgent=False)

    def book(self, row: LedgerRow) -> None:
        """A ledger row with no reservation behind it (a call answered without a provider)."""
        self._submit([(_INSERT_LEDGER, _ledger_values(row))], urgent=False)

    def flush(self) -> None:
        """Commit whatever is pending now (before a read, and at shutdown)."""
        if self._pending:
            self._flush()

    def close(self) -> None:
        self.flush()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()

    # -- start-up and queries (synchronous; not on the request path) -------------------------------

    def recover(self, now: float) -> list[LedgerRow]:
        """Turn reservations left by a crashed process into ledger rows at their worst case, flagged for
        reconciliation: spend may be over-counted, never under-counted."""
        rows = []
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        for rec in c.execute(f"SELECT {', '.join(_RES_COLS)} FROM reservations").fetchall():
            r = Reservation(*rec)
            row = LedgerRow(
                id=r.id,
                ts=r.created,
                agent=r.agent,
                api=r.api,
                provider="",
                model_requested=r.model,
                model=r.model,
                status="crashed",
                stream=0,
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                cache_write_tokens=0,
                cache_write_1h_tokens=0,
                max_tokens=0,
                cost_usd=str(from_nanos(r.worst_nanos)),
                cost_nanos=r.worst_nanos,
                worst_nanos=r.worst_nanos,
                day=r.day,
                month=r.month,
                reconcile=1,
                error="gateway stopped between reserve and settle; counted at worst case until reconciled",
            )
            c.execute(_INSERT_LEDGER, _ledger_values(row))
            rows.append(row)
        c.execute("DELETE FROM reservations")
        c.execute("COMMIT")
        return rows

    def spend(self, agent: str | None, period: str, key: str) -> int:
        """Settled nano-dollars of an agent (None: the whole fleet) in a day ('day') or month ('month')."""
        lo, hi = _days(period, key)
        if agent is None:
            q = "SELECT COALESCE(SUM(cost_nanos), 0) FROM ledger WHERE day >= ? AND day < ?"
            return int(self.conn.execute(q, (lo, hi)).fetchone()[0])
        q = "SELECT COALESCE(SUM(cost_nanos), 0) FROM ledger WHERE agent = ? AND day >= ? AND day < ?"
        return int(self.conn.execute(q, (agent, lo, hi)).fetchone()[0])

    def open_reservations(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0])

    def ledger(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        model: str | None = None,
        since: float | None = None,
        until: float | None = None,
        reconcile: bool | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        where, args = ["seq > ?"], [after]
        for col, val in (("agent", agent), ("status", status), ("model", model)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts < ?")
            args.append(until)
        if reconcile is not None:
            where.append("reconcile = ?")
            args.append(int(reconcile))
        q = f"SELECT seq, {', '.join(_LEDGER_COLS)} FROM ledger WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        cur = self.conn.execute(q, (*args, limit))
        names = ["seq", *_LEDGER_COLS]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def row(self, call_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute(
            f"SELECT seq, {', '.join(_LEDGER_COLS)}, reconciled_at FROM ledger WHERE id = ?", (call_id,)
        )
        r = cur.fetchone()
        return None if r is None else dict(zip(["seq", *_LEDGER_COLS, "reconciled_at"], r, strict=True))

    def reconcile(self, call_id: str, cost_usd: str, cost_nanos: int, now: float) -> None:
        """Replace a flagged row's booked cost by the provider's bill; the first booking is kept."""
        self.flush()
        self.conn.execute(
            "UPDATE ledger SET booked_nanos = cost_nanos, cost_usd = ?, cost_nanos = ?, reconcile = 0, "
            "reconciled_at = ? WHERE id = ?",
            (cost_usd, cost_nanos, now, call_id),
        )

    def savings(self, agent: str, period: str, key: str) -> dict[str, int]:
        """What the levers saved an agent in a day or month, and how often the caches hit."""
        lo, hi = _days(period, key)
        q = (
            "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(uncached_cost_nanos), 0), "
            "COALESCE(SUM(CASE WHEN status = 'response_cache' THEN uncached_cost_nanos ELSE 0 END), 0), "
            "COALESCE(SUM(status = 'response_cache'), 0), COALESCE(SUM(cache_read_tokens > 0), 0), "
            "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), "
            "COALESCE(SUM(exposure_removed_nanos), 0), COALESCE(SUM(max_tokens_requested = 0), 0) "
            "FROM ledger WHERE agent = ? AND day >= ? AND day < ? AND status IN ('ok', 'response_cache')"
        )
        r = self.conn.execute(q, (agent, lo, hi)).fetchone()
        names = (
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
        return dict(zip(names, (int(v) for v in r), strict=True))

    def totals(self, period: str, key: str) -> dict[str, dict[str, int]]:
        """Per-agent call count, tokens and nano-dollars for a day or month."""
        lo, hi = _days(period, key)
        q = (
            "SELECT agent, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_nanos), "
            "SUM(status != 'ok') FROM ledger WHERE day >= ? AND day < ? GROUP BY agent"
        )
        return {
            a: {"calls": n, "input_tokens": i, "output_tokens": o, "cost_nanos": c, "failed": f}
            for a, n, i, o, c, f in self.conn.execute(q, (lo, hi))
        }


def _days(period: str, key: str) -> tuple[str, str]:
    """The range of `day` values of a day ('2026-11-28') or a month ('2026-11': '2026-11' ≤ day < '2026-11~')."""
    return (key, key + "~") if period == "month" else (key, key + "\x00")
