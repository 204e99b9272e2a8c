"""The cap under load: one agent with a daily cap worth ~20 calls fires 300 calls at concurrency 50.

    python bench/cap_under_load.py [--calls 300] [--concurrency 50]

Prints calls admitted and refused, the ledger's spend against the cap, and dollars over the cap
(read from the gateway's admin API), while a second agent's calls run in the same window. The gateway
runs on its own core, the load generator and the simulator on another (see bench/_harness.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).parent))

from _harness import ADMIN_KEY, load, stack  # noqa: E402

MODEL = "claude-haiku-4-5"
BODY = {"model": MODEL, "max_tokens": 400, "messages": [{"role": "user", "content": "Draft a reply. [sim:tokens=100]"}]}
CALL_COST = Decimal("0.000530")  # ~30 input + 100 output tokens on claude-haiku-4-5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    cap = CALL_COST * 20
    agents = {
        "capped": {"model": MODEL, "daily_usd": str(cap), "max_tokens": 400},
        "bystander": {"model": MODEL, "daily_usd": 100, "max_tokens": 400},
    }
    with stack(agents) as st:
        print(st.layout())

        async def both():
            return await asyncio.gather(
                load(
                    st.gw_url + "/v1/messages",
                    {"x-api-key": st.keys["capped"]},
                    BODY,
                    args.calls,
                    args.concurrency,
                    warmup=False,
                ),
                load(st.gw_url + "/v1/messages", {"x-api-key": st.keys["bystander"]}, BODY, 100, 10),
            )

        capped, bystander = asyncio.run(both())
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        rows = httpx2.get(st.gw_url + "/admin/ledger", params={"agent": "capped", "limit": 1000}, headers=admin).json()[
            "data"
        ]
        health = httpx2.get(st.gw_url + "/healthz").json()
    spent = sum(Decimal(r["cost_usd"]) for r in rows)
    over = max(Decimal(0), spent - cap)
    print(f"cap                       ${cap}  (~20 calls of ${CALL_COST})")
    print(
        f"calls                     {sum(capped.statuses.values())} at concurrency {args.concurrency}: "
        f"{capped.statuses.get(200, 0)} admitted, {capped.statuses.get(402, 0)} refused with 402"
    )
    print(f"ledger                    {len(rows)} calls, ${spent} spent")
    print(f"dollars over the cap      ${over}  ({spent / cap:.1%} of the cap used)")
    print(f"bystander agent           {bystander.statuses}  (all 200 expected)")
    print(f"open reservations after   {health['open_calls']} in memory, {health['journal_open']} in the journal")


if __name__ == "__main__":
    main()
