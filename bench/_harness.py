"""Shared bench plumbing: the simulator and the gateway as separate processes, and a load generator.

Each server is its own process (like production): `paymaster sim` and `paymaster serve`. The load
generator is aiohttp in this process, measuring wall-clock latency per call. Requests run in a
bounded loop and stop by themselves; everything listens on 127.0.0.1 only.

The measurement rule: the gateway alone on one core (`taskset -c 0`), the load generator and the
simulator together on another (core 1), so that what the gateway costs is not mixed with what the
processes it talks to cost. The gateway's CPU time comes from /proc/<pid>/stat: on a shared machine
it is the figure least disturbed by the neighbours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from paymaster.config import ConfigError, Provider, hash_key, parse
from paymaster.server import free_port, wait_port

PROVIDER_KEY = "sk-bench-provider"
ADMIN_KEY = "pm-bench-admin"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class Unsupported(SystemExit):
    """The bench asked for something this checkout's gateway cannot do; the message says what."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{Path(sys.argv[0]).name}: {message}")


def provider_fields() -> set[str]:
    """The keys a provider accepts in fleet.yaml (the fields of `paymaster.config.Provider`)."""
    if dataclasses.is_dataclass(Provider):
        return {f.name for f in dataclasses.fields(Provider)}
    return set(getattr(Provider, "model_fields", {}))  # a pydantic model


def require_provider_key(key: str, flag: str, why: str) -> None:
    """Exit with a clear message when `flag` needs a provider key (`ca_bundle`, `transport`) not there yet."""
    if key not in provider_fields():
        raise Unsupported(
            f"{flag} needs providers.<name>.{key} in fleet.yaml ({why}), which this checkout's config does not"
            f" have yet (issue 8's transport work adds it). Run without {flag} until then."
        )


@dataclass(frozen=True)
class Cores:
    """Where each process runs: the gateway alone on `gateway`, the rest on `rest`."""

    gateway: int
    rest: int

    @staticmethod
    def pick() -> Cores | None:
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < 2 or not shutil.which("taskset"):
            return None
        return Cores(usable[0], usable[1])  # core 0 and core 1 on an ordinary machine


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime (fields 14 and 15 of proc(5))


def affinity(pid: int) -> str:
    return ",".join(map(str, sorted(os.sched_getaffinity(pid))))


