"""`Rates.cost`'s fast path for text-only usage builds exactly the Decimal the general path builds: same value
and same exponent (`str(cost)` goes into the ledger), on every model, band and mix of priced units."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.pricing import EXACT_TOKENS, PriceTable, plain_tokens

MODELS = [
    ("claude-haiku-4-5", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),  # long-context tiers: two bands
    ("claude-sonnet-4-6", "anthropic"),
    ("claude-opus-4-8", "anthropic"),
    ("gpt-4.1-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-5", "openai"),
    ("gpt-realtime", "openai"),  # audio prices
]
# config prices whose exponents differ from unit to unit (a skipped zero term would change str(cost)),
# units left unpriced (their tokens stay in the parent), and a long-context tier
OVERRIDES = {
    "mixed": {"input_mtok": "0.8", "output_mtok": "4", "cache_read_mtok": "0.08", "cache_write_mtok": "1.000"},
    "only-1h": {"input_mtok": "3", "output_mtok": "15.5", "cache_write_1h_mtok": "6.00"},
    "no-cache": {"input_mtok": "2.5", "output_mtok": "10"},
    "tiered": {
        "input_mtok": {"base": "3", "tiers": [{"start": 200_000, "price": "6.0"}]},
        "output_mtok": {"base": "15", "tiers": [{"start": 200_000, "price": "22.50"}]},
        "cache_read_mtok": {"base": "0.3", "tiers": [{"start": 100_000, "price": "0.6"}]},
    },
}


def all_rates():
    table = PriceTable({name: _prices(p) for name, p in OVERRIDES.items()})
    return [table.rates(m, p) for m, p in MODELS] + [table.rates(name) for name in OVERRIDES]


def _prices(p):
    from types import SimpleNamespace

    def tiered(v):
        if isinstance(v, dict):
            return SimpleNamespace(base=v["base"], tiers=[SimpleNamespace(**t) for t in v["tiers"]])
        return v

    return {k: tiered(v) for k, v in p.items()}


RATES = all_rates()


@st.composite
def text_usages(draw):
    """Text-only usage: mostly consistent (parts inside their totals), sometimes not, around tier starts."""
    total = draw(st.one_of(st.integers(0, 400_000), st.sampled_from([99_999, 100_000, 100_001, 200_000, 200_001])))
    read = draw(st.integers(0, total))
    write = draw(st.integers(0, total - read))
    write_1h = draw(st.integers(0, write))
    if draw(st.booleans()):  # inconsistent counts: the fast path must leave them to the general one
        read, write, write_1h = draw(st.tuples(*[st.integers(-5, total + 5)] * 3))
    return Usage(total, draw(st.integers(0, 100_000)), read, write, write_1h)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RATES), text_usages())
def test_text_fast_path_builds_the_general_paths_decimal(rates, u):
    fast = rates._text_cost(u)
    try:
        general = rates._plan_cost(u)
    except ValueError:
        assert fast is None  # the general path raises its error
        return
    consistent = 0 <= u.cache_write_1h_tokens <= u.cache_write_tokens and (
        u.cache_read_tokens + u.cache_write_tokens <= u.input_tokens and u.cache_read_tokens >= 0
    )
    if consistent:
        assert fast is not None, "text-only usage within its totals takes the fast path"
    if fast is not None:
        assert str(fast) == str(general)
        assert fast.as_tuple() == general.as_tuple()


def test_fast_path_keeps_an_unpriced_units_exponent():
    """The general path's zero cache terms (rates 0.08 and 1.000) make 0.8 + 4 read "4.800", not "4.8"."""
    rates = PriceTable({"mixed": OVERRIDES["mixed"]}).rates("mixed")
    u = Usage(1_000_000, 1_000_000)
    assert str(rates._plan_cost(u)) == "4.800"
    assert str(rates._text_cost(u)) == "4.800"
    assert str(rates.cost(u)) == "4.800"


def test_audio_huge_counts_and_fine_rates_take_the_general_path():
    rates = PriceTable().rates("gpt-realtime", "openai")
    assert rates._text_cost(Usage(100, 10, input_audio_tokens=50)) is None
    assert rates._text_cost(Usage(100, 10, output_audio_tokens=5)) is None
    assert rates._text_cost(Usage(EXACT_TOKENS, 10)) is None
    fine = PriceTable({"fine": {"input_mtok": "0.0000000001", "output_mtok": "1"}}).rates("fine")
    assert fine._text_cost(Usage(10, 10)) is None  # too fine a rate: sums could round; general path
    assert fine.cost(Usage(10, 10)) == Decimal("0.0000000001") * 10 / 1_000_000 + Decimal(10) / 1_000_000


@st.composite
def any_usages(draw):
    """Usage with any mix of parts (zero most of the time, as most calls report), any tier, fees or not."""
    part = st.integers(0, 50_000) if draw(st.booleans()) else st.just(0)  # half of them plain
    total = draw(st.integers(0, 400_000))
    return Usage(
        total,
        draw(st.integers(0, 100_000)),
        cache_read_tokens=draw(part),
        cache_write_tokens=draw(part),
        input_audio_tokens=draw(part),
        output_audio_tokens=draw(st.just(0)),
        server_tool_uses=draw(st.sampled_from([{}, {}, {"web_search": 2}]) if draw(st.booleans()) else st.just({})),
        service_tier=draw(st.sampled_from(["", "standard", "default", "priority", "flex"])),
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RATES), any_usages())
def test_plain_tokens_cost_what_input_and_output_alone_cost(rates, u):
    """Settlement takes a plain usage's cost as its uncached cost instead of pricing it again."""
    if plain_tokens(u):
        assert str(rates.cost(u)) == str(rates.cost(Usage(u.input_tokens, u.output_tokens)))
    else:
        assert (
            u.cache_read_tokens
            or u.cache_write_tokens
            or u.input_audio_tokens
            or u.server_tool_uses
            or (u.service_tier not in ("", "standard", "default"))
        )
