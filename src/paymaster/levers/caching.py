"""Prompt caching: pay ~10 % for context the provider has seen before.

Anthropic caches only where the request says so. The gateway places `cache_control` breakpoints on
the stable prefix — the end of the tools, the end of the system prompt, and a rolling breakpoint at
the end of the conversation so the next turn reads it — keeping every breakpoint the agent placed,
at most four in all. A breakpoint goes only where the prefix reaches the model's minimum cacheable
length (`data/prompt_cache.yaml`); the prefix is measured from below (a quarter of its text bytes,
which no tokenizer undercuts by much), so a breakpoint is never placed on a prefix too short to
cache. One-hour entries must precede five-minute ones, so a breakpoint after an agent's 5-minute
one is 5-minute too, and one before an agent's 1-hour one is 1-hour.

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
  (tool definitions ahead of it are server tools, far below any cacheable length), or, without
  custom tools, leads the system prompt.
- OpenAI does not document where tools go in the rendered prompt, so the tag leads the messages (a
  first system message) and, when there are tools, also ends the first tool's description.

A fleet opts into shared caches with `fleet.caching.share_across_agents: true`: no tag, and the
`prompt_cache_key` the lever sets is the fleet's rather than the agent's (agents then read each other's
entries, and can tell each other's prompts are cached).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..call import Call
from ..config import Agent
from ..prompt_cache import MAX_BREAKPOINTS, min_cacheable_tokens

CACHEABLE_BLOCKS = ("text", "image", "document", "tool_use", "tool_result", "search_result")


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
    tools = body.get("tools")
    tagged_tool = False
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        holder = _describable(tool, api)
        if holder is not None:
            described = holder.get("description")
            if not (isinstance(described, str) and described.endswith(tag)):
                text = f"{described}\n{tag}" if isinstance(described, str) and described else tag
                tools[i] = _with_description(tool, api, text)
            tagged_tool = True
            break
    if api == "anthropic":
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
    """Whether an Anthropic body asks for caching anywhere: top-level `cache_control`, or on a tool, a
    system block, a message block or a block inside a tool result."""
    if "cache_control" in body:
        return True
    blocks: list[Any] = []
    for key in ("tools", "system"):
        if isinstance(body.get(key), list):
            blocks += body[key]
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            blocks += content
            blocks += [
                inner
                for b in content
                if isinstance(b, dict) and isinstance(b.get("content"), list)
                for inner in b["content"]
            ]
    return any(isinstance(b, dict) and "cache_control" in b for b in blocks)


def _describable(tool: Any, api: str) -> dict[str, Any] | None:
    """The object holding a tool's description, for a tool the caller defines (not a server tool)."""
    if not isinstance(tool, dict):
        return None
    if api == "anthropic":
        return tool if tool.get("type") in (None, "custom") and isinstance(tool.get("input_schema"), dict) else None
    inner = tool.get(tool.get("type", "function"))
    return inner if isinstance(inner, dict) and isinstance(inner.get("name"), str) else None


def _with_description(tool: dict[str, Any], api: str, text: str) -> dict[str, Any]:
    """A copy of `tool` with a new description (the caller's own dict is left as it was sent)."""
    if api == "anthropic":
        return {**tool, "description": text}
    kind = tool.get("type", "function")
    return {**tool, kind: {**tool[kind], "description": text}}


def cache_key(agent: str, body: dict[str, Any]) -> str:
    """Per agent and per stable prefix (tools, system prompt and the opening message):
    requests that can share a cached prefix share a key, and go to the same cache."""
    msgs = body.get("messages") or []
    head = orjson.dumps(
        [body.get("model"), body.get("tools"), body.get("system"), msgs[:1]], option=orjson.OPT_SORT_KEYS
    )
    return f"pm-{agent}-{hashlib.sha256(head).hexdigest()[:16]}"


def _text_bytes(node: Any) -> int:
    """Characters of every string in a JSON node, media data left out: no more than its UTF-8 bytes, so a
    quarter of it undercounts tokens the way the minimum-length rule needs."""
    if isinstance(node, str):
        return len(node)
    if isinstance(node, list):
        return sum(_text_bytes(n) for n in node)
    if isinstance(node, dict):
        if node.get("type") in ("base64",) and "data" in node:
            return 0
        return sum(_text_bytes(v) for k, v in node.items() if k != "cache_control")
    return 0


