"""Verified cascades against always-heavy and always-light: cost and pass rate, light tier's failure rate set.

    python bench/cascade.py [--calls 200] [--rates 0,0.1,0.3,0.6]

A workload of structured calls (half a forced tool call with a schema, half JSON output with a schema,
Anthropic Messages) runs against the provider simulator, whose light model spoils a set share of its
structured answers (sim/flaws.py; the heavy model never does). For each failure rate it prints, for
three policies — always light, always heavy, and the verified cascade (light first, checked with
levers/routing_cascade.check, escalated to heavy on failure) — the pass rate (answers the caller gets
that pass the check) and the cost per call, priced with genai-prices from the usage the simulator
reported (both attempts of an escalated call are paid). The cascade runs `routing_cascade.cascade`, the
policy the gateway runs, with the simulator as the provider (no gateway in between: this measures the
policy's cost and pass rate, not the gateway's overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from decimal import Decimal
from typing import Any

import httpx2
from genai_prices import Usage, calc_price

from paymaster.levers.routing_cascade import cascade, check
from paymaster.server import ServerThread
from paymaster.sim import Simulator

LIGHT, HEAVY = "claude-haiku-4-5", "claude-opus-4-8"
KEY = "sk-bench-provider"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "units": {"enum": ["c", "f"]}},
    "required": ["city", "days", "units"],
    "additionalProperties": False,
}


def workload(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        body: dict[str, Any] = {
            "max_tokens": 400,
            "messages": [{"role": "user", "content": f"Request {i}: the forecast for city #{i}, as data."}],
        }
        if i % 2:
            body["tools"] = [{"name": "forecast", "description": "weather", "input_schema": SCHEMA}]
            body["tool_choice"] = {"type": "tool", "name": "forecast"}
        else:
            body["output_config"] = {"format": {"type": "json_schema", "schema": SCHEMA}}
        out.append(body)
    return out


def price(model: str, usage: dict[str, Any]) -> Decimal:
    u = Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    return calc_price(u, model_ref=model, provider_id="anthropic").total_price


async def run(url: str, bodies: list[dict[str, Any]], policy: str) -> tuple[float, Decimal]:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    passed, cost = 0, Decimal(0)
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def ask(body: dict[str, Any]) -> tuple[int, bytes]:
            nonlocal cost
            r = await http.post("/v1/messages", content=json.dumps(body))
            if r.status_code == 200:
                cost += price(body["model"], r.json()["usage"])
            return r.status_code, r.content

        for body in bodies:
            if policy == "cascade":
                answer, _tried = await cascade("anthropic", body, [LIGHT, HEAVY], ask)
                if answer is None:
                    _, answer = await ask({**body, "model": HEAVY})
            else:
                _, answer = await ask({**body, "model": LIGHT if policy == "always light" else HEAVY})
            passed += check("anthropic", body, json.loads(answer)) is None
    return passed / len(bodies), cost / len(bodies)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rates", default="0,0.1,0.3,0.6")
    args = ap.parse_args()
    started = time.perf_counter()
    sim = Simulator(api_keys={KEY})
    bodies = workload(args.calls)
    print(
        f"Verified cascade vs fixed tiers: {args.calls} structured Anthropic calls per cell; "
        f"light {LIGHT}, heavy {HEAVY}"
    )
    print(f"{'light failure rate':>18} | {'policy':13} | {'pass rate':>9} | {'cost / call':>12} | vs always heavy")
    with ServerThread(sim.app) as srv:
        for rate in (float(r) for r in args.rates.split(",")):
            sim.reset()
            sim.flaws.set(LIGHT, rate)
            rows = {p: asyncio.run(run(srv.url, bodies, p)) for p in ("always light", "always heavy", "cascade")}
            heavy_cost = rows["always heavy"][1]
            for policy, (ok, cost) in rows.items():
                print(
                    f"{rate:>18.0%} | {policy:13} | {ok:>9.1%} | ${cost:>11.6f} | "
                    f"{float(cost / heavy_cost):6.1%} of its cost"
                )
    print(f"(bench ran in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
