"""Prompt caching (breakpoints the gateway places, exact cache pricing, savings) and the response cache."""

from __future__ import annotations

import copy
from decimal import Decimal

from paymaster.call import Usage
from paymaster.levers.caching import cache_key, place_breakpoints
from paymaster.pricing import PriceTable
from paymaster.prompt_cache import min_cacheable_tokens

LONG = "The quarterly report covers revenue, costs and the outlook for every region. " * 400  # ~30 KB


def body(system=LONG, tools=None, messages=None):
    b = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": messages or [{"role": "user", "content": "hi"}]}
    if system is not None:
        b["system"] = system
    if tools is not None:
        b["tools"] = tools
    return b


def breakpoints(b):
    found = []
    for t in b.get("tools") or []:
        if "cache_control" in t:
            found.append(("tool", t["cache_control"]))
    for blk in b.get("system") or []:
        if isinstance(blk, dict) and "cache_control" in blk:
            found.append(("system", blk["cache_control"]))
    for m in b["messages"]:
        if isinstance(m["content"], list):
            for blk in m["content"]:
                if "cache_control" in blk:
                    found.append((m["role"], blk["cache_control"]))
    return found


def test_breakpoints_on_system_and_conversation_above_the_minimum():
    b = body(
        messages=[
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ]
    )
    assert place_breakpoints(b, "claude-sonnet-4-6", "5m") == 3  # system, the previous turn (q1), this one
    assert breakpoints(b) == [("system", {"type": "ephemeral"}), ("user", {"type": "ephemeral"})] + [
        ("user", {"type": "ephemeral"})
    ]
    assert b["system"][0]["text"] == LONG and b["messages"][-1]["content"][0]["text"] == "q2"
    assert b["messages"][0]["content"][0]["text"] == "q1" and b["messages"][1]["content"] == "a1"


def test_no_breakpoint_below_the_minimum():
    short = "x " * 100
    b = body(system=short)
    assert min_cacheable_tokens("claude-sonnet-4-6") > len(short) // 4
    assert place_breakpoints(b, "claude-sonnet-4-6", "5m") == 0
    assert breakpoints(b) == []


def test_tools_breakpoint_and_the_limit_of_four_keeps_the_agents_own():
    tools = [{"name": f"t{i}", "description": LONG[:9000], "input_schema": {"type": "object"}} for i in range(3)]
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "c"},
    ]
    b = body(tools=tools, messages=msgs)
    b["system"] = [{"type": "text", "text": LONG}]
    added = place_breakpoints(b, "claude-sonnet-4-6", "5m")
    assert added == 2 and len(breakpoints(b)) == 4  # agent's two kept, ours: tools and system (room for two)
    assert "cache_control" in b["tools"][-1] and "cache_control" in b["system"][-1]
    assert "cache_control" not in b["messages"][-1]["content"][-1]


def test_ttl_ordering_one_hour_entries_precede_five_minute_ones():
    b = body(messages=[{"role": "user", "content": "q"}])
    b["system"] = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]  # agent's, 5m
    place_breakpoints(b, "claude-sonnet-4-6", "1h")
    assert breakpoints(b)[-1] == ("user", {"type": "ephemeral"}), "after a 5m breakpoint ours is 5m too"
    b = body(
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            }
        ]
    )
    place_breakpoints(b, "claude-sonnet-4-6", "5m")
    assert breakpoints(b)[0] == ("system", {"type": "ephemeral", "ttl": "1h"}), "before a 1h one ours is 1h"


def test_framing_addendum_stays_after_the_system_breakpoint():
    b = body(system=[{"type": "text", "text": LONG}, {"type": "text", "text": "Be brief."}])
    place_breakpoints(b, "claude-sonnet-4-6", "5m", system_tail=1)
    assert "cache_control" in b["system"][0] and "cache_control" not in b["system"][1]


