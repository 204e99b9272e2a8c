"""Prompt-cache isolation: one agent cannot tell from its own usage whether another agent's exact prompt
is cached (the gateway sends every agent's calls with one provider key, and the providers — and the
simulator — cache per key by prefix), while each agent still reads its own cache entries."""

from __future__ import annotations

from typing import Any

import pytest

from paymaster.config import cache_scope
from paymaster.levers.caching import isolate, scope_tag

LONG = "The quarterly report covers revenue, costs and the outlook for every region. " * 600  # >4,096 tokens
TOOLS = [
    {
        "name": f"tool_{i}",
        "description": "Looks up one figure of the quarterly report for a region and a quarter. " * 80,
        "input_schema": {"type": "object", "properties": {"region": {"type": "string"}}},
    }
    for i in range(4)
]
AGENTS = {
    "alice": {"model": "claude-haiku-4-5", "daily_usd": 5},
    "bob": {"model": "claude-haiku-4-5", "daily_usd": 5},
    "olivia": {"model": "gpt-4.1-mini", "daily_usd": 5},
    "oscar": {"model": "gpt-4.1-mini", "daily_usd": 5},
}


def claude(gw: Any, agent: str, **kw: Any) -> Any:
    kw.setdefault("messages", [{"role": "user", "content": "What changed this quarter?"}])
    return gw.anthropic(agent).messages.create(model="claude-haiku-4-5", max_tokens=20, **kw).usage


def gpt(gw: Any, agent: str, **kw: Any) -> int:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "What changed this quarter?"}]
    u = gw.openai(agent).chat.completions.create(model="gpt-4.1-mini", messages=messages, **kw).usage
    return u.prompt_tokens_details.cached_tokens


def test_another_agents_exact_prompt_shows_no_cache_read(gateway):
    gw = gateway(agents=AGENTS)
    first = claude(gw, "alice", system=LONG)
    assert first.cache_creation_input_tokens > 4096
    assert claude(gw, "alice", system=LONG).cache_read_input_tokens == first.cache_creation_input_tokens
    probe = claude(gw, "bob", system=LONG)
    assert probe.cache_read_input_tokens == 0, "bob learned alice's prompt is cached"
    assert probe.cache_creation_input_tokens > 0  # bob caches for himself
    assert claude(gw, "bob", system=LONG).cache_read_input_tokens > 0


def test_a_tools_only_prefix_is_not_shared(gateway):
    gw = gateway(agents=AGENTS)
    assert claude(gw, "alice", tools=TOOLS).cache_creation_input_tokens > 4096
    assert claude(gw, "alice", tools=TOOLS, system="Another task.").cache_read_input_tokens > 4096
    assert claude(gw, "bob", tools=TOOLS, system="Another task.").cache_read_input_tokens == 0


def test_the_agents_own_breakpoints_are_isolated_too(gateway):
    off = {name: {**a, "caching": {"enabled": False}} for name, a in AGENTS.items()}
    gw = gateway(agents=off)
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert claude(gw, "alice", system=system).cache_creation_input_tokens > 4096
    assert claude(gw, "alice", system=system).cache_read_input_tokens > 4096
    assert claude(gw, "bob", system=system).cache_read_input_tokens == 0


def test_openai_prompts_are_isolated_even_under_the_same_prompt_cache_key(gateway, sim):
    gw = gateway(agents=AGENTS)
    gpt(gw, "olivia")
    assert gpt(gw, "olivia") > 1024, "olivia reads her own cache"
    key = sim.requests[-1]["body"]["prompt_cache_key"]  # guessable: the agent name and a hash of the prompt
    assert gpt(gw, "oscar", extra_body={"prompt_cache_key": key}) == 0
    assert gpt(gw, "oscar", extra_body={"prompt_cache_key": key}) > 1024


def test_openai_isolation_does_not_rest_on_the_caching_lever(gateway):
    off = {name: {**a, "caching": {"enabled": False}} for name, a in AGENTS.items()}
    gw = gateway(agents=off)
    gpt(gw, "olivia")
    assert gpt(gw, "olivia") > 1024
    assert gpt(gw, "oscar") == 0


def test_a_fleet_can_opt_into_shared_caches(gateway):
    gw = gateway(agents=AGENTS, fleet={"caching": {"share_across_agents": True}})
    claude(gw, "alice", system=LONG)
    assert claude(gw, "bob", system=LONG).cache_read_input_tokens > 4096
    gpt(gw, "olivia")
    assert gpt(gw, "oscar") > 1024, "the caching lever's prompt_cache_key is the fleet's, not the agent's"


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_the_tag_leads_the_prompt_and_is_added_once(api):
    tag = scope_tag(cache_scope("alice"))
    if api == "anthropic":
        body: dict[str, Any] = {"system": "Be terse.", "messages": [{"role": "user", "content": "x"}]}
        isolate(body, cache_scope("alice"), api)
        isolate(body, cache_scope("alice"), api)
        assert body["system"] == f"{tag}\nBe terse."
        with_tools: dict[str, Any] = {
            "tools": [{"type": "web_search_20250305", "name": "web_search"}, *TOOLS[:1]],
            "messages": [{"role": "user", "content": "x"}],
        }
        isolate(with_tools, cache_scope("alice"), api)
        assert with_tools["tools"][1]["description"].endswith(tag) and "system" not in with_tools
        assert TOOLS[0]["description"].count(tag) == 0, "the caller's own dict is left as sent"
    else:
        body = {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
        isolate(body, cache_scope("alice"), api)
        isolate(body, cache_scope("alice"), api)
        assert body["messages"][0] == {"role": "system", "content": tag} and len(body["messages"]) == 2
        assert body["tools"][0]["function"]["description"] == tag
    assert cache_scope("alice") != cache_scope("bob") and len(cache_scope("alice")) == len(cache_scope("bob"))
