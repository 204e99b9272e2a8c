"""Routing's learnt state shared by replicas on a Postgres ledger: every replica's bandit counts add up, feedback
given to any replica trains every replica's bandit, and a replica that starts loads what the fleet learnt.

    sync = RoutingSync(bandit, shares, mirror)
    await sync.start(pool, replica, every)       # the fleet's state loaded; then push + pull every `every` s
    previous = await sync.rate(call_id, ts, key, tier, score)   # feedback: one transaction, exact across replicas
    await sync.refresh()                         # push + pull now (the admin view: the fleet's figures)
    await sync.stop()                            # the last counts and windows written

Tables (store/postgres.py, migration `004_routing`):

    routing_bandit    per agent/task key: calls, explored calls
    routing_arms      per key and tier: success, failure, picks
    routing_feedback  per rated call: its latest score (a re-rating takes the old one back, in the same transaction)
                      and the call's time; deleted once the call is older than `routing.feedback_keep_days`
                      (migration `006_routing_feedback_age`)
    routing_windows   per key and replica: that replica's recent classifier scores (routing_share.py)

Counts are added, never overwritten (`calls = routing_bandit.calls + excluded.calls`): two replicas adding at
once both count. Each row is stamped with the id of the transaction that last wrote it; a pull reads, in one
snapshot, the rows stamped at or after the oldest transaction still running at its previous pull
(`pg_snapshot_xmin`), so no commit is missed whatever order transactions finish in, and a quiet fleet reads
nothing.

No round trip on the call path: a call's choice reads this replica's memory; the counts it adds are kept apart
(`Bandit.deltas`), pushed by the next sync, which then pulls what every replica added. So what a replica sees
of the others is at most `admin.poll_s` (0.25 s by default) plus a round trip old. A rating is written to
Postgres before its answer, and counts on the replica that took it at once, on the others from their next pull.
Ratings on one replica wait for its sync and for each other (one round trip each, a few hundred a second).

Share windows stay per replica — each holds the window of the traffic it sees — and each replica's window is
stored every `WINDOWS_EVERY` syncs and at stop; a replica starting loads the merge of the stored windows,
bounded to `routing.share_window` (`merge_windows`). When it stores its own window of a key, the stored windows
it merged that belong to replicas now gone are deleted (its own holds them), so a key keeps about one stored
window per replica running. A crash loses at most those seconds of scores and one interval of counts: the
router is a little less warm, nobody's spend changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

import asyncpg

from .routing_bandit import Bandit, Record, rating
from .routing_share import KIND as SHARE
from .routing_share import ShareKeeper
from .routing_state import Mirror

__all__ = ["WINDOWS_EVERY", "RoutingSync", "merge_windows"]

log = logging.getLogger("paymaster")

WINDOWS_EVERY = 20  # syncs between writes of the share windows (every 5 s at admin.poll_s = 0.25 s)
STOP_S = 5.0  # longest the last write at stop may take
FAILURES = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_ADD_CALLS = (
    "INSERT INTO routing_bandit (key, calls, explored) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
    " ON CONFLICT (key) DO UPDATE SET calls = routing_bandit.calls + excluded.calls,"
    " explored = routing_bandit.explored + excluded.explored, version = pg_current_xact_id()"
)
_ADD_ARMS = (
    "INSERT INTO routing_arms (key, tier, success, failure, picks)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::bigint[])"
    " ON CONFLICT (key, tier) DO UPDATE SET success = GREATEST(0, routing_arms.success + excluded.success),"
    " failure = GREATEST(0, routing_arms.failure + excluded.failure), picks = routing_arms.picks + excluded.picks,"
    " version = pg_current_xact_id()"
)
_SAVE_WINDOW = (
    "INSERT INTO routing_windows (key, replica, scores) VALUES ($1, $2, $3) ON CONFLICT (key, replica)"
    " DO UPDATE SET scores = excluded.scores, saved = now()"
)
# stored windows this replica's own now holds the merge of (it loaded them at start), of replicas that are gone
_PRUNE_WINDOWS = (
    "DELETE FROM routing_windows WHERE key = $1 AND replica = ANY($2::text[]) AND replica <> $3"
    " AND replica NOT IN (SELECT id FROM replicas)"
)


class RoutingSync:
    def __init__(self, bandit: Bandit, shares: ShareKeeper, mirror: Mirror) -> None:
        self.bandit = bandit
        self.shares = shares
        self.mirror = mirror
        self.pool: asyncpg.Pool | None = None
        self.replica = ""
        self.seen = 0  # the pull reads rows written by transactions from this id on
        self.failing = False
        self.merged: dict[str, list[str]] = {}  # key -> the replicas whose stored windows this one loaded
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        bandit.deltas = {}

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "RoutingSync.start() first"
        return self.pool

    async def start(self, pool: asyncpg.Pool, replica: str, every: float) -> None:
        """Load the fleet's bandit counts and the merged share windows, then sync every `every` seconds. A store
        that fails here leaves the router cold until the first sync that succeeds (calls are routed meanwhile)."""
        self.pool, self.replica = pool, replica
        try:
            await self.refresh()
            await self._load_windows()
        except FAILURES as e:
            self._failed(e)
        self._task = asyncio.get_running_loop().create_task(self._run(every))

    async def stop(self) -> None:
        if self._task is not None:
            async with self._lock:  # not in the middle of a push: its counts would be pushed twice
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.pool is None:
            return
        self.shares.flush()
        try:
            await asyncio.wait_for(self._sync(windows=True), STOP_S)
        except (*FAILURES, TimeoutError) as e:
            log.warning("routing's learnt state could not be written at stop (%s): the last counts are lost", e)

    async def refresh(self, timeout: float | None = None) -> None:
        """Push what this replica added, pull what every replica added. With `timeout`, a sync that takes longer
        goes on in the background (TimeoutError): never cancelled halfway, which could push its counts twice."""
        if timeout is None:
            await self._sync(windows=False)
            return
        task = asyncio.get_running_loop().create_task(self._sync(windows=False))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.add_done_callback(_quiet)
            raise TimeoutError(f"no answer from Postgres within {timeout:g} s")
        task.result()

    async def rate(self, call_id: str, ts: float, key: str, tier: str, score: float) -> float | None:
        """Record a rating of `call_id` (made at `ts`, run on `tier` for `key`); its earlier score, taken back, or
        None."""
        async with self._lock, self.db.acquire() as c:
            async with c.transaction():
                # the row first, then its lock: two first ratings of one call at once are counted one after the other
                q = "INSERT INTO routing_feedback (call_id, call_ts) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                await c.execute(q, call_id, ts)
                q = "SELECT score FROM routing_feedback WHERE call_id = $1 FOR UPDATE"
                previous: float | None = await c.fetchval(q, call_id)
                await c.execute("UPDATE routing_feedback SET score = $2 WHERE call_id = $1", call_id, score)
                success, failure = rating(score, previous)
                await c.execute(_ADD_ARMS, [key], [tier], [success], [failure], [0])
            self.bandit.add(key, tier, success, failure)
        return previous

    async def prune(self, before: float) -> None:
        """Delete the ratings of calls made before `before` (they can no longer be rated again)."""
        await self.db.execute("DELETE FROM routing_feedback WHERE call_ts < $1", before)

    # -- the background ---------------------------------------------------------------------------

    async def _run(self, every: float) -> None:
        n = 0
        while True:
            await asyncio.sleep(every)
            n += 1
            try:
                await self._sync(windows=n % WINDOWS_EVERY == 0)
            except FAILURES as e:
                self._failed(e)

    def _failed(self, e: BaseException) -> None:
        if not self.failing:
            log.warning("routing's learnt state cannot be shared (%s): kept on this replica until Postgres answers", e)
        self.failing = True

    async def _sync(self, windows: bool) -> None:
        async with self._lock:
            taken = self.bandit.take()
            try:
                if taken:
                    await self._push(taken)
            except BaseException:
                self.bandit.restore(taken)
                raise
            await self._pull()
            if windows:
                await self._save_windows()
        if self.failing:
            self.failing = False
            log.warning("routing's learnt state is shared again")

    async def _push(self, taken: dict[str, Record]) -> None:
        # rows in one order on every replica: two pushes at once wait for each other instead of deadlocking
        keys = sorted(k for k, r in taken.items() if r.calls or r.explored)
        arms = sorted(((k, t, a) for k, r in taken.items() for t, a in r.arms.items()), key=lambda x: x[:2])
        async with self.db.acquire() as c, c.transaction():
            if keys:
                await c.execute(_ADD_CALLS, keys, [taken[k].calls for k in keys], [taken[k].explored for k in keys])
            if arms:
                await c.execute(
                    _ADD_ARMS, *zip(*((k, t, a.success, a.failure, a.picks) for k, t, a in arms), strict=True)
                )

    async def _pull(self) -> None:
        async with self.db.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            xmin = await c.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
            calls = await c.fetch("SELECT key, calls, explored FROM routing_bandit WHERE version >= $1", self.seen)
            q = "SELECT key, tier, success, failure, picks FROM routing_arms WHERE version >= $1"
            arms = await c.fetch(q, self.seen)
        self.bandit.merge(
            {r["key"]: (r["calls"], r["explored"]) for r in calls},
            {(r["key"], r["tier"]): (r["success"], r["failure"], r["picks"]) for r in arms},
        )
        self.seen = int(xmin)

    async def _save_windows(self) -> None:
        dirty = sorted(k for kind, k in self.mirror.dirty if kind == SHARE)
        if not dirty:
            return
        self.mirror.dirty.difference_update((SHARE, k) for k in dirty)
        try:
            async with self.db.acquire() as c, c.transaction():
                rows = [(k, self.replica, [float(x) for x in self.mirror.values[(SHARE, k)]]) for k in dirty]
                await c.executemany(_SAVE_WINDOW, rows)
                pruned = [(k, self.merged[k], self.replica) for k in dirty if k in self.merged]
                await c.executemany(_PRUNE_WINDOWS, pruned)
        except BaseException:
            self.mirror.dirty.update((SHARE, k) for k in dirty)
            raise
        for k, _, _ in pruned:
            del self.merged[k]

    async def _load_windows(self) -> None:
        rows = await self.db.fetch("SELECT key, replica, scores FROM routing_windows ORDER BY key, saved, replica")
        stored: dict[str, list[list[float]]] = {}
        for r in rows:
            stored.setdefault(r["key"], []).append(list(r["scores"]))
            self.merged.setdefault(r["key"], []).append(r["replica"])
        for key, windows in stored.items():
            if (SHARE, key) not in self.mirror.values:  # not replaced: a window this replica already holds
                self.mirror.values[(SHARE, key)] = merge_windows(windows, self.shares.window)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("a routing sync that timed out failed: %s", task.exception())


def merge_windows(windows: list[list[float]], size: int) -> list[float]:
    """One window of at most `size` scores from several replicas' (each oldest score first, the windows in the
    order they were stored): all of them when they fit, else the latest scores of each in proportion to its
    size, so the merge keeps the mix of traffic the replicas saw."""
    total = sum(len(w) for w in windows)
    if total <= size:
        return [x for w in windows for x in w]
    out: list[Any] = []
    for w in windows:
        take = math.ceil(size * len(w) / total)
        out.extend(w[-take:])
    return out[-size:]