def test_prompt_cache_key_is_stable_per_agent_and_conversation():
    a = {"model": "gpt-4.1-mini", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "1"}]}
    longer = copy.deepcopy(a)
    longer["messages"] += [{"role": "assistant", "content": "2"}, {"role": "user", "content": "3"}]
    other_question = copy.deepcopy(a)
    other_question["messages"][1]["content"] = "another question"
    assert cache_key("w", a) == cache_key("w", longer) == cache_key("w", other_question) != cache_key("v", a)
    other_system = copy.deepcopy(a)
    other_system["messages"][0]["content"] = "T"
    assert cache_key("w", a) != cache_key("w", other_system)


def test_second_call_reads_the_cache_and_is_priced_exactly(gateway, sim):
    gw = gateway()
    c = gw.anthropic()
    call = dict(model="claude-haiku-4-5", max_tokens=50, system=LONG, messages=[{"role": "user", "content": "q"}])
    first = c.messages.create(**call)
    second = c.messages.create(**call)
    assert first.usage.cache_creation_input_tokens > 0 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    rates = PriceTable().rates("claude-haiku-4-5", "anthropic")
    rows = gw.ledger("alice")
    for msg, row in zip((first, second), rows, strict=True):
        u = msg.usage
        total = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
        expected = rates.cost(Usage(total, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens))
        assert Decimal(row["cost_usd"]) == expected
        assert row["uncached_cost_nanos"] == int(
            (rates.cost(Usage(total, u.output_tokens)) * 10**9).to_integral_value(rounding="ROUND_CEILING")
        )
    saving = gw.admin("/admin/agents/alice").json()["savings"]["today"]
    assert saving["prompt_cache_hit_rate"] == 0.5
    assert Decimal(saving["caching_saved_usd"]) > 0


def test_openai_gets_a_prompt_cache_key_and_cached_tokens_are_priced(gateway, sim):
    gw = gateway()
    c = gw.openai()
    msgs = [{"role": "system", "content": LONG}, {"role": "user", "content": "q"}]
    c.chat.completions.create(model="gpt-4.1-mini", messages=msgs)
    second = c.chat.completions.create(model="gpt-4.1-mini", messages=msgs)
    key = sim.requests[-1]["body"]["prompt_cache_key"]
    assert key.startswith("pm-olivia-") and sim.requests[-2]["body"]["prompt_cache_key"] == key
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    rates = PriceTable().rates("gpt-4.1-mini", "openai")
    expected = rates.cost(Usage(second.usage.prompt_tokens, second.usage.completion_tokens, cached))
    assert Decimal(gw.ledger("olivia")[-1]["cost_usd"]) == expected


def test_caching_can_be_turned_off_per_agent(gateway, sim):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "caching": {"enabled": False}}})
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=20, system=LONG, messages=[{"role": "user", "content": "q"}]
    )
    assert sim.requests[-1]["body"]["system"] == LONG


def test_response_cache_answers_repeats_free_and_never_across_agents(gateway, sim):
    rc = {"enabled": True, "ttl_s": 60}
    gw = gateway(
        agents={
            "alice": {"model": "claude-haiku-4-5", "response_cache": rc},
            "bob": {"model": "claude-haiku-4-5", "response_cache": rc},
        }
    )
    call = dict(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "same question"}],
        extra_body={"temperature": 0},
    )
    first = gw.anthropic("alice").messages.with_raw_response.create(**call)
    again = gw.anthropic("alice").messages.with_raw_response.create(**call)
    assert "x-paymaster-cache" not in first.headers and again.headers["x-paymaster-cache"] == "hit"
    assert again.headers["x-paymaster-cost-usd"] == "0.000000"
    assert again.parse().content[0].text == first.parse().content[0].text
    assert len(sim.requests) == 1
    gw.anthropic("bob").messages.create(**call)  # bob asks the same: his own miss
    assert len(sim.requests) == 2
    rows = gw.ledger("alice")
    assert [r["status"] for r in rows] == ["ok", "response_cache"] and rows[1]["cost_nanos"] == 0
    assert rows[1]["uncached_cost_nanos"] == rows[0]["cost_nanos"]
    not_deterministic = dict(call, extra_body={"temperature": 0.7})
    gw.anthropic("alice").messages.create(**not_deterministic)
    gw.anthropic("alice").messages.create(**not_deterministic)
    assert len(sim.requests) == 4
