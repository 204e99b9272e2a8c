"""The batch queue of replicas, in the shared Postgres (tables: migration `005_batch` in store/postgres.py): the
SQLite queue's tables and methods (queue.py), and what several replicas sharing one queue need.

    durable   a job's row and the handover of its hold are one transaction (an agent's batch: `accept`, one COPY
              on the event loop's pool, after batch/holds.py held it whole): the job is written, and the pending
              reservation its admission wrote (owned by the admitting replica) passes to the owner `batch`, which
              no replica's reaper books as crashed. The hold stays in Redis and in `pending` while the job is
              open — across restarts and the death of the replica that admitted it — and a rebuild of the
              counters holds it again from `pending`.
    one lead  one `batch_leader` row with an expiry: the replica holding it sends queued jobs and polls provider
              batches, renewing it every tick; another takes it once it has expired. A claim is made only while
              the lease is held (checked in the claiming statement itself).
    settle    the job marked (only from the state it was read in), its pending row deleted and its ledger row
              inserted, in one transaction: a job is settled once even when two replicas race. The Redis hold
              is released after (`SharedStore.release`; the reservation's record is the token) and, should the
              replica stop in between, by the leader's sweep at the ledger's cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..store.postgres import LEDGER_INSERT, ledger_values
from ..store.queries import numbered
from ..store.row import LedgerRow
from ..store.shared import BATCH_OWNER, Reader, StoreDown
from .holds import paced
from .queue import CLAIM, COLS, INSERT_JOB, INSERT_SUBMISSION, SUBMITTED, Job, Queue

Settlement = tuple[Job, LedgerRow, str, str]  # the job (its outcome set), its ledger row, the status and
# submission it was read with: it is settled only if it still has them


class PgQueue(Queue):
    def __init__(self, url: str, replica: str, lease_s: float) -> None:  # its own connection; no SQLite file
        self.db = Reader(url)
        self.replica = replica
        self.lease_s = lease_s

    def close(self) -> None:
        """Give up the lease (another replica takes over at its next tick, not after the lease) and disconnect."""
        with contextlib.suppress(StoreDown):
            self.write("DELETE FROM batch_leader WHERE owner = ?", (self.replica,))
        self.db.close()

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.db.fetch(sql, list(args))]

    def write(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.db.fetch(sql, list(args))

    def add(self, jobs: list[Job]) -> None:
        """The jobs, and their holds handed to the queue (`batch`), in one transaction: durable on return."""
        values = [tuple(getattr(j, c) for c in COLS) for j in jobs]
        ids = [j.id for j in jobs]

        async def work(c: asyncpg.Connection) -> None:
            await c.executemany(numbered(INSERT_JOB), values)
            await c.execute("UPDATE pending SET owner = $1 WHERE id = ANY($2::text[])", BATCH_OWNER, ids)

        self.db.transact(work)

    async def accept(self, pool: asyncpg.Pool, jobs: list[Job]) -> None:
        """`add` for an agent's batch, on the event loop's own pool (never waited on): the jobs in one COPY and
        their holds handed to the queue, one transaction (batch/holds.py)."""
        values = [tuple(getattr(j, c) for c in COLS) for j in jobs]
        async with pool.acquire() as c, c.transaction():
            await c.copy_records_to_table("batch_jobs", records=paced(values), columns=COLS)
            ids = [j.id for j in jobs]
            await c.execute("UPDATE pending SET owner = $1 WHERE id = ANY($2::text[])", BATCH_OWNER, ids)

    def lead(self) -> bool:
        """Take or renew the lease on sending and polling; whether this replica holds it."""
        return bool(
            self.rows(
                "INSERT INTO batch_leader VALUES (1, ?, now() + make_interval(secs => ?)) ON CONFLICT (id) DO UPDATE "
                "SET owner = EXCLUDED.owner, expires = EXCLUDED.expires "
                "WHERE batch_leader.owner = EXCLUDED.owner OR batch_leader.expires < now() RETURNING owner",
                (self.replica, float(self.lease_s)),
            )
        )

    def claim(self, ids: list[str], claim: str) -> list[str]:
        """Claim queued jobs for sending, only while this replica holds the lease; the ids claimed."""
        q = (
            "UPDATE batch_jobs SET status = 'submitted', submission = ? WHERE id = ANY(?::text[]) "
            "AND status = 'queued' AND EXISTS (SELECT 1 FROM batch_leader WHERE id = 1 AND owner = ? "
            "AND expires > now()) RETURNING id"
        )
        return [r[0] for r in self.rows(q, (claim, ids, self.replica))]

    def lost_claims(self) -> list[Job]:
        """Jobs claimed by a replica whose lease has run out (or that stopped): it may or may not have sent them."""
        return self.jobs(
            "status = 'submitted' AND submission LIKE ? AND NOT EXISTS (SELECT 1 FROM replicas r WHERE "
            "r.id = split_part(submission, ':', 2) AND r.heartbeat > now() - make_interval(secs => ?))",
            (CLAIM + "%", float(self.lease_s)),
        )

    def submitted(self, claim: str, submission: str, provider: str, batch_id: str, file_id: str) -> None:
        async def work(c: asyncpg.Connection) -> None:
            await c.execute(numbered(INSERT_SUBMISSION), submission, provider, batch_id, file_id, time.time())
            await c.execute(numbered(SUBMITTED), submission, claim)

        self.db.transact(work)

    def settle(self, done: list[Settlement]) -> dict[str, int]:
        """Mark each job, delete its pending row and insert its ledger row, all in one transaction; a job no
        longer in the state it was read in (another replica settled or claimed it) is left alone. Returns
        {job id: the cost the ledger holds} for the jobs settled here."""

        async def work(c: asyncpg.Connection) -> dict[str, int]:
            out: dict[str, int] = {}
            for j, row, status, submission in done:
                hit = await c.fetchval(
                    "UPDATE batch_jobs SET status = $2, result = $3, error = $4, cost_nanos = $5, realtime_nanos = $6,"
                    " finished = $7 WHERE id = $1 AND status = $8 AND submission = $9 RETURNING id",
                    j.id, j.status, j.result, j.error, j.cost_nanos, j.realtime_nanos, j.finished, status, submission,
                )  # fmt: skip
                if hit is None:
                    continue
                await c.execute("DELETE FROM pending WHERE id = $1", j.id)
                await c.execute(LEDGER_INSERT, *ledger_values(row))  # a row already there stays (and counts)
                out[j.id] = int(await c.fetchval("SELECT cost_nanos FROM ledger WHERE id = $1", j.id))
            return out

        return self.db.transact(work) if done else {}
