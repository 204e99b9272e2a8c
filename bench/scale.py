"""Replicas: added latency and throughput with 1 and 3 gateways on Redis + Postgres, against the SQLite
default, in one run (alternating rounds), the simulator as the provider.

    python bench/scale.py [--redis redis://127.0.0.1:6379] [--postgres postgresql://user@host/db]
                          [--calls 2000] [--rounds 2]

(PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES are read when the flags are left out; a fresh database
and an empty Redis database are used and dropped.) Prints, per setup: p50/p99 at concurrency 1 (and
what it adds over calling the simulator directly), calls/s at concurrency 60, and CPU per call of the
gateways, of Redis and of Postgres (from /proc and Redis's INFO), with the projection the CPU figures
allow: calls/s per gateway core, and where Redis and Postgres would saturate a core each.

On a 2-core machine every gateway shares core 0 (`taskset`), the simulator and this load generator
core 1, Redis and Postgres wherever the kernel puts them: 3 replicas cannot serve 3× one replica's
calls/s here — the run shows that the shared counters hold under three writers and what each call costs
each part; the projection says what three cores would serve.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import redis
import yaml

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/services.py: a fresh Postgres database and Redis db

from _harness import PROVIDER_KEY, Cores, Run, cpu_seconds, load, process  # noqa: E402

from paymaster.config import hash_key  # noqa: E402
from paymaster.server import free_port  # noqa: E402
from tests.services import stores  # noqa: E402

BODY = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi [sim:tokens=20]"}]}


def fleet(tmp: Path, sim_url: str, key: str, store: dict[str, Any]) -> Path:
    raw = {
        **store,
        "providers": {"anthropic": {"kind": "anthropic", "base_url": sim_url, "api_key_env": "BENCH_PROVIDER_KEY"}},
        "agents": {"bench": {"model": "claude-haiku-4-5", "daily_usd": 100000, "key_sha256": hash_key(key)}},
    }
    path = tmp / f"fleet-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def pg_cpu(url: str, db: str) -> float:
    """CPU seconds so far of the Postgres backends serving `db` (the gateways' pools)."""

    async def pids() -> list[int]:
        c = await asyncpg.connect(url)
        try:
            return [r[0] for r in await c.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", db)]
        finally:
            await c.close()

    total = 0.0
    for pid in asyncio.run(pids()):
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return total


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("PAYMASTER_TEST_REDIS"))
    ap.add_argument("--postgres", default=os.environ.get("PAYMASTER_TEST_POSTGRES"))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if not a.redis or not a.postgres:
        raise SystemExit("give --redis and --postgres (or PAYMASTER_TEST_REDIS / PAYMASTER_TEST_POSTGRES)")
    cores = Cores.pick()
    key = "pm-" + secrets.token_hex(8)
    env = {"BENCH_PROVIDER_KEY": PROVIDER_KEY}
    mine = os.sched_getaffinity(0)
    try:
        with (
            stores(a.redis, a.postgres, "paymaster_bench_", 14) as sh,
            tempfile.TemporaryDirectory(prefix="paymaster-scale-") as t,
            ExitStack() as stack,
        ):
            tmp = Path(t)
            r, redis_url, pg_url = sh.redis, sh.redis_url, sh.postgres_url
            db = pg_url.rsplit("/", 1)[1]
            if cores:
                os.sched_setaffinity(0, {cores.rest})
            sim_port = free_port()
            sim_cmd = ["paymaster.cli", "sim", "--port", str(sim_port), "--api-key", PROVIDER_KEY]
            stack.enter_context(process(sim_cmd, sim_port, core=cores.rest if cores else None))
            sim_url = f"http://127.0.0.1:{sim_port}"
            shared = {"reservations": redis_url, "ledger": pg_url}
            setups: dict[str, list[tuple[int, int]]] = {}  # name -> [(port, pid)]
            for name, store, n in (
                ("SQLite, 1 gateway", {"ledger": str(tmp / "ledger.db")}, 1),
                ("Redis + Postgres, 1 replica", shared, 1),
                ("Redis + Postgres, 3 replicas", shared, 3),
            ):
                path = fleet(tmp, sim_url, key, store)
                setups[name] = []
                for _ in range(n):
                    port = free_port()
                    cmd = ["paymaster.cli", "serve", "--config", str(path), "--port", str(port)]
                    gw = stack.enter_context(process(cmd, port, env, core=cores.gateway if cores else None))
                    setups[name].append((port, gw.pid))
            where = f"gateways on cpu {cores.gateway}, simulator + load on cpu {cores.rest}" if cores else "not pinned"
            print(f"{where}; {a.calls} calls per measurement, best of {a.rounds} alternating rounds")
            headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            sim_headers = {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}
            direct: list[Run] = []
            single: dict[str, list[Run]] = {n: [] for n in setups}
            multi: dict[str, list[tuple[Run, float, float, float]]] = {n: [] for n in setups}
            for _ in range(a.rounds):
                direct.append(asyncio.run(load(sim_url + "/v1/messages", sim_headers, BODY, a.calls // 4, 1)))
                for name, gws in setups.items():
                    single[name].append(
                        asyncio.run(load(f"http://127.0.0.1:{gws[0][0]}/v1/messages", headers, BODY, a.calls // 4, 1))
                    )
                    cpu0 = sum(cpu_seconds(pid) for _, pid in gws)
                    r0, p0 = redis_cpu(r), pg_cpu(a.postgres, db)

                    async def spread(gws: list[tuple[int, int]] = gws) -> Run:
                        runs = await asyncio.gather(
                            *(
                                load(
                                    f"http://127.0.0.1:{p}/v1/messages",
                                    headers,
                                    BODY,
                                    a.calls // len(gws),
                                    60 // len(gws),
                                )
                                for p, _ in gws
                            )
                        )
                        return Run.merge(list(runs))

                    run = asyncio.run(spread())
                    run.wall = max(run.wall / len(gws), 1e-9)  # the loads ran side by side
                    multi[name].append(
                        (
                            run,
                            sum(cpu_seconds(pid) for _, pid in gws) - cpu0,
                            redis_cpu(r) - r0,
                            pg_cpu(a.postgres, db) - p0,
                        )
                    )
            base = min(direct, key=lambda x: x.pct(50))
            print(f"direct to the simulator, concurrency 1: p50 {base.pct(50):.2f} ms, p99 {base.pct(99):.2f} ms")
            print(
                f"{'setup':30} {'p50 ms':>7} {'p99 ms':>7} {'added p50':>9} {'calls/s':>8} "
                f"{'gw CPU/call':>11} {'redis':>7} {'postgres':>8} {'proj. calls/s/core':>18}"
            )
            for name in setups:
                s = min(single[name], key=lambda x: x.pct(50))
                run, gcpu, rcpu, pcpu = max(multi[name], key=lambda m: m[0].rate)
                calls = max(run.calls, 1)
                per = gcpu / calls * 1e6
                print(
                    f"{name:30} {s.pct(50):7.2f} {s.pct(99):7.2f} {s.pct(50) - base.pct(50):9.2f} {run.rate:8,.0f} "
                    f"{per:8,.0f} µs {rcpu / calls * 1e6:4,.0f} µs {pcpu / calls * 1e6:5,.0f} µs {1e6 / per:18,.0f}"
                )
                bad = {k: v for k, v in run.statuses.items() if k != 200}
                if bad:
                    print(f"  non-200 answers: {bad}")
            print(
                "projection: N replicas on N cores serve N × calls/s/core until Redis or Postgres fills its own "
                "core (1e6 / their µs per call)"
            )
    finally:
        os.sched_setaffinity(0, mine)


if __name__ == "__main__":
    main()
