"""An independent check of the conversation-structure rules each provider documents, for tests of
anything that rewrites `messages` (compression). Written from the documents, not from the code under test.

Anthropic (platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use, "Handling
results from client tools"; Messages API reference, `messages`):
- roles are "user" and "assistant"; the conversation starts with a user turn (consecutive turns of
  one role are combined by the API, so strict alternation is checked here as the stricter reading);
- every tool_use in an assistant turn has its tool_result in the very next (user) turn, and every
  tool_result answers a tool_use of the turn just before it;
- in a user turn carrying tool results, the tool_result blocks come first (text after them).

OpenAI Chat Completions (API reference, `messages`; its 400s "messages with role 'tool' must be a
response to a preceding message with 'tool_calls'" and "An assistant message with 'tool_calls' must be
followed by tool messages responding to each 'tool_call_id'"):
- a `tool` message answers a tool call of the nearest assistant message before it, with only other
  `tool` messages between them; every tool call is answered before the next non-tool message.
"""

from __future__ import annotations

from typing import Any


def anthropic_problems(messages: list[Any]) -> list[str]:
    out: list[str] = []
    if not messages:
        return ["no messages"]
    if messages[0].get("role") != "user":
        out.append("the first message is not a user turn")
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            out.append(f"messages[{i}]: role {role!r}")
        if i and messages[i - 1].get("role") == role:
            out.append(f"messages[{i}]: two {role} turns in a row")
        blocks = m.get("content") if isinstance(m.get("content"), list) else []
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if results:
            kinds = [b.get("type") for b in blocks]
            if kinds[: len(results)] != ["tool_result"] * len(results):
                out.append(f"messages[{i}]: a tool_result after other content")
            prev = messages[i - 1] if i else {}
            asked = _tool_uses(prev)
            for r in results:
                if r not in asked:
                    out.append(f"messages[{i}]: tool_result {r} answers no tool_use of the turn before")
        uses = _tool_uses(m)
        if uses:
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            if nxt is None:
                continue  # the last turn may be the model's (a prefill) — nothing to answer yet
            nb = nxt.get("content") if isinstance(nxt.get("content"), list) else []
            answered = {b.get("tool_use_id") for b in nb if b.get("type") == "tool_result"}
            for u in uses:
                if u not in answered:
                    out.append(f"messages[{i}]: tool_use {u} has no tool_result in the next turn")
    return out


def _tool_uses(m: Any) -> list[Any]:
    if not isinstance(m, dict) or m.get("role") != "assistant" or not isinstance(m.get("content"), list):
        return []
    return [b.get("id") for b in m["content"] if b.get("type") == "tool_use"]


def openai_problems(messages: list[Any]) -> list[str]:
    out: list[str] = []
    pending: set[Any] = set()
    open_calls: set[Any] = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                out.append(f"messages[{i}]: tool message answers no preceding tool call")
            pending.discard(m.get("tool_call_id"))
            continue
        if pending:
            out.append(f"messages[{i}]: tool calls {sorted(pending)} unanswered before a {role} message")
        pending, open_calls = set(), set()
        if role == "assistant":
            ids = {tc.get("id") for tc in m.get("tool_calls") or ()}
            pending, open_calls = set(ids), set(ids)
    return out
