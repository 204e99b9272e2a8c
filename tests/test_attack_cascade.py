"""Cascades and the budget: a call the agent can afford on the top tier must not be refused because a cheaper
tier was tried first and spent what the top tier needed. Failed before its fix (402 after the light attempt)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable, from_nanos, to_nanos

LIGHT, HEAVY = "claude-haiku-4-5", "claude-sonnet-4-6"
TABLE = PriceTable()
BODY = {"model": "auto", "max_tokens": 400, "messages": [{"role": "user", "content": "write it all [sim:tokens=2000]"}]}


def worst(model: str) -> int:
    body = {**BODY, "model": model}
    rates = TABLE.rates(model, "anthropic")
    est = estimate(body, "anthropic", len(orjson.dumps(body)), rates, rates.context_window)
    return to_nanos(est.worst_case(0, 400))


@pytest.mark.parametrize("min_output", [None, 300])
def test_a_cascade_does_not_spend_what_the_affordable_top_tier_needs(gateway: Any, min_output: int | None) -> None:
    """With what is left covering the heavy call's worst case but not the light one's as well, a failed light
    attempt (cut off at max_tokens: it spends its whole worst case) left the heavy call shrunk below the
    caller's max_tokens — or, with a higher `min_output_tokens`, refused with 402."""
    w_light, w_heavy = worst(LIGHT), worst(HEAVY)
    cap = from_nanos(w_heavy + (w_light // 2 if min_output is None else 1))
    agents = {"alice": {"model": "auto", "tiers": {"light": LIGHT, "heavy": HEAVY}, "daily_usd": str(cap),
                        "max_tokens": 400}}  # fmt: skip
    extra: dict[str, Any] = {"defaults": {"min_output_tokens": min_output}} if min_output else {}
    gw = gateway(agents=agents, routing={"cascade": ["extraction"]}, **extra)
    raw = gw.anthropic().messages.with_raw_response.create(**BODY, extra_headers={"x-paymaster-task": "extraction"})
    assert raw.parse().model == HEAVY
    assert "x-paymaster-max-tokens" not in raw.headers  # the caller's max_tokens, not shrunk to fit
    rows = gw.ledger("alice")
    assert sum(r["cost_nanos"] for r in rows) <= to_nanos(cap)


def test_a_responses_call_is_not_cascaded_through_a_check_that_cannot_read_it(gateway: Any) -> None:
    agents = {"olga": {"model": "auto", "tiers": {"light": "gpt-4.1-mini", "heavy": "gpt-4o"}, "daily_usd": 5,
                       "max_tokens": 400}}  # fmt: skip
    gw = gateway(agents=agents, routing={"cascade": ["extraction"]})
    gw.openai("olga").responses.create(model="auto", input="hi", extra_headers={"x-paymaster-task": "extraction"})
    rows = gw.ledger("olga")
    assert len(rows) == 1, [(r["model"], r["status"]) for r in rows]  # no light attempt paid for and thrown away


def test_the_skip_decision_prices_the_top_tier_where_the_workspace_runs_it(gateway: Any, sim: Any) -> None:
    """platform.claude.com/docs/en/manage-claude/data-residency: a request naming no `inference_geo` runs at
    the workspace's default geography, and "us" costs 1.1x on Claude Opus 4.6 and later models (Sonnet 4.6
    here; Haiku 4.5 is legacy: global price). With what is left covering the heavy call at 1.1x, but not the
    light attempt as well, the cascade priced the heavy tier at the global price, tried the light tier, and
    the heavy call that followed was shrunk below the caller's max_tokens."""
    w_light, w_heavy = worst(LIGHT), worst(HEAVY)
    heavy_us = w_heavy * 11 // 10 + 1
    cap = from_nanos(w_heavy + w_light)  # the old sum: not below it, so every tier was tried
    assert heavy_us <= to_nanos(cap) < w_light + heavy_us
    sim.workspace("us")
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 5,
                      "inference_geo": "us"},
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }  # fmt: skip
    agents = {"alice": {"model": "auto", "tiers": {"light": LIGHT, "heavy": HEAVY}, "daily_usd": str(cap),
                        "max_tokens": 400}}  # fmt: skip
    gw = gateway(agents=agents, routing={"cascade": ["extraction"]}, providers=providers)
    raw = gw.anthropic().messages.with_raw_response.create(**BODY, extra_headers={"x-paymaster-task": "extraction"})
    assert raw.parse().model == HEAVY
    assert "x-paymaster-max-tokens" not in raw.headers  # the caller's max_tokens, not shrunk to fit
    rows = gw.ledger("alice")
    assert sum(r["cost_nanos"] for r in rows) <= to_nanos(cap)
