"""Throughput of the provider simulator alone: non-streaming calls per second on one server process.

    .venv/bin/python bench/sim_throughput.py [--calls 5000] [--concurrency 50] [--api anthropic|openai]

The simulator runs in its own process (`python -m paymaster.sim`, uvicorn + httptools + uvloop,
one core) so the aiohttp client here does not share its CPU time or its GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import orjson

from paymaster.server import free_port

BODIES = {
    "anthropic": (
        "/v1/messages",
        {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01", "content-type": "application/json"},
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are a terse assistant.",
            "messages": [{"role": "user", "content": "Summarise the quarterly numbers in two lines."}],
        },
    ),
    "openai": (
        "/v1/chat/completions",
        {"authorization": "Bearer sk-bench", "content-type": "application/json"},
        {
            "model": "gpt-4o-mini",
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Summarise the quarterly numbers in two lines."},
            ],
        },
    ),
}


async def wait_ready(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/_sim/faults") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator at {url} did not start")
            await asyncio.sleep(0.05)


async def fire(url: str, api: str, calls: int, concurrency: int) -> tuple[float, int]:
    path, headers, body = BODIES[api]
    data = orjson.dumps(body)
    failures = 0
    remaining = calls

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            async with session.post(url + path, data=data, headers=headers) as r:
                await r.read()
                failures += r.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def warm() -> None:  # open the connections and warm the code paths, untimed
            async with session.post(url + path, data=data, headers=headers) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - start, failures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--api", choices=sorted(BODIES), default="anthropic")
    args = p.parse_args(argv)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "paymaster.sim", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        asyncio.run(wait_ready(url, time.monotonic() + 15))
        cpu_before = cpu_seconds(server.pid)
        elapsed, failures = asyncio.run(fire(url, args.api, args.calls, args.concurrency))
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=10)
    rate = args.calls / elapsed
    print(
        f"sim {args.api}: {args.calls} non-streaming calls at concurrency {args.concurrency} "
        f"in {elapsed:.2f}s = {rate:,.0f} calls/s ({failures} failures)"
    )
    if cpu > 0:
        print(
            f"  server CPU {cpu:.2f}s ({cpu / elapsed:.0%} of one core): "
            f"{args.calls / cpu:,.0f} calls per server CPU-second"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
