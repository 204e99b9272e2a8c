"""What the caching and output-control levers save, measured through the gateway and the simulator.

    python bench/levers.py [--calls 200]

1. Prompt caching: an agent with a ~10,000-token system prompt makes `--calls` calls (a short
   question each), once with caching off and once on, on Anthropic (claude-sonnet-4-6) and OpenAI
   (gpt-4.1-mini). Spend is read from the gateway's ledger; the "cached part" is the system prompt.
2. Output control: a structured-extraction task, `--calls` calls without output control (the
   model's usual verbose answer) and with it (task type with a JSON schema, a 200-token ceiling
   and brevity framing): output tokens and dollars.
3. A tool-heavy agent loop on claude-sonnet-4-6: `--turns` turns, each adding the assistant's text,
   10 tool calls and their 10 results (21 blocks, past the API's 20-block cache lookback), with
   caching off and on: dollars, and per turn the share of the previous turn's prompt read from the
   cache (target: at least 95 % from turn 2 on).
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

SYSTEM = " ".join(
    f"Policy clause {i}: agents answer within the house style, cite the source and stay brief." for i in range(450)
)  # ~10,000 tokens for the simulator's tokenizer (and real ones)
SCHEMA = {
    "type": "object",
    "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}, "date": {"type": "string"}},
    "required": ["vendor", "total", "date"],
}


def ledger(url: str, agent: str) -> list[dict]:
    rows, after = [], 0
    while True:
        page = httpx2.get(
            url + "/admin/ledger",
            params={"agent": agent, "limit": 1000, "after": after},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ).json()
        rows += page["data"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def spent(rows: list[dict]) -> Decimal:
    return sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--turns", type=int, default=8)
    args = ap.parse_args()
    n = args.calls
    agents = {
        "claude_off": {"model": "claude-sonnet-4-6", "caching": {"enabled": False}, "daily_usd": 1000},
        "claude_on": {"model": "claude-sonnet-4-6", "daily_usd": 1000},
        "gpt_on": {"model": "gpt-4.1-mini", "daily_usd": 1000},
        "extract_off": {"model": "gpt-4.1-mini", "daily_usd": 1000},
        "loop_off": {"model": "claude-sonnet-4-6", "caching": {"enabled": False}, "daily_usd": 1000},
        "loop_on": {"model": "claude-sonnet-4-6", "daily_usd": 1000},
        "extract_on": {
            "model": "gpt-4.1-mini",
            "daily_usd": 1000,
            "tasks": {
                "extraction": {"max_tokens": 200, "schema": SCHEMA, "brevity": "Respond in JSON only. No preamble."}
            },
        },
    }
    with stack(agents) as st:

        def run(agent: str, path: str, headers: dict, bodies: list[dict]) -> list[dict]:
            h = {**headers, "x-api-key": st.keys[agent], "authorization": f"Bearer {st.keys[agent]}"}
            asyncio.run(load(st.gw_url + path, h, bodies, n, 1, warmup=False))
            return ledger(st.gw_url, agent)

        anth = [
            {
                "model": "claude-sonnet-4-6",
                "max_tokens": 300,
                "system": SYSTEM,
                "messages": [
                    {"role": "user", "content": f"Question {i}: which clause covers refunds? [sim:tokens=60]"}
                ],
            }
            for i in range(n)
        ]
        hv = {"anthropic-version": "2023-06-01"}
        off = run("claude_off", "/v1/messages", hv, anth)
        on = run("claude_on", "/v1/messages", hv, anth)
        gpt = [
            {
                "model": "gpt-4.1-mini",
                "max_tokens": 300,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Question {i}: which clause covers refunds? [sim:tokens=60]"},
                ],
            }
            for i in range(n)
        ]
        gpt_rows = run("gpt_on", "/v1/chat/completions", {}, gpt)

        print(f"1. Prompt caching — {n} calls, ~10,000-token system prompt, 60-token answers")
        print(f"{'':34} {'spend $':>10} {'input tok':>10} {'cache read':>11} {'cache write':>12}")

        def line(label: str, rows: list[dict]) -> None:
            print(
                f"{label:34} {spent(rows):>10.4f} {sum(r['input_tokens'] for r in rows):>10} "
                f"{sum(r['cache_read_tokens'] for r in rows):>11} {sum(r['cache_write_tokens'] for r in rows):>12}"
            )

        line("claude-sonnet-4-6, caching off", off)
        line("claude-sonnet-4-6, caching on", on)
        saved = 1 - spent(on) / spent(off)
        sys_tokens = max(r["cache_write_tokens"] for r in on)
        sys_off = Decimal(sys_tokens * n) * Decimal(3) / 1_000_000
        sys_on = (
            sum(
                (
                    Decimal(r["cache_read_tokens"]) * Decimal("0.3")
                    + Decimal(r["cache_write_tokens"]) * Decimal("3.75")
                    for r in on
                ),
                Decimal(0),
            )
            / 1_000_000
        )
        print(
            f"  → {saved:.1%} lower in total; the cached part (the {sys_tokens}-token system prompt) "
            f"{1 - sys_on / sys_off:.1%} lower (${sys_off:.4f} → ${sys_on:.4f})"
        )
        uncached = sum(Decimal(r["uncached_cost_nanos"]) for r in gpt_rows) / 10**9
        line("gpt-4.1-mini, automatic caching", gpt_rows)
        print(
            f"  → ${uncached:.4f} without caching (counterfactual in the ledger) → ${spent(gpt_rows):.4f}: "
            f"{1 - spent(gpt_rows) / uncached:.1%} lower (cached input at 25 % of the input price)"
        )

        invoice = "Invoice from ACME Tools Ltd, total 1,234.50 EUR, dated 2026-11-02. Extract vendor, total and date."
        verbose = [{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": invoice + " [sim:tokens=350]"}]}]
        before = run("extract_off", "/v1/chat/completions", {}, verbose)
        after = run("extract_on", "/v1/chat/completions", {"x-paymaster-task": "extraction"}, verbose)
        print(f"\n2. Output control — {n} structured extractions (gpt-4.1-mini)")
        print(f"{'':34} {'spend $':>10} {'output tok':>10} {'max_tokens':>11}")
        for label, rows in (("without output control", before), ("task: schema + ceiling + brevity", after)):
            print(
                f"{label:34} {spent(rows):>10.4f} {sum(r['output_tokens'] for r in rows):>10} "
                f"{rows[-1]['max_tokens']:>11}"
            )
        out_before, out_after = (sum(r["output_tokens"] for r in rows) for rows in (before, after))
        print(
            f"  → output tokens {1 - out_after / out_before:.1%} lower, spend {1 - spent(after) / spent(before):.1%} "
            "lower; every answer is JSON of the schema"
        )

        print(f"\n3. Tool-heavy agent loop — {args.turns} turns of 21 blocks (text + 10 tool calls + 10 results)")
        loops = {name: agent_loop(st.gw_url, st.keys[name], args.turns) for name in ("loop_off", "loop_on")}
        rows_off, rows_on = (ledger(st.gw_url, name) for name in loops)
        print(f"{'turn':>4} {'prompt tok':>10} {'cache read':>10} {'cache write':>11} {'read / previous prompt':>23}")
        for t, row in enumerate(rows_on):
            share = f"{row['cache_read_tokens'] / rows_on[t - 1]['input_tokens']:.1%}" if t else "—"
            print(
                f"{t + 1:>4} {row['input_tokens']:>10} {row['cache_read_tokens']:>10} "
                f"{row['cache_write_tokens']:>11} {share:>23}"
            )
        print(
            f"  → caching off ${spent(rows_off):.4f}, on ${spent(rows_on):.4f}: "
            f"{1 - spent(rows_on) / spent(rows_off):.1%} lower"
        )


def agent_loop(url: str, key: str, turns: int) -> None:
    """One agent's tool loop, call after call (each turn sends the whole conversation so far)."""
    tool = {"name": "lookup", "description": "Looks up one account record by id.", "input_schema": {"type": "object"}}
    messages: list[dict] = [{"role": "user", "content": "Reconcile the March accounts, record by record."}]
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with httpx2.Client(timeout=30) as client:
        for turn in range(turns):
            if turn:
                uses = [
                    {"type": "tool_use", "id": f"t{turn}_{k}", "name": "lookup", "input": {"id": f"{turn}-{k}"}}
                    for k in range(10)
                ]
                said = {"type": "text", "text": f"Checking records {turn}-0 to {turn}-9."}
                messages.append({"role": "assistant", "content": [said, *uses]})
                results = [
                    {
                        "type": "tool_result",
                        "tool_use_id": u["id"],
                        "content": f"Record {u['input']['id']}: " + "status ok, balance 12.40; " * 25,
                    }
                    for u in uses
                ]
                messages.append({"role": "user", "content": results})
            body = {
                "model": "claude-sonnet-4-6",
                "max_tokens": 200,
                "system": SYSTEM,
                "tools": [tool],
                "messages": messages,
            }
            r = client.post(url + "/v1/messages", json=body, headers=headers)
            r.raise_for_status()


if __name__ == "__main__":
    main()
