"""The caching lever keeps Anthropic's documented prompt-caching rules (tests/cache_rules.py) on every
request, and places breakpoints so each turn of an agent loop reads the last (issue 9's cases)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from cache_rules import breakpoints, violations
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.levers.caching import isolate, place_breakpoints, scope_tag
from paymaster.pricing import PriceTable

MODEL = "claude-sonnet-4-6"
C5 = {"type": "ephemeral"}
C1H = {"type": "ephemeral", "ttl": "1h"}
SYSTEM_1500 = " ".join(f"Rule {i}: answer the customer in plain words and cite the policy section." for i in range(83))


def agent(ttl: str = "5m", **kw: Any) -> dict[str, Any]:
    return {
        "alice": {
            "model": MODEL,
            "models": [MODEL],
            "daily_usd": 50,
            "monthly_usd": 500,
            "max_tokens": 2048,
            "caching": {"ttl": ttl},
            **kw,
        }
    }


def text(t: str, cc: Any = None) -> dict[str, Any]:
    return {"type": "text", "text": t, **({"cache_control": cc} if cc else {})}


def tool(i: int, **kw: Any) -> dict[str, Any]:
    return {
        "name": f"tool_{i}",
        "description": f"Looks up record kind {i}. " * 30,
        "input_schema": {"type": "object"},
        **kw,
    }


def sent(sim: Any) -> dict[str, Any]:
    """The body the provider got for the last call; it must keep every documented rule."""
    body: dict[str, Any] = sim.requests[-1]["body"]
    assert violations(body) == [], violations(body)
    return body


# -- 1. top-level (automatic) caching with a TTL other than the agent's


@pytest.mark.parametrize(("agent_ttl", "top"), [("5m", C1H), ("1h", C5)])
def test_top_level_cache_control_with_another_ttl_stays_valid(agent_ttl: str, top: dict[str, str]) -> None:
    body = {"model": MODEL, "max_tokens": 10, "system": SYSTEM_1500 * 2, "cache_control": top}
    body["messages"] = [{"role": "user", "content": "What is the refund policy?"}]
    place_breakpoints(body, MODEL, agent_ttl)
    assert violations(body) == []
    assert breakpoints(body)[-1] == ("messages.0.content", top.get("ttl", "5m"))  # the automatic one, untouched
    assert body["messages"][0]["content"] == "What is the refund policy?"  # no breakpoint of the lever's on it


@pytest.mark.parametrize(("agent_ttl", "top"), [("5m", C1H), ("1h", C5)])
def test_top_level_cache_control_through_the_gateway(
    gateway: Any, sim: Any, agent_ttl: str, top: dict[str, str]
) -> None:
    gw = gateway(agents=agent(agent_ttl))
    ask = dict(model=MODEL, max_tokens=20, system=SYSTEM_1500, cache_control=top)
    first = gw.anthropic().messages.create(**ask, messages=[{"role": "user", "content": "What is the refund policy?"}])
    body = sent(sim)
    assert body["cache_control"] == top and first.usage.cache_creation_input_tokens > 0


# -- 2. tools with defer_loading never carry a breakpoint


def test_deferred_tools_take_no_breakpoint(gateway: Any, sim: Any) -> None:
    tools = [tool(i, **({"defer_loading": True} if i >= 18 else {})) for i in range(24)]
    body = {
        "model": MODEL,
        "max_tokens": 10,
        "tools": copy.deepcopy(tools),
        "messages": [{"role": "user", "content": "hi"}],
    }
    place_breakpoints(body, MODEL, "5m")
    assert violations(body) == []
    assert "cache_control" in body["tools"][17] and not any("cache_control" in t for t in body["tools"][18:])

    gw = gateway(agents=agent())
    gw.anthropic().messages.create(
        model=MODEL, max_tokens=20, tools=tools, messages=[{"role": "user", "content": "hi"}]
    )
    forwarded = sent(sim)
    assert "cache_control" in forwarded["tools"][17]


def test_isolation_tags_a_tool_that_is_in_the_prefix() -> None:
    body = {"model": MODEL, "max_tokens": 10, "tools": [tool(0, defer_loading=True), tool(1)]}
    body["messages"] = [{"role": "user", "content": "hi"}]
    isolate(body, "abc", "anthropic")
    assert body["tools"][0] == tool(0, defer_loading=True)  # deferred: not in the cached prefix
    assert body["tools"][1]["description"].endswith(scope_tag("abc"))
    only_deferred = {"model": MODEL, "max_tokens": 10, "tools": [tool(0, defer_loading=True)], "system": "s"}
    isolate(only_deferred, "abc", "anthropic")
    assert only_deferred["system"].startswith(scope_tag("abc"))


# -- 3. a tool-heavy loop: each turn adds 21 blocks, and still reads the whole previous turn


def loop_turn(messages: list[dict[str, Any]], turn: int, calls: int = 10) -> None:
    """Append one agent turn: the assistant's text and `calls` tool calls, then their results."""
    uses = [{"type": "tool_use", "id": f"call_{turn}_{k}", "name": "tool_0", "input": {"id": k}} for k in range(calls)]
    messages.append({"role": "assistant", "content": [text(f"Turn {turn}: looking up {calls} records."), *uses]})
    results = [
        {
            "type": "tool_result",
            "tool_use_id": u["id"],
            "content": f"Record {turn}-{k}: " + "status ok, balance 12.40; " * 25,
        }
        for k, u in enumerate(uses)
    ]
    messages.append({"role": "user", "content": results})


