"""An agent's batch admitted by a replica (Redis + Postgres): how long admission takes for a 1,000- and a
10,000-request Message Batch, and what it does to real-time calls served by the same replica meanwhile.

    python bench/batch_replicas.py [--redis URL] [--postgres URL] [--sizes 1000 10000] [--concurrency 4]

(PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES are read when the flags are left out; a fresh database and an
empty Redis database are used and dropped.) One replica on the gateway's core, the simulator and this load generator
on the other (bench/_harness.py's rule). Real-time calls run at `--concurrency` throughout; printed per size: the
`POST /v1/messages/batches` time, and the real-time p50/p99 of calls started while it ran, beside those of calls
started before it (alone). Nothing is sent to the provider during the run (flush thresholds out of reach).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/services.py: a fresh Postgres database and Redis db

from _harness import PROVIDER_KEY, Cores, process  # noqa: E402

from paymaster.config import hash_key  # noqa: E402
from paymaster.server import free_port  # noqa: E402
from tests.services import stores  # noqa: E402

PARAMS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi [sim:tokens=20]"}],
}
AGENT = {"model": "claude-haiku-4-5", "daily_usd": 1_000_000, "monthly_usd": 10_000_000}
AUTH = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


async def measure(url: str, keys: dict[str, str], size: int, conc: int) -> tuple[float, list[float], list[float]]:
    """(admission seconds, real-time latencies started before it, those started during it)."""
    calls: list[tuple[float, float]] = []  # (start, latency) of successful real-time calls
    stop = asyncio.Event()
    batch = {"requests": [{"custom_id": f"r{i}", "params": PARAMS} for i in range(size)]}
    async with aiohttp.ClientSession(headers=AUTH) as s:

        async def realtime() -> None:
            h = {"x-api-key": keys["rt"]}
            while not stop.is_set():
                t0 = time.perf_counter()
                async with s.post(url + "/v1/messages", json=PARAMS, headers=h) as r:
                    await r.read()
                if r.status == 200:
                    calls.append((t0, time.perf_counter() - t0))

        workers = [asyncio.create_task(realtime()) for _ in range(conc)]
        await asyncio.sleep(2.0)  # warm, then the "alone" sample
        start = time.perf_counter()
        async with s.post(url + "/v1/messages/batches", json=batch, headers={"x-api-key": keys["bulk"]}) as r:
            body = await r.read()
        took = time.perf_counter() - start
        stop.set()
        await asyncio.gather(*workers)
        if r.status != 200:
            raise SystemExit(f"the batch was refused: {r.status} {body[:300]!r}")
    alone = [lat for t0, lat in calls if start - 1.5 <= t0 < start]
    during = [lat for t0, lat in calls if start <= t0 < start + took]
    return took, alone, during


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis", default=os.environ.get("PAYMASTER_TEST_REDIS"))
    ap.add_argument("--postgres", default=os.environ.get("PAYMASTER_TEST_POSTGRES"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args()
    if not a.redis or not a.postgres:
        raise SystemExit("give --redis and --postgres (or PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES)")
    cores = Cores.pick()
    keys = {"rt": "pm-" + secrets.token_hex(8), "bulk": "pm-" + secrets.token_hex(8)}
    mine = os.sched_getaffinity(0)
    try:
        with (
            stores(a.redis, a.postgres, "paymaster_bench_", 13) as sh,
            tempfile.TemporaryDirectory(prefix="paymaster-batch-replicas-") as t,
            ExitStack() as stack,
        ):
            if cores:
                os.sched_setaffinity(0, {cores.rest})
            sim_port, port = free_port(), free_port()
            sim_cmd = ["paymaster.cli", "sim", "--port", str(sim_port), "--api-key", PROVIDER_KEY]
            stack.enter_context(process(sim_cmd, sim_port, core=cores.rest if cores else None))
            fleet = {
                "reservations": sh.redis_url,
                "ledger": sh.postgres_url,
                "batch": {"flush_count": 100_000, "flush_age_s": 86_400},  # admission only: nothing is sent
                "observability": {"access_log": "off"},
                "providers": {"anthropic": {"kind": "anthropic", "base_url": f"http://127.0.0.1:{sim_port}",
                                            "api_key_env": "BENCH_PROVIDER_KEY"}},
                "agents": {n: {**AGENT, "key_sha256": hash_key(k)} for n, k in keys.items()},
            }  # fmt: skip
            path = Path(t) / "fleet.yaml"
            path.write_text(yaml.safe_dump(fleet))
            cmd = ["paymaster.cli", "serve", "--config", str(path), "--port", str(port)]
            env = {"BENCH_PROVIDER_KEY": PROVIDER_KEY}
            stack.enter_context(process(cmd, port, env, core=cores.gateway if cores else None))
            where = f"replica on cpu {cores.gateway}, simulator + load on cpu {cores.rest}" if cores else "not pinned"
            print(f"{where}; real-time calls at concurrency {a.concurrency} throughout")
            print("| batch requests | admission | real-time p50 / p99 alone | during admission (calls) |")
            print("| ---: | ---: | ---: | ---: |")
            for size in a.sizes:
                took, alone, during = asyncio.run(measure(f"http://127.0.0.1:{port}", keys, size, a.concurrency))
                print(
                    f"| {size:,} | {took:.2f} s | {pct(alone, 50):.2f} / {pct(alone, 99):.2f} ms "
                    f"| {pct(during, 50):.2f} / {pct(during, 99):.2f} ms ({len(during)}) |"
                )
    finally:
        os.sched_setaffinity(0, mine)


if __name__ == "__main__":
    main()
