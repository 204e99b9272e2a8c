"""Which HTTP client for the upstream hop: aiohttp, httpx2 (the SDKs' client) or the gateway's own
(`paymaster.providers.client`), measured against the same simulator process.

    python bench/upstream_client.py [--calls 5000]

Prints calls/s and p50 latency at concurrency 1 and 20 for each client, and the client CPU time
per call (process CPU seconds / calls), which is what the gateway pays on every call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import httpx2
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from _harness import PROVIDER_KEY, free_port, process  # noqa: E402

from paymaster.providers.client import Pool  # noqa: E402

BODY = orjson.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello [sim:tokens=20]"}]}
)
HEADERS = {"content-type": "application/json", "x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}


async def run(kind: str, url: str, n: int, conc: int) -> tuple[float, float, float]:
    lat: list[float] = []
    if kind == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def one() -> None:
            async with session.post(url + "/v1/messages", data=BODY, headers=HEADERS) as r:
                await r.read()
    elif kind == "httpx2":
        session = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=None))

        async def one() -> None:
            r = await session.post(url + "/v1/messages", content=BODY, headers=HEADERS)
            r.read()
    else:
        pool = Pool(url)

        async def one() -> None:
            r = await pool.post("/v1/messages", HEADERS, BODY)
            await r.read()

    async def worker(k: int) -> None:
        for _ in range(k):
            t0 = time.perf_counter()
            await one()
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(20) for _ in range(conc)))  # warm up
    lat.clear()
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if kind == "ours":
        await pool.close()
    else:
        await session.close() if kind == "aiohttp" else await session.aclose()
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2] * 1000, cpu / len(lat) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    port = free_port()
    with process(["paymaster.cli", "sim", "--port", str(port), "--api-key", PROVIDER_KEY], port):
        url = f"http://127.0.0.1:{port}"
        print(f"{'client':8} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'client CPU/call':>16}")
        for conc in (1, 20):
            for kind in ("aiohttp", "httpx2", "ours"):
                rate, p50, cpu = uvloop.run(run(kind, url, args.calls, conc))
                print(f"{kind:8} {conc:>4} {rate:>8.0f} {p50:>7.3f} {cpu:>13.0f} µs")


if __name__ == "__main__":
    main()
