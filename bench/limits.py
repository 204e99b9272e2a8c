"""A bystander's latency while a noisy agent hammers the gateway: the denial-of-wallet limits at work.

    python bench/limits.py [--calls N] [--rounds N] [--noisy-concurrency N] [--noisy honour|ignore]

One gateway (its own process, alone on core 0 by the measurement rule), two agents: `bystander` (no limits)
sends `--calls` calls one at a time; `noisy` (requests_per_minute 600, max_in_flight 4, loop detector blocking
after 5 near-identical calls) sends the same call from `--noisy-concurrency` workers, in its own process:
`ignore` (the default, a compromised agent) sends again as soon as an answer comes back, 429 or not; `honour`
waits out each 429's retry-after (at most 1 s, so the pressure stays on). The simulator, the bystander (this
process) and the noisy agent share core 1; the noisy process runs at the lowest CPU priority (nice 19) there,
so what it costs the simulator and the bystander's own client does not count as the gateway's doing.

Rounds alternate, the bystander alone and beside the noisy agent (`--rounds` of each); each round is a fresh
connection, 50 uncounted calls, then `--calls` counted ones. The figure is the median over rounds of each
round's p50; the bystander's p50 beside the noisy agent should be within 10 % of its p50 alone. Every
bystander call has a 5 s timeout: a call with no answer by then is counted as status 0 and reported (a hang).

Before the rounds it prints what the check itself costs in this process (`Limits.enter` + leave, every limit
on vs none). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Run, cpu_seconds, median, stack  # noqa: E402

ASK = {"model": "claude-haiku-4-5", "max_tokens": 64}
BYSTANDER = {**ASK, "messages": [{"role": "user", "content": "Summarise the report. [sim:tokens=40]"}]}
NOISY = {**ASK, "messages": [{"role": "user", "content": "The tool failed. Try again. [sim:tokens=40]"}]}
LIMITS = {"requests_per_minute": 600, "max_in_flight": 4, "loop_calls": 5, "loop_window_s": 10, "loop_block": True}
TIMEOUT = aiohttp.ClientTimeout(total=5)
AGENT = {"model": "claude-haiku-4-5", "daily_usd": 1_000_000, "monthly_usd": 10_000_000}
WARMUP = 50


async def hammer(url: str, key: str, workers: int, honour: bool) -> dict[int, int]:
    """The noisy agent, until SIGTERM: `workers` loops sending the same call; the answers by status."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    statuses: dict[int, int] = {}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    conn = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as s:

        async def worker() -> None:
            while not stop.is_set():
                try:
                    async with s.post(url + "/v1/messages", json=NOISY, timeout=TIMEOUT) as r:
                        await r.read()
                except TimeoutError:
                    statuses[0] = statuses.get(0, 0) + 1  # no answer within TIMEOUT
                    continue
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if honour and r.status == 429:
                    await asyncio.sleep(min(1.0, float(r.headers.get("retry-after", "1"))))

        print("ready", flush=True)
        await asyncio.gather(*(worker() for _ in range(workers)))
    return statuses


def noise_main(url: str, key: str, workers: int, honour: bool) -> None:
    os.nice(19)  # the lowest priority on the shared core: the simulator and the bystander's client come first
    statuses = asyncio.run(hammer(url, key, workers, honour))
    print(json.dumps(statuses), flush=True)


class Noise:
    """The noisy agent in its own process (on this process's core, at nice 19) for the length of a `with`."""

    def __init__(self, url: str, key: str, workers: int, honour: bool) -> None:
        args = ["--noise", url, key, str(workers)] + (["--noisy", "honour"] if honour else [])
        self.proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
        self.statuses: dict[int, int] = {}
        self.wall = 0.0

    def __enter__(self) -> Noise:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the noisy agent's process did not start")
        time.sleep(0.5)  # the noisy agent is at it before the bystander starts
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self.statuses = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


async def bystander(url: str, key: str, calls: int, warmup: int = WARMUP) -> Run:
    """`calls` calls one at a time (after `warmup` uncounted ones) over one keep-alive connection."""
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    lat: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(headers=headers) as s:
        for i in range(warmup + calls):
            if i == warmup:
                t0 = time.perf_counter()
            t = time.perf_counter()
            try:
                async with s.post(url + "/v1/messages", json=BYSTANDER, timeout=TIMEOUT) as r:
                    await r.read()
            except TimeoutError:
                statuses[0] = statuses.get(0, 0) + 1  # no answer within TIMEOUT (counted as status 0)
                continue
            if i >= warmup:
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    lat.append(time.perf_counter() - t)
    return Run(lat, statuses, time.perf_counter() - t0)


