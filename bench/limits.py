"""A bystander's latency while a noisy agent hammers the gateway: the denial-of-wallet limits at work.

    python bench/limits.py [--calls N] [--noisy-concurrency N] [--rounds N]

One gateway (its own process, pinned to core 0 by the measurement rule), two agents: `bystander` (no limits)
sends `--calls` calls one at a time; `noisy` (requests_per_minute 600, max_in_flight 4, loop detector blocking
after 5 near-identical calls) sends the same call from `--noisy-concurrency` workers that wait out each 429's
retry-after (at most 1 s, so the pressure stays on). In alternating rounds the bystander runs alone and beside
the noisy agent; the bystander's p50 beside it should be within 10 % of its p50 alone. Prints a Markdown table,
after what the check itself costs in this process (`Limits.enter` + leave, every limit on vs none).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Run, median, stack  # noqa: E402

ASK = {"model": "claude-haiku-4-5", "max_tokens": 64}
BYSTANDER = {**ASK, "messages": [{"role": "user", "content": "Summarise the report. [sim:tokens=40]"}]}
NOISY = {**ASK, "messages": [{"role": "user", "content": "The tool failed. Try again. [sim:tokens=40]"}]}
LIMITS = {"requests_per_minute": 600, "max_in_flight": 4, "loop_calls": 5, "loop_window_s": 10, "loop_block": True}
TIMEOUT = aiohttp.ClientTimeout(total=5)
AGENT = {"model": "claude-haiku-4-5", "daily_usd": 1_000_000, "monthly_usd": 10_000_000}


async def hammer(url: str, key: str, workers: int, stop: asyncio.Event) -> dict[int, int]:
    statuses: dict[int, int] = {}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    async with aiohttp.ClientSession(headers=headers) as s:

        async def worker() -> None:
            while not stop.is_set():
                try:
                    async with s.post(url + "/v1/messages", json=NOISY, timeout=TIMEOUT) as r:
                        await r.read()
                except TimeoutError:
                    statuses[0] = statuses.get(0, 0) + 1  # no answer within TIMEOUT
                    continue
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 429:
                    await asyncio.sleep(min(1.0, float(r.headers.get("retry-after", "1"))))

        await asyncio.gather(*(worker() for _ in range(workers)))
    return statuses


async def bystander(url: str, key: str, calls: int, warmup: int = 20) -> Run:
    """`calls` calls one at a time (after `warmup` uncounted ones) over one keep-alive connection."""
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as s:
        for i in range(warmup + calls):
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


async def round_(url: str, keys: dict[str, str], calls: int, noisy: int) -> tuple[Run, dict[int, int]]:
    stop = asyncio.Event()
    noise = asyncio.create_task(hammer(url, keys["noisy"], noisy, stop)) if noisy else None
    if noise:
        await asyncio.sleep(0.5)  # the noisy agent is at it before the bystander starts
    run = await bystander(url, keys["bystander"], calls)
    stop.set()
    return run, (await noise if noise else {})


def enter_cost(n: int = 200_000) -> tuple[float, float]:
    """µs per call of the limits' check: an agent with every limit on (never refused), and one with none."""
    from paymaster.blackboard import Blackboard
    from paymaster.config import Agent, AgentLimits
    from paymaster.limits import Limits

    every = AgentLimits(10_000_000, 10_000_000_000, 1000, 1_000_000, 60.0)

    def agent(name: str, lim: AgentLimits) -> Agent:
        return Agent(name, "", "m", ("m",), None, None, 64, limits=lim)

    on, off = agent("on", every), agent("off", AgentLimits())
    limits = Limits(Blackboard(["on", "off"]))

    def with_limits() -> None:
        m = limits.enter(on, BYSTANDER)
        assert m is not None
        limits.leave(m, "on", None)

    def without() -> None:
        limits.enter(off, BYSTANDER)

    return tuple(timeit.timeit(f, number=n) / n * 1e6 for f in (with_limits, without))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="bystander calls per round (default 300)")
    ap.add_argument("--noisy-concurrency", type=int, default=16, help="the noisy agent's workers (default 16)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each kind, alternating (default 2)")
    args = ap.parse_args()
    on, off = enter_cost()
    print(f"limits check: {on:.2f} µs per call with every limit on, {off:.2f} µs with none\n")
    agents: dict[str, dict[str, Any]] = {"bystander": AGENT, "noisy": {**AGENT, "limits": LIMITS}}
    alone: list[float] = []
    beside: list[float] = []
    noise: dict[int, int] = {}
    t0 = time.perf_counter()
    with stack(agents) as st:
        for i in range(args.rounds * 2):
            noisy = args.noisy_concurrency if (i % 2 == 1) else 0
            run, statuses = asyncio.run(round_(st.gw_url, st.keys, args.calls, noisy))
            if run.statuses != {200: args.calls}:
                print(f"round {i}: the bystander's answers {run.statuses} (0: none within 5 s)")
            (beside if noisy else alone).append(run.pct(50))
            for k, v in statuses.items():
                noise[k] = noise.get(k, 0) + v
    a, b = median(alone), median(beside)
    print(f"bystander p50 over {args.rounds} rounds each of {args.calls} calls ({time.perf_counter() - t0:.0f} s)\n")
    print("| bystander | p50 ms |")
    print("|---|---|")
    print(f"| alone | {a:.3f} |")
    print(f"| beside a noisy agent ({args.noisy_concurrency} workers) | {b:.3f} |")
    print(f"\nratio {b / a:.3f} (target <= 1.10); the noisy agent's answers: {dict(sorted(noise.items()))}")


if __name__ == "__main__":
    main()
