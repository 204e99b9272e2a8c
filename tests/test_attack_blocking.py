"""When an agent is blocked: the minimal call is priced where the provider runs a call naming no tier or
geography (the workspace's inference geography, the OpenAI project's default service tier), as admission
prices every call — priced at the base rates, an agent that cannot afford any call in a "us" workspace
was told `call_too_large` and left active instead of blocked."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import pytest

MTOK = Decimal(10**6)
MIN_OUT = 100
# platform.claude.com/docs/en/about-claude/pricing: Claude Sonnet 4.6 $3 / MTok input, $15 / MTok output;
# a 1h cache write is 2x input (the highest rate an input token can be billed at); "Data residency pricing":
# US-only inference is 1.1x every token price
SONNET_TOP_IN, SONNET_OUT, US = Decimal(6), Decimal(15), Decimal("1.1")


def test_an_agent_in_a_us_workspace_that_cannot_afford_a_minimal_call_there_is_blocked(gateway: Any, sim: Any) -> None:
    """The cap covers a minimal call (256 input tokens, `min_output_tokens` out) at the global price but not
    at the workspace's US price, where every call it sends runs: the agent is out of budget."""
    sim.workspace("us")
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 5,
                      "inference_geo": "us"},
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }  # fmt: skip
    minimal_global = (256 * SONNET_TOP_IN + MIN_OUT * SONNET_OUT) / MTOK
    cap = (minimal_global * Decimal("1.05")).quantize(Decimal("0.000001"))
    assert minimal_global <= cap < minimal_global * US
    gw = gateway(
        providers=providers,
        defaults={"min_output_tokens": MIN_OUT},
        agents={"fay": {"model": "claude-sonnet-4-6", "daily_usd": str(cap), "max_tokens": 4096}},
    )
    with pytest.raises(anthropic.APIStatusError) as e:
        gw.anthropic("fay").messages.create(
            model="claude-sonnet-4-6", max_tokens=1000, messages=[{"role": "user", "content": "go " * 600}]
        )
    assert e.value.status_code == 402
    assert e.value.body["error"]["type"] == "budget_exceeded", e.value.body
    view = gw.admin("/admin/agents/fay").json()
    assert view["status"]["state"] == "blocked", view


# developers.openai.com/api/docs/pricing: GPT-4.1 mini $0.40 / $1.60 per MTok (Standard), $0.70 / $2.80 (Priority)
MINI_STD, MINI_PRIORITY = (Decimal("0.40"), Decimal("1.60")), (Decimal("0.70"), Decimal("2.80"))


def test_an_agent_whose_project_serves_priority_that_cannot_afford_a_minimal_call_there_is_blocked(
    gateway: Any, sim: Any
) -> None:
    """The OpenAI project serves a request naming no tier at priority (`providers.openai.service_tier`): the
    cap covers a minimal call at standard prices but not at priority ones, where every call it sends runs."""
    import openai

    providers = {
        "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 5},
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5,
                   "service_tier": "priority"},
    }  # fmt: skip
    minimal_standard = (256 * MINI_STD[0] + MIN_OUT * MINI_STD[1]) / MTOK
    cap = (minimal_standard * Decimal("1.05")).quantize(Decimal("0.000001"))
    assert minimal_standard <= cap < (256 * MINI_PRIORITY[0] + MIN_OUT * MINI_PRIORITY[1]) / MTOK
    gw = gateway(
        providers=providers,
        defaults={"min_output_tokens": MIN_OUT},
        agents={"otto": {"model": "gpt-4.1-mini", "daily_usd": str(cap), "max_tokens": 4096}},
    )
    with pytest.raises(openai.APIStatusError) as e:
        gw.openai("otto").chat.completions.create(
            model="gpt-4.1-mini", max_tokens=1000, messages=[{"role": "user", "content": "go " * 600}]
        )
    assert e.value.status_code == 402
    assert e.value.body["code"] == "budget_exceeded", e.value.body
    assert gw.admin("/admin/agents/otto").json()["status"]["state"] == "blocked"