@pytest.mark.parametrize("top", [None, C5], ids=["explicit", "automatic caching too"])
def test_every_turn_reads_the_previous_one_however_many_blocks_it_adds(gateway: Any, sim: Any, top: Any) -> None:
    gw = gateway(agents=agent())
    client = gw.anthropic()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Reconcile the March accounts."}]
    system = SYSTEM_1500 * 2
    totals: list[int] = []
    reads: list[int] = []
    for turn in range(5):
        if turn:
            loop_turn(messages, turn)
        extra = {"cache_control": top} if top else {}
        reply = client.messages.create(
            model=MODEL, max_tokens=20, system=system, tools=[tool(0)], messages=messages, **extra
        )
        u = reply.usage
        sent(sim)
        totals.append(u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens)
        reads.append(u.cache_read_input_tokens)
    for turn in range(1, 5):
        assert reads[turn] >= 0.95 * totals[turn - 1], (turn, reads, totals)


def test_the_previous_turn_gets_a_breakpoint_when_the_last_one_cannot_see_it() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Reconcile the March accounts. " * 200}]
    loop_turn(messages, 1)
    loop_turn(messages, 2)
    body = {"model": MODEL, "max_tokens": 10, "messages": messages}
    place_breakpoints(body, MODEL, "5m")
    assert violations(body) == []
    marked = [path for path, _ in breakpoints(body)]
    assert "messages.2.content.9" in marked and marked[-1] == "messages.4.content.9"


def test_with_two_slots_left_the_previous_turn_and_this_one_outweigh_the_system_prompt() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": [text("Reconcile the March accounts. " * 200, C5)]}]
    loop_turn(messages, 1)
    loop_turn(messages, 2)
    body = {"model": MODEL, "max_tokens": 10, "system": SYSTEM_1500 * 2, "messages": messages}
    body["tools"] = [tool(0, cache_control=C5)]
    assert place_breakpoints(body, MODEL, "5m") == 2
    assert violations(body) == []
    assert [p for p, _ in breakpoints(body)] == [
        "tools.0",
        "messages.0.content.0",
        "messages.2.content.9",  # the previous turn: read now
        "messages.4.content.9",  # this turn: read by the next
    ]


# -- 4. breakpoints nested in a tool result count toward the four


def test_a_nested_breakpoint_counts(gateway: Any, sim: Any) -> None:
    messages = [
        {"role": "user", "content": [text("Reconcile. " * 600, C5)]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "tool_0", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "a", "content": [text("rows " * 300, C5)]}],
        },
    ]
    ask = dict(model=MODEL, max_tokens=20, system=[text(SYSTEM_1500, C5)], tools=[tool(0, cache_control=C5)])
    body = {**copy.deepcopy(ask), "messages": copy.deepcopy(messages)}
    assert place_breakpoints(body, MODEL, "5m") == 0 and violations(body) == []

    gw = gateway(agents=agent())
    gw.anthropic().messages.create(**ask, messages=messages)
    assert len(breakpoints(sent(sim))) == 4


