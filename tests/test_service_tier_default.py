"""An OpenAI project can default to another service tier (priority, scale, flex): a request naming
no tier, or "auto", is then served — and billed — at that tier, so the reservation must assume it
(`providers.<name>.service_tier`). A request that names "default" is standard whatever the project."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paymaster.config import ConfigError, parse
from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable
from tests.conftest import PROVIDER_KEY

BODY = {"model": "gpt-4.1-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello there"}]}


def held(body: dict[str, Any], default_tier: str) -> Any:
    rates = PriceTable().rates("gpt-4.1-mini", "openai")
    e = estimate(body, "openai", len(orjson.dumps(body)), rates, rates.context_window, default_tier=default_tier)
    return e.worst_case(0, 100)


def test_a_request_naming_no_tier_is_reserved_at_the_projects_tier() -> None:
    assert held(BODY, "priority") > held(BODY, "default")
    auto = {**BODY, "service_tier": "auto"}
    assert held(auto, "priority") > held(auto, "default")
    named = {**BODY, "service_tier": "priority"}
    assert held(named, "default") == held(named, "priority")  # a tier the request names is that tier
    standard = {**BODY, "service_tier": "default"}
    assert held(standard, "priority") == held(standard, "default")  # "default" is standard, whatever the project


def test_a_project_tier_the_table_cannot_price_is_refused_not_guessed() -> None:
    with pytest.raises(Exception, match="service_tier 'flex' has no price"):
        held(BODY, "flex")  # gpt-4.1-mini has no flex price


def test_the_gateway_reserves_at_the_providers_tier(gateway: Any, sim: Any) -> None:
    url = sim.url  # type: ignore[attr-defined]
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": url, "api_key_env": "SIM_KEY", "timeout_s": 5},
        "openai": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "SIM_KEY", "service_tier": "priority"},
    }
    gw = gateway(providers=providers)
    gw.openai().chat.completions.create(model="gpt-4.1-mini", max_tokens=100, messages=BODY["messages"])
    (row,) = gw.ledger("olivia")
    rates = PriceTable().rates("gpt-4.1-mini", "openai")
    standard = estimate(BODY, "openai", len(orjson.dumps(BODY)), rates, rates.context_window).worst_case(0, 100)
    assert row["worst_nanos"] > int(standard * 10**9)  # held at priority rates, not standard ones


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"kind": "openai", "service_tier": "turbo"}, "service_tier: must be one of"),
        ({"kind": "openai", "service_tier": 3}, "service_tier: must be one of"),
        ({"kind": "anthropic", "service_tier": "priority"}, "only for OpenAI-style providers"),
    ],
)
def test_a_bad_service_tier_is_a_config_error(provider: dict[str, Any], message: str) -> None:
    raw = {
        "providers": {"p": {**provider, "api_key_env": "K"}},
        "agents": {
            "a": {
                "model": "gpt-4.1-mini" if provider["kind"] == "openai" else "claude-haiku-4-5",
                "key_sha256": "0" * 64,
            }
        },
    }
    with pytest.raises(ConfigError, match=message):
        parse(raw, env={"K": PROVIDER_KEY})
