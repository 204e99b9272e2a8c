"""Issue 18, items 1 and 5: what agent frameworks send across the two APIs, each field mapped, dropped
with a note (lenient policy; refused under strict), or refused — driven through the gateway by the
official SDKs, against the simulator."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.stream_chunks import call_names

GPT, CLAUDE = "gpt-4.1-mini", "claude-haiku-4-5"
MIXED = {
    "alice": {"model": CLAUDE, "models": [CLAUDE, GPT], "daily_usd": 5},
    "olivia": {"model": GPT, "models": [GPT, CLAUDE], "daily_usd": 5},
}
USER: Any = [{"role": "user", "content": "hi [sim:tokens=3]"}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def after_a_call(arguments: str, result: dict[str, Any]) -> Any:
    """A conversation ending on the result of a call of tool `f` with `arguments`."""
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", **result},
    ]


def test_mid_conversation_system_messages_join_the_system_prompt(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "developer", "content": "From now on, answer in French."},
        {"role": "user", "content": "Why? [sim:tokens=4]"},
    ]
    done = gw.openai().chat.completions.create(model=CLAUDE, messages=msgs, max_tokens=50)
    assert done.choices[0].finish_reason == "stop" and done.usage and done.usage.completion_tokens == 4
    sent = sim.requests[-1]["body"]
    assert [b["text"] for b in sent["system"]] == ["Be brief.", "From now on, answer in French."]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_json_object_on_claude_answers_a_json_object(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    fmt: Any = {"type": "json_object"}
    msgs: Any = [{"role": "user", "content": "Reply in JSON."}]
    done = gw.openai().chat.completions.create(model=CLAUDE, messages=msgs, max_tokens=50, response_format=fmt)
    assert done.choices[0].finish_reason == "stop" and not done.choices[0].message.tool_calls
    assert isinstance(json.loads(done.choices[0].message.content or ""), dict)
    sent = sim.requests[-1]["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": sent["tools"][0]["name"]}
    chunks = list(
        gw.openai().chat.completions.create(
            model=CLAUDE, messages=msgs, max_tokens=50, response_format=fmt, stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(json.loads(streamed), dict)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_json_object_beside_tools_still_lets_the_model_call_them(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    tool: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    msgs: Any = [{"role": "user", "content": "Weather, in JSON [sim:tool=get_weather]"}]
    done = gw.openai().chat.completions.create(
        model=CLAUDE, messages=msgs, max_tokens=50, response_format={"type": "json_object"}, tools=[tool]
    )
    assert done.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in done.choices[0].message.tool_calls or []] == ["get_weather"]  # type: ignore[union-attr]
    assert sim.requests[-1]["body"]["tool_choice"] == {"type": "any"}


def test_reasoning_effort_becomes_a_thinking_budget(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=CLAUDE, messages=USER, max_tokens=4000, reasoning_effort="medium"
    )
    assert raw.parse().choices[0].message.content and "x-paymaster-dropped" not in raw.headers
    assert sim.requests[-1]["body"]["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    small = gw.openai().chat.completions.with_raw_response.create(
        model=CLAUDE, messages=USER, max_tokens=500, reasoning_effort="high"
    )  # no room for the 1,024-token minimum: answered without thinking, and said so
    assert "thinking" not in sim.requests[-1]["body"] and "reasoning_effort" in small.headers["x-paymaster-dropped"]


def test_harmless_fields_are_dropped_with_a_note(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs: Any = [
        {"role": "user", "name": "ada", "content": [
            {"type": "text", "text": "What is this? [sim:tokens=3]"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"}},
        ]},
    ]  # fmt: skip
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=CLAUDE, messages=msgs, max_tokens=50, store=True, metadata={"run": "r1", "user_id": "u-7"}
    )
    assert raw.parse().usage.completion_tokens == 3  # type: ignore[union-attr]
    note = raw.headers["x-paymaster-dropped"]
    for field in ("store", "metadata", "messages[].name", "messages[0].content[1].image_url.detail"):
        assert field in note
    sent = sim.requests[-1]["body"]
    assert sent["metadata"] == {"user_id": "u-7"} and "store" not in sent


def test_strict_policy_refuses_what_lenient_drops(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED, translation={"policy": "strict"})
    before = gw.spend()
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai().chat.completions.create(model=CLAUDE, messages=USER, max_tokens=50, store=True)
    assert e.value.param == "store" and "store" in e.value.message
    assert gw.spend() == before and not sim.requests
    ok = gw.openai().chat.completions.create(model=CLAUDE, messages=USER, max_tokens=50, store=False)
    assert ok.choices[0].finish_reason == "stop"  # store false asks for nothing


def test_two_named_users_are_refused(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs: Any = [
        {"role": "user", "name": "ada", "content": "I say yes."},
        {"role": "user", "name": "bob", "content": "I say no."},
    ]
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai().chat.completions.create(model=CLAUDE, messages=msgs, max_tokens=50)
    assert "named participants" in e.value.message


def test_trailing_assistant_turn_is_a_prefill(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs: Any = [*USER, {"role": "assistant", "content": "The answer is"}]
    done = gw.openai().chat.completions.create(model=CLAUDE, messages=msgs, max_tokens=50)
    assert done.choices[0].message.content
    assert sim.requests[-1]["body"]["messages"][-1] == {"role": "assistant", "content": "The answer is"}


def test_tool_arguments_that_are_no_object_are_kept_as_text(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs = after_a_call('{"city": "Os', {"content": "bad arguments"})
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=CLAUDE, messages=msgs, max_tokens=50, tools=[tool]
    )
    assert raw.parse().choices[0].finish_reason == "stop" and "arguments" in raw.headers["x-paymaster-dropped"]
    assert sim.requests[-1]["body"]["messages"][1]["content"][0]["input"] == {"arguments": '{"city": "Os'}


def test_anthropic_tool_error_results_reach_an_openai_model(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs: Any = [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "command not found", "is_error": True}
        ]},
    ]  # fmt: skip
    tools: Any = [{"name": "bash", "input_schema": {"type": "object"}}]
    done = gw.anthropic().messages.create(model=GPT, messages=msgs, max_tokens=50, tools=tools)
    assert done.stop_reason == "end_turn"
    sent = sim.requests[-1]["body"]["messages"][-1]
    assert sent == {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: command not found"}


def test_a_tool_message_may_name_its_function(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=MIXED)
    msgs = after_a_call("{}", {"name": "f", "content": "done"})
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    raw = gw.openai().chat.completions.with_raw_response.create(
        model=CLAUDE, messages=msgs, max_tokens=50, tools=[tool]
    )
    assert raw.parse().choices[0].finish_reason == "stop" and "x-paymaster-dropped" not in raw.headers
    assert sim.requests[-1]["body"]["messages"][-1]["content"][0]["tool_use_id"] == "call_1"


def test_parallel_tool_calls_cross_both_ways(gateway: Any) -> None:
    gw = gateway(agents=MIXED)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    functions: Any = [{"type": "function", "function": {"name": n, "parameters": schema}} for n in ("a", "b")]
    both: Any = [{"role": "user", "content": "Both [sim:tool=a,b]"}]
    done = gw.openai().chat.completions.create(model=CLAUDE, messages=both, tools=functions, max_tokens=100)
    assert [c.function.name for c in done.choices[0].message.tool_calls or []] == ["a", "b"]  # type: ignore[union-attr]
    chunks = list(
        gw.openai().chat.completions.create(model=CLAUDE, messages=both, tools=functions, max_tokens=100, stream=True)
    )
    names = call_names(chunks)
    assert names == {0: "a", 1: "b"}
    tools: Any = [{"name": n, "input_schema": schema} for n in ("a", "b")]
    with gw.anthropic().messages.stream(model=GPT, messages=both, tools=tools, max_tokens=100) as s:
        final = s.get_final_message()
    assert [getattr(b, "name", None) for b in final.content] == ["a", "b"] and final.stop_reason == "tool_use"