def enter_cost(n: int = 200_000) -> tuple[float, float]:
    """µs per call of the limits' check: an agent with every limit on (never refused), and one with none."""
    from paymaster.blackboard import Blackboard
    from paymaster.config import Agent, AgentLimits
    from paymaster.limits import Entry, Limits

    every = AgentLimits(10_000_000, 10_000_000_000, 1000, 1_000_000, 60.0)

    def agent(name: str, lim: AgentLimits) -> Agent:
        return Agent(name, "", "m", ("m",), None, None, 64, limits=lim)

    on, off = agent("on", every), agent("off", AgentLimits())
    limits = Limits(Blackboard(["on", "off"]))

    def with_limits() -> None:  # what Gateway.complete runs for an agent with limits, but the awaits
        m = limits.meter("on")
        limits.admit(on, m)
        limits.loop(on, m, BYSTANDER)
        limits.leave("on", Entry(m, None))

    def without() -> None:
        if off.limits.on:
            raise AssertionError("an agent without limits is not checked")

    return tuple(timeit.timeit(f, number=n) / n * 1e6 for f in (with_limits, without))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="counted bystander calls per round (default 1000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each kind, alternating (default 5)")
    ap.add_argument("--noisy-concurrency", type=int, default=16, help="the noisy agent's workers (default 16)")
    ap.add_argument("--noisy", choices=("ignore", "honour"), default="ignore", help="what it does with retry-after")
    ap.add_argument("--noise", nargs=3, metavar=("URL", "KEY", "WORKERS"), help=argparse.SUPPRESS)  # the subprocess
    args = ap.parse_args()
    if args.noise:
        return noise_main(args.noise[0], args.noise[1], int(args.noise[2]), args.noisy == "honour")
    on, off = enter_cost()
    print(f"limits check: {on:.2f} µs per call with every limit on, {off:.2f} µs with none\n")
    agents: dict[str, dict[str, Any]] = {"bystander": AGENT, "noisy": {**AGENT, "limits": LIMITS}}
    alone: list[Run] = []
    beside: list[Run] = []
    noise: dict[int, int] = {}
    noise_wall = 0.0
    cpu = {True: 0.0, False: 0.0}
    t0 = time.perf_counter()
    with stack(agents) as st:
        print(st.layout() + (f"; noisy agent on cpu {st.cores.rest} at nice 19\n" if st.cores else "  (NOT pinned)\n"))
        for i in range(args.rounds * 2):
            loud = i % 2 == 1
            c0 = cpu_seconds(st.gateway_pid)
            if loud:
                with Noise(st.gw_url, st.keys["noisy"], args.noisy_concurrency, args.noisy == "honour") as n:
                    run = asyncio.run(bystander(st.gw_url, st.keys["bystander"], args.calls))
                for k, v in n.statuses.items():
                    noise[k] = noise.get(k, 0) + v
                noise_wall += n.wall
            else:
                run = asyncio.run(bystander(st.gw_url, st.keys["bystander"], args.calls))
            cpu[loud] += cpu_seconds(st.gateway_pid) - c0
            if run.statuses != {200: args.calls}:
                print(f"round {i}: the bystander's answers {run.statuses} (0: none within 5 s)")
            (beside if loud else alone).append(run)
    a, b = median([r.pct(50) for r in alone]), median([r.pct(50) for r in beside])
    wall = {False: sum(r.wall for r in alone), True: sum(r.wall for r in beside)}
    took = time.perf_counter() - t0
    print(f"{args.rounds} rounds of each, {args.calls} counted bystander calls a round ({took:.0f} s)\n")
    print("| bystander | p50 ms (median of rounds) | p50 per round | p99 ms (all calls) | gateway CPU busy |")
    print("|---|---:|---|---:|---:|")
    for label, runs, p50, loud in (("alone", alone, a, False), (f"beside the noisy agent ({args.noisy_concurrency} "
                                   f"workers, {args.noisy} retry-after)", beside, b, True)):  # fmt: skip
        per = ", ".join(f"{r.pct(50):.2f}" for r in runs)
        print(f"| {label} | {p50:.3f} | {per} | {Run.merge(runs).pct(99):.2f} | {cpu[loud] / wall[loud]:.0%} |")
    refused = noise.get(429, 0)
    print(
        f"\nratio {b / a:.3f} (target <= 1.10); the noisy agent's answers: {dict(sorted(noise.items()))}"
        f" ({sum(noise.values()) / noise_wall:,.0f} calls/s, {refused / noise_wall:,.0f} refused/s)"
    )


if __name__ == "__main__":
    main()
