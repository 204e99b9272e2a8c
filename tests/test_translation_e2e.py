"""Cross-provider translation through the gateway: each official SDK served by the other provider's models."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

MIXED = {
    "alice": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5", "gpt-4.1-mini"], "daily_usd": 5},
    "olivia": {"model": "gpt-4.1-mini", "models": ["gpt-4.1-mini", "claude-haiku-4-5"], "daily_usd": 5},
}
TOOL_FN = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_openai_sdk_on_a_claude_model(gateway, sim):
    gw = gateway(agents=MIXED)
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi [sim:tokens=12]"}],
        max_tokens=100,
        stop=["END"],
        temperature=0.3,
    )
    chat = raw.parse()
    assert raw.headers["x-paymaster-translated"] == "openai -> anthropic"
    sent = sim.requests[-1]
    assert sent["path"] == "/v1/messages" and sent["body"]["system"] in (
        "Be terse.",
        [{"type": "text", "text": "Be terse."}],
    )
    assert sent["body"]["stop_sequences"] == ["END"] and sent["body"]["max_tokens"] == 100
    assert chat.object == "chat.completion" and chat.choices[0].finish_reason == "stop"
    assert chat.usage.completion_tokens == 12 and chat.choices[0].message.content
    row = gw.ledger("olivia")[-1]
    assert row["api"] == "openai" and row["model"] == "claude-haiku-4-5" and row["output_tokens"] == 12


def test_openai_sdk_stream_on_a_claude_model(gateway, sim):
    gw = gateway(agents=MIXED)
    chunks = list(
        gw.openai().chat.completions.create(
            model="claude-haiku-4-5",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "go [sim:tokens=30]"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens == 30
    assert gw.ledger("olivia")[-1]["output_tokens"] == 30


def test_openai_tool_calls_round_trip_through_claude(gateway, sim):
    gw = gateway(agents=MIXED)
    client = gw.openai()
    msgs = [{"role": "user", "content": "weather in Oslo?"}]
    first = client.chat.completions.create(
        model="claude-haiku-4-5", tools=[TOOL_FN], tool_choice="required", messages=msgs
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    msgs += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = client.chat.completions.create(model="claude-haiku-4-5", tools=[TOOL_FN], messages=msgs)
    assert second.choices[0].message.content
    blocks = sim.requests[-1]["body"]["messages"][-1]["content"]
    assert blocks[0]["type"] == "tool_result" and blocks[0]["tool_use_id"] == call.id


def test_anthropic_sdk_on_an_openai_model_stream_and_not(gateway, sim):
    gw = gateway(agents=MIXED)
    c = gw.anthropic()
    msg = c.messages.create(
        model="gpt-4.1-mini",
        max_tokens=80,
        system="Be terse.",
        messages=[{"role": "user", "content": "hi [sim:tokens=9]"}],
    )
    assert sim.requests[-1]["path"] == "/v1/chat/completions"
    assert msg.type == "message" and msg.usage.output_tokens == 9 and msg.stop_reason == "end_turn"
    with c.messages.stream(
        model="gpt-4.1-mini", max_tokens=80, messages=[{"role": "user", "content": "x [sim:tokens=20]"}]
    ) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.usage.output_tokens == 20
    assert [r["output_tokens"] for r in gw.ledger("alice")] == [9, 20]


def test_untranslatable_request_is_refused_in_the_callers_shape(gateway, sim):
    gw = gateway(agents=MIXED)
    before = gw.spend()
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai().chat.completions.create(model="claude-haiku-4-5", n=2, messages=[{"role": "user", "content": "x"}])
    assert "n" in e.value.body["message"]
    assert gw.spend() == before and not sim.requests


def test_provider_errors_come_back_in_the_callers_shape(gateway, sim):
    gw = gateway(agents=MIXED)
    sim.inject("429")
    with pytest.raises(openai.RateLimitError):
        gw.openai().chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}])
    sim.inject("500")
    with pytest.raises(anthropic.InternalServerError):
        gw.anthropic().messages.create(model="gpt-4.1-mini", max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_a_ladder_across_providers(gateway, sim):
    ladder = {"light": "gpt-4.1-mini", "heavy": "claude-sonnet-4-6"}
    gw = gateway(agents={"olivia": {"model": "auto", "tiers": ladder, "daily_usd": 5}})
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "synthesise"}],
        extra_headers={"x-paymaster-task": "synthesis"},
    )
    assert raw.headers["x-paymaster-model"] == "claude-sonnet-4-6" and sim.requests[-1]["path"] == "/v1/messages"
    assert raw.parse().choices[0].message.content


def test_fallback_to_the_other_provider(gateway, sim):
    gw = gateway(
        agents={
            "alice": {"model": "claude-sonnet-4-6", "models": ["claude-sonnet-4-6", "gpt-4.1-mini"], "daily_usd": 5}
        },
        routing={"fallbacks": {"claude-sonnet-4-6": ["gpt-4.1-mini"]}},
    )
    sim.inject("529", model="claude-sonnet-4-6")
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "x [sim:tokens=7]"}]
    )
    assert raw.headers["x-paymaster-model"] == "gpt-4.1-mini" and raw.parse().usage.output_tokens == 7
    assert [r["status"] for r in gw.ledger("alice")] == ["upstream_error", "ok"]


def test_brevity_framing_of_an_openai_caller_goes_into_claudes_system_prompt(gateway, sim):
    agents = {"olivia": {**MIXED["olivia"], "brevity": "Be brief."}}
    gw = gateway(agents=agents)
    gw.openai().chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "system", "content": "You are a poet. " * 1200}, {"role": "user", "content": "x"}],
    )
    sent = sim.requests[-1]["body"]
    assert all(m["role"] != "system" for m in sent["messages"])
    system = sent["system"]
    assert system[-1]["text"] == "Be brief." and "cache_control" not in system[-1]
    assert "cache_control" in system[-2], "the breakpoint stays on the agent's own system prompt"
