"""Refuse only what cannot fit. A call too big for what is left while smaller calls still fit is a 402
`call_too_large` (the SDKs raise it, do not retry it) and leaves the agent active; `budget_exceeded`
(and `blocked`, with its event) means not even a minimal call fits; a reconcile that makes room
unblocks the agent."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx2
import openai
import pytest

from paymaster import budget as budget_module
from paymaster.pricing import to_nanos
from tests.conftest import ADMIN_KEY


def events(gw, kind: str) -> list[bytes]:
    return [frame for _, frame in gw.gw.board.history if b"event: " + kind.encode() + b"\n" in frame]


def generated(sim) -> list:
    """Requests that reached a provider's generation endpoint (a free token count does not bill)."""
    return [r for r in sim.requests if r["path"] != "/v1/messages/count_tokens"]


def state(gw, agent: str) -> str:
    return gw.admin(f"/admin/agents/{agent}").json()["status"]["state"]


def test_a_prompt_too_big_for_what_is_left_is_call_too_large_and_blocks_nothing(gateway, sim):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.01", "max_tokens": 1024}})
    before = gw.spend()
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["alice"], max_retries=3)
    big = "lorem ipsum dolor sit amet " * 4000  # 20,000+ tokens on any tokenizer: over $0.02 at $1/MTok
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-haiku-4-5", max_tokens=1024, messages=[{"role": "user", "content": big}])
    assert e.value.status_code == 402
    err = e.value.body["error"]
    assert err["type"] == "call_too_large" and err["window"] == "agent daily"
    assert "cannot fit" in err["message"] and "agent daily" in err["message"]
    assert Decimal(err["needed_usd"]) > Decimal(err["cap_usd"]) - Decimal(err["spent_usd"])
    view = gw.admin("/admin/agents/alice").json()
    assert view["refused_calls"] == 1, "the SDK did not retry it"
    assert view["status"]["state"] == "active" and not events(gw, "agent.blocked")
    assert gw.spend() == before and not generated(sim)
    # its next, smaller call is served
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert state(gw, "alice") == "active"


def test_openai_sdk_gets_call_too_large_too(gateway, sim):
    gw = gateway(agents={"olivia": {"model": "gpt-4.1-mini", "daily_usd": "0.002", "max_tokens": 1024}})
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["olivia"], max_retries=3)
    big = "lorem ipsum dolor sit amet " * 1500  # 7,500+ tokens: over $0.003 at $0.40/MTok
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": big}])
    assert e.value.status_code == 402 and e.value.code == "call_too_large"
    assert e.value.body["type"] == "call_too_large" and "cannot fit" in e.value.body["message"]
    assert gw.admin("/admin/agents/olivia").json()["refused_calls"] == 1
    assert state(gw, "olivia") == "active" and not events(gw, "agent.blocked") and not generated(sim)
    client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])


def test_budget_exceeded_means_not_even_a_minimal_call_fits(gateway, sim):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.01", "max_tokens": 2048}})
    minimal = gw.gw.budget.minimal_call("alice")
    rates = gw.gw.rates_of("claude-haiku-4-5")
    assert minimal == to_nanos(rates.worst_case(budget_module.MINIMAL_INPUT_TOKENS, gw.config.min_output_tokens))
    c = gw.anthropic()
    # a call whose answer carries no usage is booked at its worst case: nearly the whole cap
    sim.inject("no_usage")
    c.messages.create(model="claude-haiku-4-5", max_tokens=1995, messages=[{"role": "user", "content": "x"}])
    row = gw.ledger("alice")[-1]
    assert row["reconcile"] == 1 and to_nanos(Decimal("0.01")) - row["cost_nanos"] < minimal
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 402 and e.value.body["error"]["type"] == "budget_exceeded"
    assert "not even a minimal call" in e.value.body["error"]["message"]
    assert state(gw, "alice") == "blocked" and len(events(gw, "agent.blocked")) == 1

    # the operator reconciles the call at its true cost: the window has room again, the agent is unblocked
    r = httpx2.post(
        gw.url + f"/admin/ledger/{row['id']}/reconcile",
        json={"cost_usd": "0.0001"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 200, r.text
    assert state(gw, "alice") == "active" and len(events(gw, "agent.unblocked")) == 1
    c.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}])


def test_a_minimal_call_is_priced_on_the_cheapest_model_the_agent_may_call(gateway):
    gw = gateway()
    budget = gw.gw.budget
    cheap = to_nanos(
        gw.gw.rates_of("claude-haiku-4-5").worst_case(budget_module.MINIMAL_INPUT_TOKENS, gw.config.min_output_tokens)
    )
    dear = to_nanos(
        gw.gw.rates_of("claude-sonnet-4-6").worst_case(budget_module.MINIMAL_INPUT_TOKENS, gw.config.min_output_tokens)
    )
    assert cheap < dear and budget.minimal_call("alice") == cheap


def test_a_sonnet_call_refused_while_haiku_calls_fit_is_call_too_large(gateway, sim):
    models = ["claude-haiku-4-5", "claude-sonnet-4-6"]
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "models": models, "daily_usd": "0.003"}})
    c = gw.anthropic()
    # 2,000+ tokens on sonnet cost over $0.006 at $3/MTok; haiku's minimal call is ~$0.0006
    prompt = "lorem ipsum dolor sit amet " * 400
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=[{"role": "user", "content": prompt}])
    assert e.value.status_code == 402 and e.value.body["error"]["type"] == "call_too_large"
    assert state(gw, "alice") == "active" and not generated(sim)
    c.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}])