@contextmanager
def process(
    args: list[str], port: int, env: dict[str, str] | None = None, core: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m <args>` (pinned to `core` with taskset when given), until it accepts on `port`."""
    cmd = [sys.executable, "-m", *args]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]  # taskset execs the command: same pid
    # stderr to a file, not a pipe nobody reads: a gateway writing its access log there would stall once a pipe filled
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            wait_port(port, alive=lambda: proc.poll() is None)
        except RuntimeError as e:
            log.seek(0)
            err = log.read()[-4000:].decode(errors="replace").strip() if proc.poll() is not None else ""
            raise RuntimeError(f"{' '.join(cmd)}: {e}\n{err}") from None
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Stack:
    sim_url: str
    gw_url: str
    keys: dict[str, str]
    tmp: Path
    gateway_pid: int
    sim_pid: int
    ca: Path | None  # the simulator's CA when it serves TLS
    cores: Cores | None

    def client_ssl(self) -> ssl.SSLContext | None:
        """What the load generator needs to call the simulator directly (None over plain HTTP)."""
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else None

    def layout(self) -> str:
        """Where each process actually runs (read back from the kernel)."""
        return (
            f"gateway pid {self.gateway_pid} on cpu {affinity(self.gateway_pid)}; "
            f"simulator on cpu {affinity(self.sim_pid)}; load generator on cpu {affinity(0)}"
        )


@contextmanager
def stack(
    agents: dict[str, dict[str, Any]],
    sim_args: list[str] | None = None,
    tls: bool = False,
    provider: dict[str, Any] | None = None,
    pin: bool = True,
    fleet_section: dict[str, Any] | None = None,
    more: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """A simulator and a gateway (SQLite ledger, budgets on) in their own processes.

    `tls`: the simulator serves HTTPS and the gateway trusts its CA (`ca_bundle` under each provider);
    `provider`: more keys under each provider (e.g. `transport`); `pin`: the measurement rule's cores;
    `fleet_section`: fleet.yaml's `fleet:` section.
    """
    if tls:
        require_provider_key("ca_bundle", "--tls", "the gateway trusting the simulator's CA")
    sim_port, gw_port = free_port(), free_port()
    keys = {name: "pm-" + secrets.token_hex(8) for name in agents}
    cores = Cores.pick() if pin else None
    mine = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="paymaster-bench-") as tmp:
        ca = Path(tmp) / "sim-ca.pem" if tls else None
        sim_url = f"{'https' if tls else 'http'}://127.0.0.1:{sim_port}"
        extra = {**(provider or {}), **({"ca_bundle": str(ca)} if ca else {})}
        fleet = {
            "listen": {"host": "127.0.0.1", "port": gw_port},
            "ledger": str(Path(tmp) / "ledger.db"),
            "admin": {"key_sha256": hash_key(ADMIN_KEY)},
            "providers": {
                "anthropic": {"kind": "anthropic", "base_url": sim_url, "api_key_env": "BENCH_PROVIDER_KEY", **extra},
                "openai": {"kind": "openai", "base_url": sim_url + "/v1", "api_key_env": "BENCH_PROVIDER_KEY", **extra},
            },
            "agents": {n: {**a, "key_sha256": hash_key(keys[n])} for n, a in agents.items()},
        }
        if fleet_section:
            fleet["fleet"] = fleet_section
        fleet.update(more or {})  # other top-level sections (e.g. batch:)
        (Path(tmp) / "fleet.yaml").write_text(yaml.safe_dump(fleet))
        env = {"BENCH_PROVIDER_KEY": PROVIDER_KEY}
        sim_cmd = ["paymaster.cli", "sim", "--port", str(sim_port), "--api-key", PROVIDER_KEY, *(sim_args or [])]
        if ca:
            sim_cmd += ["--tls", "--ca-out", str(ca)]
        try:
            if cores:
                os.sched_setaffinity(0, {cores.rest})  # the load generator: this process
            with process(sim_cmd, sim_port, core=cores.rest if cores else None) as sim:
                try:  # the CA file exists now; a bad value fails here, with the field, not as a silent gateway
                    parse(fleet, env=env, base=Path(tmp))
                except ConfigError as e:
                    raise Unsupported(f"the gateway refuses this fleet: {e}") from None
                gw_cmd = ["paymaster.cli", "serve", "--config", str(Path(tmp) / "fleet.yaml")]
                with process(gw_cmd, gw_port, env, core=cores.gateway if cores else None) as gw:
                    yield Stack(sim_url, f"http://127.0.0.1:{gw_port}", keys, Path(tmp), gw.pid, sim.pid, ca, cores)
        finally:
            os.sched_setaffinity(0, mine)


@dataclass
class Run:
    latencies: list[float]  # seconds, successful calls
    statuses: dict[int, int]
    wall: float
    cpu: float | None = None  # seconds of the metered process over the counted calls

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")

    @property
    def calls(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.calls / self.wall

    @property
    def cpu_per_call_us(self) -> float:
        return self.cpu / self.calls * 1e6 if self.cpu is not None and self.calls else float("nan")

    @staticmethod
    def merge(runs: list[Run]) -> Run:
        statuses: dict[int, int] = {}
        for r in runs:
            for k, v in r.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
        cpus = [r.cpu for r in runs]
        cpu = None if None in cpus else sum(c for c in cpus if c is not None)
        return Run([x for r in runs for x in r.latencies], statuses, sum(r.wall for r in runs), cpu)


async def load(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | list[dict[str, Any]],
    n: int,
    concurrency: int,
    warmup: bool = True,
    warmup_calls: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    meter: Callable[[], float] | None = None,
) -> Run:
    """`n` POSTs at `concurrency`, over keep-alive connections; bounded in count.

    A warm-up round (`warmup_calls`, default `n`) opens the connections first and is not counted;
    `meter` (e.g. a process's CPU seconds) is read around the counted calls only.
    """
    bodies = [orjson.dumps(b) for b in body] if isinstance(body, list) else [orjson.dumps(body)]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    conn = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_context or True)
    async with aiohttp.ClientSession(connector=conn, headers={"content-type": "application/json", **headers}) as s:

        async def worker(todo: Iterator[int]) -> None:
            for i in todo:
                t0 = time.perf_counter()
                async with s.post(url, data=bodies[i % len(bodies)]) as r:
                    await r.read()
                dt = time.perf_counter() - t0
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    lat.append(dt)

        if warmup:
            todo = iter(range(n if warmup_calls is None else warmup_calls))
            await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
        lat.clear()
        statuses.clear()
        todo = iter(range(n))
        cpu0 = meter() if meter else 0.0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        cpu = meter() - cpu0 if meter else None
    return Run(lat, statuses, wall, cpu)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
