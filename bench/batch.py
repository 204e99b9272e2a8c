"""Deferred calls: 5,000 document summaries real-time vs deferred through the gateway, and what a running batch
does to real-time calls served at the same time.

    python bench/batch.py [--calls 5000] [--concurrency 50] [--overhead-calls 2000]

1. real-time: `--calls` summaries through the gateway (agent `rt`) → spend, wall time, gateway CPU per call.
2. deferred: the same summaries with `x-paymaster-defer: true` (agent `deferred`) → 202s, then sent by the
   gateway as provider batches (flush at 1,000 calls or 1 s; the simulator runs a batch in 0.3 s) and settled
   at the batch price → spend, wall time until the last job is settled, gateway CPU per deferred call (intake
   + submission + polling + settlement). Expected spend ratio 0.5.
3. overhead: real-time p50/p99 alone, then again while deferred calls stream in and batches run.

The measurement rule (bench/_harness.py): the gateway alone on one core, the simulator and this load
generator on the other.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import ADMIN_KEY, Run, Stack, cpu_seconds, load, stack  # noqa: E402

DOC = "Summarise this document in three bullet points: " + "The quarter closed with revenue up. " * 40
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": DOC + "[sim:tokens=120]"}],
}
AGENT = {"model": "claude-haiku-4-5", "daily_usd": 1_000_000, "monthly_usd": 10_000_000}
AUTH = {"anthropic-version": "2023-06-01"}


async def spent(st: Stack, agent: str) -> Decimal:
    async with (
        aiohttp.ClientSession() as s,
        s.get(st.gw_url + "/admin/agents", headers={"authorization": f"Bearer {ADMIN_KEY}"}) as r,
    ):
        data = await r.json()
    a = next(a for a in data["agents"] if a["name"] == agent)
    w = next(w for w in a["windows"] if w["window"] == "agent daily")
    return Decimal(w["spent_usd"])


async def open_jobs(st: Stack, agent: str) -> int:
    h = {"x-api-key": st.keys[agent], **AUTH}
    n = 0
    async with aiohttp.ClientSession() as s:
        for status in ("queued", "submitted"):
            async with s.get(st.gw_url + f"/v1/paymaster/jobs?status={status}&limit=1000", headers=h) as r:
                n += len((await r.json())["data"])
    return n


async def deferred(st: Stack, calls: int, conc: int) -> tuple[Run, float, float]:
    """(the 202 round, wall time until settled, gateway CPU seconds over it all)."""
    h = {"x-api-key": st.keys["deferred"], "x-paymaster-defer": "true", **AUTH}
    cpu0, t0 = cpu_seconds(st.gateway_pid), time.perf_counter()
    intake = await load(st.gw_url + "/v1/messages", h, BODY, calls, conc, warmup=False)
    while await open_jobs(st, "deferred"):
        await asyncio.sleep(0.25)
    return intake, time.perf_counter() - t0, cpu_seconds(st.gateway_pid) - cpu0


async def overhead(st: Stack, calls: int, conc: int) -> tuple[Run, Run]:
    url, h = st.gw_url + "/v1/messages", {"x-api-key": st.keys["rt"], **AUTH}
    alone = await load(url, h, BODY, calls, conc, warmup_calls=200)
    hd = {"x-api-key": st.keys["deferred"], "x-paymaster-defer": "true", **AUTH}
    background = asyncio.create_task(load(url, hd, BODY, calls, 4, warmup=False))
    busy = await load(url, h, BODY, calls, conc, warmup_calls=200)
    await background
    return alone, busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--overhead-calls", type=int, default=2000)
    ap.add_argument("--no-pin", action="store_true")
    args = ap.parse_args()
    more = {"batch": {"flush_count": 1000, "flush_age_s": 1, "poll_s": 0.5}, "observability": {"access_log": "off"}}
    with stack({"rt": AGENT, "deferred": AGENT}, pin=not args.no_pin, more=more) as st:
        print(st.layout())
        cpu0 = cpu_seconds(st.gateway_pid)
        rt = asyncio.run(load(st.gw_url + "/v1/messages", {"x-api-key": st.keys["rt"], **AUTH}, BODY, args.calls,
                              args.concurrency, warmup=False))  # fmt: skip
        rt_cpu = cpu_seconds(st.gateway_pid) - cpu0
        rt_spend = asyncio.run(spent(st, "rt"))
        intake, wall, cpu = asyncio.run(deferred(st, args.calls, args.concurrency))
        d_spend = asyncio.run(spent(st, "deferred"))
        if set(rt.statuses) != {200} or set(intake.statuses) != {202}:
            raise SystemExit(f"unexpected answers: real-time {rt.statuses}, deferred {intake.statuses}")
        print(f"\n{args.calls} document summaries (claude-haiku-4-5), concurrency {args.concurrency}\n")
        print("| path | spend | wall time | gateway CPU per call |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| real-time | ${rt_spend} | {rt.wall:.1f} s | {rt_cpu / args.calls * 1e6:.0f} µs |")
        print(
            f"| deferred (202 in {intake.wall:.1f} s) | ${d_spend} | {wall:.1f} s | {cpu / args.calls * 1e6:.0f} µs |"
        )
        print(f"\nspend ratio deferred / real-time: {d_spend / rt_spend:.3f} (expected 0.5)")
        alone, busy = asyncio.run(overhead(st, args.overhead_calls, args.concurrency))
        print("\n| real-time calls | p50 | p99 |")
        print("| --- | ---: | ---: |")
        print(f"| alone | {alone.pct(50):.2f} ms | {alone.pct(99):.2f} ms |")
        print(f"| with deferred calls and batches running | {busy.pct(50):.2f} ms | {busy.pct(99):.2f} ms |")


if __name__ == "__main__":
    main()
