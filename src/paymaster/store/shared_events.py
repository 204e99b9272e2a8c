"""The blackboard across replicas: events stored in Postgres (global ids), announced by NOTIFY.

A replica's `Blackboard.publish` stores the event (`events` table) instead of delivering it; every
replica, the publisher included, delivers it when Postgres announces it, reading the events after the
last one it delivered, in id order. At start a replica loads the latest events into its history, so a
`Last-Event-ID` replay works on any replica and after a restart.

An event published with `once` (a budget threshold crossed, a projection: each replica decides these from its own
view of the counters) is stored only by the first replica to claim its name in Redis; webhooks are posted by the
first replica to claim the event's id (alerts.py), so a receiver gets each event once, not once per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..blackboard import Blackboard
from .shared import OUTAGES, SharedStore
from .shared_status import SharedStatus

log = logging.getLogger("paymaster")

ONCE_TTL_S = 40 * 86400  # an event published once per window (a month at most) is remembered past its window
# An id is taken when an event is inserted, so a later id can commit first: a reader that met a missing id below
# a committed one waits this long for it (re-reading every GAP_POLL_S) before going on without it (a rolled-back
# insert leaves a gap for good).
GAP_WAIT_S = 2.0
GAP_POLL_S = 0.02


class SharedEvents:
    def __init__(self, store: SharedStore, board: Blackboard) -> None:
        self.store, self.board = store, board
        self.status = SharedStatus(store, board)  # agents' status: one record in Redis (shared_status.py)
        self.last = 0
        self._gap_since: float | None = None  # when the reader first met the missing id it waits for
        self._reading: asyncio.Task[None] | None = None
        self._again = False

    async def load(self, history: int = 1000) -> None:
        self._deliver(await self.store.pg.events_after(0, history))

    def _deliver(self, events: list[tuple[int, str, str]], live: bool = False) -> bool:
        """Deliver `events` in id order; live, stop at a missing id (True) until it commits or GAP_WAIT_S passes."""
        for seq, kind, data in events:
            if seq <= self.last:
                continue
            if live and seq != self.last + 1:
                now = time.monotonic()
                self._gap_since = self._gap_since or now
                if now - self._gap_since < GAP_WAIT_S:
                    return True
            self._gap_since = None
            self.last = seq
            self.board.deliver(seq, kind, data.encode())
            if live:  # an agent's status changed on some replica: copy the shared record
                self.status.announced(kind, data)
        return False

    def announced(self, _seq: int) -> None:
        """Postgres announced an event: read everything after the last one delivered (one reader at a time)."""
        if self._reading is not None and not self._reading.done():
            self._again = True
            return
        self._reading = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            self._again = False
            gap = False
            with contextlib.suppress(*OUTAGES):
                gap = self._deliver(await self.store.pg.events_after(self.last), live=True)
            if gap:
                await asyncio.sleep(GAP_POLL_S)
            elif not self._again:
                return

    def store_event(self, ts: float, kind: str, payload: bytes, once: str | None = None) -> None:
        self.store._spawn(self._store(ts, kind, payload.decode(), once))

    async def _store(self, ts: float, kind: str, data: str, once: str | None) -> None:
        if once is not None:
            with contextlib.suppress(*OUTAGES):  # Redis down: stored anyway (a duplicate, never a lost alert)
                if not await self.store.counters.claim("event:" + once, ONCE_TTL_S):
                    return  # another replica published it first
        try:
            await self.store.pg.publish(ts, kind, data)
        except OUTAGES as e:  # the event is lost to other replicas; this one still sees it
            log.warning("event %s could not be stored (%s): delivered on this replica only", kind, e)
            self.board.deliver(self.last, kind, data.encode())


async def connect(store: SharedStore, board: Blackboard) -> SharedEvents:
    """Open the shared store and route the blackboard's events through it."""
    events = SharedEvents(store, board)
    store.on_error = lambda e: board.publish("ledger.failing", reason=store.failing)
    store.on_ok = lambda: board.publish("ledger.writable")
    store.on_recovered = lambda row: board.publish(
        "ledger.recovered", agent=row.agent, call_id=row.id, cost_usd=row.cost_usd
    )
    store.on_rebuilt = lambda n: board.publish("store.rebuilt", pending=n)
    early: list[tuple[float, str, bytes, str | None]] = []  # events of the start itself, stored once Postgres is open
    board.sink = lambda ts, kind, payload, once: early.append((ts, kind, payload, once))
    await store.open()
    await events.load()
    with contextlib.suppress(*OUTAGES):  # the statuses come with the next event or view
        await events.status.start(list(board.status))
    board.shared = events.status
    await store.pg.listen(events.announced)
    board.sink = events.store_event
    for event in early:
        events.store_event(*event)
    return events
