"""Attacks on the bill through OpenAI's service tiers: the tier a call is served at is the tier it is billed
at, and it is the response's `service_tier`, not the request's.

The bill is computed here by an independent calculator written from OpenAI's documents, not from the
gateway's pricing code:

- developers.openai.com/api/docs/pricing and openai.com/api-fast-mode (USD per MTok, input / cached input
  / output): gpt-5 standard $1.25 / $0.125 / $10, Fast mode (priority) $2.50 / $0.25 / $20; gpt-5-mini
  $0.25 / $0.025 / $2 and $0.45 / $0.045 / $3.60; gpt-4.1 $2 / $0.50 / $8 and $3.50 / $0.875 / $14;
- developers.openai.com/api/docs/guides/flex-processing: flex "Tokens are priced at Batch API rates", and
  the Batch API is 50 % of the standard price (guides/batch); gpt-4.1 offers no flex;
- developers.openai.com/api/docs/guides/fast-mode: "Priority processing was renamed Fast mode on July 30,
  2026 ... You can use either service_tier: "priority" or service_tier: "fast""; the API reference
  (chat/create and responses/create, `service_tier`): "The response will show `service_tier=priority`
  regardless of if you specify `service_tier=fast` or `priority`", "If set to 'auto', then the request
  will be processed with the service tier configured in the Project settings. Unless otherwise
  configured, the Project will use 'default'", and "the response body will include the `service_tier`
  value based on the processing mode actually used to serve the request";
- Chat Completions usage: `prompt_tokens` includes `prompt_tokens_details.cached_tokens`.

Findings, each failing before its fix: a request naming `service_tier: "fast"` was refused with a 400 (the
table has no "fast" prices), though OpenAI serves and bills it as priority — a call the agent could
afford, refused; and the simulator answered every call `service_tier: "default"`, so a priority call run
against it was booked at standard prices (half the bill) and a flex call at twice its bill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.costmodel import Unbounded, estimate
from paymaster.pricing import PriceTable
from paymaster.sim import openai as sim_openai

MTOK = Decimal(1_000_000)
D = Decimal
STANDARD = {
    "gpt-5": (D("1.25"), D("0.125"), D(10)),
    "gpt-5-mini": (D("0.25"), D("0.025"), D(2)),
    "gpt-4.1": (D(2), D("0.5"), D(8)),
}
PRIORITY = {
    "gpt-5": (D("2.50"), D("0.25"), D(20)),
    "gpt-5-mini": (D("0.45"), D("0.045"), D("3.60")),
    "gpt-4.1": (D("3.50"), D("0.875"), D(14)),
}
FLEX_MODELS = {"gpt-5", "gpt-5-mini"}  # flex: the Batch API's 50 %
TABLE = PriceTable()


def served(requested: str | None, project: str = "default") -> str:
    """The tier OpenAI serves a request at, as the API reference describes it."""
    tier = project if requested in (None, "auto") else requested
    return {"fast": "priority"}.get(tier, tier)


def documented_prices(model: str, tier: str) -> tuple[Decimal, Decimal, Decimal] | None:
    if tier == "priority":
        return PRIORITY[model]
    if tier == "flex":
        return tuple(p / 2 for p in STANDARD[model]) if model in FLEX_MODELS else None  # type: ignore[return-value]
    return STANDARD[model]


def documented_bill(model: str, tier: str, prompt: int, cached: int, completion: int) -> Decimal:
    prices = documented_prices(model, tier)
    assert prices is not None
    inp, hit, out = prices
    return ((prompt - cached) * inp + cached * hit + completion * out) / MTOK


def body(model: str, tier: str | None, max_tokens: int = 200, text: str = "Name three prime numbers") -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": model,
        "max_completion_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }
    if tier is not None:
        b["service_tier"] = tier
    return b


def reserved(b: dict[str, Any], project: str = "default") -> Decimal:
    rates = TABLE.rates(b["model"], "openai")
    e = estimate(b, "openai", len(orjson.dumps(b)), rates, rates.context_window, default_tier=project)
    return e.worst_case(0, b["max_completion_tokens"])


# -- the bound -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(STANDARD))
def test_fast_is_reserved_as_priority_not_refused(model: str) -> None:
    b = body(model, "fast")
    rates = TABLE.rates(model, "openai")
    e = estimate(b, "openai", len(orjson.dumps(b)), rates, rates.context_window)  # before: a 400, "no price"
    inp, _, out = PRIORITY[model]
    assert e.output_usd == out / MTOK
    assert e.input_usd >= e.tokens * inp / MTOK


def test_a_project_in_fast_mode_reserves_auto_and_unnamed_requests_at_priority() -> None:
    for tier in (None, "auto"):
        b = body("gpt-5", tier)
        assert reserved(b, project="fast") == reserved(b, project="priority") > reserved(b)


def test_flex_on_a_model_without_flex_prices_is_refused() -> None:
    with pytest.raises(Unbounded, match="flex"):
        reserved(body("gpt-4.1", "flex"))


# -- what the simulator says it served -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "answer"),
    [
        (None, "default"),
        ("auto", "default"),
        ("default", "default"),
        ("priority", "priority"),
        ("fast", "priority"),
        ("flex", "flex"),
    ],
)
def test_the_simulator_answers_the_tier_it_served(requested: str | None, answer: str) -> None:
    assert sim_openai.served_tier(requested) == answer == served(requested)


# -- end to end: the official SDK, the gateway and the simulator -----------------------------------------


def _fleet() -> dict[str, Any]:
    return {
        "agents": {
            "otto": {
                "model": "gpt-5",
                "models": ["gpt-5", "gpt-5-mini", "gpt-4.1"],
                "daily_usd": 5,
                "monthly_usd": 50,
                "max_tokens": 2048,
            }
        }
    }


@pytest.mark.parametrize(
    ("model", "tier"), [("gpt-5", "fast"), ("gpt-5", "priority"), ("gpt-5-mini", "flex"), ("gpt-4.1", "priority")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_call_is_booked_at_the_tier_it_was_served_at(gateway: Any, model: str, tier: str, stream: bool) -> None:
    gw = gateway(**_fleet())
    client = gw.openai("otto")
    kw = {"model": model, "service_tier": tier, "max_completion_tokens": 50, "messages": body(model, None)["messages"]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
        usage, answered = chunks[-1].usage, chunks[-1].service_tier
    else:
        resp = client.chat.completions.create(**kw)
        usage, answered = resp.usage, resp.service_tier
    assert usage is not None
    assert answered == served(tier)
    (row,) = gw.ledger("otto")
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    bill = documented_bill(model, served(tier), usage.prompt_tokens, cached or 0, usage.completion_tokens)
    assert Decimal(row["cost_usd"]) == bill and row["reconcile"] == 0
    assert row["worst_nanos"] >= bill * 1_000_000_000


@pytest.mark.parametrize("tier", ["fast", "flex"])
def test_a_responses_call_is_booked_at_the_tier_it_was_served_at(gateway: Any, tier: str) -> None:
    gw = gateway(**_fleet())
    resp = gw.openai("otto").responses.create(model="gpt-5-mini", service_tier=tier, max_output_tokens=64, input="Hi")
    assert resp.service_tier == served(tier) and resp.usage is not None
    (row,) = gw.ledger("otto")
    u = resp.usage
    bill = documented_bill(
        "gpt-5-mini", served(tier), u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens
    )
    assert Decimal(row["cost_usd"]) == bill and row["reconcile"] == 0


def test_an_unknown_tier_is_a_400_in_openais_shape_and_spends_nothing(gateway: Any) -> None:
    gw = gateway(**_fleet())
    before = gw.spend()
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai("otto").chat.completions.create(
            model="gpt-5",
            max_completion_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"service_tier": "turbo"},
        )
    assert "service_tier" in str(e.value)
    assert gw.spend()[:-1] == before[:-1]


# -- the property: reserved >= the documented worst case >= the bill; booked == the bill -------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(STANDARD)),
    requested=st.sampled_from([None, "auto", "default", "priority", "fast", "flex"]),
    project=st.sampled_from(["default", "priority", "fast", "flex"]),
    words=st.integers(1, 300),
    max_tokens=st.integers(1, 8192),
    cached_share=st.fractions(0, 1),
    out_share=st.fractions(0, 1),
)
def test_no_tier_the_provider_serves_bills_above_the_reservation_and_each_is_booked_at_its_bill(
    model: str, requested: str | None, project: str, words: int, max_tokens: int, cached_share: Any, out_share: Any
) -> None:
    b = body(model, requested, max_tokens, " ".join(["invoice"] * words))
    tier = served(requested, project)
    prices = documented_prices(model, tier)
    if prices is None:  # a tier the model does not offer: refused, never bounded at another tier's prices
        with pytest.raises(Unbounded):
            reserved(b, project)
        return
    held = reserved(b, project)
    prompt, _ = sim_openai.measure(b, len(orjson.dumps(b)))  # what the provider counts for this request
    worst = documented_bill(model, tier, prompt, 0, max_tokens)
    assert held >= worst
    cached = int(prompt * cached_share)
    completion = int(max_tokens * out_share)
    bill = documented_bill(model, tier, prompt, cached, completion)
    assert worst >= bill
    booked = TABLE.rates(model, "openai").cost(Usage(prompt, completion, cached, service_tier=tier))
    assert booked == bill
