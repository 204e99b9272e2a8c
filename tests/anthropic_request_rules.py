"""What the Anthropic Messages API accepts, written from its documentation as an independent check of a
request body the gateway builds by translation (platform.claude.com/docs: Messages API reference,
Tool use — handling tool results, Extended thinking — thinking with tool use, Prefill).

`problems(body)` lists every rule the body breaks; an empty list means the API would take it.
"""

from __future__ import annotations

import re
from typing import Any

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # Tool use: custom tool names
BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}


def problems(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if not isinstance(body.get("model"), str):
        out.append("model: a string")
    limit = body.get("max_tokens")
    if type(limit) is not int or limit < 1:
        out.append("max_tokens: an integer ≥ 1")
        limit = 0
    out += _system(body.get("system"))
    out += _messages(body.get("messages"))
    tools = body.get("tools", [])
    names: list[Any] = []
    if not isinstance(tools, list):
        out.append("tools: a list")
        tools = []
    else:
        names = [t.get("name") for t in tools]
        for t in tools:
            if not isinstance(t.get("name"), str) or not TOOL_NAME.match(t["name"]):
                out.append(f"tools: bad name {t.get('name')!r}")
            if not isinstance(t.get("input_schema"), dict) or t["input_schema"].get("type") != "object":
                out.append("tools: input_schema must be an object schema")
        if len(set(names)) != len(names):
            out.append("tools: names must be unique")
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type")
        if kind not in ("auto", "any", "tool", "none"):
            out.append(f"tool_choice: unknown type {kind!r}")
        if kind in ("any", "tool") and not tools:
            out.append("tool_choice: any/tool needs tools")
        if kind == "tool" and choice.get("name") not in names:
            out.append("tool_choice: names no given tool")
    for key in ("temperature", "top_p"):
        v = body.get(key)
        if v is not None and not (isinstance(v, int | float) and 0 <= v <= 1):
            out.append(f"{key}: from 0 to 1")
    meta = body.get("metadata")
    if meta is not None and (set(meta) - {"user_id"} or not isinstance(meta.get("user_id"), str)):
        out.append("metadata: user_id (a string) only")
    out += _thinking(body, limit)
    return out


def _system(system: Any) -> list[str]:
    if system is None or isinstance(system, str):
        return []
    if not isinstance(system, list) or any(b.get("type") != "text" or not b.get("text") for b in system):
        return ["system: a string or non-empty text blocks"]
    return []


def _messages(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: a non-empty list"]
    out = []
    for i, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            out.append(f"messages.{i}.role: user or assistant only")
        content = m.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            if not content and not (last and m.get("role") == "assistant"):
                out.append(f"messages.{i}: empty content")
            continue
        if not isinstance(content, list) or (not content and not last):
            out.append(f"messages.{i}.content: a string or a list of blocks")
            continue
        for j, b in enumerate(content):
            if b.get("type") not in BLOCKS:
                out.append(f"messages.{i}.content.{j}: unknown block")
            if b.get("type") == "text" and not b.get("text"):
                out.append(f"messages.{i}.content.{j}: text blocks must be non-empty")
            if b.get("type") == "tool_use" and not isinstance(b.get("input"), dict):
                out.append(f"messages.{i}.content.{j}: tool_use input must be an object")
        kinds = [b.get("type") for b in content]
        if "tool_result" in kinds[next((k for k, kind in enumerate(kinds) if kind != "tool_result"), len(kinds)) :]:
            out.append(f"messages.{i}: tool_result blocks come first, before any other block")
        if m.get("role") == "assistant" and "tool_result" in kinds:
            out.append(f"messages.{i}: tool results belong to user turns")
    out += _tool_pairs(messages)
    end = messages[-1]
    if end.get("role") == "assistant":  # Prefill: "cannot end with trailing whitespace"
        text = end["content"] if isinstance(end["content"], str) else (end["content"] or [{}])[-1].get("text")
        if isinstance(text, str) and text != text.rstrip():
            out.append("a final assistant message cannot end with trailing whitespace")
    return out


def _tool_pairs(messages: list[dict[str, Any]]) -> list[str]:
    """Each tool_use is answered by a tool_result in the next (user) message, and each tool_result answers
    a tool_use of the message just before."""
    out = []
    for i, m in enumerate(messages):
        blocks = m["content"] if isinstance(m.get("content"), list) else []
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        before = messages[i - 1]["content"] if i and isinstance(messages[i - 1].get("content"), list) else []
        uses = {b.get("id") for b in before if b.get("type") == "tool_use"}
        if results - uses:
            out.append(f"messages.{i}: a tool_result names no tool_use of the message before")
        if m.get("role") == "assistant":
            mine = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            after = messages[i + 1]["content"] if i + 1 < len(messages) else None
            answered = (
                {b.get("tool_use_id") for b in after if b.get("type") == "tool_result"}
                if isinstance(after, list)
                else set()
            )
            if mine and i + 1 < len(messages) and mine - answered:
                out.append(f"messages.{i}: a tool_use without its tool_result in the next message")
    return out


def _thinking(body: dict[str, Any], limit: int) -> list[str]:
    thinking = body.get("thinking")
    if thinking is None or thinking.get("type") == "disabled":
        return []
    out = []
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or type(budget) is not int or not 1024 <= budget < max(limit, 1025):
        out.append("thinking: enabled with 1024 ≤ budget_tokens < max_tokens")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        out.append("thinking: tool_choice must be auto or none")
    if body.get("temperature") not in (None, 1):
        out.append("thinking: temperature cannot be changed")
    if "top_k" in body or (body.get("top_p") is not None and body["top_p"] < 0.95):
        out.append("thinking: top_k not allowed, top_p at least 0.95")
    messages = body["messages"]
    last = messages[-1]
    continuing = isinstance(last["content"], list) and any(b.get("type") == "tool_result" for b in last["content"])
    if continuing and len(messages) > 1:
        before = messages[-2]["content"]
        first = before[0].get("type") if isinstance(before, list) and before else None
        if first not in ("thinking", "redacted_thinking"):
            out.append("thinking: the assistant turn a tool result continues must start with its thinking block")
    return out
