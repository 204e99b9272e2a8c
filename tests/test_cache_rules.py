"""The documented prompt-caching rules (tests/cache_rules.py) and the simulator: the sim refuses exactly
what the rules refuse, with the API's own messages, and accepts `max_tokens: 0` pre-warming."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from cache_rules import automatic_target, breakpoints, violations
from conftest import PROVIDER_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.sim import Simulator

MODEL = "claude-sonnet-4-6"
C5 = {"type": "ephemeral"}
C1H = {"type": "ephemeral", "ttl": "1h"}


@pytest.fixture
def claude(sim: Simulator) -> Iterator[anthropic.Anthropic]:
    yield anthropic.Anthropic(base_url=sim.url, api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]


def text(t: str, cc: Any = None) -> dict[str, Any]:
    return {"type": "text", "text": t, **({"cache_control": cc} if cc else {})}


def req(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 10, "messages": messages, **kw}


def tool(i: int, **kw: Any) -> dict[str, Any]:
    return {"name": f"t{i}", "description": "d", "input_schema": {"type": "object"}, **kw}


def result(tid: str, *blocks: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": list(blocks), **kw}


U = [{"role": "user", "content": "q"}]
LOOP = [
    {"role": "user", "content": "q"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t0", "input": {}}]},
    {"role": "user", "content": [result("a", text("r1", C5), text("r2"))]},
]

# -- the rules, on the documentation's own examples and the cases

VALID = {
    "automatic caching alone": req(U, cache_control=C5),
    "automatic and a system breakpoint": req(U, cache_control=C5, system=[text("s", C5)]),
    "automatic on a block that has the same TTL": req(
        [{"role": "user", "content": [text("q", C1H)]}], cache_control=C1H
    ),
    "1h before 5m": req(U, system=[text("a", C1H), text("b", C5)], cache_control=C5),
    "four with a nested one": req(LOOP, tools=[tool(0, cache_control=C5)], system=[text("s", C5), text("t", C5)]),
    "pre-warming": req(U, max_tokens=0, system=[text("s", C5)]),
}
INVALID = {
    "top-level 1h after the lever's 5m": (
        req(U, cache_control=C1H, system=[text("s", C5)]),
        "a 1h breakpoint after the 5m one",
    ),
    "top-level TTL differs from the last block's": (
        req([{"role": "user", "content": [text("q", C5)]}], cache_control=C1H),
        "already has cache_control with ttl 5m",
    ),
    "a deferred tool": (req(U, tools=[tool(0), tool(1, defer_loading=True, cache_control=C5)]), "defer_loading"),
    "five with a nested one": (
        req(LOOP, tools=[tool(0, cache_control=C5)], system=[text("s", C5), text("t", C5), text("u", C5)]),
        "5 breakpoints",
    ),
    "automatic with four explicit": (
        req(LOOP, tools=[tool(0, cache_control=C5)], system=[text("s", C5), text("t", C5)], cache_control=C5),
        "no slot left",
    ),
    "a thinking block": (
        req([*U, {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "cache_control": C5}]}, *U]),
        "thinking block",
    ),
    "an empty text block": (
        req([{"role": "user", "content": [text(""), text("q")]}], system=[{**text(""), "cache_control": C5}]),
        "empty text",
    ),
    "pre-warming a stream": (req(U, max_tokens=0, stream=True), "stream"),
    "pre-warming a forced tool": (
        req(U, max_tokens=0, tools=[tool(0)], tool_choice={"type": "any"}),
        "tool_choice any",
    ),
}


@pytest.mark.parametrize("name", VALID)
def test_the_rules_accept(name: str) -> None:
    assert violations(VALID[name]) == []


@pytest.mark.parametrize("name", INVALID)
def test_the_rules_refuse(name: str) -> None:
    body, says = INVALID[name]
    assert any(says in v for v in violations(body)), violations(body)


def test_the_automatic_breakpoint_walks_back_past_blocks_that_cannot_carry_one() -> None:
    body = req([*U, {"role": "assistant", "content": [text("a"), {"type": "thinking", "thinking": "t"}]}])
    assert automatic_target(body) == "messages.1.content.0"
    body["cache_control"] = C1H
    assert breakpoints(body) == [("messages.1.content.0", "1h")]


# -- the simulator refuses what the rules refuse


@pytest.mark.parametrize("name", VALID)
def test_the_simulator_accepts_what_the_rules_accept(claude: anthropic.Anthropic, name: str) -> None:
    reply = claude.messages.create(**VALID[name])
    assert reply.usage.input_tokens > 0


@pytest.mark.parametrize("name", INVALID)
def test_the_simulator_refuses_what_the_rules_refuse(claude: anthropic.Anthropic, name: str) -> None:
    body = INVALID[name][0]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(**body)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_the_simulator_names_the_deferred_tool_as_the_api_does(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(**INVALID["a deferred tool"][0])
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "Tool 't1' cannot have both defer_loading=true and cache_control set. "
        "Tools with defer_loading cannot use prompt caching."
    )


def test_pre_warming_generates_nothing_and_bills_no_output(claude: anthropic.Anthropic) -> None:
    system = [text("Policy clause: answer briefly and cite the section. " * 400, C5)]
    warm = claude.messages.create(**req(U, max_tokens=0, system=system))
    assert warm.content == [] and warm.stop_reason == "max_tokens" and warm.usage.output_tokens == 0
    assert warm.usage.cache_creation_input_tokens > 1024
    real = claude.messages.create(**req([{"role": "user", "content": "the real question"}], system=system))
    assert real.usage.cache_read_input_tokens == warm.usage.cache_creation_input_tokens


# -- any request: the simulator says 400 exactly when the rules find a broken one

CONTROLS = st.sampled_from([None, None, None, C5, C1H])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    n_tools = draw(st.integers(0, 4))
    tools = []
    for i in range(n_tools):
        extra: dict[str, Any] = {}
        if i and draw(st.booleans()):
            extra["defer_loading"] = True
        if cc := draw(CONTROLS):
            extra["cache_control"] = cc
        tools.append(tool(i, **extra))
    kind = draw(st.sampled_from(["none", "string", "blocks"]))
    body: dict[str, Any] = {}
    if kind == "string":
        body["system"] = "be brief"
    elif kind == "blocks":
        body["system"] = [
            text(draw(st.sampled_from(["s", ""])), draw(CONTROLS)) for _ in range(draw(st.integers(1, 3)))
        ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(st.sampled_from(["q", [text("q", None)]]))}]
    for turn in range(draw(st.integers(0, 2))):
        said = (
            [
                {
                    "type": "thinking",
                    "thinking": "hm",
                    "signature": "s",
                    **({"cache_control": C5} if draw(st.booleans()) and draw(st.booleans()) else {}),
                }
            ]
            if draw(st.booleans())
            else []
        )
        said.append(
            {
                "type": "tool_use",
                "id": f"u{turn}",
                "name": "t0",
                "input": {},
                **({"cache_control": c} if (c := draw(CONTROLS)) else {}),
            }
        )
        messages.append({"role": "assistant", "content": said})
        inner = [text("r", draw(CONTROLS)) for _ in range(draw(st.integers(0, 2)))]
        messages.append(
            {
                "role": "user",
                "content": [result(f"u{turn}", *inner, **({"cache_control": c} if (c := draw(CONTROLS)) else {}))],
            }
        )
    body.update(req(messages, tools=tools) if tools else req(messages))
    if top := draw(CONTROLS):
        body["cache_control"] = top
    if draw(st.integers(0, 4)) == 0:
        body["max_tokens"] = 0
        if draw(st.booleans()):
            body["stream"] = True
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=requests())
def test_the_simulator_and_the_rules_agree(claude: anthropic.Anthropic, body: dict[str, Any]) -> None:
    broken = violations(body)
    try:
        if body.get("stream"):
            with claude.messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as s:
                s.until_done()
        else:
            claude.messages.create(**body)
    except anthropic.BadRequestError as e:
        assert broken, f"the simulator refused a request the rules accept: {e.body}"
        return
    assert not broken, f"the simulator accepted a request the rules refuse: {broken}"
