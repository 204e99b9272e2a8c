"""A request's stable-prefix identity, shared by the levers that group calls by it (prompt caching's
`prompt_cache_key`, routing's cache affinity)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def prefix_key(scope: str, body: dict[str, Any]) -> str:
    """Per scope (an agent, or the fleet) and per stable prefix (tools, system prompt and the opening
    message): requests that can share a cached prefix share a key."""
    msgs = body.get("messages")
    if msgs is None and "input" in body:  # the Responses API: instructions, then the input items
        inp = body["input"]
        msgs = inp if isinstance(inp, list) else [inp]
    msgs = msgs or []
    system = body.get("system", body.get("instructions"))
    head = orjson.dumps([body.get("model"), body.get("tools"), system, msgs[:1]], option=orjson.OPT_SORT_KEYS)
    return f"pm-{scope}-{hashlib.sha256(head).hexdigest()[:16]}"
