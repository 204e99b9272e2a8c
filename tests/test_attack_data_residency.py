"""Attacks on the cap through OpenAI's data-residency endpoints, which bill recent models at a premium.

The bill is computed here by an independent calculator written from OpenAI's documents, not from the
gateway's pricing code:

- developers.openai.com/api/docs/guides/data-residency: "Data residency endpoints are charged a 10% uplift
  for models released on or after March 5, 2026, that are eligible for data residency"; a project (or a
  request) in a region uses that region's domain: us., eu., au., in. or jp.api.openai.com;
- developers.openai.com/api/docs/models/gpt-5.4: $2.50 / MTok input, $0.25 cached input, $15 output;
  "prompts with >272K input tokens are priced at 2x input and 1.5x output for the full session";
  "Regional processing (data residency) endpoints are charged a 10% uplift for GPT-5.4 and GPT-5.4 pro";
- developers.openai.com/api/docs/models/gpt-5 (released 2025): $1.25 / $0.125 / $10, no uplift.

Before the fix a provider at https://eu.api.openai.com/v1 priced gpt-5.4 at the global price: every call
was reserved and booked 10 % under its bill, so an agent capped at $100 a day could be billed $110.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.config import ConfigError, parse

MTOK = Decimal(1_000_000)
UPLIFT = Decimal("1.1")
GPT54 = {"input": Decimal("2.50"), "cached": Decimal("0.25"), "output": Decimal(15)}
GPT5 = {"input": Decimal("1.25"), "cached": Decimal("0.125"), "output": Decimal(10)}
KEY = "k" * 8


def documented_bill(prices: dict[str, Decimal], regional: bool, prompt: int, cached: int, completion: int) -> Decimal:
    long = prompt > 272_000 and prices is GPT54
    inp, out = (Decimal(2), Decimal("1.5")) if long else (Decimal(1), Decimal(1))
    usd = (
        (prompt - cached) * prices["input"] * inp
        + cached * prices["cached"] * inp
        + completion * prices["output"] * out
    ) / MTOK
    return usd * UPLIFT if regional and prices is GPT54 else usd


def config(base_url: str, **provider: Any) -> Any:
    raw = {
        "ledger": "unused.db",
        "admin": {"key_sha256": "a" * 64},
        "providers": {"openai": {"kind": "openai", "base_url": base_url, "api_key_env": "OPENAI_KEY", **provider}},
        "agents": {"ann": {"model": "gpt-5.4", "models": ["gpt-5.4", "gpt-5"], "daily_usd": 5, "key_sha256": "b" * 64}},
    }
    return parse(raw, env={"OPENAI_KEY": KEY})


@pytest.mark.parametrize("region", ["us", "eu", "au", "in", "jp"])
def test_a_regional_endpoint_prices_recent_models_at_the_uplift(region: str) -> None:
    cfg = config(f"https://{region}.api.openai.com/v1")
    rates = cfg.prices.rates("gpt-5.4", "openai")
    u = Usage(10_000, 2_000, 4_000)
    assert rates.cost(u) == documented_bill(GPT54, True, 10_000, 4_000, 2_000)  # before: 10 % under
    old = cfg.prices.rates("gpt-5", "openai")
    assert old.cost(u) == documented_bill(GPT5, True, 10_000, 4_000, 2_000)  # released before the date: no uplift


def test_the_global_endpoint_has_no_uplift_and_the_setting_overrides_the_host() -> None:
    rates = config("https://api.openai.com/v1").prices.rates("gpt-5.4", "openai")
    assert rates.cost(Usage(1000, 100)) == documented_bill(GPT54, False, 1000, 0, 100)
    proxied = config("https://llm-proxy.internal.example/v1", data_residency=True).prices.rates("gpt-5.4", "openai")
    assert proxied.cost(Usage(1000, 100)) == documented_bill(GPT54, True, 1000, 0, 100)


def test_batch_prices_at_a_regional_endpoint_carry_the_uplift() -> None:
    """developers.openai.com/api/docs/guides/batch: "50% lower costs"; /v1/batches is a data-residency
    endpoint like the others. Before: the batch price list was read afresh, without the uplift."""
    from paymaster.batch.prices import batch_rates

    cfg = config("https://eu.api.openai.com/v1")
    rates = batch_rates(cfg, "gpt-5.4")
    assert rates.cost(Usage(10_000, 2_000)) == documented_bill(GPT54, True, 10_000, 0, 2_000) / 2


def test_a_price_table_takes_its_uplifts_when_built_and_never_changes() -> None:
    """A regional endpoint's uplift is given to the table it prices (a new table), not applied to a built one:
    batch prices are cached per table, so a table changed after the fact would leave them stale."""
    from paymaster.batch.prices import batch_rates
    from paymaster.pricing import PriceTable

    cfg = config("https://api.openai.com/v1")
    u = Usage(10_000, 2_000)
    plain = batch_rates(cfg, "gpt-5.4")
    regional = PriceTable(uplifts={"gpt-5.4": UPLIFT})
    assert regional.rates("gpt-5.4", "openai").cost(u) == documented_bill(GPT54, True, 10_000, 0, 2_000)
    assert regional.uplift_of("gpt-5.4") == UPLIFT and cfg.prices.uplift_of("gpt-5.4") is None
    assert cfg.prices.rates("gpt-5.4", "openai").cost(u) == documented_bill(GPT54, False, 10_000, 0, 2_000)
    assert batch_rates(cfg, "gpt-5.4") == plain


def test_data_residency_is_only_for_openai_providers() -> None:
    raw = {
        "ledger": "unused.db",
        "admin": {"key_sha256": "a" * 64},
        "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K", "data_residency": True}},
        "agents": {"ann": {"model": "claude-haiku-4-5", "daily_usd": 5, "key_sha256": "b" * 64}},
    }
    with pytest.raises(ConfigError, match="data_residency"):
        parse(raw, env={"K": KEY})


@settings(max_examples=100, deadline=None)
@given(
    prompt=st.integers(0, 1_000_000),
    cached_share=st.fractions(0, 1),
    completion=st.integers(0, 128_000),
    tier=st.sampled_from(["default", "flex"]),
)
def test_every_bill_at_a_regional_endpoint_is_booked_at_the_uplift(
    prompt: int, cached_share: Any, completion: int, tier: str
) -> None:
    """booked == the documented bill, long context and flex (Batch rates: half) included."""
    rates = config("https://eu.api.openai.com/v1").prices.rates("gpt-5.4", "openai")
    # flex cached input is left out: the pricing page shows it rounded ($0.13 for half of $0.25)
    cached = int(prompt * cached_share) if tier == "default" else 0
    bill = documented_bill(GPT54, True, prompt, cached, completion)
    if tier == "flex":
        bill /= 2
    assert rates.cost(Usage(prompt, completion, cached, service_tier=tier)) == bill


def test_a_call_at_a_regional_endpoint_is_reserved_and_booked_at_the_uplift(gateway: Any, sim: Any) -> None:
    """End to end: the simulator stands in for the regional endpoint (`data_residency: true`)."""
    gw = gateway(
        agents={"ann": {"model": "gpt-5.4", "daily_usd": 5, "monthly_usd": 50, "max_tokens": 1000}},
        providers={
            "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY"},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "data_residency": True},
        },
    )
    resp = gw.openai("ann").chat.completions.create(
        model="gpt-5.4", max_completion_tokens=200, messages=[{"role": "user", "content": "Name a prime"}]
    )
    assert resp.usage is not None
    (row,) = gw.ledger("ann")
    cached = resp.usage.prompt_tokens_details.cached_tokens if resp.usage.prompt_tokens_details else 0
    bill = documented_bill(GPT54, True, resp.usage.prompt_tokens, cached or 0, resp.usage.completion_tokens)
    assert Decimal(row["cost_usd"]) == bill and row["reconcile"] == 0  # before: booked 10 % under
    assert row["worst_nanos"] >= bill * 1_000_000_000
