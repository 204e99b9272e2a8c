"""Redis and Postgres for the multi-replica tests: a fresh database and an empty Redis database per test.

PAYMASTER_TEST_REDIS=redis://host:port and PAYMASTER_TEST_POSTGRES=postgresql://user@host:port/db (a role
that may CREATE DATABASE) name them (.ci/run starts both). Without them the tests are skipped, saying
so; in CI (CI=true) they fail instead."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis

REDIS = os.environ.get("PAYMASTER_TEST_REDIS", "")
POSTGRES = os.environ.get("PAYMASTER_TEST_POSTGRES", "")


def _need_services() -> None:
    missing = [
        name for name, url in (("PAYMASTER_TEST_REDIS", REDIS), ("PAYMASTER_TEST_POSTGRES", POSTGRES)) if not url
    ]
    if not missing:
        return
    why = f"multi-replica tests need a Redis and a Postgres: set {' and '.join(missing)} (see .ci/run)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; in CI they must run")
    pytest.skip(why)


@dataclass
class Shared:
    redis_url: str
    postgres_url: str
    redis: redis.Redis

    def pg(self, q: str, *args: Any) -> list[Any]:
        async def run() -> list[Any]:
            c = await asyncpg.connect(self.postgres_url)
            try:
                return list(await c.fetch(q, *args))
            finally:
                await c.close()

        return asyncio.run(run())

    def held(self) -> int:
        """Nano-dollars Redis holds for calls in flight, over every window."""
        return sum(int(self.redis.hget(k, "held") or 0) for k in self.redis.scan_iter("pm:[wf]:*"))


@contextmanager
def stores(redis_base: str, postgres_admin: str, prefix: str, redis_db: int) -> Iterator[Shared]:
    """A fresh Postgres database (created through `postgres_admin`, dropped after) and an emptied Redis database
    `redis_db` on `redis_base`'s server. bench/scale.py and bench/batch_replicas.py use it too."""
    name = prefix + secrets.token_hex(4)

    async def admin(q: str) -> None:
        c = await asyncpg.connect(postgres_admin)
        try:
            await c.execute(q)
        finally:
            await c.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    redis_url = "/".join(redis_base.rstrip("/").split("/")[0:3]) + f"/{redis_db}"
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    try:
        yield Shared(redis_url, postgres_admin.rsplit("/", 1)[0] + f"/{name}", r)
    finally:
        r.flushdb()
        r.close()
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(name="shared")
def shared_store() -> Iterator[Shared]:
    """A fresh Postgres database and an empty Redis database for one test."""
    _need_services()
    with stores(REDIS, POSTGRES, "pm_test_", 1 + int(secrets.token_hex(1), 16) % 15) as shared:
        yield shared
