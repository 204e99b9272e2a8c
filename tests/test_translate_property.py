"""Attack the translation's promise that a request it does not refuse is one Claude accepts: conversations
as agent frameworks build them (system and developer messages anywhere, names, tool loops with malformed
arguments, a closing assistant turn, store / metadata / reasoning_effort / json_object / tools /
tool_choice / temperature in any mix) are translated under the lenient policy, and whatever comes out
must pass `anthropic_request_rules`, written from Anthropic's documentation — or have been refused by
name with a 400."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.errors import BadRequest
from paymaster.wire import translate as tr
from tests.anthropic_request_rules import problems

WORDS = st.sampled_from(["hi", "Weather?", "go on ", "ok", "   ", "Why? "])
NAMES = st.none() | st.sampled_from(["ada", "bob"])
ARGUMENTS = st.sampled_from(['{"city": "Oslo"}', "", "{}", '{"city": "Os', "[1, 2]", '"x"'])
FUNCTION = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": "Be brief."})
    serial = 0
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            msgs.append({"role": draw(st.sampled_from(["system", "developer"])), "content": "Now in French."})
        user: dict[str, Any] = {"role": "user", "content": draw(WORDS)}
        if (name := draw(NAMES)) is not None:
            user["name"] = name
        msgs.append(user)
        if draw(st.booleans()):  # a tool round
            calls = []
            for _ in range(draw(st.integers(1, 2))):
                serial += 1
                args = draw(ARGUMENTS)
                calls.append(
                    {"id": f"call_{serial}", "type": "function", "function": {"name": "get_weather", "arguments": args}}
                )
            msgs.append(
                {"role": "assistant", "content": draw(st.sampled_from([None, "", "Checking."])), "tool_calls": calls}
            )
            msgs += [{"role": "tool", "tool_call_id": c["id"], "content": "4C"} for c in calls]
            if draw(st.booleans()):
                continue  # the conversation may end on the tool results
        if draw(st.booleans()):
            msgs.append({"role": "assistant", "content": draw(WORDS)})
    return msgs


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4.1", "messages": draw(conversations())}
    body["max_completion_tokens"] = draw(st.sampled_from([16, 1024, 1025, 4000]))
    options: dict[str, Any] = {
        "store": st.booleans(),
        "metadata": st.sampled_from([{}, {"run": "r1"}, {"user_id": "u-1"}, {"user_id": "u-1", "run": "r"}]),
        "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        "tools": st.just([FUNCTION]),
        "tool_choice": st.sampled_from(
            ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}]
        ),
        "temperature": st.sampled_from([0, 0.5, 1]),
        "user": st.just("u-1"),
        "parallel_tool_calls": st.booleans(),
    }
    for key, values in options.items():
        if draw(st.booleans()):
            body[key] = draw(values)
    if any(m.get("tool_calls") for m in body["messages"]) and draw(st.booleans()):
        body["tools"] = [FUNCTION]  # tool history usually comes with its tools
    return body


@settings(max_examples=250, deadline=None)
@given(bodies())
def test_what_is_not_refused_is_a_request_claude_accepts(body: dict[str, Any]) -> None:
    drops = tr.Drops(strict=False)
    try:
        out = tr.openai_request_to_anthropic(copy.deepcopy(body), "claude-sonnet-4-6", drops)
    except BadRequest as e:  # refused by name, in the caller's shape
        assert e.status == 400 and e.param and e.message.startswith(e.param + ": ")
        return
    assert problems(out) == [], orjson.dumps(out).decode()
    unthought = any(n.startswith("reasoning_effort") for n in drops.notes)
    asked = body.get("reasoning_effort") not in (None, "none", "minimal")
    assert ("thinking" in out) == (asked and not unthought)  # effort is thinking, or a note says why not


@settings(max_examples=150, deadline=None)
@given(bodies())
def test_strict_refuses_exactly_what_lenient_drops(body: dict[str, Any]) -> None:
    lenient = tr.Drops(strict=False)
    try:
        tr.openai_request_to_anthropic(copy.deepcopy(body), "claude-sonnet-4-6", lenient)
    except BadRequest:
        return
    try:
        tr.openai_request_to_anthropic(copy.deepcopy(body), "claude-sonnet-4-6", tr.Drops(strict=True))
    except BadRequest:
        assert lenient.notes  # strict refused only because something would have been dropped
    else:
        assert not lenient.notes