def _ttl(block: dict[str, Any]) -> str | None:
    cc = block.get("cache_control")
    if not isinstance(cc, dict):
        return None
    return "1h" if cc.get("ttl") == "1h" else "5m"


def place_breakpoints(body: dict[str, Any], model: str, ttl: str, system_tail: int = 0) -> int:
    """Add breakpoints to an Anthropic Messages body in place; returns how many were added.

    `system_tail`: trailing system blocks the gateway appended (brevity framing) — they stay after
    the system breakpoint so a change in them never breaks the cached prefix.
    """
    minimum = min_cacheable_tokens(model)
    # candidate breakpoints: (block, prefix tokens through it, its position in prefix order)
    slots: list[tuple[dict[str, Any] | _Lazy | None, int, int]] = []
    prefix = _Prefix()
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        prefix.add(tools)
        slots.append((tools[-1] if isinstance(tools[-1], dict) else None, prefix.tokens, prefix.pos - 1))
    system = body.get("system")
    if isinstance(system, str) and system:
        prefix.add([system])
        slots.append((_Lazy(body, "system"), prefix.tokens, prefix.pos - 1))
    elif isinstance(system, list) and system:
        own = system[: len(system) - system_tail] if system_tail else system
        prefix.add(own)
        if own and isinstance(own[-1], dict):
            slots.append((own[-1], prefix.tokens, prefix.pos - 1))
        prefix.add(system[len(own) :])
    msgs = body.get("messages") or []
    for m in msgs:
        content = m.get("content")
        prefix.add([content] if isinstance(content, str) else content if isinstance(content, list) else [])
    existing = prefix.existing
    if msgs:
        last_msg = msgs[-1]
        content = last_msg.get("content")
        last_block: dict[str, Any] | _Lazy | None = None
        if isinstance(content, str) and content:
            last_block = _Lazy(last_msg, "content")
        elif isinstance(content, list) and content and isinstance(content[-1], dict):
            if content[-1].get("type") in CACHEABLE_BLOCKS:
                last_block = content[-1]
        slots.append((last_block, prefix.tokens, prefix.pos - 1))

    room = MAX_BREAKPOINTS - len(existing) - (1 if isinstance(body.get("cache_control"), dict) else 0)
    added = 0
    for block, tokens, p in slots:
        if room <= 0 or block is None or tokens < minimum:
            continue
        if isinstance(block, _Lazy):
            block = block.materialize()
        if "cache_control" in block:
            continue
        mine = ttl
        if any(q < p and t == "5m" for q, t in existing):
            mine = "5m"
        if any(q > p and t == "1h" for q, t in existing):
            mine = "1h"
        block["cache_control"] = {"type": "ephemeral", "ttl": "1h"} if mine == "1h" else {"type": "ephemeral"}
        existing.append((p, mine))
        room -= 1
        added += 1
    return added


class _Prefix:
    """Walks a prompt in prefix order: a lower bound of its tokens so far, and the breakpoints it meets."""

    def __init__(self) -> None:
        self.chars = 0
        self.pos = 0
        self.existing: list[tuple[int, str]] = []  # (position in prefix order, ttl) of the agent's breakpoints

    def add(self, blocks: list[Any]) -> None:
        for b in blocks:
            if isinstance(b, str):
                self.chars += len(b)
            elif isinstance(b, dict):
                self.chars += _text_bytes(b)
                ttl = _ttl(b)
                if ttl:
                    self.existing.append((self.pos, ttl))
            self.pos += 1

    @property
    def tokens(self) -> int:
        return self.chars // 4


class _Lazy:
    """A string `system` or message `content`, turned into a one-block list only if a breakpoint goes on it."""

    def __init__(self, owner: dict[str, Any], key: str) -> None:
        self.owner, self.key = owner, key

    def materialize(self) -> dict[str, Any]:
        block = {"type": "text", "text": self.owner[self.key]}
        self.owner[self.key] = [block]
        return block