# -- minimum lengths: claude-sonnet-4-6 caches from 1,024 tokens


def test_a_1500_token_prompt_on_sonnet_4_6_is_cached(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=agent())
    ask = dict(model=MODEL, max_tokens=20, system=SYSTEM_1500)
    first = gw.anthropic().messages.create(**ask, messages=[{"role": "user", "content": "one"}])
    second = gw.anthropic().messages.create(**ask, messages=[{"role": "user", "content": "two"}])
    assert 1024 <= first.usage.cache_creation_input_tokens < 2048
    assert 1024 <= second.usage.cache_read_input_tokens <= first.usage.cache_creation_input_tokens  # the system prompt


# -- max_tokens 0: cache pre-warming passes through and is booked at its input alone


@pytest.mark.parametrize("control", [C5, C1H], ids=["5m", "1h"])
def test_pre_warming_passes_and_reserves_no_output(gateway: Any, sim: Any, control: dict[str, str]) -> None:
    gw = gateway(agents=agent())
    client = gw.anthropic()
    ask = dict(model=MODEL, system=[text(SYSTEM_1500, control)], messages=[{"role": "user", "content": "warmup"}])
    warm = client.messages.create(max_tokens=0, **ask)
    assert warm.content == [] and warm.stop_reason == "max_tokens" and warm.usage.output_tokens == 0
    forwarded = sent(sim)
    assert forwarded["max_tokens"] == 0 and forwarded["messages"][-1]["content"] == "warmup"  # no write on it
    assert warm.usage.cache_creation_input_tokens == (
        warm.usage.cache_creation.ephemeral_1h_input_tokens
        if control == C1H
        else warm.usage.cache_creation.ephemeral_5m_input_tokens
    )
    rows = gw.ledger("alice")
    assert rows[0]["max_tokens"] == 0 and rows[0]["output_tokens"] == 0
    rates = PriceTable().rates(MODEL, "anthropic")
    u = warm.usage
    total = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    write_1h = u.cache_creation.ephemeral_1h_input_tokens if u.cache_creation else 0
    assert Decimal(rows[0]["cost_usd"]) == rates.cost(
        Usage(total, 0, u.cache_read_input_tokens, u.cache_creation_input_tokens, write_1h)
    )
    assert 0 < rows[0]["cost_nanos"] <= rows[0]["worst_nanos"]  # the cache write is within what was reserved

    # the reservation is the input's alone: the same call with max_tokens 1 holds one output token more ($15/MTok)
    plain = gateway(agents=agent(caching={"enabled": False}))
    for n in (0, 1):
        plain.anthropic().messages.create(max_tokens=n, **ask)
    zero, one = (r["worst_nanos"] for r in plain.ledger("alice"))
    assert 0 < one - zero <= 15_001


def test_pre_warming_a_stream_is_refused_in_the_callers_shape(gateway: Any, sim: Any) -> None:
    gw = gateway(agents=agent())
    before = gw.spend()
    with pytest.raises(anthropic.BadRequestError) as caught:
        gw.anthropic().messages.create(
            model=MODEL, max_tokens=0, stream=True, system=SYSTEM_1500, messages=[{"role": "user", "content": "x"}]
        )
    assert "max_tokens 0" in caught.value.body["error"]["message"]  # type: ignore[index]
    assert gw.spend() == before and len(sim.requests) == 0


# -- any request an agent may send: what the lever forwards keeps every rule


CONTROLS = st.sampled_from([None, None, None, None, C5, C1H])
WORDS = st.sampled_from(["", "short", "a longer stretch of prose about the accounts " * 40, "rows " * 800])


