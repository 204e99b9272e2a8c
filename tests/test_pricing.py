"""The ledger's cost equals genai-prices' own figure to the micro-dollar (exactly, in fact)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price

from paymaster.call import Usage
from paymaster.pricing import PriceTable, Rates, UnknownModel, to_nanos, usd_str

USAGES = [
    Usage(1_000, 200),
    Usage(1, 1),
    Usage(0, 0),
    Usage(12_345, 678, cache_read_tokens=10_000),
    Usage(50_000, 1_000, cache_read_tokens=20_000, cache_write_tokens=25_000),
    Usage(50_000, 1_000, cache_read_tokens=20_000, cache_write_tokens=25_000, cache_write_1h_tokens=5_000),
    Usage(
        250_000, 4_000, cache_read_tokens=100_000, cache_write_tokens=50_000, cache_write_1h_tokens=50_000
    ),  # long context tier
    Usage(200_000, 10),  # exactly at a tier boundary
    Usage(200_001, 10),
]
MODELS = [
    ("claude-haiku-4-5", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-opus-4-8", "anthropic"),
    ("gpt-4.1-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-5", "openai"),
]


@pytest.mark.parametrize("model,provider", MODELS)
@pytest.mark.parametrize(
    "u", USAGES, ids=lambda u: f"{u.input_tokens}in-{u.cache_read_tokens}cr-{u.cache_write_tokens}cw"
)
def test_cost_equals_genai_prices(model, provider, u):
    ours = PriceTable().rates(model, provider).cost(u)
    theirs = calc_price(
        GUsage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cache_write_1h_tokens=u.cache_write_1h_tokens,
        ),
        model,
        provider_id=provider,
    ).total_price
    assert ours == theirs
    assert to_nanos(ours) == to_nanos(theirs)


def test_worst_case_bounds_every_usage_of_that_size():
    r = PriceTable().rates("claude-sonnet-4-5", "anthropic")
    worst = r.worst_case(300_000, 5_000)
    for u in USAGES:
        if u.input_tokens <= 300_000 and u.output_tokens <= 5_000:
            assert r.cost(u) <= worst
    # every input token written to the 1-hour cache at the long-context tier is the most input can cost
    assert r.cost(Usage(300_000, 5_000, cache_write_tokens=300_000, cache_write_1h_tokens=300_000)) == worst


def test_overrides_and_unknown_models():
    t = PriceTable({"my-llama": {"input_mtok": Decimal("0.5"), "output_mtok": Decimal("1.5")}})
    r = t.rates("my-llama")
    assert r.source == "config" and r.cost(Usage(2_000_000, 1_000_000)) == Decimal("2.5")
    with pytest.raises(UnknownModel, match="no price for model 'nonexistent-llm'"):
        t.rates("nonexistent-llm", "openai")


def test_nanos_round_up_never_down():
    assert to_nanos(Decimal("0.0000000001")) == 1
    assert to_nanos(Decimal("0.000000001")) == 1
    assert to_nanos(Decimal("1.5")) == 1_500_000_000
    assert usd_str(1) == "0.000001" and usd_str(Decimal("2.5")) == "2.500000"


def test_rates_is_fast_path_not_a_lookup():
    r = PriceTable().rates("claude-haiku-4-5", "anthropic")
    assert isinstance(r, Rates) and PriceTable().rates("claude-haiku-4-5", "anthropic") == r
