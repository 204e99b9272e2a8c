"""Agents keep their official SDKs: sync and async, streaming and not, tools, through the gateway."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import anthropic
import openai
import pytest

from paymaster.call import Usage
from paymaster.pricing import PriceTable


def test_anthropic_message_passes_through_and_is_booked(gateway, sim):
    gw = gateway()
    client = gw.anthropic()
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=300,
        system="You are terse.",
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"top_k": 5, "x_unknown_field": {"kept": True}},
        messages=[{"role": "user", "content": "Say hello [sim:tokens=40]"}],
    )
    msg = raw.parse()
    assert msg.usage.output_tokens == 40
    assert msg.stop_reason == "end_turn"
    # the provider saw the gateway's credential, the agent's fields untouched
    sent = sim.requests[-1]
    assert sent["headers"]["x-api-key"] == "sk-sim-provider-key"
    assert sent["body"]["system"] == "You are terse."
    assert sent["body"]["stop_sequences"] == ["END"]
    assert sent["body"]["metadata"] == {"user_id": "u-1"}
    assert sent["body"]["top_k"] == 5 and sent["body"]["x_unknown_field"] == {"kept": True}
    assert sent["body"]["max_tokens"] == 300
    # cost header equals the ledger equals the price table
    expected = (
        PriceTable().rates("claude-haiku-4-5", "anthropic").cost(Usage(msg.usage.input_tokens, msg.usage.output_tokens))
    )
    assert Decimal(raw.headers["x-paymaster-cost-usd"]) == expected
    row = gw.ledger("alice")[-1]
    assert Decimal(row["cost_usd"]) == expected
    assert row["status"] == "ok" and row["input_tokens"] == msg.usage.input_tokens
    assert Decimal(raw.headers["x-paymaster-remaining-daily-usd"]) == Decimal(5) - expected
    assert raw.headers["request-id"].startswith("req_")


def test_openai_chat_injects_ceiling_and_books(gateway, sim):
    gw = gateway()
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="gpt-4.1-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi [sim:tokens=25]"}],
        temperature=0,
        seed=7,
    )
    chat = raw.parse()
    assert chat.usage.completion_tokens == 25
    assert chat.choices[0].finish_reason == "stop"
    sent = sim.requests[-1]["body"]
    assert sent["max_completion_tokens"] == 2048  # the agent's ceiling, injected
    assert sent["seed"] == 7 and sent["temperature"] == 0
    assert raw.headers["x-paymaster-max-tokens"].startswith("2048")
    assert sim.requests[-1]["headers"]["authorization"] == "Bearer sk-sim-provider-key"
    row = gw.ledger("olivia")[-1]
    assert row["output_tokens"] == 25 and row["input_tokens"] == chat.usage.prompt_tokens


def test_request_above_ceiling_is_clamped(gateway, sim):
    gw = gateway()
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=20_000, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-paymaster-max-tokens"] == "2048; clamped from 20000"
    assert sim.requests[-1]["body"]["max_tokens"] == 2048


def test_anthropic_stream_relays_the_event_sequence(gateway, sim):
    gw = gateway()
    with gw.anthropic().messages.stream(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "go [sim:tokens=60]"}]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.usage.output_tokens == 60
    row = gw.ledger("alice")[-1]
    assert row["stream"] == 1 and row["output_tokens"] == 60 and row["status"] == "ok"
    assert row["input_tokens"] == final.usage.input_tokens


def test_openai_stream_hides_the_usage_chunk_unless_asked(gateway, sim):
    gw = gateway()
    client = gw.openai()
    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1-mini", stream=True, messages=[{"role": "user", "content": "x [sim:tokens=30]"}]
        )
    )
    assert sim.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks), "the usage chunk the gateway asked for must not reach the agent"
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert gw.ledger("olivia")[-1]["output_tokens"] == 30

    asked = list(
        client.chat.completions.create(
            model="gpt-4.1-mini",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "x [sim:tokens=30]"}],
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens == 30
    assert len(gw.ledger("olivia")) == 2


def test_tools_pass_through_both_apis(gateway, sim):
    gw = gateway()
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    msg = gw.anthropic().messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        tools=[tool],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )
    assert msg.stop_reason == "tool_use"
    assert msg.content[-1].type == "tool_use" and msg.content[-1].name == "get_weather"
    assert sim.requests[-1]["body"]["tools"] == [tool]

    fn = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
    chat = gw.openai().chat.completions.create(
        model="gpt-4.1-mini", tools=[fn], tool_choice="required", messages=[{"role": "user", "content": "find x"}]
    )
    assert chat.choices[0].finish_reason == "tool_calls"
    assert chat.choices[0].message.tool_calls[0].function.name == "lookup"


def test_async_clients_both_apis(gateway):
    gw = gateway()

    async def main() -> tuple[int, int]:
        a = gw.async_anthropic()
        o = gw.async_openai()
        m, c = await asyncio.gather(
            a.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "a [sim:tokens=5]"}]
            ),
            o.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "b [sim:tokens=6]"}]),
        )
        chunks = [
            ch
            async for ch in await o.chat.completions.create(
                model="gpt-4.1-mini", stream=True, messages=[{"role": "user", "content": "c [sim:tokens=7]"}]
            )
        ]
        assert chunks
        await a.close()
        await o.close()
        return m.usage.output_tokens, c.usage.completion_tokens

    assert asyncio.run(main()) == (5, 6)
    assert len(gw.ledger()) == 3


def test_models_lists_the_agents_allowed_models(gateway):
    gw = gateway()
    assert [m.id for m in gw.openai().models.list()] == ["gpt-4.1-mini", "gpt-4o"]
    assert [m.id for m in gw.anthropic().models.list()] == ["claude-haiku-4-5", "claude-sonnet-4-6"]


def test_count_tokens_is_proxied_without_spend(gateway):
    gw = gateway()
    before = gw.spend()
    n = gw.anthropic().messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "hello there"}]
    )
    assert n.input_tokens > 0
    assert gw.spend() == before


@pytest.mark.parametrize(
    "fault,exc", [("429", "RateLimitError"), ("500", "InternalServerError"), ("529", "InternalServerError")]
)
def test_provider_errors_are_relayed_and_cost_nothing(gateway, sim, fault, exc):
    gw = gateway()
    sim.inject(fault)
    with pytest.raises(getattr(anthropic, exc)) as info:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == int(fault)
    row = gw.ledger("alice")[-1]
    assert row["status"] == "upstream_error" and row["cost_nanos"] == 0
    assert not gw.gw.budget.open
    sim.inject(fault)
    with pytest.raises(openai.APIStatusError):
        gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    assert gw.ledger("olivia")[-1]["cost_nanos"] == 0
