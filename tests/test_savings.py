"""Savings attribution: per-lever savings add up exactly (integer nano-dollars) to baseline − actual,
for any combination of levers, and the ledger rows the gateway books carry them."""

from __future__ import annotations

from dataclasses import fields, replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster import savings
from paymaster.call import Usage
from paymaster.pricing import PriceTable, to_nanos
from paymaster.savings import ORDER, Change, Shape

MODELS = ["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"]
TABLE = PriceTable()
PRICE = savings.pricer(lambda m: TABLE.rates(m, "anthropic"))
LONG = "The quarterly report covers revenue, costs and the outlook for every region. " * 400


@st.composite
def calls(draw):
    """A billed usage on some model and the changes some levers made to get there."""
    inp = draw(st.integers(0, 300_000))
    read = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - read))
    billed = Usage(inp, draw(st.integers(0, 64_000)), read, write, draw(st.integers(0, write)))
    changes = []
    for lever in draw(st.lists(st.sampled_from(ORDER), unique=True)):
        if lever == "output":
            changes.append(Change("output", output_tokens_removed=draw(st.integers(0, 50_000))))
        elif lever == "compression":
            changes.append(Change("compression", input_tokens_removed=draw(st.integers(0, 500_000))))
        elif lever == "routing":
            changes.append(Change("routing", model=draw(st.sampled_from(MODELS))))
        elif lever == "caching":
            changes.append(Change("caching", uncached=True))
        elif lever == "batch":
            changes.append(Change("batch", batch=True))
        else:
            u = Usage(draw(st.integers(0, 100_000)), draw(st.integers(0, 8_000)))
            changes.append(Change("response_cache", model=draw(st.sampled_from(MODELS)), usage=u))
    draw(st.randoms()).shuffle(changes)  # the order levers hand their changes over in does not matter
    batch = any(c.batch for c in changes)
    if any(c.lever == "response_cache" for c in changes):
        billed = Usage()  # answered by the gateway: nothing billed
    return Shape(draw(st.sampled_from(MODELS)), billed, batch), changes


@settings(max_examples=300, deadline=None)
@given(calls(), st.integers(0, 10**9))
def test_per_lever_savings_sum_exactly_to_baseline_minus_actual(call, extra):
    actual, changes = call
    booked = PRICE(actual) + extra  # what the bills do not see (a search fee) is in the booked cost too
    a = savings.attribute(PRICE, actual, booked, changes)
    assert sum(a.by_lever.values()) == a.baseline_nanos - a.actual_nanos
    assert set(a.by_lever) <= {c.lever for c in changes}
    assert all(isinstance(v, int) for v in a.by_lever.values())
    assert savings.parse(a.json()) == a.by_lever
    bill = actual  # the baseline is the bill with every change undone, in reverse pipeline order
    for c in sorted(changes, key=lambda c: ORDER.index(c.lever), reverse=True):
        bill = c.undo(bill)
    assert a.baseline_nanos == PRICE(bill) + extra


def test_each_lever_is_priced_in_order_by_the_written_rules():
    """Hand-worked: an opus baseline; output control kept 1,000 tokens from being generated, compression took
    10,000 out of the prompt, routing ran it on haiku, and 50,000 of 60,000 input tokens were cache reads."""
    billed = Usage(60_000, 500, 50_000, 0)
    changes = [
        Change("routing", model="claude-opus-4-8"),
        Change("caching", uncached=True),
        Change("output", output_tokens_removed=1_000),
        Change("compression", input_tokens_removed=10_000),
    ]
    opus, haiku = TABLE.rates("claude-opus-4-8", "anthropic"), TABLE.rates("claude-haiku-4-5", "anthropic")
    steps = [
        to_nanos(opus.cost(Usage(70_000, 1_500))),
        to_nanos(opus.cost(Usage(70_000, 500))),
        to_nanos(opus.cost(Usage(60_000, 500))),
        to_nanos(haiku.cost(Usage(60_000, 500))),
        to_nanos(haiku.cost(billed)),
    ]
    a = savings.attribute(PRICE, Shape("claude-haiku-4-5", billed), steps[-1], changes)
    assert a.by_lever == {
        "output": steps[0] - steps[1],
        "compression": steps[1] - steps[2],
        "routing": steps[2] - steps[3],
        "caching": steps[3] - steps[4],
    }
    assert a.baseline_nanos == steps[0]


def test_a_cache_write_is_a_negative_saving_booked_as_it_is():
    billed = Usage(20_000, 100, 0, 20_000)
    actual = Shape("claude-haiku-4-5", billed)
    a = savings.attribute(PRICE, actual, PRICE(actual), [Change("caching", uncached=True)])
    assert a.by_lever["caching"] < 0 and a.baseline_nanos < PRICE(actual)


