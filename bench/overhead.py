"""Added latency and throughput of the gateway versus calling the simulator directly.

    python bench/overhead.py [--calls N]

Both paths are measured side by side in one run against the same simulator process, with budgets
and the SQLite ledger on: for concurrency 1, 10 and 50, the p50/p99 latency of direct calls and of
calls through the gateway, the difference (what the gateway adds), and calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import PROVIDER_KEY, load, stack  # noqa: E402

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Summarise the quarterly report in three bullet points. [sim:tokens=40]"}],
}
OPENAI_BODY = {
    "model": "gpt-4.1-mini",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Summarise the quarterly report in three bullet points. [sim:tokens=40]"}],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000, help="calls per measurement (default 3000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds (default 3)")
    args = ap.parse_args()
    agents = {
        "bench": {
            "model": "claude-haiku-4-5",
            "models": ["claude-haiku-4-5", "gpt-4.1-mini"],
            "daily_usd": 1_000_000,
            "monthly_usd": 10_000_000,
        },
    }
    with stack(agents) as st:
        key = st.keys["bench"]
        paths = {
            "anthropic": (
                (st.sim_url + "/v1/messages", {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}),
                (st.gw_url + "/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}),
                BODY,
            ),
            "openai": (
                (st.sim_url + "/v1/chat/completions", {"authorization": f"Bearer {PROVIDER_KEY}"}),
                (st.gw_url + "/v1/chat/completions", {"authorization": f"Bearer {key}"}),
                OPENAI_BODY,
            ),
        }
        print(
            f"{'api':9} {'conc':>4} | {'direct p50':>10} {'p99':>7} {'calls/s':>8} | {'gateway p50':>11} {'p99':>7} "
            f"{'calls/s':>8} | {'added p50':>9} {'added p99':>9}"
        )
        for api, (direct, via, body) in paths.items():
            for conc in (1, 10, 50):
                n = args.calls if conc > 1 else max(500, args.calls // 3)
                d_runs, g_runs = [], []
                for _ in range(args.rounds):  # alternate, so drift on the machine hits both alike
                    d_runs.append(asyncio.run(load(direct[0], direct[1], body, n, conc)))
                    g_runs.append(asyncio.run(load(via[0], via[1], body, n, conc)))
                d = _merge(d_runs)
                g = _merge(g_runs)
                assert set(g.statuses) == {200}, g.statuses
                print(
                    f"{api:9} {conc:>4} | {d.pct(50):>8.2f}ms {d.pct(99):>5.2f}ms {d.rate:>8.0f} | "
                    f"{g.pct(50):>9.2f}ms {g.pct(99):>5.2f}ms {g.rate:>8.0f} | "
                    f"{g.pct(50) - d.pct(50):>7.2f}ms {g.pct(99) - d.pct(99):>7.2f}ms"
                )
        print("\nlatency: wall clock per call at the client; added = gateway − direct at the same concurrency.")
        print("calls/s at concurrency 50 through the gateway is its throughput (client, gateway and")
        print("simulator share this machine's cores).")


def _merge(runs):
    from _harness import Run

    lat = [x for r in runs for x in r.latencies]
    statuses: dict[int, int] = {}
    for r in runs:
        for k, v in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return Run(lat, statuses, sum(r.wall for r in runs))


if __name__ == "__main__":
    main()
