"""The measurement behind the shared stores' clients: redis-py (asyncio) vs coredis for Redis,
asyncpg vs psycopg 3 (async) for Postgres.

Each client does what the gateway does per call: Redis runs a small Lua script (EVALSHA) touching
four counters; Postgres inserts a pending row, then deletes it and inserts a ledger row in one
transaction. Calls/s and client CPU per operation, sequential and at concurrency 50, each client in
alternating rounds of one run.

    python bench/store_clients.py --redis redis://127.0.0.1:6379/0 --postgres postgresql://…/db [--n 2000]

(PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES are read when the flags are left out.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable

LUA = """
for i, k in ipairs(KEYS) do redis.call('HINCRBY', k, 'held', ARGV[1]) end
return redis.call('HGET', KEYS[1], 'held')
"""
KEYS = ["pm:b:{a}:d", "pm:b:{a}:m", "pm:b:f:d", "pm:b:f:m"]


async def redis_py(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    import redis.asyncio as r

    c = r.from_url(url, max_connections=64)
    script = c.register_script(LUA)

    async def op() -> object:
        return await script(keys=KEYS, args=[1])

    return op, c.aclose


async def coredis_client(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    import coredis

    c = coredis.Redis.from_url(url)
    await c.__aenter__()
    script = c.register_script(LUA)

    async def op() -> object:
        return await script(keys=KEYS, args=[1])

    async def close() -> None:
        await c.__aexit__(None, None, None)

    return op, close


DDL = (
    "CREATE TABLE IF NOT EXISTS bench_pending (id text PRIMARY KEY, worst bigint); "
    "CREATE TABLE IF NOT EXISTS bench_ledger (seq bigserial PRIMARY KEY, id text UNIQUE, cost bigint)"
)


async def asyncpg_client(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=4, max_size=16)
    await pool.execute(DDL)

    async def op() -> object:
        rid = secrets.token_hex(8)
        async with pool.acquire() as c:
            await c.execute("INSERT INTO bench_pending VALUES ($1, $2)", rid, 100)
        async with pool.acquire() as c, c.transaction():
            await c.execute("DELETE FROM bench_pending WHERE id = $1", rid)
            return await c.fetchval("INSERT INTO bench_ledger (id, cost) VALUES ($1, $2) RETURNING seq", rid, 90)

    return op, pool.close


async def psycopg_client(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(url, min_size=4, max_size=16, open=False)
    await pool.open()
    async with pool.connection() as c:
        for stmt in DDL.split(";"):
            await c.execute(stmt)

    async def op() -> object:
        rid = secrets.token_hex(8)
        async with pool.connection() as c:
            await c.execute("INSERT INTO bench_pending VALUES (%s, %s)", (rid, 100))
        async with pool.connection() as c, c.transaction():
            await c.execute("DELETE FROM bench_pending WHERE id = %s", (rid,))
            cur = await c.execute("INSERT INTO bench_ledger (id, cost) VALUES (%s, %s) RETURNING seq", (rid, 90))
            return await cur.fetchone()

    return op, pool.close


async def run(op: Callable[[], Awaitable[object]], n: int, conc: int) -> tuple[float, float]:
    """(operations/s, client CPU µs per operation)."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await op()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("PAYMASTER_TEST_REDIS"))
    ap.add_argument("--postgres", default=os.environ.get("PAYMASTER_TEST_POSTGRES"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    groups = []
    if a.redis:
        groups.append(("redis", a.redis, {"redis-py": redis_py, "coredis": coredis_client}))
    if a.postgres:
        groups.append(("postgres", a.postgres, {"asyncpg": asyncpg_client, "psycopg3": psycopg_client}))
    if not groups:
        raise SystemExit("give --redis and/or --postgres (or PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES)")
    for kind, url, clients in groups:
        made = {}
        for name, make in clients.items():
            try:
                made[name] = await make(url)
            except (
                ImportError
            ) as e:  # the losers are not dependencies: pip install coredis 'psycopg[binary]' psycopg_pool
                print(f"{kind}: {name} left out ({e}); pip install coredis 'psycopg[binary]' psycopg_pool to compare")
        best: dict[tuple[str, int], tuple[float, float]] = {}
        for _ in range(a.rounds):  # alternate the clients, keep each one's best round
            for name, (op, _close) in made.items():
                for conc in (1, 50):
                    r = await run(op, a.n, conc)
                    if r[0] > best.get((name, conc), (0.0, 0.0))[0]:
                        best[name, conc] = r
        print(f"{kind}: {a.n} operations, best of {a.rounds} alternating rounds")
        print(f"  {'client':10} {'conc':>4} {'ops/s':>9} {'client CPU/op':>14}")
        for (name, conc), (rate, cpu) in sorted(best.items()):
            print(f"  {name:10} {conc:>4} {rate:>9,.0f} {cpu:>11,.0f} µs")
        for _op, close in made.values():
            await close()


if __name__ == "__main__":
    asyncio.run(main())
