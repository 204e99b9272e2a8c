"""Output token control: ceilings per agent and task type, structured output, brevity framing."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import pytest

from paymaster.pricing import PriceTable

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
TASKS = {
    "classification": {"max_tokens": 16, "brevity": "Answer with the label only."},
    "extraction": {"max_tokens": 300, "schema": SCHEMA, "brevity": "Respond in JSON only. No preamble."},
}


def test_task_ceiling_clamps_and_records_the_exposure_removed(gateway, sim):
    gw = gateway(tasks=TASKS)
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=1000,
        messages=[{"role": "user", "content": "Is this spam? [sim:tokens=50]"}],
        extra_headers={"x-paymaster-task": "classification"},
    )
    assert raw.headers["x-paymaster-max-tokens"] == "16; clamped from 1000"
    assert sim.requests[-1]["body"]["max_tokens"] == 16
    assert raw.parse().usage.output_tokens == 16
    row = gw.ledger("alice")[-1]
    assert row["task"] == "classification" and row["max_tokens_requested"] == 1000 and row["max_tokens"] == 16
    out_rate = PriceTable().rates("claude-haiku-4-5", "anthropic").output_rate(0)
    assert row["exposure_removed_nanos"] == int((984 * out_rate * 10**9).to_integral_value())


def test_per_agent_task_override_and_metadata_declaration(gateway, sim):
    gw = gateway(
        tasks=TASKS, agents={"olivia": {"model": "gpt-4.1-mini", "tasks": {"classification": {"max_tokens": 8}}}}
    )
    gw.openai().chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "label it"}],
        metadata={"paymaster_task": "classification"},
    )
    sent = sim.requests[-1]["body"]
    assert sent["max_completion_tokens"] == 8
    assert "metadata" not in sent, "the gateway's own metadata key never reaches the provider"
    assert sent["messages"][-1] == {"role": "system", "content": "Answer with the label only."}


def test_unknown_task_type_is_a_clear_400(gateway):
    gw = gateway(tasks=TASKS)
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-paymaster-task": "clasification"},
        )
    assert "unknown task type 'clasification'" in e.value.body["error"]["message"]


def test_structured_output_openai_uses_strict_json_schema(gateway, sim):
    gw = gateway(tasks=TASKS)
    chat = gw.openai().chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "Classify: great product!"}],
        extra_headers={"x-paymaster-task": "extraction"},
    )
    rf = sim.requests[-1]["body"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True and rf["json_schema"]["schema"] == SCHEMA
    answer = json.loads(chat.choices[0].message.content)
    assert set(answer) == {"label", "confidence"}


def test_structured_output_anthropic_forced_tool_comes_back_as_json_text(gateway, sim):
    gw = gateway(tasks=TASKS)
    msg = gw.anthropic().messages.create(
        model="claude-haiku-4-5",
        max_tokens=300,
        system="You label reviews.",
        messages=[{"role": "user", "content": "Classify: great product!"}],
        extra_headers={"x-paymaster-task": "extraction"},
    )
    sent = sim.requests[-1]["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": "extraction"}
    assert sent["tools"][0]["input_schema"] == SCHEMA
    assert sent["system"][-1] == {"type": "text", "text": "Respond in JSON only. No preamble."}
    assert msg.stop_reason == "end_turn" and [b.type for b in msg.content] == ["text"]
    assert set(json.loads(msg.content[0].text)) == {"label", "confidence"}


def test_structured_output_anthropic_stream(gateway):
    gw = gateway(tasks=TASKS)
    with gw.anthropic().messages.stream(
        model="claude-haiku-4-5",
        max_tokens=300,
        messages=[{"role": "user", "content": "Classify: meh"}],
        extra_headers={"x-paymaster-task": "extraction"},
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert set(json.loads(text)) == {"label", "confidence"}
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"


def test_structured_output_leaves_a_request_with_its_own_tools_alone(gateway, sim):
    gw = gateway(tasks=TASKS)
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        tools=[tool],
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"x-paymaster-task": "extraction"},
    )
    assert raw.headers["x-paymaster-structured"].startswith("skipped")
    assert sim.requests[-1]["body"]["tools"] == [tool]


def test_agent_brevity_framing(gateway, sim):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "brevity": "Be brief."}})
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=50, system="You are a poet.", messages=[{"role": "user", "content": "x"}]
    )
    assert sim.requests[-1]["body"]["system"] == [
        {"type": "text", "text": "You are a poet."},
        {"type": "text", "text": "Be brief."},
    ]
    assert Decimal(gw.ledger("alice")[-1]["cost_usd"]) > 0
