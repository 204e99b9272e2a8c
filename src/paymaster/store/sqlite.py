"""The ledger in SQLite (the embedded default), and the journal beside it.

A reservation is made durable by the journal (`store/journal.py`: one append per call) before the
call goes upstream. When the call settles, its ledger row is appended to the journal too, then
group-committed: queued and committed with the others within `SETTLE_DELAY` seconds (or at once,
before anything reads the ledger). Only after its row is committed is the call marked done in the
journal, so a process that dies in between leaves it behind, and the next start books it from the
journal: at its journaled row (its actual cost) when it had settled, at its worst case when it was
truly in flight — over-counted, never under.

One writer per ledger (`store/lock.py`): `recover`, the start of a gateway, takes the ledger's lock.

A commit that fails (disk full, I/O error, a read-only file) keeps its rows and is retried every
`RETRY_S` seconds; meanwhile the store is `failing` and refuses new reservations (the gateway answers
503 and `/healthz` says why), and `on_error` / `on_ok` tell the gateway when that starts and ends.

WAL with `synchronous=NORMAL` survives a killed process; `durability: power` selects
`synchronous=FULL` and an fdatasync per reservation, which also survive power loss. WAL
checkpoints (the only fsyncs in NORMAL mode) run in a background thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..fleet.tables import SQLITE_MIGRATION
from ..pricing import from_nanos
from . import queries
from .errors import JournalCorrupt, LedgerFailing, LedgerUnavailable, cannot_write
from .journal import Journal, Reservation, Scan, row_values
from .lock import LedgerLock
from .row import LedgerRow

log = logging.getLogger("paymaster")

SETTLE_DELAY = 0.05  # seconds a settlement may wait to be committed with others
RETRY_S = 1.0  # seconds between attempts to commit while commits fail
BUSY_MS = 200  # longest the event loop waits for SQLite's write lock (only another process writing the file holds it)
CHECKPOINT_EVERY = 1.0  # seconds between background WAL checkpoints

SCHEMA_MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_ledger",
        """
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
            booked_nanos INTEGER,
            route TEXT NOT NULL DEFAULT '',
            baseline_cost_nanos INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX ledger_agent_day ON ledger (agent, day);
        CREATE INDEX ledger_day ON ledger (day);
        """,
    ),
    (
        "002_ledger_savings",
        """
        ALTER TABLE ledger ADD COLUMN savings TEXT NOT NULL DEFAULT '{}'
        """,
    ),
]
SCHEMA_MIGRATIONS.append(
    (
        "002_events",
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL, "
        "data TEXT NOT NULL)",
    )
)  # the blackboard's events: ids that survive restarts, replayed after `Last-Event-ID`
SCHEMA_MIGRATIONS.append(SQLITE_MIGRATION)  # fleet state: agents and keys changed at run time (fleet/tables.py)
# Every ledger insert writes one page per b-tree it touches into the WAL, so indexes are few: (agent,
# day) and (day) serve the per-agent and fleet sums, months included (a month is a range of days).


_LEDGER_COLS = queries.LEDGER_COLS
_INSERT_LEDGER = f"INSERT INTO ledger ({', '.join(_LEDGER_COLS)}) VALUES ({', '.join('?' * len(_LEDGER_COLS))})"


_ledger_values = row_values  # the columns are LedgerRow's fields in order, as in a journal settlement line


class SQLiteStore:
    def __init__(self, path: str, durability: str = "process") -> None:
        self.path = path
        self.lock: LedgerLock | None = None
        self.failing: str | None = None  # why ledger commits fail, while they do
        self.on_error: Callable[[BaseException], None] = lambda e: None  # commits started failing
        self.on_ok: Callable[[], None] = lambda: None  # … and succeed again
        self._pending: list[tuple[Any, ...]] = []  # ledger rows to insert
        self._done: list[str] = []  # calls whose ledger rows are in _pending
        self._later: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'power' else 'NORMAL'}")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (sqlite3.Error, OSError) as e:
            if hasattr(self, "conn"):
                self.conn.close()
            raise LedgerUnavailable(cannot_write(path, e)) from None
        self.journal = Journal(path if path != ":memory:" else tempfile.mkdtemp() + "/ledger", durability == "power")
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

    def _submit(self, values: tuple[Any, ...]) -> None:
        self._pending.append(values)
        if self._later is None:
            self._later = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._flush)

    def _flush(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        rows, self._pending = self._pending, []
        done, self._done = self._done, []
        if not rows:
            return
        try:
            self.conn.execute("BEGIN")
            self.conn.executemany(_INSERT_LEDGER, rows)
            self.conn.execute("COMMIT")
        except Exception as e:  # disk full, I/O error, read-only, a row it refuses: keep the rows, retry
            self._pending[:0] = rows
            self._done[:0] = done
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            self._failed(e)
            return
        for rid in done:
            self.journal.done(rid)
        if self.failing is not None:
            self.failing = None
            log.warning("ledger %s: commits succeed again", self.path)
            self.on_ok()

    def _failed(self, e: BaseException) -> None:
        first = self.failing is None
        self.failing = f"ledger commits fail: {e}"
        try:
            self._later = asyncio.get_running_loop().call_later(RETRY_S, self._flush)
        except RuntimeError:  # no event loop (shutting down): the journal keeps the rows for the next start
            pass
        if first:
            log.error("ledger %s: %s; new calls are refused until a commit succeeds", self.path, self.failing)
            self.on_error(e)

    def reserve(self, r: Reservation) -> None:
        """Make a reservation durable (one journal append) before its call is sent. Raises OSError (nothing
        written) when it cannot be, or while ledger commits fail."""
        if self.failing is not None:
            raise LedgerFailing(f"{self.failing}; calls are refused until it can be written")
        self.journal.append(r)

    def settle(self, reservation_id: str, row: LedgerRow) -> None:
        """Book a reservation's ledger row (`row.id` is the reservation's id): journaled now, committed with
        the next group; the journal lets go of the call once the row is committed."""
        self.book(row)

    def book(self, row: LedgerRow) -> None:
        """Book a ledger row (also one with no reservation behind it: a call answered without a provider)."""
        values = _ledger_values(row)
        try:
            self.journal.settled(row, values)
        except OSError as e:  # the reservation stays in the journal: a crash now books the worst case
            log.warning("call %s: its settlement could not be journaled (%s)", row.id, e)
        self._done.append(row.id)
        self._submit(values)

    def flush(self) -> None:
        """Commit whatever is pending now (before a read, and at shutdown)."""
        if self._pending:
            self._flush()

    def close(self) -> None:
        """Commit what is pending, stop, and let go of the ledger (its lock); a second call does nothing."""
        if self._stop.is_set():
            return
        self.flush()
        if self._later is not None:  # still failing: what is pending stays in the journal
            self._later.cancel()
            self._later = None
        self.journal.close()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        self.conn.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- start-up and queries (synchronous; not on the request path) -------------------------------

    def recover(self, now: float) -> list[LedgerRow]:
        """Start writing the ledger: take its lock (one writer), book what a stopped process left in the
        journal and had not committed — a settled call at its journaled row, a call in flight at its worst
        case flagged for reconciliation — then start a fresh journal. Returns the rows booked.

        Raises `LedgerLocked` when another gateway holds the ledger, `JournalCorrupt` (naming the file and
        line) when a journal line cannot be read, `LedgerUnavailable` when the files cannot be written."""
        if self.path != ":memory:":
            self.lock = LedgerLock(self.path).take()
        scan = self.journal.scan()
        if scan.bad:
            b = scan.bad[0]
            more = f" (and {len(scan.bad) - 1} more)" if len(scan.bad) > 1 else ""
            raise JournalCorrupt(
                f"journal {b.where()}{more} is not a journal entry, so the call it records cannot be booked; "
                "see and repair it with `paymaster ledger check --config <fleet.yaml> --repair` "
                "(the line is kept aside, not dropped)"
            )
        try:
            rows = self.unbooked(scan)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(_INSERT_LEDGER, [_ledger_values(row) for row in rows])
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            self.conn.execute(f"PRAGMA user_version={version}")  # a write: a read-only ledger stops the start here
            self.conn.execute("COMMIT")
            for path, n, data in scan.torn:
                self.journal.put_aside(path, n, data, "torn last line (never acknowledged: its call was not sent)")
                log.warning(
                    "journal %s line %d: torn last line of %d bytes dropped (never acknowledged, so its call "
                    "was not sent); kept in %s",
                    path,
                    n,
                    len(data),
                    self.journal.rejected,
                )
            self.journal.start()
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")  # from here on, on the event loop
        except (sqlite3.Error, OSError) as e:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise LedgerUnavailable(cannot_write(self.path, e)) from None
        return rows

    def unbooked(self, scan: Scan) -> list[LedgerRow]:
        """The ledger rows the journal holds that the ledger does not: settled calls at their rows, calls
        with no settlement at their worst case (flagged for reconciliation)."""
        ids = list(scan.reservations.keys() | scan.settled.keys())
        booked: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT id FROM ledger WHERE id IN ({', '.join('?' * len(chunk))})"
            booked.update(r[0] for r in self.conn.execute(q, chunk))
        rows = [row for rid, row in scan.settled.items() if rid not in booked]
        rows += [_crashed(r) for rid, r in scan.reservations.items() if rid not in booked and rid not in scan.settled]
        return rows

    def spend(self, agent: str | None, period: str, key: str) -> int:
        """Settled nano-dollars of an agent (None: the whole fleet) in a day ('day') or month ('month')."""
        return int(self.conn.execute(*queries.spend(agent, period, key)).fetchone()[0])

    def add_event(self, ts: float, kind: str, data: bytes) -> int:
        """Store a blackboard event (its own small transaction: events are rare); returns its id."""
        cur = self.conn.execute("INSERT INTO events (ts, kind, data) VALUES (?, ?, ?)", (ts, kind, data.decode()))
        return int(cur.lastrowid or 0)

    def events_after(self, after: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        """The latest `limit` events after id `after`, oldest first."""
        q = "SELECT id, kind, data FROM (SELECT * FROM events WHERE id > ? ORDER BY id DESC LIMIT ?) ORDER BY id"
        return [(int(i), k, d) for i, k, d in self.conn.execute(q, (after, limit))]

    def open_reservations(self) -> int:
        """Reservations in this process's journal whose ledger rows are not committed yet."""
        return self.journal.open_count()

    def unsettled_on_disk(self) -> int:
        """Calls in the journal on disk with neither a settlement nor a ledger row (another process may be
        running, or one stopped mid-call)."""
        return sum(1 for row in self.unbooked(self.journal.scan()) if row.status == "crashed")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query written once for SQLite and Postgres (`?` placeholders; see `queries`)."""
        return [tuple(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]

    def ledger(self, **filters: Any) -> list[dict[str, Any]]:
        """Ledger rows in `seq` order, filtered (`queries.ledger`)."""
        cur = self.conn.execute(*queries.ledger(**filters))
        names = ["seq", *_LEDGER_COLS]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def row(self, call_id: str) -> dict[str, Any] | None:
        r = self.conn.execute(queries.ROW, (call_id,)).fetchone()
        return None if r is None else dict(zip(queries.ROW_NAMES, r, strict=True))

    def reconcile(self, call_id: str, cost_usd: str, cost_nanos: int, now: float) -> None:
        """Replace a flagged row's booked cost by the provider's bill; the first booking is kept."""
        self.flush()
        self.conn.execute(queries.RECONCILE, (cost_usd, cost_nanos, now, call_id))

    def savings(self, agent: str, period: str, key: str) -> dict[str, int]:
        """What the levers saved an agent in a day or month, and how often the caches hit."""
        r = self.conn.execute(*queries.savings(agent, period, key)).fetchone()
        return dict(zip(queries.SAVINGS_NAMES, (int(v) for v in r), strict=True))

    def totals(self, period: str, key: str) -> dict[str, dict[str, int]]:
        """Per-agent call count, tokens and nano-dollars for a day or month."""
        return queries.totals_dict(self.conn.execute(*queries.totals(period, key)))


def _crashed(r: Reservation) -> LedgerRow:
    return LedgerRow(
        id=r.id,
        ts=r.created,
        agent=r.agent,
        api=r.api,
        provider="",
        model_requested=r.model,
        model=r.model,
        status="crashed",
        cost_usd=str(from_nanos(r.worst_nanos)),
        cost_nanos=r.worst_nanos,
        worst_nanos=r.worst_nanos,
        day=r.day,
        month=r.month,
        reconcile=1,
        error="the gateway stopped between reserve and settle; booked at its worst case until reconciled",
    )
