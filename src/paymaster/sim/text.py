"""Deterministic answer text, and the `[sim:…]` directives a prompt can carry.

Answers are made of short words (at most three letters) separated by single spaces, so each word
is exactly one token for `count_tokens`: an answer of N words is N tokens, and any run of whole
words (with or without its leading space) is a streaming delta whose token count is its word count.

Directives, read from the last user message:

    [sim:tokens=N]   answer with exactly N tokens (clipped by max_tokens, and at MAX_TOKENS)
    [sim:stop]       stop on the request's first stop sequence
    [sim:tool]       call a tool (the first one given)
    [sim:tool=NAME]  call the tool named NAME
    [sim:tool=A,B]   call A and B in one turn (parallel tool calls, unless the request disables them)

Tool directives are a script, one step per model turn: with `[sim:tool=a] [sim:tool=b]` the first
answer calls `a`, the answer after its result calls `b`, the next one is text. The step is the number
of assistant tool-call turns since the last user message (see `Ask.tool_turns`), so a loop ends.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

_VOCABULARY = (
    "the of and to in is it was for on are as his at be or by one had not but all we can an if "
    "do how up out she so has her two him see way day go did my no who now any new get our sit "
    "say low boy set air end put add big act why ask men off far run few sum ago age aim art bag "
    "bar bed bit box bus car cat cup cut dog dry due ear eat egg eye fan fit fix fly fun gap gas "
    "hat hit hot ice job joy key kid lab law lay leg let lie lip log lot map mix net nor oil old "
    "own pay pen per pet pie pin pop pot raw red rid row sea sky sun tax tea ten tip top toy try "
    "use van war wet win yes yet zip"
).split()

_POOL_SIZE = 4096
_rng = random.Random(20240601)
_POOL: tuple[str, ...] = tuple(_rng.choice(_VOCABULARY) for _ in range(_POOL_SIZE))
_POOL_TWICE = _POOL + _POOL

MAX_TOKENS = 1_000_000
"""Longest answer a directive can ask for (a bound on memory, above any real model's output)."""

_DIRECTIVE = re.compile(r"\[sim:(tokens|stop|tool)(?:=([^\]\s]+))?\]")


@dataclass(slots=True, frozen=True)
class Directives:
    tokens: int | None = None
    stop: bool = False
    tools: tuple[str | None, ...] = ()  # the tool-call script: a name, or None for the first tool given


NO_DIRECTIVES = Directives()


def directives(prompt: str) -> Directives:
    """The `[sim:…]` directives in `prompt` (the last user message's text)."""
    if "[sim:" not in prompt:
        return NO_DIRECTIVES
    tokens: int | None = None
    stop = False
    tools: list[str | None] = []
    for name, value in _DIRECTIVE.findall(prompt):
        if name == "tokens" and value.isascii() and value.isdigit():
            tokens = min(int(value), MAX_TOKENS) if len(value) <= 7 else MAX_TOKENS
        elif name == "stop":
            stop = True
        elif name == "tool":
            tools.append(value or None)
    return Directives(tokens, stop, tuple(tools))


def seed(*parts: Any) -> int:
    """A stable 32-bit seed from request content (same content, same answer, in any process)."""
    return zlib.crc32(orjson.dumps(parts))


def words(seed: int, n: int) -> str:
    """N one-token words chosen by `seed`, first one capitalised."""
    if n <= 0:
        return ""
    start = seed % _POOL_SIZE
    if n <= _POOL_SIZE:
        chosen: list[str] = list(_POOL_TWICE[start : start + n])
    else:
        chosen = [_POOL[(start + i) % _POOL_SIZE] for i in range(n)]
    chosen[0] = chosen[0].capitalize()
    return " ".join(chosen)


def word_deltas(text: str, per_delta: int) -> list[tuple[str, int]]:
    """Split an answer into streaming deltas of `per_delta` words: (text, tokens) pairs.

    Concatenating the texts gives back `text`; each delta after the first starts with its space.
    """
    if not text:
        return []
    ws = text.split(" ")
    out = [(" ".join(ws[:per_delta]), min(per_delta, len(ws)))]
    for i in range(per_delta, len(ws), per_delta):
        group = ws[i : i + per_delta]
        out.append((" " + " ".join(group), len(group)))
    return out


def char_deltas(text: str, size: int) -> list[str]:
    """Split any text (a tool call's JSON) into pieces of `size` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]
