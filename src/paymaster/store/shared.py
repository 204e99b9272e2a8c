"""Many replicas, one budget: live counters in Redis, the ledger and reservation journal in Postgres.

One call, on any replica:

1. `admit` — the pending row goes into Postgres first (durable before anything is counted or sent),
   then one Redis script checks every window of the call and holds its worst case on all of them, or
   none. A refusal deletes the pending row again.
2. the call goes upstream.
3. `settle` — one Postgres transaction deletes the pending row and inserts the ledger row; then one
   Redis script releases the hold and adds the cost, exactly once (the reservation's record in Redis
   is the token). Settlements run as tasks, those of one event-loop turn together (one transaction,
   one pipeline): a failing store keeps them and retries every second; the pending row and the Redis
   hold keep the call counted at its worst case meanwhile.

Redis emptied or restarted (its epoch key gone, or its run_id changed): the next script answers
REBUILD and one replica (a Redis lock) rebuilds every counter from one consistent Postgres snapshot
— spent from the ledger, held from the pending rows, each pending reservation's record — and writes
the epoch last; the others wait for it. Because the pending row precedes the hold and the ledger row
precedes the release, whatever the snapshot missed is exactly what the retried script then applies.

Leases: each replica heartbeats its row in `replicas` every second. A replica whose heartbeat is older
than `lease_s` is gone: another replica books its pending reservations at their worst case (flagged
for reconciliation), releases what Redis held for it, at the ledger's cost, and forgets it.

Fail closed: when Redis or Postgres cannot be reached, admissions raise `StoreDown` (the gateway
answers 503 in the caller's shape). With `on_outage: admit_unmetered` the call is admitted instead,
unmetered and flagged; its ledger row is written when Postgres is back, and the counters rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import redis.exceptions

from ..errors import GatewayError
from . import queries
from .journal import Reservation
from .postgres import PostgresLedger
from .redis import REBUILD, RedisCounters, Window
from .row import LedgerRow

log = logging.getLogger("paymaster")
T = TypeVar("T")

RETRY_S = 1.0  # between attempts to settle while a store fails
SETTLE_BATCH = 256  # most settlements written in one transaction / one pipeline
REBUILD_WAIT_S = 10.0  # longest a call waits for another replica to rebuild the counters
BATCH_OWNER = "batch"  # the owner of queued batch jobs' holds: no replica, so no reaper books them as crashed
OUTAGES = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, redis.exceptions.RedisError)


class StoreDown(GatewayError):
    """Redis or Postgres cannot be reached: calls are refused (503, in the caller's shape) rather than
    admitted unmetered."""

    status, code = 503, "store_unavailable"


class Reader:
    """Synchronous reads (admin views, reports) on a thread of their own with one connection: the event
    loop waits for them as it waits for a SQLite read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conn: asyncpg.Connection | None = None

    def fetch(self, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
        try:
            return asyncio.run_coroutine_threadsafe(self._fetch(queries.numbered(sql), args), self._loop()).result(15)
        except (*OUTAGES, TimeoutError) as e:
            raise StoreDown(f"the ledger (Postgres) cannot be read: {e}") from e

    def transact(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work(connection)` inside one transaction, waited for like `fetch`. Never retried: a write whose
        commit an outage made uncertain raises (StoreDown) and the caller decides."""
        try:
            return asyncio.run_coroutine_threadsafe(self._transact(work), self._loop()).result(15)
        except (*OUTAGES, TimeoutError) as e:
            raise StoreDown(f"the ledger (Postgres) cannot be written: {e}") from e

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="ledger-reader", daemon=True).start()
        return self.loop

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
        for attempt in (1, 2):  # a connection an outage broke is replaced once
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(self.url, timeout=5)
            try:
                return list(await self.conn.fetch(sql, *args))
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                self.conn.terminate()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _transact(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.url, timeout=5)
        try:
            async with self.conn.transaction():
                return await work(self.conn)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            self.conn.terminate()
            self.conn = None
            raise

    def close(self) -> None:
        if self.loop is None:
            return
        loop = self.loop
        if self.conn is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.conn.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self.loop = None


class SharedStore:
    """The store the gateway talks to when `reservations:` and a Postgres `ledger:` are configured."""

    shared = True

    def __init__(self, redis_url: str, postgres_url: str, tz: ZoneInfo, lease_s: float = 10.0) -> None:
        self.replica = "r_" + secrets.token_hex(6)
        self.tz = tz
        self.lease_s = lease_s
        self.pg = PostgresLedger(postgres_url, self.replica)
        self.reader = Reader(postgres_url)
        self.counters = RedisCounters(redis_url, self.replica, tz)
        self.failing: str | None = None
        self.on_error: Callable[[BaseException], None] = lambda e: None
        self.on_ok: Callable[[], None] = lambda: None
        self.on_recovered: Callable[[LedgerRow], None] = lambda row: None  # a gone replica's call, booked
        self.on_rebuilt: Callable[[int], None] = lambda n: None
        self.settling: set[asyncio.Task[None]] = set()
        self._batch: list[LedgerRow] = []
        self._holds: list[tuple[Reservation, asyncio.Future[None]]] = []
        self._takes: list[tuple[str, Sequence[Window], int, asyncio.Future[list[int]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._rebuilding: asyncio.Lock | None = None
        self.rebuilds = 0

    # -- life ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate, make sure the counters exist, and start heartbeats (leases, reaping)."""
        try:
            await self.pg.open()
            await self.counters.restarted()  # remember the Redis server's run_id
            if await self.counters.epoch() is None:
                await self.rebuild()
            await self.reap()
        except OUTAGES as e:
            await self.pg.close()
            await self.counters.close()
            raise StoreDown(f"the shared store cannot be reached: {e}") from e
        self._tasks.append(asyncio.create_task(self._beat()))

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._flush_batch()
        if self.settling:
            await asyncio.wait(self.settling, timeout=10)
        with contextlib.suppress(*OUTAGES):
            await self.pg.forget(self.replica)  # a clean stop leaves nothing to reap
        await self.pg.close()
        await self.counters.close()
        self.reader.close()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.lease_s / 3))
            try:
                await self.pg.heartbeat()
                if await self.counters.restarted():
                    log.warning("redis restarted: rebuilding the counters from the ledger")
                    await self.counters.drop_epoch()
                await self.reap()
                self._ok()
            except OUTAGES as e:
                self._failed(e)
            except StoreDown as e:
                self._failed(e)

    def _failed(self, e: BaseException) -> None:
        first = self.failing is None
        self.failing = f"the shared store fails: {e}"
        if first:
            log.error("%s; new calls are refused until it answers", self.failing)
            self.on_error(e)

    def _ok(self) -> None:
        if self.failing is not None:
            self.failing = None
            log.warning("the shared store answers again")
            self.on_ok()

    # -- admit -----------------------------------------------------------------------------------

    async def hold(self, r: Reservation) -> None:
        """The pending row, durable when this returns. The rows of one event-loop turn are written together
        (one pipelined statement): no call waits for a timer, and a busy replica writes far fewer batches."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._holds.append((r, done))
        if len(self._holds) == 1:
            loop.call_soon(self._write_holds)
        await done

    def _write_holds(self) -> None:
        batch, self._holds = self._holds, []
        if batch:
            self._spawn(self._hold_many(batch))

    async def _hold_many(self, batch: list[tuple[Reservation, asyncio.Future[None]]]) -> None:
        try:
            await self.pg.hold_many([r for r, _ in batch])
        except OUTAGES as e:
            self._failed(e)
            for _, done in batch:
                if not done.done():
                    done.set_exception(StoreDown(f"the reservation journal (Postgres) cannot be written: {e}"))
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def take(self, reservation_id: str, windows: Sequence[Window], worst: int) -> list[int]:
        """[1 held | 0 refused, spent₁, held₁, …]; rebuilds the counters first when Redis lost them. The
        reservations of one event-loop turn go to Redis in one pipeline (each still one atomic script)."""
        loop = asyncio.get_running_loop()
        for _ in range(3):
            done: asyncio.Future[list[int]] = loop.create_future()
            self._takes.append((reservation_id, windows, worst, done))
            if len(self._takes) == 1:
                loop.call_soon(self._send_takes)
            out = await done
            if out[0] != REBUILD:
                return out
            await self.rebuild()
        raise StoreDown("the budget counters keep disappearing (Redis emptied again during a rebuild)")

    def _send_takes(self) -> None:
        batch, self._takes = self._takes, []
        if batch:
            self._spawn(self._take_many(batch))

    async def _take_many(self, batch: list[tuple[str, Sequence[Window], int, asyncio.Future[list[int]]]]) -> None:
        try:
            answers = await self.counters.reserve_many([(rid, ws, worst) for rid, ws, worst, _ in batch])
        except OUTAGES as e:
            self._failed(e)
            for *_, done in batch:
                if not done.done():
                    done.set_exception(StoreDown(f"the budget counters (Redis) cannot be reached: {e}"))
            return
        for (*_, done), out in zip(batch, answers, strict=True):
            if not done.done():
                done.set_result(out)

    def drop(self, reservation_id: str) -> None:
        """A reservation refused (nothing held, nothing sent): its pending row goes, then whatever a rebuild
        that read the row in the meantime held for it in Redis."""
        self.drop_many([reservation_id])

    def drop_many(self, reservation_ids: Sequence[str]) -> None:
        """`drop` for many reservations (a batch that will not be queued): one statement, one pipeline,
        retried in the background until both stores answer."""
        self._spawn(self._drop(list(reservation_ids)))

    async def _drop(self, reservation_ids: list[str]) -> None:
        await self._retry(lambda: self.pg.drop(reservation_ids))
        await self._retry(lambda: self._release_many([(i, 0) for i in reservation_ids]))

    # -- settle ----------------------------------------------------------------------------------

    def reserve(self, r: Reservation) -> None:
        """Nothing to do: the pending row was written at admission (`hold`)."""

    def settle(self, reservation_id: str, row: LedgerRow) -> None:
        """Queue a settlement: the settlements queued in one turn of the event loop (up to SETTLE_BATCH)
        are written in one Postgres transaction and released in one Redis pipeline."""
        self._batch.append(row)
        if len(self._batch) >= SETTLE_BATCH:
            self._flush_batch()
        elif len(self._batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush_batch)

    def _flush_batch(self) -> None:
        rows, self._batch = self._batch, []
        if rows:
            self._spawn(self._settle_many(rows))

    def book(self, row: LedgerRow) -> None:
        """A row with no reservation behind it (a response-cache answer, an unmetered call)."""
        self._spawn(self._book(row))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.settling.add(task)
        task.add_done_callback(self.settling.discard)

    async def _settle_many(self, rows: list[LedgerRow]) -> None:
        while True:
            try:
                booked = await self.pg.settle_many(rows)  # rows a reaper booked first: their cost counts
                break
            except OUTAGES as e:
                self._failed(e)
                await asyncio.sleep(RETRY_S)
        costs = [(row.id, booked.get(row.id, row.cost_nanos)) for row in rows]
        await self._retry(lambda: self._release_many(costs))

    async def _book(self, row: LedgerRow) -> None:
        await self._retry(lambda: self.pg.book(row))
        if row.cost_nanos and "unmetered" in row.error:  # admitted during an outage: count it now
            await self._retry(self._recount)

    async def _release_many(self, costs: list[tuple[str, int]]) -> None:
        while costs:
            answers = await self.counters.settle_many(costs)
            costs = [c for c, a in zip(costs, answers, strict=True) if a == REBUILD]
            if costs:
                await self.rebuild()

    def release(self, reservation_id: str, cost: int) -> None:
        """Release a hold whose ledger row the caller already wrote (with its pending row deleted, in one
        transaction): retried until Redis answers; the reservation's record makes it happen once."""
        self._spawn(self._retry(lambda: self._release(reservation_id, cost)))

    def adopt(self, reservation_ids: Sequence[str], owner: str) -> None:
        """Redis's side of handing reservations to another owner, after their pending rows were moved to it:
        retried until Redis answers (meanwhile a reaper of this replica moves them the same way)."""
        self._spawn(self._retry(lambda: self.counters.adopt(reservation_ids, owner)))

    async def sweep(self, owner: str) -> None:
        """Release the holds Redis keeps for `owner`'s reservations whose pending rows are gone (booked: at
        the ledger's cost), e.g. after a replica stopped between a settlement's ledger row and its release."""
        owned = await self.counters.owned(owner)
        if not owned:
            return
        still = await self.pg.pending_owners(owned)
        done = [rid for rid in owned if rid not in still]
        costs = await self.pg.costs(done)
        for rid in done:
            await self._release(rid, costs.get(rid, 0))

    async def _release(self, reservation_id: str, cost: int) -> None:
        while await self.counters.settle(reservation_id, cost) == REBUILD:
            await self.rebuild()

    async def _recount(self) -> None:
        await self.counters.drop_epoch()
        await self.rebuild()

    async def _retry(self, step: Callable[[], Any]) -> None:
        while True:
            try:
                await step()
                return
            except (*OUTAGES, StoreDown) as e:
                self._failed(e)
                await asyncio.sleep(RETRY_S)

    # -- rebuild, reap ---------------------------------------------------------------------------

    async def rebuild(self) -> None:
        """Counters from the ledger and the pending reservations, by one replica; the others wait."""
        if self._rebuilding is None:
            self._rebuilding = asyncio.Lock()
        async with self._rebuilding:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + REBUILD_WAIT_S
            token = secrets.token_hex(8)
            while await self.counters.epoch() is None:
                if await self.counters.try_rebuild_lock(token, REBUILD_WAIT_S):
                    if await self.counters.epoch() is not None:  # another replica finished just before the lock
                        await self.counters.unlock(token)
                        return
                    spent, pending = await self.pg.snapshot(_month_before(datetime.now(self.tz).date()))
                    if not await self.counters.install(spent, pending, token):
                        await self.counters.unlock(token)
                        return
                    self.rebuilds += 1
                    log.warning("budget counters rebuilt from the ledger (%d pending reservations)", len(pending))
                    self.on_rebuilt(len(pending))
                    return
                if loop.time() > deadline:
                    raise StoreDown("the budget counters are being rebuilt by another replica; retry shortly")
                await asyncio.sleep(0.02)

    async def reap(self) -> None:
        """Book the pending reservations of replicas whose lease ran out, and release their holds."""
        for gone in await self.pg.gone(self.lease_s):
            crashed = await self.pg.book_crashed(gone)
            owned = await self.counters.owned(gone)
            moved = await self.pg.pending_owners(owned)  # handed to another owner (the batch queue) meanwhile
            for owner in set(moved.values()):
                await self.counters.adopt([rid for rid, o in moved.items() if o == owner], owner)
            costs = await self.pg.costs(owned)
            for rid in owned:
                if rid not in moved:
                    await self._release(rid, costs.get(rid, 0))  # no ledger row: it was never sent
            await self.counters.forget_owner(gone)
            await self.pg.forget(gone)
            if crashed:
                log.warning("replica %s is gone: %d calls in flight booked at their worst case", gone, len(crashed))
            for row in crashed:
                self.on_recovered(row)

    # -- what the gateway asks of every store ------------------------------------------------------

    def flush(self) -> None:
        """Settlements are tasks; nothing is batched here."""

    def close(self) -> None:
        """The reader's connection; the rest is `aclose` (the gateway awaits it at shutdown)."""
        self.reader.close()

    def unsettled_on_disk(self) -> int:
        """Reservations pending in Postgres: calls in flight on some replica, or left by one that stopped."""
        return int(self.reader.fetch("SELECT count(*) FROM pending", [])[0][0])

    def open_reservations(self) -> int:
        return len(self.settling) + len(self._batch)

    def spend(self, agent: str | None, period: str, value: str) -> int:
        """Settled spend from the ledger (a replica's first view of a window; Redis's figures replace it at its
        first reservation there, and the cap is only ever checked in Redis). Zero while Postgres is down."""
        try:
            return int(self.reader.fetch(*queries.spend(agent, period, value))[0][0])
        except StoreDown:
            return 0

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query written once for SQLite and Postgres (`?` placeholders; see `queries`)."""
        return [tuple(r) for r in self.reader.fetch(sql, args)]

    def ledger(self, **filters: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.reader.fetch(*queries.ledger(**filters))]

    def row(self, call_id: str) -> dict[str, Any] | None:
        rows = self.reader.fetch(queries.ROW, [call_id])
        return dict(rows[0]) if rows else None

    def savings(self, agent: str, period: str, key: str) -> dict[str, int]:
        r = self.reader.fetch(*queries.savings(agent, period, key))[0]
        return dict(zip(queries.SAVINGS_NAMES, (int(v) for v in r), strict=True))

    def totals(self, period: str, key: str) -> dict[str, dict[str, int]]:
        return queries.totals_dict(tuple(r) for r in self.reader.fetch(*queries.totals(period, key)))

    def reconcile(self, call_id: str, cost_usd: str, cost_nanos: int, now: float) -> None:
        """Replace a flagged row's cost by the provider's bill, then recount every replica's counters from the
        ledger (a rebuild: exact whichever way the cost moved, and reconciles are rare)."""
        self.reader.fetch(queries.RECONCILE, [cost_usd, cost_nanos, now, call_id])
        self._spawn(self._retry(self._recount))


def _month_before(d: date) -> str:
    """The first day of the month before `d`: the rebuild covers every window a pending call can be in."""
    return date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1).isoformat()
