"""Which transport for the upstream hop, over TLS: the in-house client (`builtin`) against aiohttp.

    python bench/transport.py [--calls 3000] [--conc 1,20,50]

The upstream is the simulator served over HTTPS (uvicorn, a throwaway trustme CA) in its own process,
pinned to the other core when there are two; this process — the client being measured — sends
the same non-streamed Messages call through each transport's `send` (providers.transport), then a
streamed one. Prints per transport and concurrency: calls/s, p50/p99 latency, the p50 added over
the fastest transport, and the client CPU per call (this process's CPU seconds / calls), which is
what the gateway pays on every call. Connections are warm (keep-alive), as in the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import trustme
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from _harness import PROVIDER_KEY  # noqa: E402

from paymaster.config import TRANSPORTS, Provider  # noqa: E402
from paymaster.providers.transport import Target, Transport, open_transport  # noqa: E402
from paymaster.server import free_port, wait_port  # noqa: E402

HEADERS = {
    "content-type": "application/json",
    "x-api-key": PROVIDER_KEY,
    "anthropic-version": "2023-06-01",
    "accept-encoding": "identity",
}


def body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "hello [sim:tokens=20]"}],
        }
    )


SERVE = """
import sys, uvicorn
from paymaster.sim import Simulator
uvicorn.run(Simulator(api_keys={sys.argv[1]}).app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop",
            http="httptools", log_level="warning", access_log=False, ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4])
"""


async def one(t: Transport, data: bytes, stream: bool) -> None:
    r = await t.send("POST", "/v1/messages", HEADERS, data)
    if stream:
        async for _ in r.iter_chunks():
            pass
    else:
        await r.read()
    assert r.status == 200, r.status


async def run(kind: str, target: Target, calls: int, conc: int, stream: bool) -> tuple[float, float, float, float]:
    t = open_transport(target, kind)
    data = body(stream)
    lat: list[float] = []

    async def worker(k: int) -> None:
        for _ in range(k):
            t0 = time.perf_counter()
            await one(t, data, stream)
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(20) for _ in range(conc)))  # warm: handshakes done, pools full
    lat.clear()
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(max(1, calls // conc)) for _ in range(conc)))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    await t.close()
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, cpu / len(lat) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--conc", default="1,20,50")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(f"{tmp}/cert.pem")
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(f"{tmp}/cert.pem", append=True)
        cert.private_key_pem.write_to_path(f"{tmp}/key.pem")
        ca.cert_pem.write_to_path(f"{tmp}/ca.pem")
        port = free_port()
        cmd = [sys.executable, "-c", SERVE, PROVIDER_KEY, str(port), f"{tmp}/cert.pem", f"{tmp}/key.pem"]
        if len(cores) > 1:  # the client on one core, the upstream on another
            os.sched_setaffinity(0, {cores[0]})
            cmd = ["taskset", "-c", str(cores[1]), *cmd]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            wait_port(port)
            p = Provider("bench", "anthropic", f"https://127.0.0.1:{port}", PROVIDER_KEY, ca_bundle=f"{tmp}/ca.pem")
            target = Target.of(p)
            print(f"upstream: simulator over TLS on 127.0.0.1:{port}; client pinned to core {cores[0]}")
            cols = ("calls/s", 8), ("p50 ms", 7), ("p99 ms", 7), ("+p50 ms", 8), ("CPU/call", 9)
            print(f"{'transport':9} {'mode':6} {'conc':>4} " + " ".join(f"{c:>{w}}" for c, w in cols))
            for stream in (False, True):
                for conc in (int(c) for c in args.conc.split(",")):
                    rows = {k: uvloop.run(run(k, target, args.calls, conc, stream)) for k in TRANSPORTS}
                    best = min(r[1] for r in rows.values())
                    for k, (rate, p50, p99, cpu) in rows.items():
                        mode = "stream" if stream else "json"
                        print(
                            f"{k:9} {mode:6} {conc:>4} {rate:>8.0f} {p50:>7.3f} {p99:>7.3f} {p50 - best:>8.3f}"
                            f" {cpu:>6.0f} µs"
                        )
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(10)


if __name__ == "__main__":
    main()
