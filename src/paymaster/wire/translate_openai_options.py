"""OpenAI request fields agent frameworks send that have no Claude field of the same name, each given
its nearest faithful form (see `wire.translate` for the table): json_object through an answer tool,
reasoning_effort as a thinking budget, metadata.user_id, a closing assistant turn as a prefill, and
message names (dropped when there is one participant per role, refused when there are several).
"""

from __future__ import annotations

from typing import Any

from .translate_refuse import TO_ANTHROPIC, Drops, refuse

JSON_TOOL = "json_object_answer"
"""The tool a json_object answer is given through (Claude's structured output needs a schema; a tool's
input is always a JSON object): its input comes back to the caller as the answer's text."""
_JSON_TOOL_DEF = {
    "name": JSON_TOOL,
    "description": "Give your whole answer as a JSON object: the object is this tool's input.",
    "input_schema": {"type": "object", "additionalProperties": True},
}
# reasoning_effort → extended thinking's budget, as a share of the output limit (the budget is at least
# 1,024 tokens and below max_tokens: platform.claude.com/docs/en/build-with-claude/extended-thinking)
THINKING_SHARE = {"low": 0.25, "medium": 0.5, "high": 0.75, "xhigh": 0.9}
MIN_THINKING = 1024


def metadata_user(metadata: Any, drops: Drops) -> list[tuple[str, Any]]:
    """OpenAI's metadata tags a stored completion; its `user_id`, if any, is Claude's `metadata.user_id`."""
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        refuse("metadata", "must be an object of string values", TO_ANTHROPIC)
    if set(metadata) - {"user_id"}:
        drops.drop("metadata", "tags for stored completions, which Anthropic does not keep", TO_ANTHROPIC)
    return [("metadata.user_id", metadata["user_id"])] if metadata.get("user_id") is not None else []


def json_object_tool(out: dict[str, Any]) -> None:
    """json_object: the answer is any JSON object. Claude gives one as a tool's input: the answer tool is
    forced when the caller's tools may not be called, else offered beside them with a call required (the
    model calls one of the caller's tools or answers through it, as an OpenAI model answers in JSON or
    calls a tool). A call the caller itself requires (required / a named function) needs no answer tool."""
    tools = out.get("tools") or []
    if any(t["name"] == JSON_TOOL for t in tools):
        refuse("tools", f"a tool may not be named {JSON_TOOL!r} with response_format json_object", TO_ANTHROPIC)
    choice = out.get("tool_choice") or {"type": "auto"}
    if choice["type"] in ("any", "tool"):
        return
    out["tools"] = [*tools, _JSON_TOOL_DEF]
    forced = choice["type"] == "none" or not tools
    out["tool_choice"] = {**choice, "type": "tool", "name": JSON_TOOL} if forced else {**choice, "type": "any"}


def thinking(effort: Any, out: dict[str, Any], drops: Drops) -> None:
    """reasoning_effort → extended thinking with a budget of the effort's share of max_tokens (thinking
    tokens are output tokens, inside max_tokens, so the call's worst case is unchanged). "none" and
    "minimal" ask for no thinking. Thinking cannot be added where Claude would refuse it: under a forced
    tool choice, with a temperature, on a turn continuing a tool call (Claude wants that call's thinking
    blocks back, which OpenAI messages cannot carry), or when max_tokens leaves no room for the minimum."""
    to = TO_ANTHROPIC
    if effort is None or effort in ("none", "minimal"):
        return
    if not isinstance(effort, str) or effort not in THINKING_SHARE:
        refuse("reasoning_effort", f"must be one of none, minimal, {', '.join(THINKING_SHARE)}", to)
    limit = out["max_tokens"]
    budget = max(MIN_THINKING, int(limit * THINKING_SHARE[effort]))
    last = out["messages"][-1]
    blocks = last["content"] if last["role"] == "user" and isinstance(last["content"], list) else []
    continuing = any(b.get("type") == "tool_result" for b in blocks)
    blocked = (
        "the output limit leaves no room for Claude's minimum thinking budget of 1024 tokens"
        if budget >= limit
        else "Claude thinks only when free to choose its tool"
        if (out.get("tool_choice") or {}).get("type") in ("any", "tool")
        else "Claude thinks only at the default temperature"
        if "temperature" in out
        else "Claude cannot think on a turn continuing a tool call whose thinking the caller cannot send back"
        if continuing
        else None
    )
    if blocked is not None:
        drops.drop("reasoning_effort", f"answered without thinking: {blocked}", to)
        return
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def prefill(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A closing assistant turn as Claude takes a prefill: without trailing whitespace (the API refuses it;
    the model writes its own next space), and without text blocks left empty by that."""
    if isinstance(content, str):
        return content.rstrip()
    blocks = list(content)
    while blocks and blocks[-1]["type"] == "text" and not blocks[-1]["text"].rstrip():
        blocks.pop()
    if blocks and blocks[-1]["type"] == "text":
        blocks[-1] = {**blocks[-1], "text": blocks[-1]["text"].rstrip()}
    return blocks


_NAMED_ROLES = ("system", "developer", "user", "assistant")


def names(msgs: list[Any], drops: Drops) -> None:
    """`name` tells participants of one role apart. Claude messages have no name: with one name per role
    there is nobody to tell apart and it is dropped; with several, the conversation would lose who said
    what, and it is refused."""
    seen: dict[Any, set[Any]] = {}
    for m in msgs:
        if isinstance(m, dict) and m.get("name") is not None and m.get("role") in _NAMED_ROLES:
            if not isinstance(m["name"], str):
                refuse("messages[].name", "must be a string", TO_ANTHROPIC)
            seen.setdefault(m.get("role"), set()).add(m["name"])
    for role, names in seen.items():
        if len(names) > 1:
            refuse(
                "messages[].name",
                f"{role} messages come from {len(names)} named participants, and Claude messages carry no name",
                TO_ANTHROPIC,
            )
        drops.drop("messages[].name", f"one {role} participant, nobody to tell apart", TO_ANTHROPIC)
