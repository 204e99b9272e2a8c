"""What sharing routing's learnt state costs (levers/routing_sync.py).

    python bench/routing_state.py [--long 20000] [--short 5000]          # the call path, under callgrind
    python bench/routing_state.py --postgres postgresql://…/db [--keys 200] [--rounds 50]   # the background

The call path: instructions per bandit choice (a `feedback_tasks` call's routing decision) on one process
(counts saved to the state file) and on a replica (counts kept apart for the next push), from two callgrind runs
(long − short cancels start-up). Needs valgrind. The background, on a Postgres (a scratch database: the routing
tables are created there): milliseconds per sync (push `--keys` keys' counts, pull the fleet's) and per rating,
wall clock — this replica's cost, off the call path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time

TIERS = ["light", "standard", "heavy"]


def choices(n: int, shared: bool) -> None:
    from paymaster.levers.routing_bandit import Bandit
    from paymaster.levers.routing_state import Mirror, RoutingState

    bandit = Bandit(Mirror() if shared else RoutingState(None), 0.9, 0.05, random.Random(0))
    if shared:
        bandit.deltas = {}
    keys = [f"agent-{i}/extraction" for i in range(50)]
    for i in range(n):
        bandit.choose(keys[i % 50], TIERS)


def instructions(n: int, shared: bool) -> int:
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
        "--inner", str(n), *(["--shared"] if shared else []),
    ]  # fmt: skip
    out = subprocess.run(cmd, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1))


async def background(url: str, keys: int, rounds: int) -> None:
    import asyncpg

    from paymaster.levers.routing_bandit import Bandit
    from paymaster.levers.routing_share import ShareKeeper
    from paymaster.levers.routing_state import Mirror
    from paymaster.levers.routing_sync import RoutingSync
    from paymaster.store.postgres import PostgresLedger

    ledger = PostgresLedger(url, "r_bench")
    await ledger.open()  # migrations
    await ledger.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    mirror = Mirror()
    bandit = Bandit(mirror, 0.9, 0.05, random.Random(0))
    sync = RoutingSync(bandit, ShareKeeper(mirror), mirror)
    await sync.start(pool, "r_bench", 3600)
    names = [f"bench-{i}/extraction" for i in range(keys)]
    took = []
    for _ in range(rounds):
        for k in names:
            bandit.choose(k, TIERS)
        t = time.perf_counter()
        await sync.refresh()
        took.append(time.perf_counter() - t)
    idle = []
    for _ in range(rounds):
        t = time.perf_counter()
        await sync.refresh()
        idle.append(time.perf_counter() - t)
    rated = []
    for i in range(rounds):
        t = time.perf_counter()
        await sync.rate(f"bench-call-{time.time_ns()}-{i}", time.time(), names[i % keys], "light", 1.0)
        rated.append(time.perf_counter() - t)
    await sync.stop()
    await pool.close()
    med = lambda xs: sorted(xs)[len(xs) // 2] * 1000  # noqa: E731
    print(f"sync with {keys} keys changed: median {med(took):.2f} ms (push + pull)")
    print(f"sync with nothing changed: median {med(idle):.2f} ms (one read of nothing)")
    print(f"rating: median {med(rated):.2f} ms (one transaction)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", type=int, default=20000)
    ap.add_argument("--short", type=int, default=5000)
    ap.add_argument("--postgres", help="measure the background sync on this database instead")
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner is not None:
        choices(args.inner, args.shared)
        return
    if args.postgres:
        asyncio.run(background(args.postgres, args.keys, args.rounds))
        return
    for shared, label in ((False, "one process (state file)"), (True, "replica (deltas kept for the push)")):
        per = (instructions(args.long, shared) - instructions(args.short, shared)) / (args.long - args.short)
        print(f"bandit choice, {label}: {per:,.0f} instructions")


if __name__ == "__main__":
    main()
