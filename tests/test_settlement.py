"""Settle every dollar: a 200 answer without usable usage, or with a billable field nothing can price,
is booked at the call's worst case and flagged for reconciliation — both APIs, streaming or not,
translated or not — never at zero; every usage field the providers document lands in `Usage`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from paymaster.call import Call, Usage
from paymaster.settle import unpriceable as _unpriceable
from paymaster.wire import anthropic as wire_anthropic
from paymaster.wire import openai as wire_openai
from tests.conftest import ADMIN_KEY

MIXED = {
    "alice": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5", "gpt-4.1-mini"], "daily_usd": 5},
    "olivia": {"model": "gpt-4.1-mini", "models": ["gpt-4.1-mini", "claude-haiku-4-5"], "daily_usd": 5},
}


def _call(gw: Any, caller: str, model: str, stream: bool) -> None:
    """One call through the official SDK of `caller`, its answer read to the end."""
    prompt = [{"role": "user", "content": "settle this [sim:tokens=20]"}]
    if caller == "anthropic":
        c = gw.anthropic("alice")
        if stream:
            for _ in c.messages.create(model=model, max_tokens=300, messages=prompt, stream=True):
                pass
        else:
            c.messages.create(model=model, max_tokens=300, messages=prompt)
    else:
        o = gw.openai("olivia")
        if stream:
            for _ in o.chat.completions.create(model=model, max_tokens=300, messages=prompt, stream=True):
                pass
        else:
            o.chat.completions.create(model=model, max_tokens=300, messages=prompt)


ROUTES = [
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-4.1-mini"),
    ("anthropic", "gpt-4.1-mini"),  # translated
    ("openai", "claude-haiku-4-5"),  # translated
]


@pytest.mark.parametrize("fault", ["no_usage", "no_output_usage"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("caller,model", ROUTES, ids=[f"{c}-on-{m}" for c, m in ROUTES])
def test_an_answer_without_usage_is_booked_at_the_worst_case(gateway, sim, caller, model, stream, fault):
    gw = gateway(agents=MIXED)
    agent = "alice" if caller == "anthropic" else "olivia"
    sim.inject(fault)
    try:
        _call(gw, caller, model, stream)
    except (anthropic.APIError, openai.APIError):
        pass  # a translated answer without usage cannot be expressed in the caller's API: an error, still booked
    row = gw.ledger(agent)[-1]
    assert row["status"] == "ok", row
    assert row["reconcile"] == 1 and "usage" in row["error"]
    assert row["cost_nanos"] == row["worst_nanos"] > 0, "booked at the reservation, never at zero"
    assert Decimal(row["cost_usd"]) > 0
    # the next, honest call books its real usage and no flag
    _call(gw, caller, model, stream)
    honest = gw.ledger(agent)[-1]
    assert honest["reconcile"] == 0 and 0 < honest["cost_nanos"] < honest["worst_nanos"]
    assert not gw.gw.budget.open


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("caller,model", ROUTES[:2], ids=["anthropic", "openai"])
def test_an_unpriced_usage_field_is_booked_at_the_worst_case(gateway, sim, caller, model, stream):
    gw = gateway(agents=MIXED)
    agent = "alice" if caller == "anthropic" else "olivia"
    sim.inject("extra_usage")
    _call(gw, caller, model, stream)
    row = gw.ledger(agent)[-1]
    assert row["status"] == "ok" and row["reconcile"] == 1
    assert "web_crawl_requests" in row["error"]
    assert row["cost_nanos"] == row["worst_nanos"]
    assert row["output_tokens"] == 20, "the priced fields are still recorded"


def test_a_reconcile_corrects_a_worst_case_booking(gateway, sim):
    gw = gateway()
    sim.inject("no_usage")
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "x [sim:tokens=5]"}]
    )
    row = gw.ledger("alice")[-1]
    assert gw.admin("/admin/ledger", reconcile="true").json()["data"][0]["id"] == row["id"]
    r = httpx2.post(
        gw.url + f"/admin/ledger/{row['id']}/reconcile",
        json={"cost_usd": "0.0001"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 200, r.text
    daily = next(w for w in gw.admin("/admin/agents/alice").json()["windows"] if w["window"] == "agent daily")
    assert daily["spent_usd"] == "0.000100"


# -- every documented usage field, extracted


def test_anthropic_usage_fields_are_all_extracted():
    u = wire_anthropic.usage(
        {
            "input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 50,
            "output_tokens_details": {"thinking_tokens": 30},
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
            "service_tier": "priority",
            "speed": "standard",
            "inference_geo": "global",
            "iterations": [{"type": "message", "input_tokens": 100, "output_tokens": 50}],
        }
    )
    assert u is not None
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (
        1400,
        50,
        1000,
        300,
        200,
    )
    assert u.reasoning_tokens == 30 and u.service_tier == "priority"
    assert u.server_tool_uses == {"web_search": 3, "web_fetch": 1}
    assert u.unpriced == ()


def test_anthropic_billable_extras_without_a_price_are_flagged():
    u = wire_anthropic.usage(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "server_tool_use": {"web_search_requests": 0, "code_execution_requests": 2},
            "speed": "fast",
            "inference_geo": "us",
            "iterations": [
                {"type": "message", "input_tokens": 10, "output_tokens": 5},
                {"type": "advisor", "model": "claude-opus-4-8", "input_tokens": 9000, "output_tokens": 700},
            ],
            "image_generation_units": 4,
            "timing": {"queue_time": 0.2},
        }
    )
    assert u is not None and u.server_tool_uses == {"code_execution": 2}
    assert (u.speed, u.inference_geo) == ("fast", "us")  # priced (tests/test_attack_modifiers.py), not flagged
    assert set(u.unpriced) == {
        "server_tool_use.code_execution_requests",
        "iterations.advisor.input_tokens",  # another model's step (compaction steps are priced:
        "iterations.advisor.output_tokens",  # tests/test_attack_modifiers.py)
        "image_generation_units",
    }


def test_openai_usage_fields_are_all_extracted():
    u = wire_openai.answer_usage(
        {
            "service_tier": "priority",
            "usage": {
                "prompt_tokens": 2000,
                "completion_tokens": 300,
                "total_tokens": 2300,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 400, "cache_write_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 100,
                    "audio_tokens": 80,
                    "accepted_prediction_tokens": 5,
                    "rejected_prediction_tokens": 7,
                },
            },
        }
    )
    assert u is not None
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (2000, 300, 1024)
    assert (u.input_audio_tokens, u.output_audio_tokens, u.reasoning_tokens) == (400, 80, 100)
    assert u.service_tier == "priority" and u.unpriced == ()
    # xAI-style live search sources, unknown: flagged; Groq-style timings are not billable
    odd = wire_openai.usage({"prompt_tokens": 5, "completion_tokens": 1, "num_sources_used": 3, "queue_time": 0.1})
    assert odd is not None and odd.unpriced == ("num_sources_used",)


@pytest.mark.parametrize(
    "u",
    [
        None,
        {},
        {"input_tokens": 5},
        {"output_tokens": 5},
        {"input_tokens": "5", "output_tokens": 1},
        {"input_tokens": -1, "output_tokens": 1},
        {"input_tokens": 1, "output_tokens": True},
        {"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": "many"},
        [],
    ],
)
def test_missing_or_malformed_anthropic_counts_are_no_usage(u):
    assert wire_anthropic.usage(u) is None


@pytest.mark.parametrize(
    "u",
    [
        None,
        {},
        {"prompt_tokens": 5},
        {"completion_tokens": 5, "total_tokens": 5},
        {"prompt_tokens": 5.5, "completion_tokens": 1},
        {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": -3}},
    ],
)
def test_missing_or_malformed_openai_counts_are_no_usage(u):
    assert wire_openai.usage(u) is None


def test_contradictory_usage_is_booked_at_the_worst_case(gateway, sim, monkeypatch):
    """More cached than total input: no bill can be read from it; the call still settles, flagged."""
    gw = gateway()
    real = wire_openai.usage

    def contradictory(u: Any, tier: Any = None) -> Any:
        out = real(u, tier)
        if out is not None:
            out.cache_read_tokens = out.input_tokens + 10
        return out

    monkeypatch.setattr(wire_openai, "usage", contradictory)
    gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    row = gw.ledger("olivia")[-1]
    assert row["reconcile"] == 1 and row["cost_nanos"] == row["worst_nanos"]
    assert not gw.gw.budget.open


def _frames(*events: tuple[str, dict]) -> list[bytes]:
    return [b"event: " + n.encode() + b"\ndata: " + orjson.dumps(d) + b"\n\n" for n, d in events]


START = ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}})
BARE_START = ("message_start", {"type": "message_start", "message": {"id": "msg_1"}})


@pytest.mark.parametrize(
    "events,expected",
    [
        ((START, ("message_delta", {"usage": {"output_tokens": 12}})), (30, 12)),
        # message_delta's cumulative input (newer API versions) stands in for a message_start without usage
        ((BARE_START, ("message_delta", {"usage": {"input_tokens": 30, "output_tokens": 12}})), (30, 12)),
        ((BARE_START, ("message_delta", {"usage": {"output_tokens": 12}})), None),  # no input count
        ((START, ("message_delta", {"usage": {}})), None),  # no output count: message_start's 1 is not final
        ((START, ("message_delta", {"delta": {"stop_reason": "end_turn"}})), None),
    ],
)
def test_anthropic_stream_usage_needs_both_counts(events, expected):
    watch = wire_anthropic.StreamWatch(Call("anthropic", "a", {}, "m", True, 100))
    for f in _frames(*events):
        watch.frame(f)
    u = watch.usage()
    assert (u.input_tokens, u.output_tokens) == expected if expected else u is None


@pytest.mark.parametrize("fault", ["no_usage", "no_output_usage"])
def test_a_translated_stream_without_usage_tells_no_made_up_usage(gateway, sim, fault):
    """An OpenAI caller streaming from Claude asked for the usage chunk: without the provider's counts it
    gets none (as from a server that omits usage) rather than zeros; the ledger still books the worst case."""
    gw = gateway(agents=MIXED)
    sim.inject(fault)
    chunks = list(
        gw.openai("olivia").chat.completions.create(
            model="claude-haiku-4-5",
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "go [sim:tokens=20]"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)
    row = gw.ledger("olivia")[-1]
    assert row["reconcile"] == 1 and row["cost_nanos"] == row["worst_nanos"]


@pytest.mark.parametrize("caller,model", ROUTES[2:], ids=["anthropic-on-gpt", "openai-on-claude"])
def test_a_translated_answer_without_its_counts_is_an_error_not_zeros(gateway, sim, caller, model):
    gw = gateway(agents=MIXED)
    sim.inject("no_output_usage")
    with pytest.raises((anthropic.APIStatusError, openai.APIStatusError)) as e:
        _call(gw, caller, model, stream=False)
    assert e.value.status_code == 502 and "usage" in str(e.value)
    row = gw.ledger("alice" if caller == "anthropic" else "olivia")[-1]
    assert row["reconcile"] == 1 and row["cost_nanos"] == row["worst_nanos"]


@pytest.mark.parametrize(
    "agent,tier",
    [("alice", "priority"), ("olivia", "flex")],  # tiers genai-prices has no price for on these models
)
def test_a_service_tier_the_table_cannot_price_is_booked_at_the_worst_case(gateway, monkeypatch, agent, tier):
    gw = gateway()
    wire = wire_anthropic if agent == "alice" else wire_openai
    real = wire.answer_usage

    def tiered(answer: Any) -> Any:
        u = real(answer)
        u.service_tier = tier
        return u

    monkeypatch.setattr(wire, "answer_usage", tiered)
    if agent == "alice":
        _call(gw, "anthropic", "claude-haiku-4-5", stream=False)
    else:
        _call(gw, "openai", "gpt-4.1-mini", stream=False)
    row = gw.ledger(agent)[-1]
    assert row["reconcile"] == 1 and f"service_tier={tier}" in row["error"]
    assert row["cost_nanos"] == row["worst_nanos"]


def test_server_tool_uses_without_a_fee_are_flagged_and_free_ones_are_not(gateway):
    gw = gateway()
    haiku = gw.gw.rates_of("claude-haiku-4-5")
    assert _unpriceable(haiku, Usage(10, 5, server_tool_uses={"web_search": 2, "web_fetch": 3})) == []
    assert _unpriceable(haiku, Usage(10, 5, server_tool_uses={"code_execution": 1})) == [
        "server_tool_use.code_execution"
    ]
    assert _unpriceable(haiku, Usage(10, 5, service_tier="standard")) == []
    gpt = gw.gw.rates_of("gpt-4.1-mini")
    assert _unpriceable(gpt, Usage(10, 5, service_tier="priority")) == []  # genai-prices prices it


def test_an_openai_search_call_books_its_search_fee(gateway):
    gw = gateway()
    o = gw.openai("olivia")
    plain = dict(model="gpt-4.1-mini", max_tokens=50, messages=[{"role": "user", "content": "news [sim:tokens=10]"}])
    o.chat.completions.create(**plain)
    o.chat.completions.create(**plain, extra_body={"web_search_options": {}})
    without, with_search = gw.ledger("olivia")[-2:]
    fee = gw.gw.rates_of("gpt-4.1-mini").fee("web_search")
    assert fee is not None and with_search["reconcile"] == 0
    assert Decimal(with_search["cost_usd"]) - Decimal(without["cost_usd"]) >= fee
