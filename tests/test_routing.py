"""Model routing: task tiers, the classifier, degrade-before-cutoff, fallbacks with cooldown."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from paymaster.call import Usage
from paymaster.pricing import PriceTable

LADDER = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}


def auto_agent(**kw):
    return {"alice": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 1000, **kw}}


def test_task_types_route_to_their_tier_and_record_the_saving(gateway, sim):
    gw = gateway(agents=auto_agent())
    raw = gw.anthropic().messages.with_raw_response.create(
        model="auto",
        max_tokens=200,
        messages=[{"role": "user", "content": "Label: refund request [sim:tokens=20]"}],
        extra_headers={"x-paymaster-task": "classification"},
    )
    assert raw.headers["x-paymaster-model"] == "claude-haiku-4-5"
    assert raw.headers["x-paymaster-route"] == "task:classification"
    assert sim.requests[-1]["body"]["model"] == "claude-haiku-4-5"
    msg = raw.parse()
    row = gw.ledger("alice")[-1]
    assert row["model_requested"] == "auto" and row["model"] == "claude-haiku-4-5"
    assert row["route"] == "task:classification"
    u = Usage(msg.usage.input_tokens, msg.usage.output_tokens)
    baseline = PriceTable().rates("claude-opus-4-8", "anthropic").cost(u)  # the top tier is the counterfactual
    assert row["baseline_cost_nanos"] == int((baseline * 10**9).to_integral_value(rounding="ROUND_CEILING"))
    assert row["baseline_cost_nanos"] > row["cost_nanos"]

    gw.anthropic().messages.create(
        model="auto",
        max_tokens=200,
        messages=[{"role": "user", "content": "Synthesise"}],
        extra_headers={"x-paymaster-task": "synthesis"},
    )
    assert sim.requests[-1]["body"]["model"] == "claude-opus-4-8"


def test_agent_pins_a_tier_per_task(gateway, sim):
    gw = gateway(agents=auto_agent(tasks={"synthesis": {"tier": "standard"}}))
    gw.anthropic().messages.create(
        model="auto",
        max_tokens=50,
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"x-paymaster-task": "synthesis"},
    )
    assert sim.requests[-1]["body"]["model"] == "claude-sonnet-4-6"


def test_a_named_model_is_not_routed(gateway, sim):
    gw = gateway(agents=auto_agent())
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    )
    assert "x-paymaster-route" not in raw.headers and sim.requests[-1]["body"]["model"] == "claude-sonnet-4-6"


def test_degrade_one_tier_down_past_the_threshold(gateway, sim):
    gw = gateway(agents=auto_agent(daily_usd="0.05"), routing={"degrade_at": 0.5})
    c = gw.anthropic()
    call = dict(
        model="auto",
        max_tokens=400,
        messages=[{"role": "user", "content": "x [sim:tokens=400]"}],
        extra_headers={"x-paymaster-task": "synthesis"},
    )
    models = []
    for _ in range(4):
        raw = c.messages.with_raw_response.create(**call)
        models.append(raw.headers["x-paymaster-model"])
    assert models[0] == "claude-opus-4-8" and "claude-sonnet-4-6" in models[1:]
    state = gw.admin("/admin/agents/alice").json()["status"]
    assert state["state"] == "degraded" and "degraded at" in state["reason"]
    assert any("degraded" in r["route"] for r in gw.ledger("alice"))


def test_fallback_on_overload_with_cooldown(gateway, sim):
    gw = gateway(
        agents={
            "alice": {"model": "claude-sonnet-4-6", "models": ["claude-sonnet-4-6", "claude-haiku-4-5"], "daily_usd": 5}
        },
        routing={"fallbacks": {"claude-sonnet-4-6": ["claude-haiku-4-5"]}, "cooldown_s": 60},
    )
    sim.inject("529", model="claude-sonnet-4-6")
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-paymaster-model"] == "claude-haiku-4-5"
    assert raw.headers["x-paymaster-route"].startswith("fallback from claude-sonnet-4-6 (529)")
    rows = gw.ledger("alice")
    assert [(r["model"], r["status"]) for r in rows] == [
        ("claude-sonnet-4-6", "upstream_error"),
        ("claude-haiku-4-5", "ok"),
    ]
    assert rows[0]["cost_nanos"] == 0
    assert gw.admin("/healthz").json()["open_calls"] == 0


def test_never_a_silent_fallback_to_a_pricier_model(gateway, sim):
    gw = gateway(
        agents={
            "alice": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5", "claude-opus-4-8"], "daily_usd": 5}
        },
        routing={"fallbacks": {"claude-haiku-4-5": ["claude-opus-4-8"]}},
    )
    sim.inject("529", model="claude-haiku-4-5")
    with pytest.raises(anthropic.InternalServerError):
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    assert all(r["model"] == "claude-haiku-4-5" for r in gw.ledger("alice"))


def test_auto_without_a_ladder_is_a_clear_error(gateway):
    gw = gateway()
    with pytest.raises(anthropic.NotFoundError):
        gw.anthropic().messages.create(model="auto", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    _ = Decimal


def test_models_list_offers_auto_to_a_tiered_agent(gateway):
    gw = gateway(agents=auto_agent())
    assert [m.id for m in gw.anthropic().models.list()] == ["auto", *LADDER.values()]


PROMPTS = [
    "What is 2+2?",
    "Prove there are infinitely many primes and derive their density step by step.",
    "Translate 'good morning' into French.",
    "Summarise the meeting notes in three bullets.",
]


def routed(gw, prompts=PROMPTS):
    out = []
    for p in prompts:
        raw = gw.anthropic().messages.with_raw_response.create(
            model="auto", max_tokens=50, messages=[{"role": "user", "content": p}]
        )
        assert raw.headers["x-paymaster-route"].startswith("classifier:")
        out.append(raw.headers["x-paymaster-model"])
    return out


def test_classifier_threshold_knob(gateway, sim):
    everything_heavy = routed(gateway(agents=auto_agent(), routing={"target_heavy_share": 1.0}))
    assert set(everything_heavy) == {LADDER["heavy"]}
    nothing_heavy = routed(gateway(agents=auto_agent(), routing={"target_heavy_share": 0.0}))
    assert LADDER["heavy"] not in nothing_heavy
    two_tiers = {"alice": {"model": "auto", "tiers": {"light": LADDER["light"], "heavy": LADDER["heavy"]}}}
    assert set(routed(gateway(agents=two_tiers, routing={"target_heavy_share": 0.0}))) == {LADDER["light"]}


def test_classifier_routing_is_deterministic(gateway, sim):
    gw = gateway(agents=auto_agent())
    call = dict(model="auto", max_tokens=50, messages=[{"role": "user", "content": "Summarise the meeting notes."}])
    routes = {gw.anthropic().messages.with_raw_response.create(**call).headers["x-paymaster-route"] for _ in range(3)}
    assert len(routes) == 1


def test_cache_affinity_keeps_a_cached_conversation_where_moving_saves_less(gateway, sim):
    long_system = "House rules for every answer, kept verbatim across turns. " * 600
    gw = gateway(agents={"alice": {"model": "auto", "tiers": {"light": LADDER["light"], "heavy": LADDER["standard"]}}})
    c = gw.anthropic()

    def ask(task, system=long_system):
        return c.messages.with_raw_response.create(
            model="auto",
            max_tokens=50,
            system=system,
            messages=[{"role": "user", "content": "next step"}],
            extra_headers={"x-paymaster-task": task},
        ).headers

    first = ask("synthesis")
    assert first["x-paymaster-model"] == LADDER["standard"]
    assert gw.ledger("alice")[-1]["cache_write_tokens"] > 0
    light = ask("classification")  # would go light, but the prefix is cached on the heavy model
    assert light["x-paymaster-model"] == LADDER["standard"]
    assert "cache affinity" in light["x-paymaster-route"]
    assert gw.ledger("alice")[-1]["cache_read_tokens"] > 0
    other = ask("classification", system="A different, short system prompt.")  # no cached prefix: routed as usual
    assert other["x-paymaster-model"] == LADDER["light"]
