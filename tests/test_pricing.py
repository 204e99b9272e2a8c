"""The ledger's cost equals genai-prices' own figure to the micro-dollar (exactly, in fact)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

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
    ours, theirs = PriceTable().rates(model, provider).cost(u), genai_price(u, model, provider, None)
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


EXTRAS = [
    ("gpt-realtime", "openai", Usage(10_000, 2_000, cache_read_tokens=3_000, input_audio_tokens=4_000)),
    (
        "gpt-realtime",
        "openai",
        Usage(
            10_000,
            2_000,
            cache_read_tokens=3_000,
            input_audio_tokens=4_000,
            cache_audio_read_tokens=1_000,
            output_audio_tokens=1_500,
        ),
    ),
    ("claude-haiku-4-5", "anthropic", Usage(1_000, 100, server_tool_uses={"web_search": 3})),
    ("claude-sonnet-4-5", "anthropic", Usage(250_000, 100, cache_write_tokens=10, server_tool_uses={"web_search": 1})),
    ("gpt-4.1-mini", "openai", Usage(1_000, 100, cache_read_tokens=500, service_tier="priority")),
    ("gpt-5", "openai", Usage(1_000, 100, cache_read_tokens=200, service_tier="flex")),
    ("gpt-5", "openai", Usage(1_000, 100, service_tier="default")),
]


def genai_price(u: Usage, model: str, provider: str, tier: str | None) -> Decimal:
    """genai-prices' own price for a Usage: what `Rates.cost` must equal."""
    return calc_price(
        GUsage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            cache_write_1h_tokens=u.cache_write_1h_tokens,
            input_audio_tokens=u.input_audio_tokens,
            cache_audio_read_tokens=u.cache_audio_read_tokens,
            output_audio_tokens=u.output_audio_tokens,
            web_searches=u.server_tool_uses.get("web_search", 0),
        ),
        model,
        provider_id=provider,
        price_context={"service_tier": tier} if tier else None,
    ).total_price


@pytest.mark.parametrize("model,provider,u", EXTRAS)
def test_audio_fees_and_service_tiers_equal_genai_prices(model, provider, u):
    """Every component Usage carries is priced as genai-prices prices it (audio carved out of the
    input / output / cache reads, per-use fees, the service tier's price variant)."""
    tier = u.service_tier if u.service_tier not in ("", "default") else None
    theirs = genai_price(u, model, provider, tier)
    assert PriceTable().rates(model, provider).cost(u) == theirs


def test_a_tier_the_table_cannot_price_is_charged_at_the_dearest_prices():
    r = PriceTable().rates("gpt-4.1-mini", "openai")
    assert not r.prices_tier("scale") and r.prices_tier("priority") and r.prices_tier("default")
    u = Usage(1_000, 100)
    assert r.cost(Usage(1_000, 100, service_tier="scale")) == r.tiers["priority"].cost(u) > r.cost(u)


def test_overrides_price_audio_fees_and_tiers():
    t = PriceTable(
        {
            "voice": {
                "input_mtok": "2",
                "output_mtok": "8",
                "input_audio_mtok": "40",
                "output_audio_mtok": "80",
                "web_searches_kcount": "25",
                "priority_input_mtok": "4",
                "priority_output_mtok": "16",
            }
        }
    )
    r = t.rates("voice")
    u = Usage(1_000_000, 1_000_000, input_audio_tokens=500_000, output_audio_tokens=250_000)
    assert r.cost(u) == Decimal(1) + Decimal(20) + Decimal(6) + Decimal(20)
    assert r.cost(Usage(0, 0, server_tool_uses={"web_search": 4})) == Decimal("0.1")
    assert r.cost(Usage(1_000_000, 1_000_000, service_tier="priority")) == Decimal(20)


@st.composite
def usages(draw):
    """Usage whose parts fit inside their totals, as providers report them."""
    total = draw(st.integers(0, 400_000))
    read = draw(st.integers(0, total))
    write = draw(st.integers(0, total - read))
    write_1h = draw(st.integers(0, write))
    audio = draw(st.integers(0, total - write))
    audio_read = draw(st.integers(0, min(audio, read)))
    out = draw(st.integers(0, 100_000))
    out_audio = draw(st.integers(0, out))
    searches = draw(st.integers(0, 20))
    return Usage(
        total,
        out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        input_audio_tokens=audio,
        cache_audio_read_tokens=audio_read,
        output_audio_tokens=out_audio,
        server_tool_uses={"web_search": searches} if searches else {},
    )


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(MODELS + [("gpt-realtime", "openai"), ("claude-sonnet-4-6", "anthropic")]),
    usages(),
    st.sampled_from(["", "priority", "flex"]),
)
def test_any_usage_costs_what_genai_prices_says(model_provider, u, tier):
    model, provider = model_provider
    rates = PriceTable().rates(model, provider)
    if tier and tier not in rates.tiers:
        tier = ""
    u.service_tier = tier
    try:
        theirs = genai_price(u, model, provider, tier)
    except ValueError:  # genai-prices refuses usage whose priced parts exceed their totals; so do we
        with pytest.raises(ValueError):
            rates.cost(u)
        return
    assert rates.cost(u) == theirs


def test_derived_prices_are_recomputed_not_copied():
    """A Rates made from another (`replace`, `scaled`, batch `halved`) computes its own fast-path prices: at
    prices too fine for the text fast path (10 decimals once halved) none of the original's bands are kept."""
    from paymaster.batch.prices import halved

    r = Rates("m", input=((0, Decimal("0.000000001")),), output=((0, Decimal("0.000000003")),))
    u = Usage(10**9, 10**9)
    assert halved(r).cost(u) == r.cost(u) / 2
    assert r.scaled(Decimal("0.5")).cost(u) == r.cost(u) / 2
