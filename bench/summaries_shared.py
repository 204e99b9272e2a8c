"""What sharing compression's summaries costs a replica (levers/compression/summaries.py, on Postgres).

    python bench/summaries_shared.py [--postgres postgresql://…/db] [--lookups 500] [--messages 200]

A scratch database is created through `--postgres` (a role that may CREATE DATABASE; PAYMASTER_TEST_POSTGRES
when the flag is left out) and dropped after. 50 agents each have a summary of a conversation's first half
stored; then, wall clock per lookup (`SummaryStore.find`, one indexed query) for a `--messages`-message
conversation: with nothing in the replica's memory, and with the summary in memory (a longer one another
replica may have stored is still looked for), and per store (`keep`: insert-if-absent) of a new summary and of
one another replica stored first (the insert, then the read of the winner). Only calls past the summarisation
threshold pay these; the summariser's own call (a model call) is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable


async def measure(url: str, lookups: int, messages: int) -> None:
    from paymaster.levers.compression.summaries import Summary, SummaryStore
    from paymaster.store.postgres import PostgresLedger

    pg = PostgresLedger(url, "bench")
    await pg.open()  # the migrations: the summaries table
    try:
        store = SummaryStore(":memory:")
        store.shared = pg.db
        hashes = [f"{i:032x}" for i in range(messages)]
        half = messages // 2
        text = "Goal: widgets. " * 200
        for a in range(50):
            await store.keep(f"agent{a}", hashes[half - 1], Summary(half, text, "claude-haiku-4-5", 1), 0.0)

        async def per(op: str, n: int, run: Callable[[int], Awaitable[None]]) -> None:
            t = time.perf_counter()
            for i in range(n):
                await run(i)
            print(f"{op:<58} {(time.perf_counter() - t) / n * 1e3:7.2f} ms")

        async def cold(i: int) -> None:
            store.memory.clear()
            await store.find(f"agent{i % 50}", hashes)

        async def warm(i: int) -> None:
            await store.find(f"agent{i % 50}", hashes)

        async def new(i: int) -> None:
            await store.keep("fresh", f"new{i}", Summary(half, text, "claude-haiku-4-5", 1), 0.0)

        async def lost(i: int) -> None:
            await store.keep(f"agent{i % 50}", hashes[half - 1], Summary(half, "other", "claude-haiku-4-5", 1), 0.0)

        print(f"{messages}-message conversations, summaries of their first {half} messages, {lookups} operations each:")
        await per("find, nothing in memory", lookups, cold)
        await per("find, the summary in memory (a longer one looked for)", lookups, warm)
        await per("keep, a new summary (insert)", lookups, new)
        await per("keep, another replica's stored first (insert + read)", lookups, lost)
    finally:
        await pg.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--postgres", default=os.environ.get("PAYMASTER_TEST_POSTGRES"))
    ap.add_argument("--lookups", type=int, default=500)
    ap.add_argument("--messages", type=int, default=200)
    args = ap.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres (or PAYMASTER_TEST_POSTGRES)")
    import asyncpg

    name = "pm_bench_summaries_" + secrets.token_hex(4)

    async def admin(sql: str) -> None:
        c = await asyncpg.connect(args.postgres)
        try:
            await c.execute(sql)
        finally:
            await c.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        asyncio.run(measure(args.postgres.rsplit("/", 1)[0] + f"/{name}", args.lookups, args.messages))
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
