"""Prompt caching: pay ~10 % for context the provider has seen before.

Anthropic caches only where the request says so. The gateway adds `cache_control` breakpoints
(`cache_breakpoints.py`, which lists the documented rules it keeps): at the previous turn's end, so
a turn of many tool calls still reads the last one; at the end of the conversation, so the next turn
reads this one; at the ends of the system prompt and of the tools — keeping every breakpoint the
agent set, its top-level (automatic) one and its TTLs, within four in all, and only where the prefix
reaches the model's minimum cacheable length (`data/prompt_cache.yaml`).

OpenAI caches automatically (prompts of 1,024+ tokens, in 128-token steps); the gateway raises the
hit rate by routing an agent's requests that share a prefix together with `prompt_cache_key`. It
never reorders content.

Isolation. Both providers cache per organization, by exact prefix, and the gateway sends every agent's
calls with one provider key: agent B sending agent A's exact prompt would read A's entry and see it in
`cache_read_input_tokens` / `cached_tokens`. So each agent's prompts start with its own scope tag
(`config.cache_scope`, a fixed-length hash of its name), placed at the very start of what the provider
caches — then no prefix of any length, tools-only prefixes included, is shared by two agents, while an
agent's own prefixes (its breakpoints and the gateway's) stay byte-identical from call to call:

- Anthropic renders tools → system → messages: the tag ends the description of the first custom tool
  that is not deferred (tool definitions ahead of it are server tools, far below any cacheable
  length, or deferred ones, not in the prefix at all), or, without such a tool, leads the system prompt.
- OpenAI does not document where tools go in the rendered prompt, so the tag leads the messages (a
  first system message) and, when there are tools, also ends the first tool's description.

A fleet opts into shared caches with `fleet.caching.share_across_agents: true`: no tag, and the
`prompt_cache_key` the lever sets is the fleet's rather than the agent's (agents then read each other's
entries, and can tell each other's prompts are cached).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call
from ..config import Agent, Config
from ..prefix import prefix_key as cache_key
from ..prompt_cache import min_cacheable_tokens
from ..savings import uncached
from .base import Bill, LeverContext, Services
from .cache_breakpoints import place_breakpoints

__all__ = ["Caching", "apply", "cache_key", "has_breakpoint", "isolate", "make", "place_breakpoints", "scope_tag"]


class Caching:
    """Works on the request as the provider gets it (`shape`, each attempt: a fallback re-shapes)."""

    name = "caching"

    def __init__(self, config: Config) -> None:
        self.models = config.models

    def shape(self, call: Call, ctx: LeverContext) -> None:
        apply(call, ctx.agent, self.models[call.model].provider.kind)

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        """Without prompt caching: cache reads and writes at the plain input rate."""
        u = bill.usage
        if not (u.cache_read_tokens or u.cache_write_tokens or u.cache_write_1h_tokens or u.cache_audio_read_tokens):
            return bill  # nothing read or written from the cache: no copy to make
        return Bill(bill.model, uncached(u))  # one of those counts was not 0: a different usage


def make(config: Config, gateway: Services) -> Caching:
    return Caching(config)


def apply(call: Call, agent: Agent, provider_kind: str) -> None:
    api = call.target_api or call.api
    placed = 0
    if agent.caching.enabled:
        if api == "anthropic":
            if call.raw_len >= 4 * min_cacheable_tokens(call.model):  # else no prefix of it can be cached
                placed = place_breakpoints(call.body, call.model, agent.caching.ttl, call.system_tail)
                if placed:
                    call.notes["x-paymaster-cache-breakpoints"] = str(placed)
        elif provider_kind == "openai" and "prompt_cache_key" not in call.body:  # a fleet that shares, shares keys
            call.body["prompt_cache_key"] = cache_key(agent.name if agent.caching.scope else "fleet", call.body)
    # isolation, whether or not the lever placed breakpoints: Anthropic caches only at a breakpoint
    # (the agent's own count too), OpenAI every long prompt
    if agent.caching.scope and (api != "anthropic" or placed or has_breakpoint(call.body)):
        isolate(call.body, agent.caching.scope, api)


def scope_tag(scope: str) -> str:
    return f"(cache scope {scope})"


def isolate(body: dict[str, Any], scope: str, api: str) -> None:
    """Put the agent's scope tag at the start of the prompt as the provider caches it (see the module
    docstring). Idempotent: a body prepared twice (a fallback to another model) is tagged once."""
    tag = scope_tag(scope)
    found = body.get("tools")
    tools: list[Any] = found if isinstance(found, list) else []
    tagged_tool = False
    for i, tool in enumerate(tools):
        holder = _describable(tool, api)
        if holder is not None:
            described = holder.get("description")
            if not (isinstance(described, str) and described.endswith(tag)):
                text = f"{described}\n{tag}" if isinstance(described, str) and described else tag
                tools[i] = _with_description(tool, api, text)
            tagged_tool = True
            break
    if api == "responses":  # instructions lead the prompt (a later request's own: stored ones are not carried)
        instructions = body.get("instructions")
        if not (isinstance(instructions, str) and instructions.startswith(tag)):
            body["instructions"] = f"{tag}\n{instructions}" if instructions else tag
    elif api == "anthropic":
        if not tagged_tool:
            system = body.get("system")
            if isinstance(system, list):
                first = system[0] if system else None
                if not (isinstance(first, dict) and first.get("text") == tag):
                    body["system"] = [{"type": "text", "text": tag}, *system]
            elif isinstance(system, str) and system:
                if not system.startswith(tag):
                    body["system"] = f"{tag}\n{system}"
            else:
                body["system"] = tag
    else:
        msgs = body.get("messages")
        if isinstance(msgs, list) and msgs != [] and msgs[0] != {"role": "system", "content": tag}:
            body["messages"] = [{"role": "system", "content": tag}, *msgs]


def has_breakpoint(body: dict[str, Any]) -> bool:
    """Whether an Anthropic body asks for caching anywhere: top-level `cache_control`, or on any block of
    its tools, system prompt or messages, however deeply nested (a tool result's, a document's content).

    Read from their JSON, ~4x faster than a walk in Python: in orjson's compact output `"cache_control":`
    can only be an object's key (a quote inside a string is escaped, and a string value is followed by
    `,` `}` or `]`, never `:`)."""
    return "cache_control" in body or any(
        _KEY in orjson.dumps(body[key]) for key in ("tools", "system", "messages") if key in body
    )


_KEY = b'"cache_control":'


def _describable(tool: Any, api: str) -> dict[str, Any] | None:
    """The object holding a tool's description, for a tool the caller defines (not a server tool)."""
    if not isinstance(tool, dict):
        return None
    if api == "anthropic":  # a deferred tool is not in the cached prefix: a tag there would isolate nothing
        custom = tool.get("type") in (None, "custom") and isinstance(tool.get("input_schema"), dict)
        return tool if custom and tool.get("defer_loading") is not True else None
    if api == "responses":  # function tools are flat: {"type": "function", "name", "description", …}
        return tool if tool.get("type") == "function" and isinstance(tool.get("name"), str) else None
    kind = tool.get("type", "function")
    inner = tool.get(kind) if isinstance(kind, str) else None  # a malformed type is the wire check's 400
    return inner if isinstance(inner, dict) and isinstance(inner.get("name"), str) else None


def _with_description(tool: dict[str, Any], api: str, text: str) -> dict[str, Any]:
    """A copy of `tool` with a new description (the caller's own dict is left as it was sent)."""
    if api in ("anthropic", "responses"):
        return {**tool, "description": text}
    kind = tool.get("type", "function")
    return {**tool, kind: {**tool[kind], "description": text}}
