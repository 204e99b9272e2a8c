"""What per-agent prompt-cache isolation costs, measured through the gateway and the simulator.

    python bench/cache_isolation.py [--calls 20]

Two fleets, each with two agents per provider, run the same workload: one agent holds a `--calls`-turn
conversation under a ~10,000-token system prompt (claude-sonnet-4-6 on Anthropic, gpt-4.1-mini on
OpenAI), then the second agent sends the first one's exact opening prompt. Fleet "isolated" is the
default (each agent's prompts start with its scope tag); fleet "shared" sets
`fleet.caching.share_across_agents: true`. Printed per provider, from the gateway's ledger:

- input tokens and dollars per call of the conversation, both fleets, and the difference (the tag);
- the conversation's cache hit rate (cache-read tokens ÷ input tokens), both fleets;
- the cache-read tokens the second agent's probe saw (isolated: 0; shared: the first agent's prefix).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).parent))
from _harness import ADMIN_KEY, stack  # noqa: E402

SYSTEM = " ".join(
    f"Policy clause {i}: agents answer within the house style, cite the source and stay brief." for i in range(450)
)
MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1-mini"}


def request(api: str, turns: int) -> tuple[str, dict[str, Any]]:
    """The conversation's request after `turns` earlier exchanges."""
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages += [
            {"role": "user", "content": f"Question {i}: which clause covers refunds? [sim:tokens=40]"},
            {"role": "assistant", "content": f"Clause {i} covers it, in brief."},
        ]
    messages.append({"role": "user", "content": f"Question {turns}: and returns? [sim:tokens=40]"})
    if api == "anthropic":
        return "/v1/messages", {"model": MODELS[api], "max_tokens": 200, "system": SYSTEM, "messages": messages}
    body = {"model": MODELS[api], "max_tokens": 200, "messages": [{"role": "system", "content": SYSTEM}, *messages]}
    return "/v1/chat/completions", body


def last_row(url: str, agent: str) -> dict[str, Any]:
    r = httpx2.get(
        url + "/admin/ledger", params={"agent": agent, "limit": 1000}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    return r.json()["data"][-1]


def run(share: bool, calls: int) -> dict[str, dict[str, Any]]:
    agents = {
        f"{api}_{who}": {"model": MODELS[api], "daily_usd": 1000} for api in MODELS for who in ("first", "second")
    }
    out: dict[str, dict[str, Any]] = {}
    fleet = {"caching": {"share_across_agents": True}} if share else None
    with stack(agents, fleet_section=fleet) as st, httpx2.Client(timeout=30) as client:

        def call(agent: str, api: str, turns: int) -> dict[str, Any]:
            path, body = request(api, turns)
            headers = {"x-api-key": st.keys[agent], "authorization": f"Bearer {st.keys[agent]}"}
            r = client.post(st.gw_url + path, json=body, headers={**headers, "anthropic-version": "2023-06-01"})
            assert r.status_code == 200, r.text
            return last_row(st.gw_url, agent)

        for api in MODELS:
            rows = [call(f"{api}_first", api, t) for t in range(calls)]
            probe = call(f"{api}_second", api, 0)
            out[api] = {
                "input": sum(r["input_tokens"] for r in rows) / calls,
                "usd": sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0)) / calls,
                "hit": sum(r["cache_read_tokens"] for r in rows) / sum(r["input_tokens"] for r in rows),
                "probe_read": probe["cache_read_tokens"],
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    isolated, shared = run(False, args.calls), run(True, args.calls)
    print(f"Prompt-cache isolation — {args.calls}-turn conversation under a ~10,000-token system prompt")
    print(f"{'':20} {'fleet':>9} {'input tok/call':>15} {'$/call':>11} {'hit rate':>9} {'probe read':>11}")
    for api, model in MODELS.items():
        for label, res in (("isolated", isolated[api]), ("shared", shared[api])):
            print(
                f"{model:20} {label:>9} {res['input']:>15.1f} {res['usd']:>11.7f} {res['hit']:>9.1%} "
                f"{res['probe_read']:>11}"
            )
        d_tok = isolated[api]["input"] - shared[api]["input"]
        d_usd = isolated[api]["usd"] - shared[api]["usd"]
        print(f"  → isolation adds {d_tok:.1f} input tokens and ${d_usd:.7f} per call on {model}")


if __name__ == "__main__":
    main()