def test_an_unknown_lever_is_refused():
    try:
        savings.attribute(PRICE, Shape("claude-haiku-4-5", Usage(1, 1)), 0, [Change("telepathy")])
    except ValueError as e:
        assert "savings.ORDER" in str(e)
    else:
        raise AssertionError("an unknown lever must not be credited silently")


def test_ledger_rows_carry_the_baseline_and_savings_by_lever(gateway, sim):
    ladder = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}
    rc = {"enabled": True, "ttl_s": 60}
    gw = gateway(
        agents={"alice": {"model": "auto", "tiers": ladder, "daily_usd": 50, "max_tokens": 1000, "response_cache": rc}},
        tasks={"extraction": {"tier": "light"}},
    )
    c = gw.anthropic()
    call = dict(
        model="auto",
        max_tokens=50,
        system=LONG,
        messages=[{"role": "user", "content": "q [sim:tokens=30]"}],
        extra_headers={"x-paymaster-task": "extraction"},
    )
    c.messages.create(**call)  # routed to haiku, writes the cache
    c.messages.create(**call)  # routed, reads the cache
    c.messages.create(**call, extra_body={"temperature": 0})
    c.messages.create(**call, extra_body={"temperature": 0})  # answered by the response cache
    rows = gw.ledger("alice")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "response_cache"]
    for r in rows:
        by = orjson.loads(r["savings"])
        assert sum(by.values()) == r["baseline_cost_nanos"] - r["cost_nanos"]
    first, second = (orjson.loads(r["savings"]) for r in rows[:2])
    assert first["routing"] > 0 and first["caching"] < 0  # the write costs more than plain input
    assert second["routing"] > 0 and second["caching"] > 0
    opus = TABLE.rates("claude-opus-4-8", "anthropic")
    r = rows[1]
    assert r["baseline_cost_nanos"] == to_nanos(opus.cost(Usage(r["input_tokens"], r["output_tokens"])))
    hit = orjson.loads(rows[3]["savings"])  # the response cache saved what the answer cost when it was made
    assert hit["response_cache"] == rows[2]["cost_nanos"] and rows[3]["cost_nanos"] == 0


class _Lever:
    """A lever as the protocol has it: a name and, optionally, `undo(bill, call, ctx)`."""

    def __init__(self, name, undo=None):
        self.name = name
        if undo is not None:
            self.undo = lambda bill, call, ctx: undo(bill)


def test_levers_are_undone_in_reverse_list_order():
    seen = []

    def note(name, f):
        def undo(bill):
            seen.append(name)
            return f(bill)

        return undo

    levers = [
        _Lever("output"),  # no undo: never credited
        _Lever("compression", note("compression", lambda b: Shape(b.model, replace(b.usage, input_tokens=25_000)))),
        _Lever("routing", note("routing", lambda b: Shape("claude-opus-4-8", b.usage))),
        _Lever("caching", note("caching", lambda b: Shape(b.model, savings.uncached(b.usage)))),
        _Lever("response_cache", note("response_cache", lambda b: b)),  # acted on nothing: credited nothing
    ]  # fmt: skip
    billed = Usage(20_000, 300, 15_000, 0)
    actual = Shape("claude-haiku-4-5", billed)
    a = savings.of_levers(levers, PRICE, actual, PRICE(actual), "call", "ctx")
    assert seen == ["response_cache", "caching", "routing", "compression"]
    assert set(a.by_lever) == {"caching", "routing", "compression"}
    assert a.baseline_nanos == PRICE(Shape("claude-opus-4-8", Usage(25_000, 300)))
    assert sum(a.by_lever.values()) == a.baseline_nanos - PRICE(actual)


def test_uncached_keeps_every_usage_field_but_the_cache_counts() -> None:
    """`uncached` builds its Usage field by field (no `replace`, for speed): a field it forgets — fast mode,
    the US-only geography — would price the caching lever's counterfactual at the wrong rates."""
    cache = {"cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cache_audio_read_tokens"}
    u = Usage(
        1000, 200, 600, 100, 40, 30, 20, 10, 50,
        server_tool_uses={"web_search": 2}, service_tier="priority", speed="fast", inference_geo="us",
        unpriced=("x",),
    )  # fmt: skip
    assert all(getattr(u, f.name) != getattr(Usage(), f.name) for f in fields(Usage))  # every field set
    assert savings.uncached(u) == replace(u, **dict.fromkeys(cache, 0))
