"""The durable ledger, the reservation journal, replica leases and the event log in Postgres (asyncpg).

    pending    one row per reservation, inserted before its call goes upstream (durable first)
    ledger     one row per settled call; a settlement deletes the pending row and inserts the ledger
               row in one statement (one transaction): a call is pending or booked, never both, never none
    replicas   each gateway process's lease: a heartbeat every second; a replica whose heartbeat is
               older than the lease is gone, and any other replica (or the next start) books its pending
               reservations at their worst case, flagged for reconciliation
    events     the blackboard's events, with global ids (the `id` column), announced to every replica
               by NOTIFY on `paymaster_events`
    routing_*  routing's learnt state (bandit counts, ratings, share windows), shared by the replicas
               (levers/routing_sync.py)
    summaries  compression's conversation summaries by prefix hash, one per prefix for the fleet
               (levers/compression/summaries.py)

Migrations are a list of named SQL scripts, applied at start under an advisory lock (several replicas
may start at once) and recorded in `migrations`.
"""

from __future__ import annotations

import os
import socket
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from ..fleet.tables import POSTGRES_MIGRATION
from . import queries
from .journal import Reservation
from .row import LedgerRow
from .sqlite import _crashed

_PG_TYPES = {"str": "text NOT NULL DEFAULT ''", "int": "bigint NOT NULL DEFAULT 0", "float": "double precision"}
_LEDGER_COLS = queries.LEDGER_COLS
_HINTS = typing.get_type_hints(LedgerRow)
_LEDGER_DDL = ",\n".join(f"{c} {_PG_TYPES[_HINTS[c].__name__]}" for c in _LEDGER_COLS)
_PLACES = ", ".join(f"${i + 1}" for i in range(len(_LEDGER_COLS)))
_INSERT = f"INSERT INTO ledger ({', '.join(_LEDGER_COLS)}) VALUES ({_PLACES}) ON CONFLICT (id) DO NOTHING"
EVENTS_CHANNEL = "paymaster_events"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_ledger",
        f"""
        CREATE TABLE ledger (seq bigserial PRIMARY KEY, {_LEDGER_DDL},
            reconciled_at double precision, booked_nanos bigint, UNIQUE (id));
        CREATE INDEX ledger_agent_day ON ledger (agent, day);
        CREATE INDEX ledger_day ON ledger (day);
        CREATE TABLE pending (id text PRIMARY KEY, owner text NOT NULL, agent text NOT NULL,
            created double precision NOT NULL, model text NOT NULL, api text NOT NULL, day text NOT NULL,
            month text NOT NULL, worst_nanos bigint NOT NULL);
        CREATE INDEX pending_owner ON pending (owner);
        CREATE TABLE replicas (id text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL,
            started timestamptz NOT NULL DEFAULT now(), heartbeat timestamptz NOT NULL DEFAULT now());
        CREATE TABLE events (id bigserial PRIMARY KEY, ts double precision NOT NULL, kind text NOT NULL,
            data text NOT NULL);
        """,
    ),
]
MIGRATIONS.append(POSTGRES_MIGRATION)  # fleet state: agents and keys changed at run time (fleet/tables.py)
MIGRATIONS.append(
    (
        "003_responses",  # the Responses API's book (response_book.py): owners and context sizes, for every replica
        """
        CREATE TABLE responses (id text PRIMARY KEY, agent text NOT NULL, model text NOT NULL, tokens bigint,
            ts double precision NOT NULL);
        CREATE TABLE conversations (id text PRIMARY KEY, agent text NOT NULL, tokens bigint,
            ts double precision NOT NULL);
        """,
    )
)
MIGRATIONS.append(
    (
        "004_routing",  # routing's learnt state, shared by replicas (levers/routing_sync.py): counts only ever added
        """
        CREATE TABLE routing_bandit (key text PRIMARY KEY, calls bigint NOT NULL, explored bigint NOT NULL,
            version xid8 NOT NULL DEFAULT pg_current_xact_id());
        CREATE TABLE routing_arms (key text NOT NULL, tier text NOT NULL, success double precision NOT NULL,
            failure double precision NOT NULL, picks bigint NOT NULL,
            version xid8 NOT NULL DEFAULT pg_current_xact_id(), PRIMARY KEY (key, tier));
        CREATE INDEX routing_bandit_version ON routing_bandit (version);
        CREATE INDEX routing_arms_version ON routing_arms (version);
        CREATE TABLE routing_feedback (call_id text PRIMARY KEY, score double precision);
        CREATE TABLE routing_windows (key text NOT NULL, replica text NOT NULL, scores double precision[] NOT NULL,
            saved timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (key, replica));
        """,
    )
)
MIGRATIONS.append(
    (
        "005_batch",  # the batch queue for replicas (batch/pg_queue.py): the SQLite queue's tables, plus the lease
        """
        CREATE TABLE batch_jobs (id text PRIMARY KEY, agent text NOT NULL, api text NOT NULL,
            target_api text NOT NULL, provider text NOT NULL, model text NOT NULL, model_requested text NOT NULL,
            task text NOT NULL DEFAULT '', body bytea NOT NULL, status text NOT NULL, worst_nanos bigint NOT NULL,
            max_tokens bigint NOT NULL, day text NOT NULL, month text NOT NULL, created double precision NOT NULL,
            deadline double precision, grp text NOT NULL DEFAULT '', custom_id text NOT NULL DEFAULT '',
            submission text NOT NULL DEFAULT '', result bytea, error text NOT NULL DEFAULT '',
            cost_nanos bigint NOT NULL DEFAULT 0, realtime_nanos bigint NOT NULL DEFAULT 0,
            finished double precision);
        CREATE INDEX batch_jobs_open ON batch_jobs (status);
        CREATE INDEX batch_jobs_agent ON batch_jobs (agent, created);
        CREATE INDEX batch_jobs_grp ON batch_jobs (grp);
        CREATE INDEX batch_jobs_submission ON batch_jobs (submission);
        CREATE TABLE batch_submissions (id text PRIMARY KEY, provider text NOT NULL,
            provider_batch_id text NOT NULL, input_file_id text NOT NULL DEFAULT '', status text NOT NULL,
            created double precision NOT NULL);
        CREATE TABLE batch_groups (id text PRIMARY KEY, agent text NOT NULL, api text NOT NULL,
            created double precision NOT NULL, cancel integer NOT NULL DEFAULT 0, meta bytea);
        CREATE INDEX batch_groups_agent ON batch_groups (agent, created);
        CREATE TABLE batch_files (id text PRIMARY KEY, agent text NOT NULL, filename text NOT NULL,
            purpose text NOT NULL, data bytea NOT NULL, created double precision NOT NULL);
        CREATE TABLE batch_leader (id integer PRIMARY KEY, owner text NOT NULL, expires timestamptz NOT NULL);
        """,
    )
)
MIGRATIONS.append(
    (
        "006_routing_feedback_age",  # a rating is deleted once its call is too old to be rated (levers/routing.py)
        """
        ALTER TABLE routing_feedback ADD COLUMN call_ts double precision NOT NULL DEFAULT extract(epoch from now());
        CREATE INDEX routing_feedback_call_ts ON routing_feedback (call_ts);
        """,
    )
)
MIGRATIONS.append(
    (
        "007_summaries",  # compression's conversation summaries, one per prefix for every replica (summaries.py)
        """
        CREATE TABLE summaries (agent text NOT NULL, prefix text NOT NULL, upto integer NOT NULL,
            summary text NOT NULL, model text NOT NULL, cost_nanos bigint NOT NULL, created double precision NOT NULL,
            PRIMARY KEY (agent, prefix));
        """,
    )
)
_MIGRATION_LOCK = 0x7061796D  # "paym": one replica migrates at a time


