"""Which ASGI server runs the gateway: uvicorn (httptools + uvloop) or granian, same app, same simulator.

    python bench/server_choice.py [--calls 3000]

Prints, per server and concurrency, the server processes' CPU time per call (what decides
throughput on a small machine), p50 latency and calls/s. Needs `pip install granian` (not a
dependency of Paymaster: it lost this comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _harness import load, process  # noqa: E402
from overhead import BODY  # noqa: E402

from paymaster.config import hash_key  # noqa: E402
from paymaster.server import free_port, wait_port  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *map(int, out)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    granian = shutil.which("granian") or str(Path(sys.executable).parent / "granian")
    servers = ["uvicorn"] + (["granian"] if Path(granian).exists() else [])
    sim_port = free_port()
    tmp = tempfile.mkdtemp(prefix="paymaster-bench-")
    print(f"{'server':8} {'conc':>4} {'CPU/call':>9} {'p50 ms':>7} {'calls/s':>8}")
    with process(["paymaster.cli", "sim", "--port", str(sim_port)], sim_port):
        for server in servers:
            port = free_port()
            cfg = Path(tmp) / f"{server}.yaml"
            cfg.write_text(
                yaml.safe_dump(
                    {
                        "listen": {"host": "127.0.0.1", "port": port},
                        "ledger": str(Path(tmp) / f"{server}.db"),
                        "providers": {
                            "anthropic": {"base_url": f"http://127.0.0.1:{sim_port}", "api_key_env": "BENCH_KEY"}
                        },
                        "agents": {
                            "bench": {
                                "model": "claude-haiku-4-5",
                                "key_sha256": hash_key("pm-bench"),
                                "daily_usd": 1_000_000,
                            }
                        },
                    }
                )
            )
            env = {**os.environ, "BENCH_KEY": "sk-bench", "PAYMASTER_CONFIG": str(cfg)}
            if server == "uvicorn":
                cmd = [sys.executable, "-m", "paymaster.cli", "serve", "--config", str(cfg)]
            else:
                cmd = [
                    granian,
                    "--interface",
                    "asgi",
                    "--loop",
                    "uvloop",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--no-ws",
                    "--log-level",
                    "warning",
                    "paymaster.asgi:app",
                ]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(port)
                time.sleep(0.5)
                pids = family(proc.pid)
                for conc in (1, 20):
                    c0 = sum(cpu_seconds(p) for p in pids)
                    run = asyncio.run(
                        load(f"http://127.0.0.1:{port}/v1/messages", {"x-api-key": "pm-bench"}, BODY, args.calls, conc)
                    )
                    used = sum(cpu_seconds(p) for p in pids) - c0
                    print(
                        f"{server:8} {conc:>4} {used / (2 * args.calls) * 1e6:>6.0f} µs {run.pct(50):>7.2f} "
                        f"{run.rate:>8.0f}"
                    )
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(10)
    print("\nCPU/call counts warm-up and measured rounds (2 × calls) against the server processes' CPU time.")


if __name__ == "__main__":
    main()
