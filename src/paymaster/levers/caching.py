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
    if not agent.caching.enabled:
        return
    if (call.target_api or call.api) == "anthropic":
        if call.raw_len < 4 * min_cacheable_tokens(call.model):
            return  # the whole request is too short for any prefix of it to be cached
        n = place_breakpoints(call.body, call.model, agent.caching.ttl, call.system_tail)
        if n:
            call.notes["x-paymaster-cache-breakpoints"] = str(n)
    elif provider_kind == "openai" and "prompt_cache_key" not in call.body:
        call.body["prompt_cache_key"] = cache_key(agent.name, call.body)


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
