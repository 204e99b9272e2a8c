"""Shared bench plumbing: the simulator and the gateway as separate processes, and a load generator.

Each server is its own process (like production): `paymaster sim` and `paymaster serve`. The load
generator is aiohttp in this process, measuring wall-clock latency per call. Requests run in a
bounded loop and stop by themselves; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from paymaster.config import hash_key
from paymaster.server import free_port, wait_port

PROVIDER_KEY = "sk-bench-provider"
ADMIN_KEY = "pm-bench-admin"


@contextmanager
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Stack:
    sim_url: str
    gw_url: str
    keys: dict[str, str]
    tmp: Path


@contextmanager
def stack(
    agents: dict[str, dict[str, Any]], sim_args: list[str] | None = None, fleet: dict[str, Any] | None = None
) -> Iterator[Stack]:
    """A simulator and a gateway (SQLite ledger, budgets on) in their own processes; `fleet`: the
    fleet.yaml `fleet:` section."""
    sim_port, gw_port = free_port(), free_port()
    keys = {name: "pm-" + secrets.token_hex(8) for name in agents}
    with tempfile.TemporaryDirectory(prefix="paymaster-bench-") as tmp:
        sim_url = f"http://127.0.0.1:{sim_port}"
        config: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": gw_port},
            "ledger": str(Path(tmp) / "ledger.db"),
            "admin": {"key_sha256": hash_key(ADMIN_KEY)},
            "providers": {
                "anthropic": {"kind": "anthropic", "base_url": sim_url, "api_key_env": "BENCH_PROVIDER_KEY"},
                "openai": {"kind": "openai", "base_url": sim_url + "/v1", "api_key_env": "BENCH_PROVIDER_KEY"},
            },
            "agents": {n: {**a, "key_sha256": hash_key(keys[n])} for n, a in agents.items()},
        }
        if fleet:
            config["fleet"] = fleet
        (Path(tmp) / "fleet.yaml").write_text(yaml.safe_dump(config))
        env = {"BENCH_PROVIDER_KEY": PROVIDER_KEY}
        sim_cmd = ["paymaster.cli", "sim", "--port", str(sim_port), "--api-key", PROVIDER_KEY, *(sim_args or [])]
        with (
            process(sim_cmd, sim_port),
            process(["paymaster.cli", "serve", "--config", str(Path(tmp) / "fleet.yaml")], gw_port, env),
        ):
            yield Stack(sim_url, f"http://127.0.0.1:{gw_port}", keys, Path(tmp))


@dataclass
class Run:
    latencies: list[float]  # seconds, successful calls
    statuses: dict[int, int]
    wall: float

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")

    @property
    def rate(self) -> float:
        return sum(self.statuses.values()) / self.wall


async def load(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | list[dict[str, Any]],
    n: int,
    concurrency: int,
    warmup: bool = True,
) -> Run:
    """`n` POSTs at `concurrency`, over keep-alive connections; bounded in count."""
    bodies = [orjson.dumps(b) for b in body] if isinstance(body, list) else [orjson.dumps(body)]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"content-type": "application/json", **headers}) as s:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                t0 = time.perf_counter()
                async with s.post(url, data=bodies[i % len(bodies)]) as r:
                    await r.read()
                dt = time.perf_counter() - t0
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    lat.append(dt)

        if warmup:  # a first round opens the connections and warms caches; it is not counted
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        lat.clear()
        statuses.clear()
        todo = iter(range(n))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return Run(lat, statuses, wall)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