def _values(row: LedgerRow) -> list[Any]:
    return [getattr(row, c) for c in _LEDGER_COLS]


LEDGER_INSERT, ledger_values = _INSERT, _values  # for the batch queue's own settlement transaction


class PostgresLedger:
    def __init__(self, url: str, owner: str) -> None:
        self.url = url
        self.owner = owner
        self.pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "PostgresLedger.open() first"
        return self.pool

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=2, max_size=20, timeout=5, command_timeout=10)
        async with self.db.acquire() as c:
            await c.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await c.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, applied timestamptz)")
                done = {r["name"] for r in await c.fetch("SELECT name FROM migrations")}
                for name, sql in MIGRATIONS:
                    if name not in done:
                        async with c.transaction():
                            await c.execute(sql)
                            await c.execute("INSERT INTO migrations VALUES ($1, now())", name)
            finally:
                await c.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await self.heartbeat()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # -- the call path ---------------------------------------------------------------------------

    async def hold_many(self, rs: Sequence[Reservation]) -> None:
        """Pending rows (a row again: its lower worst case, after max_tokens was fitted): durable before the
        reservations are counted and the calls sent."""
        await self.db.executemany(
            "INSERT INTO pending VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (id) DO UPDATE SET worst_nanos = EXCLUDED.worst_nanos",
            [(r.id, self.owner, r.agent, r.created, r.model, r.api, r.day, r.month, r.worst_nanos) for r in rs],
        )

    async def drop(self, reservation_ids: Sequence[str]) -> None:
        """Reservations refused before anything was sent: no rows, no cost."""
        await self.db.execute("DELETE FROM pending WHERE id = ANY($1::text[])", list(reservation_ids))

    async def settle_many(self, rows: Sequence[LedgerRow]) -> dict[str, int]:
        """The ledger rows in, their pending rows out, in one transaction. A call whose pending row is gone
        was booked by a reaper (which took this replica for gone) at its worst case: that row stays —
        over-counted until reconciled, never under — and its cost is returned ({id: cost_nanos})."""
        ids = [row.id for row in rows]
        async with self.db.acquire() as c, c.transaction():
            mine = {r["id"] for r in await c.fetch("DELETE FROM pending WHERE id = ANY($1::text[]) RETURNING id", ids)}
            taken = {}
            if len(mine) < len(ids):
                q = "SELECT id, cost_nanos FROM ledger WHERE id = ANY($1::text[])"
                taken = {r["id"]: r["cost_nanos"] for r in await c.fetch(q, [i for i in ids if i not in mine])}
            await c.executemany(_INSERT, [_values(row) for row in rows if row.id not in taken])
        return taken

    async def book(self, row: LedgerRow) -> None:
        await self.db.execute(_INSERT, *_values(row))

    # -- the Responses API's book (response_book.py) ---------------------------------------------

    async def response_record(self, rid: str, agent: str, model: str, tokens: int | None, conv: str | None) -> None:
        now = time.time()
        async with self.db.acquire() as c, c.transaction():
            await c.execute(
                "INSERT INTO responses VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET agent = "
                "EXCLUDED.agent, model = EXCLUDED.model, tokens = EXCLUDED.tokens, ts = EXCLUDED.ts",
                rid, agent, model, tokens, now,
            )  # fmt: skip
            if conv is not None:
                await c.execute(
                    "INSERT INTO conversations VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET agent = "
                    "EXCLUDED.agent, tokens = EXCLUDED.tokens, ts = EXCLUDED.ts",
                    conv, agent, tokens, now,
                )  # fmt: skip

    async def conversation_record(self, conv: str, agent: str, tokens: int | None, add: bool = False) -> None:
        """`add`: calls overlapped on the conversation, so `tokens` is added to its figure rather than replacing
        it (an unknown figure stays unknown)."""
        await self.db.execute(
            "INSERT INTO conversations VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET agent = "
            "EXCLUDED.agent, tokens = CASE WHEN $5 THEN conversations.tokens + EXCLUDED.tokens "
            "ELSE EXCLUDED.tokens END, ts = EXCLUDED.ts",
            conv, agent, tokens, time.time(), add,
        )  # fmt: skip

    async def response_lookup(self, kind: str, ref: str) -> tuple[str, str, int | None] | None:
        if kind == "response":
            r = await self.db.fetchrow("SELECT agent, model, tokens FROM responses WHERE id = $1", ref)
            return None if r is None else (r["agent"], r["model"], r["tokens"])
        r = await self.db.fetchrow("SELECT agent, tokens FROM conversations WHERE id = $1", ref)
        return None if r is None else (r["agent"], "", r["tokens"])

    async def response_forget(self, rid: str) -> None:
        await self.db.execute("DELETE FROM responses WHERE id = $1", rid)

    # -- leases ----------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        await self.db.execute(
            "INSERT INTO replicas (id, host, pid) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat = now()",
            self.owner, socket.gethostname(), os.getpid(),
        )  # fmt: skip

    async def gone(self, lease_s: float) -> list[str]:
        """Replicas whose lease ran out (their heartbeat is older than `lease_s`, by the database's clock)."""
        rows = await self.db.fetch(
            "SELECT id FROM replicas WHERE heartbeat < now() - make_interval(secs => $1) AND id <> $2",
            lease_s, self.owner,
        )  # fmt: skip
        return [r["id"] for r in rows]

    async def book_crashed(self, owner: str) -> list[LedgerRow]:
        """Book a gone replica's pending reservations at their worst case (flagged), in one transaction;
        safe to repeat (a row already booked stays)."""
        async with self.db.acquire() as c, c.transaction():
            rows = await c.fetch("SELECT * FROM pending WHERE owner = $1 FOR UPDATE", owner)
            crashed = [_crashed(_reservation(r)) for r in rows]
            if crashed:
                await c.executemany(_INSERT, [_values(row) for row in crashed])
                await c.execute("DELETE FROM pending WHERE owner = $1", owner)
        return crashed

    async def costs(self, ids: Sequence[str]) -> dict[str, int]:
        rows = await self.db.fetch("SELECT id, cost_nanos FROM ledger WHERE id = ANY($1::text[])", list(ids))
        return {r["id"]: r["cost_nanos"] for r in rows}

    async def pending_owners(self, ids: Sequence[str]) -> dict[str, str]:
        """{id: owner} of those reservations still pending."""
        rows = await self.db.fetch("SELECT id, owner FROM pending WHERE id = ANY($1::text[])", list(ids))
        return {r["id"]: r["owner"] for r in rows}

    async def forget(self, owner: str) -> None:
        await self.db.execute("DELETE FROM replicas WHERE id = $1", owner)

    # -- rebuilding the counters -----------------------------------------------------------------

    async def snapshot(
        self, since_day: str
    ) -> tuple[dict[tuple[str | None, str, str], int], list[tuple[str, str, str, str, str, int]]]:
        """One consistent view: settled spend per window (days from `since_day` on, their months, agent and
        fleet) and every pending reservation (id, owner, agent, day, month, worst)."""
        async with self.db.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            sums = await c.fetch(
                "SELECT agent, day, SUM(cost_nanos)::bigint AS s FROM ledger WHERE day >= $1 GROUP BY agent, day",
                since_day,
            )
            pend = await c.fetch("SELECT id, owner, agent, day, month, worst_nanos FROM pending")
        spent: dict[tuple[str | None, str, str], int] = {}
        for r in sums:
            for w in ((r["agent"], "day", r["day"]), (r["agent"], "month", r["day"][:7])):
                for key in (w, (None, w[1], w[2])):
                    spent[key] = spent.get(key, 0) + int(r["s"])
        return spent, [(r["id"], r["owner"], r["agent"], r["day"], r["month"], r["worst_nanos"]) for r in pend]

    # -- events ----------------------------------------------------------------------------------

    async def publish(self, ts: float, kind: str, data: str) -> None:
        """Store an event and announce it to every replica (its global id is the row's)."""
        await self.db.execute(
            "WITH e AS (INSERT INTO events (ts, kind, data) VALUES ($1, $2, $3) RETURNING id) "
            f"SELECT pg_notify('{EVENTS_CHANNEL}', id::text) FROM e",
            ts, kind, data,
        )  # fmt: skip

    async def events_after(self, after: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        rows = await self.db.fetch(
            "SELECT id, kind, data FROM (SELECT * FROM events WHERE id > $1 ORDER BY id DESC LIMIT $2) e ORDER BY id",
            after, limit,
        )  # fmt: skip
        return [(r["id"], r["kind"], r["data"]) for r in rows]

    async def listen(self, wake: Callable[[int], None]) -> None:
        """Call `wake(event id)` for every event any replica stores."""
        self._listener = await asyncpg.connect(self.url, timeout=5)
        await self._listener.add_listener(EVENTS_CHANNEL, lambda _c, _pid, _ch, payload: wake(int(payload)))


def _reservation(r: asyncpg.Record) -> Reservation:
    return Reservation(r["id"], r["agent"], r["created"], r["model"], r["api"], r["day"], r["month"], r["worst_nanos"])