@st.composite
def agent_requests(draw: st.DrawFn) -> dict[str, Any]:
    tools = []
    for i in range(draw(st.integers(0, 6))):
        extra: dict[str, Any] = {"defer_loading": True} if i and draw(st.integers(0, 2)) == 0 else {}
        tools.append({"name": f"t{i}", "description": draw(WORDS) or "d", "input_schema": {"type": "object"}, **extra})
    body: dict[str, Any] = {
        "model": draw(st.sampled_from([MODEL, "claude-opus-4-8", "claude-haiku-4-5"])),
        "max_tokens": draw(st.sampled_from([10, 10, 0])),  # 0: a pre-warming call
    }
    if tools:
        body["tools"] = tools
    system = draw(st.sampled_from(["none", "string", "blocks"]))
    if system == "string":
        body["system"] = draw(WORDS) or "s"
    elif system == "blocks":
        body["system"] = [text(draw(WORDS)) for _ in range(draw(st.integers(1, 3)))]
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(st.sampled_from(["q", "rows " * 900]))}]
    for turn in range(draw(st.integers(0, 3))):
        said: list[dict[str, Any]] = []
        if draw(st.booleans()):
            said.append({"type": "thinking", "thinking": "hm", "signature": "s"})
        said.append(text(draw(WORDS)))
        uses = [
            {"type": "tool_use", "id": f"u{turn}_{k}", "name": "t0", "input": {}}
            for k in range(draw(st.integers(0, 12)))
        ]
        messages.append({"role": "assistant", "content": said + uses})
        if uses:
            results = []
            for u in uses:
                inner = draw(st.sampled_from(["str", "blocks"]))
                content: Any = draw(WORDS) if inner == "str" else [text(draw(WORDS) or "r") for _ in range(2)]
                results.append({"type": "tool_result", "tool_use_id": u["id"], "content": content})
            messages.append({"role": "user", "content": results})
        else:
            messages.append({"role": "user", "content": draw(WORDS) or "next"})
    body["messages"] = messages
    # the caller's own breakpoints, anywhere that may take one, with any TTL
    spots: list[dict[str, Any]] = [t for t in tools if not t.get("defer_loading")]
    spots += [b for b in body.get("system") or [] if isinstance(b, dict) and b["text"]]
    for m in messages:
        for b in m["content"] if isinstance(m["content"], list) else ():
            if b["type"] != "thinking" and b.get("text", "x"):
                spots.append(b)
            if b["type"] == "tool_result" and isinstance(b["content"], list):
                spots += [c for c in b["content"] if c["text"]]
    for spot in draw(st.lists(st.sampled_from(spots), max_size=3, unique_by=id)) if spots else []:
        spot["cache_control"] = draw(st.sampled_from([C5, C1H]))
    if top := draw(CONTROLS):
        body["cache_control"] = top
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=agent_requests(), ttl=st.sampled_from(["5m", "1h"]))
def test_every_request_the_lever_produces_keeps_the_rules(body: dict[str, Any], ttl: str) -> None:
    assume(violations(body) == [])  # the lever cannot mend a request the API would refuse anyway
    before = breakpoints(body)
    place_breakpoints(body, body["model"], ttl)
    assert violations(body) == []
    after = breakpoints(body)
    assert set(before) <= set(after), "every breakpoint the caller set is kept, with its TTL"


def test_pre_warming_a_structured_task_sends_its_tool_without_forcing_it(gateway: Any, sim: Any) -> None:
    """A task with a schema gets a forced tool; the API refuses a forced tool_choice with max_tokens 0,
    so a pre-warm call carries the tool (the same cached prefix as the task's real calls) unforced."""
    schema = {"type": "object", "properties": {"vendor": {"type": "string"}}, "required": ["vendor"]}
    gw = gateway(agents=agent(), tasks={"extraction": {"schema": schema}})
    ask = dict(model=MODEL, system=[text(SYSTEM_1500, C5)], messages=[{"role": "user", "content": "warmup"}])
    warm = gw.anthropic().messages.create(max_tokens=0, extra_headers={"x-paymaster-task": "extraction"}, **ask)
    assert warm.content == [] and warm.usage.output_tokens == 0
    forwarded = sent(sim)
    assert [t["name"] for t in forwarded["tools"]] == ["extraction"] and "tool_choice" not in forwarded
