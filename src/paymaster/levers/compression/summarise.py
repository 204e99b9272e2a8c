"""Conversation summarisation: where to cut, what to ask the summariser, how to splice the answer in.

The request that goes out is: the system prompt (untouched) → one user message carrying the summary
of messages [0, cut) → the pinned messages of that range, verbatim → messages [cut, n) verbatim.

- A cut never falls between a tool call and its result: the first verbatim message is an assistant
  turn or a user turn that carries no tool result (OpenAI: not a `tool` message).
- Anthropic: the first message is a user turn and roles alternate (neighbours of one role are
  merged, tool results first in a user turn as the API requires).
- The cut only moves when the verbatim part has grown past the threshold again, so the prompt's
  cached prefix (system + summary) changes once per summary, not on every call.
"""

from __future__ import annotations

from typing import Any

import orjson

from .results import approx_tokens

# a message carrying `"paymaster_pin": true` is never summarised (the key never reaches the provider)
PIN = "paymaster_pin"

SYSTEM = (
    "You compress the earlier part of a conversation between a user and an AI agent that uses tools, so the "
    "agent can continue with your summary in place of those messages. Write a structured summary with these "
    "sections: Goal; Facts (every name, number, price, date, identifier, URL, file path and quoted value the "
    "conversation established, verbatim); Tool results (what each tool call returned that matters, with its "
    "exact values); Decisions and progress; Open questions and next steps. Be complete about facts and terse "
    "about everything else. Do not invent anything. Output only the summary."
)
HEADER = "[Summary of the conversation's first {n} messages, written by the gateway to save context. Later messages follow verbatim.]\n"  # noqa: E501


def take_pins(messages: list[Any]) -> tuple[list[Any], set[int]]:
    """The messages without the pin key (new dicts only where one was removed) and the pinned indices."""
    pinned: set[int] = set()
    out = messages
    for i, m in enumerate(messages):
        if isinstance(m, dict) and PIN in m:
            if out is messages:
                out = list(messages)
            if m[PIN] is True:
                pinned.add(i)
            out[i] = {k: v for k, v in m.items() if k != PIN}
    return out, pinned


def sizes(messages: list[Any]) -> list[int]:
    return [approx_tokens(len(orjson.dumps(m))) for m in messages]


def _tool_result_turn(m: Any, api: str) -> bool:
    if not isinstance(m, dict):
        return False
    if api == "openai":
        return m.get("role") in ("tool", "function")
    c = m.get("content")
    return (
        m.get("role") == "user"
        and isinstance(c, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in c)
    )


def _calls_tools(m: Any, api: str) -> bool:
    if not isinstance(m, dict) or m.get("role") != "assistant":
        return False
    if api == "openai":
        return bool(m.get("tool_calls") or m.get("function_call"))
    c = m.get("content")
    return isinstance(c, list) and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in c)


def can_cut(messages: list[Any], k: int, api: str) -> bool:
    """Whether messages [k, n) can follow a summary of [0, k): no tool result separated from its call."""
    m = messages[k]
    if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
        return False
    return not _tool_result_turn(m, api)


def choose_cut(
    messages: list[Any], size: list[int], api: str, keep_turns: int, keep_tokens: int, start: int
) -> int | None:
    """The cut for a new summary: past `start` (the current summary's end), at least `keep_turns`
    messages kept, and the verbatim tail as long as fits in `keep_tokens`. None: no valid cut."""
    n = len(messages)
    hi = n - keep_turns
    cuts = [k for k in range(start + 1, hi + 1) if can_cut(messages, k, api)]
    if not cuts:
        return None
    tail = sum(size[cuts[-1] :])
    best = cuts[-1]
    for k in reversed(cuts[:-1]):  # walk the cut back while the tail still fits
        tail += sum(size[k:best])
        if tail > keep_tokens:
            break
        best = k
    return best


def pins_closed(messages: list[Any], pinned: set[int], cut: int, api: str) -> list[int]:
    """The pinned messages before `cut`, with their tool partners (a pinned call brings its results,
    a pinned result its call), in order."""
    keep = {i for i in pinned if i < cut}
    changed = True
    while changed:
        changed = False
        for i in sorted(keep):
            if _calls_tools(messages[i], api):
                j = i + 1
                while j < cut and _tool_result_turn(messages[j], api):
                    if j not in keep:
                        keep.add(j)
                        changed = True
                    j += 1
            if _tool_result_turn(messages[i], api):
                j = i - 1
                while j >= 0 and _tool_result_turn(messages[j], api):
                    if j not in keep:
                        keep.add(j)
                        changed = True
                    j -= 1
                if j >= 0 and j not in keep:
                    keep.add(j)
                    changed = True
    return sorted(keep)


