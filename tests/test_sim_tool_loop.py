"""The simulator's scripted multi-turn tool loop: `[sim:tool=a] [sim:tool=b]` in the user's message
calls `a`, then (after its result) `b`, then answers in text — on both wires, through the official SDKs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai

from paymaster.sim import Simulator
from tests.conftest import PROVIDER_KEY
from tests.stream_chunks import call_names

PROMPT = "Weather and time in Oslo? [sim:tool=get_weather] [sim:tool=get_time] [sim:tokens=4]"
SCHEMAS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "get_time": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
FUNCTIONS: Any = [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in SCHEMAS.items()]
TOOLS: Any = [{"name": n, "input_schema": s} for n, s in SCHEMAS.items()]


def test_openai_tool_loop_follows_the_script_and_ends(sim: Simulator) -> None:
    client = openai.OpenAI(base_url=sim.url + "/v1", api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    called = []
    for _ in range(5):  # a loop that does not end fails here, not by hanging
        done = client.chat.completions.create(model="gpt-4o", messages=messages, tools=FUNCTIONS)
        choice = done.choices[0]
        if choice.finish_reason != "tool_calls":
            break
        [call] = choice.message.tool_calls or []
        assert call.type == "function"
        called.append(call.function.name)
        messages.append(choice.message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"ok": True})})
    assert called == ["get_weather", "get_time"]
    assert choice.finish_reason == "stop" and len((choice.message.content or "").split()) == 4


def test_anthropic_tool_loop_follows_the_script_and_ends(sim: Simulator) -> None:
    client = anthropic.Anthropic(base_url=sim.url, api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    called = []
    for _ in range(5):
        done = client.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=messages, tools=TOOLS)
        if done.stop_reason != "tool_use":
            break
        [block] = done.content
        assert block.type == "tool_use"
        called.append(block.name)
        messages.append({"role": "assistant", "content": [block.model_dump()]})
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "ok"}]}
        )
    assert called == ["get_weather", "get_time"]
    assert done.stop_reason == "end_turn" and done.content[0].type == "text"
    assert len(done.content[0].text.split()) == 4


def test_a_new_user_message_starts_a_new_script(sim: Simulator) -> None:
    client = openai.OpenAI(base_url=sim.url + "/v1", api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]
    messages: list[Any] = [
        {"role": "user", "content": "[sim:tool=get_weather]"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        {"role": "assistant", "content": "It rains."},
        {"role": "user", "content": "And the time? [sim:tool=get_time]"},
    ]
    done = client.chat.completions.create(model="gpt-4o", messages=messages, tools=FUNCTIONS)
    assert [c.function.name for c in done.choices[0].message.tool_calls or []] == ["get_time"]  # type: ignore[union-attr]


def test_parallel_tool_calls_in_one_turn(sim: Simulator) -> None:
    gpt = openai.OpenAI(base_url=sim.url + "/v1", api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]
    claude = anthropic.Anthropic(base_url=sim.url, api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]
    both: Any = [{"role": "user", "content": "Both at once [sim:tool=get_weather,get_time]"}]
    done = gpt.chat.completions.create(model="gpt-4o", messages=both, tools=FUNCTIONS)
    calls = done.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert len({c.id for c in calls}) == 2 and done.choices[0].finish_reason == "tool_calls"
    chunks = list(gpt.chat.completions.create(model="gpt-4o", messages=both, tools=FUNCTIONS, stream=True))
    streamed = call_names(chunks)
    assert streamed == {0: "get_weather", 1: "get_time"}
    one = gpt.chat.completions.create(model="gpt-4o", messages=both, tools=FUNCTIONS, parallel_tool_calls=False)
    assert len(one.choices[0].message.tool_calls or []) == 1
    message = claude.messages.create(model="claude-x", max_tokens=200, messages=both, tools=TOOLS)
    assert [b.name for b in message.content if b.type == "tool_use"] == ["get_weather", "get_time"]
    with claude.messages.stream(model="claude-x", max_tokens=200, messages=both, tools=TOOLS) as s:
        final = s.get_final_message()
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [(b.type, b.input) for b in message.content]  # type: ignore[union-attr]
    single = claude.messages.create(
        model="claude-x", max_tokens=200, messages=both, tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )  # fmt: skip
    assert [b.type for b in single.content] == ["tool_use"]
