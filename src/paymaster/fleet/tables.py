"""Fleet state in the ledger's store: agents and keys changed at run time, and a version every change bumps.

    fleet_agents   name, spec (the agent's fleet.yaml fields set at run time, JSON), disabled, updated
    fleet_keys     id, agent, hash (SHA-256 of the key; the key itself is never stored), created, expires, revoked
    fleet_version  one row: n, bumped by every change (replicas poll it: `Fleet.watch`)

One interface, two stores: SQLite (the single gateway's ledger) and Postgres (shared by replicas).
Their migrations are registered in store/sqlite.py and store/postgres.py.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

SQLITE_MIGRATION = (
    "003_fleet",
    """
    CREATE TABLE fleet_agents (name TEXT PRIMARY KEY, spec TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL);
    CREATE TABLE fleet_keys (id TEXT PRIMARY KEY, agent TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
        created REAL NOT NULL, expires REAL, revoked REAL);
    CREATE TABLE fleet_version (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
    INSERT INTO fleet_version VALUES (1, 0)
    """,
)
POSTGRES_MIGRATION = (
    "002_fleet",
    """
    CREATE TABLE fleet_agents (name text PRIMARY KEY, spec text NOT NULL, disabled boolean NOT NULL DEFAULT false,
        updated double precision NOT NULL);
    CREATE TABLE fleet_keys (id text PRIMARY KEY, agent text NOT NULL, hash text NOT NULL UNIQUE,
        created double precision NOT NULL, expires double precision, revoked double precision);
    CREATE TABLE fleet_version (one integer PRIMARY KEY CHECK (one = 1), n bigint NOT NULL);
    INSERT INTO fleet_version VALUES (1, 0);
    """,
)


@dataclass(frozen=True)
class AgentRow:
    name: str
    spec: dict[str, Any]  # fleet.yaml fields of the agent set at run time (they win over the file's)
    disabled: bool
    updated: float


@dataclass(frozen=True)
class KeyRow:
    id: str
    agent: str
    hash: str
    created: float
    expires: float | None = None  # a rotated key works until then
    revoked: float | None = None

    def live(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)

    def public(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "created": self.created, "expires": self.expires,
                "revoked": self.revoked, "live": self.live(now)}  # fmt: skip


@dataclass(frozen=True)
class State:
    version: int
    agents: dict[str, AgentRow]
    keys: dict[str, KeyRow]  # by hash


class Tables(Protocol):
    async def version(self) -> int: ...
    async def load(self) -> State: ...
    async def write(self, agents: list[AgentRow], keys: list[KeyRow]) -> None: ...


_UPSERT_AGENT = (
    "INSERT INTO fleet_agents (name, spec, disabled, updated) VALUES ({}) ON CONFLICT (name) DO UPDATE SET "
    "spec = excluded.spec, disabled = excluded.disabled, updated = excluded.updated"
)
_UPSERT_KEY = (
    "INSERT INTO fleet_keys (id, agent, hash, created, expires, revoked) VALUES ({}) ON CONFLICT (id) DO UPDATE "
    "SET expires = excluded.expires, revoked = excluded.revoked"
)
_BUMP = "UPDATE fleet_version SET n = n + 1"


def _agent(r: Any) -> AgentRow:
    return AgentRow(r[0], json.loads(r[1]), bool(r[2]), float(r[3]))


def _key(r: Any) -> KeyRow:
    return KeyRow(r[0], r[1], r[2], float(r[3]), r[4], r[5])


class SQLiteTables:
    """On the SQLite store's connection (the event loop's thread; each write its own small transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def version(self) -> int:
        return int(self.conn.execute("SELECT n FROM fleet_version").fetchone()[0])

    async def load(self) -> State:
        c = self.conn
        agents = [_agent(r) for r in c.execute("SELECT name, spec, disabled, updated FROM fleet_agents")]
        keys = [_key(r) for r in c.execute("SELECT id, agent, hash, created, expires, revoked FROM fleet_keys")]
        return State(await self.version(), {a.name: a for a in agents}, {k.hash: k for k in keys})

    async def write(self, agents: list[AgentRow], keys: list[KeyRow]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for a in agents:
                c.execute(_UPSERT_AGENT.format("?, ?, ?, ?"), (a.name, json.dumps(a.spec), int(a.disabled), a.updated))
            for k in keys:
                c.execute(_UPSERT_KEY.format("?, ?, ?, ?, ?, ?"),
                          (k.id, k.agent, k.hash, k.created, k.expires, k.revoked))  # fmt: skip
            c.execute(_BUMP)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise


class PostgresTables:
    """On the Postgres ledger's pool: every replica reads and writes the same rows."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool  # an asyncpg.Pool

    async def version(self) -> int:
        return int(await self.pool.fetchval("SELECT n FROM fleet_version"))

    async def load(self) -> State:
        async with self.pool.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            n = int(await c.fetchval("SELECT n FROM fleet_version"))
            agents = [_agent(r) for r in await c.fetch("SELECT name, spec, disabled, updated FROM fleet_agents")]
            keys = [_key(r) for r in await c.fetch("SELECT id, agent, hash, created, expires, revoked FROM fleet_keys")]
        return State(n, {a.name: a for a in agents}, {k.hash: k for k in keys})

    async def write(self, agents: list[AgentRow], keys: list[KeyRow]) -> None:
        async with self.pool.acquire() as c, c.transaction():
            for a in agents:
                await c.execute(_UPSERT_AGENT.format("$1, $2, $3, $4"), a.name, json.dumps(a.spec), a.disabled,
                                a.updated)  # fmt: skip
            for k in keys:
                await c.execute(_UPSERT_KEY.format("$1, $2, $3, $4, $5, $6"), k.id, k.agent, k.hash, k.created,
                                k.expires, k.revoked)  # fmt: skip
            await c.execute(_BUMP)