def splice(messages: list[Any], cut: int, summary: str, pinned: list[int], api: str) -> list[Any]:
    """The messages as sent: [leading system messages (OpenAI)] + summary + pinned + messages[cut:]."""
    head: list[Any] = []
    if api == "openai":
        for m in messages[:cut]:
            if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                head.append(m)
            else:
                break
    text = HEADER.format(n=cut) + summary
    if api == "openai":  # system messages are never summarised: they stay, in order, after the summary
        system = {
            i
            for i in range(len(head), cut)
            if isinstance(messages[i], dict) and messages[i].get("role") in ("system", "developer")
        }
        kept = [messages[i] for i in sorted(system | {i for i in pinned if i >= len(head)})]
        return [*head, {"role": "user", "content": text}, *kept, *messages[cut:]]
    kept = [messages[i] for i in pinned]
    return _alternate([{"role": "user", "content": [{"type": "text", "text": text}]}, *kept, *messages[cut:]])


def _alternate(messages: list[Any]) -> list[Any]:
    """Anthropic: neighbours of one role merged into one turn (tool results ahead of other blocks)."""
    out: list[Any] = []
    for m in messages:
        if out and isinstance(m, dict) and out[-1].get("role") == m.get("role"):
            prev = out[-1]
            blocks = _blocks(prev.get("content")) + _blocks(m.get("content"))
            if m.get("role") == "user":
                blocks = [b for b in blocks if b.get("type") == "tool_result"] + [
                    b for b in blocks if b.get("type") != "tool_result"
                ]
            out[-1] = {**prev, "content": blocks}
        else:
            out.append(m)
    return out


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


# -- the summariser's request -------------------------------------------------------------------------


def transcript(messages: list[Any], api: str) -> str:
    """The messages as plain text for the summariser."""
    lines: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = m.get("role", "?")
        for kind, text in _parts(m, api):
            lines.append(f"[{role}{kind}] {text}")
    return "\n".join(lines)


def _parts(m: dict[str, Any], api: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    c = m.get("content")
    if isinstance(c, str):
        out.append(("", c))
    elif isinstance(c, list):
        for b in c:
            if not isinstance(b, dict):
                continue
            t = b.get("type")
            if t == "text" and isinstance(b.get("text"), str):
                out.append(("", b["text"]))
            elif t == "tool_use":
                out.append((f" → tool {b.get('name')}", orjson.dumps(b.get("input")).decode()))
            elif t == "tool_result":
                inner = b.get("content")
                text = inner if isinstance(inner, str) else " ".join(x for _, x in _parts({"content": inner}, api))
                out.append((" tool result", text))
            elif t in ("image", "image_url", "document", "file", "input_audio"):
                out.append(("", f"[{t}]"))
            elif t == "thinking":
                continue
    if api == "openai":
        for tc in m.get("tool_calls") or ():
            if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                f = tc["function"]
                out.append((f" → tool {f.get('name')}", str(f.get("arguments", ""))))
    return out


def request(
    api: str,
    model: str,
    previous: str | None,
    messages: list[Any],
    max_tokens: int,
    source: str | None = None,
    provider_kind: str = "openai",
) -> dict[str, Any]:
    """The summariser's request, in `api`'s shape (the summary model's provider's), of `messages` in the
    `source` API's shape (the caller's; default: the same). No sampling parameters: OpenAI's reasoning
    models refuse `temperature`, and a summary is written once and then reused as it is."""
    ask = ""
    if previous:
        ask += f"The summary so far:\n<summary>\n{previous}\n</summary>\n\nThe conversation continued:\n"
    else:
        ask += "The conversation:\n"
    ask += f"<conversation>\n{transcript(messages, source or api)}\n</conversation>\n\nWrite the "
    ask += "updated summary, covering everything above." if previous else "summary."
    if api == "anthropic":
        return {
            "model": model,
            "max_tokens": max_tokens,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": ask}],
        }
    # OpenAI's own API takes max_completion_tokens (reasoning models refuse max_tokens); compatible servers max_tokens
    limit = "max_completion_tokens" if provider_kind == "openai" else "max_tokens"
    return {
        "model": model,
        limit: max_tokens,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
    }


def answer_text(api: str, answer: Any) -> str:
    """The summary out of the summariser's answer; ValueError when there is none."""
    text = ""
    if api == "anthropic" and isinstance(answer, dict):
        text = "".join(b.get("text", "") for b in answer.get("content") or () if isinstance(b, dict))
    elif isinstance(answer, dict):
        choices = answer.get("choices") or [{}]
        msg = choices[0].get("message") if isinstance(choices[0], dict) else None
        text = msg.get("content") or "" if isinstance(msg, dict) else ""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the summariser answered with no text")
    return text.strip()
