"""What the gateway adds: latency, throughput and CPU per call, against calling the simulator directly.

    python bench/overhead.py [--calls N] [--rounds N] [--api anthropic|openai|responses|both|all]
                             [--tls] [--transport NAME] [--concurrency 1,10,50] [--limits]

The measurement rule: the gateway alone on core 0 (`taskset`), the load generator and the simulator
on core 1; direct and through-the-gateway calls measured side by side in one run, in alternating
rounds (direct first in even rounds, the gateway first in odd ones), so that drift on the machine
hits both alike. Budgets, the SQLite ledger and every lever are on. `--tls`: the simulator serves
HTTPS from a local CA, which the gateway trusts through `ca_bundle` (the direct calls use TLS too, so
"added" compares like with like). `--transport NAME` sets `transport: NAME` under each provider.
`--limits`: a second agent with every denial-of-wallet limit on (set never to refuse) is measured in the
same rounds; the last column is what the limits add to the p50 (that agent's p50 − the other's).

Prints a Markdown table (paste it into the README with the command line above it) and the gateway's
CPU time per call, read from /proc/<pid>/stat: on a shared machine that is the steadiest figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import CLOCK_TICK, PROVIDER_KEY, Run, Stack, cpu_seconds, load, require_provider_key, stack  # noqa: E402

PROMPT = "Summarise the quarterly report in three bullet points. [sim:tokens=40]"
APIS = {
    "anthropic": ("Anthropic", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 256}),
    "openai": ("OpenAI", "/v1/chat/completions", {"model": "gpt-4.1-mini", "max_tokens": 256}),
    # the Responses API (target: at most 0.5 ms added p50); store false, as a stateless agent call
    "responses": (
        "OpenAI Responses",
        "/v1/responses",
        {"model": "gpt-4.1-mini", "max_output_tokens": 256, "store": False},
    ),
}
AGENT = {
    "model": "claude-haiku-4-5",
    "models": ["claude-haiku-4-5", "gpt-4.1-mini"],
    "daily_usd": 1_000_000,
    "monthly_usd": 10_000_000,
}
# --limits: every denial-of-wallet limit on, never refusing (the same call each time, below the loop threshold)
LIMITS = {"requests_per_minute": 10_000_000, "tokens_per_minute": 10_000_000_000, "max_in_flight": 100_000,
          "loop_calls": 1_000_000, "loop_window_s": 60}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="counted calls per measurement (default 3000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds (default 3)")
    ap.add_argument("--api", choices=["anthropic", "openai", "responses", "both", "all"], default="both")
    ap.add_argument("--tls", action="store_true", help="upstream over HTTPS (the gateway trusts the sim's CA)")
    ap.add_argument("--transport", metavar="NAME", help="the gateway's upstream transport (default: its own default)")
    ap.add_argument("--concurrency", default="1,10,50", help="comma-separated (default 1,10,50)")
    ap.add_argument("--limits", action="store_true", help="also an agent with every limit on: what they add")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores (not the measurement rule)")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    apis = {"both": ["anthropic", "openai"], "all": list(APIS)}.get(args.api, [args.api])
    if args.transport:
        require_provider_key("transport", "--transport", "which upstream client the gateway uses")
    provider = {"transport": args.transport} if args.transport else {}

    agents = {"bench": AGENT, **({"limited": {**AGENT, "limits": LIMITS}} if args.limits else {})}
    with stack(agents, tls=args.tls, provider=provider, pin=not args.no_pin) as st:
        print(f"upstream: {'HTTPS (local CA)' if args.tls else 'plain HTTP'}; transport: {args.transport or 'default'}")
        print(f"{st.layout()}" + ("" if st.cores else "  (NOT pinned: figures are not by the measurement rule)"))
        print(f"{args.calls} counted calls per cell and path, in {args.rounds} alternating rounds\n")
        print(
            "| API | concurrency | direct p50 / p99 | through the gateway p50 / p99 | added p50 / p99 "
            "| added p50, per round | calls/s direct / gateway | gateway CPU per call |"
            + (" limits add p50 (per round) |" if args.limits else "")
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if args.limits else ""))
        for api in apis:
            for conc in levels:
                print(row(st, api, conc, args.calls, args.rounds, args.limits), flush=True)
    tick_us = 1e6 / CLOCK_TICK
    print(
        "\nlatency: wall clock per call at the load generator; added = through the gateway − direct, same"
        "\nconcurrency, same round. calls/s through the gateway at concurrency 50 is its throughput on one"
        "\ncore. CPU per call: the gateway process's user + system time over the counted calls; /proc/<pid>/stat"
        f"\ncounts in ticks of {tick_us:,.0f} µs, so ±{tick_us / (args.calls * args.rounds):.1f} µs per call here."
    )


def auth(api: str, key: str) -> dict[str, str]:
    """The headers each official SDK sends."""
    if api == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {key}"}


def row(st: Stack, api: str, conc: int, calls: int, rounds: int, limits: bool = False) -> str:
    label, path, fields = APIS[api]
    prompt = [{"role": "user", "content": PROMPT}]
    body = {**fields, "input": prompt} if api == "responses" else {**fields, "messages": prompt}
    direct = (st.sim_url + path, auth(api, PROVIDER_KEY))
    via = (st.gw_url + path, auth(api, st.keys["bench"]))
    warm = min(calls, max(100, 4 * conc))  # opens every connection (and its TLS session) before counting

    limited = (st.gw_url + path, auth(api, st.keys["limited"])) if limits else via

    def measure(gateway: bool, target: tuple[str, dict[str, str]] = via) -> Run:
        if gateway:
            return asyncio.run(
                load(*target, body, calls, conc, warmup_calls=warm, meter=lambda: cpu_seconds(st.gateway_pid))
            )
        return asyncio.run(load(*direct, body, calls, conc, warmup_calls=warm, ssl_context=st.client_ssl()))

    d_runs: list[Run] = []
    g_runs: list[Run] = []
    l_runs: list[Run] = []  # --limits: the agent with every limit on, in the same rounds
    kinds = [(d_runs, False, via), (g_runs, True, via)] + ([(l_runs, True, limited)] if limits else [])
    for r in range(rounds):  # even rounds in this order, odd ones reversed
        for runs, gateway, target in kinds if r % 2 == 0 else kinds[::-1]:
            runs.append(measure(gateway, target))
    d, g = Run.merge(d_runs), Run.merge(g_runs)
    if set(g.statuses) != {200} or set(d.statuses) != {200}:
        raise SystemExit(f"{label} at concurrency {conc}: non-200 answers (direct {d.statuses}, gateway {g.statuses})")
    per_round = sorted(gr.pct(50) - dr.pct(50) for dr, gr in zip(d_runs, g_runs, strict=True))
    with_limits = ""
    if limits:
        lim = Run.merge(l_runs)
        if set(lim.statuses) != {200}:
            raise SystemExit(f"{label} at concurrency {conc}: the limited agent's answers {lim.statuses}")
        each = sorted(lr.pct(50) - gr.pct(50) for gr, lr in zip(g_runs, l_runs, strict=True))
        with_limits = f" **{lim.pct(50) - g.pct(50):+.3f}** ms ({each[0]:+.3f} – {each[-1]:+.3f}) |"
    return (
        f"| {label} | {conc} | {d.pct(50):.2f} / {d.pct(99):.2f} ms | {g.pct(50):.2f} / {g.pct(99):.2f} ms "
        f"| **{g.pct(50) - d.pct(50):.2f}** / {g.pct(99) - d.pct(99):.2f} ms "
        f"| {per_round[0]:.2f} – {per_round[-1]:.2f} ms | {d.rate:,.0f} / {g.rate:,.0f} "
        f"| {g.cpu_per_call_us:.0f} µs |" + with_limits
    )


if __name__ == "__main__":
    main()
