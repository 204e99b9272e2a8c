"""What the fake model says, in wire-neutral terms: a wire module turns a request into an `Ask`,
`answer()` turns that into an `Answer`, and the wire module renders it in its own shape.

Rules (see `text` for the directives):

- text of `[sim:tokens=N]` tokens, else the simulator's default length; clipped to `max_tokens`,
  which then is the stop reason;
- `[sim:stop]` with stop sequences given: stops on the first one (not part of the text);
- a tool call when tools are given and tool choice forces one (any / named) or the prompt's tool
  script has a step left (`[sim:tool]`, one step per tool-call turn since the prompt, so a loop
  ends in text); tool choice "none" forbids it. The input is built from the tool's schema;
- JSON output (OpenAI `response_format`, Anthropic `output_config.format`): the text is a JSON
  object, built from the schema when one is given, else `{"answer": <words>}`.

Tool calls and JSON answers are as long as the schema makes them (counted by `count_tokens`), but
like every answer never longer than `max_tokens` (both APIs stop generating there: stop reason
`max_tokens` / finish reason `length`): a JSON text is cut off, a tool call keeps an empty input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from .cache import UNCACHED, Automatic, Marked, Usage
from .schema import example
from .text import directives, words
from .tokens import count_tokens

Stop = Literal["end", "max_tokens", "stop_sequence", "tool"]
ToolMode = Literal["auto", "none", "any", "named"]


@dataclass(slots=True)
class Tool:
    name: str
    schema: dict[str, Any]


@dataclass(slots=True)
class Ask:
    """A validated request, as the model sees it."""

    model: str
    stream: bool
    input_tokens: int
    seed: int
    prompt: str = ""
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_mode: ToolMode = "auto"
    tool_name: str | None = None
    tool_turns: int = 0  # assistant tool-call turns since the last user message: the tool script's step
    json: bool = False
    json_schema: dict[str, Any] | None = None
    include_usage: bool = False  # OpenAI stream_options.include_usage
    cacheable: Marked | Automatic | None = None  # the prompt as the cache sees it, if it may be cached
    cache: Usage = UNCACHED  # what the cache gave and took, once the request is answered
    audio_tokens: int = 0  # OpenAI: the part of input_tokens that is audio (prompt_tokens_details)
    parallel: bool = True  # several tool calls in one turn allowed (OpenAI parallel_tool_calls, Anthropic
    # tool_choice.disable_parallel_tool_use)
    choices: int = 1  # OpenAI `n`: each further choice is answered with the next seed
    logprobs: int | None = None  # OpenAI: top_logprobs per token when `logprobs` is true, else None
    # how the call was served: Anthropic `speed` / `inference_geo` (when asked), OpenAI `service_tier`
    modifiers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Answer:
    text: str
    output_tokens: int
    stop: Stop
    stop_sequence: str | None = None
    tool: Tool | None = None
    arguments: str = ""  # the tool call's input, as JSON text
    also: list[tuple[Tool, str]] = field(default_factory=list)  # further tool calls of the same turn (parallel)
    others: list[Answer] = field(default_factory=list)  # choices 1… when n > 1

    @property
    def all(self) -> list[Answer]:
        return [self, *self.others]

    @property
    def calls(self) -> list[tuple[Tool, str]]:
        """Every tool call of the turn, as (tool, arguments as JSON text)."""
        return [(self.tool, self.arguments), *self.also] if self.tool is not None else []

    @property
    def total_tokens(self) -> int:
        return sum(a.output_tokens for a in self.all)


def answer(ask: Ask, default_tokens: int) -> Answer:
    """The answer; with n > 1 the further choices in `others`, each from its own seed."""
    first = _answer(ask, default_tokens)
    first.others = [_answer(replace(ask, seed=ask.seed + i), default_tokens) for i in range(1, ask.choices)]
    return first


def _answer(ask: Ask, default_tokens: int) -> Answer:
    if ask.max_tokens == 0:  # Anthropic's cache pre-warming: prefill only, nothing generated
        return Answer("", 0, "max_tokens")
    said = directives(ask.prompt)
    script = said.tools[ask.tool_turns :]
    names: list[str | None] = list((script[0] or "").split(",")) if script and script[0] else [None]
    tool = _tool(ask, bool(script), names[0])
    if tool is not None:
        more = [t for name in names[1:] if ask.parallel and (t := _tool(ask, True, name)) is not None]
        calls = [(t, orjson.dumps(example(t.schema)).decode()) for t in [tool, *more]]
        n = sum(count_tokens(t.name) + count_tokens(arguments) for t, arguments in calls)
        if ask.max_tokens is not None and n > ask.max_tokens:
            return Answer("", ask.max_tokens, "max_tokens", tool=tool, arguments="{}")
        return Answer("", n, "tool", tool=tool, arguments=calls[0][1], also=calls[1:])
    n = default_tokens if said.tokens is None else said.tokens
    if ask.json or ask.json_schema is not None:
        value = example(ask.json_schema, all_properties=True) if ask.json_schema else {"answer": words(ask.seed, n)}
        text = orjson.dumps(value).decode()
        if ask.max_tokens is not None and count_tokens(text) > ask.max_tokens:
            return Answer(_clip(text, ask.max_tokens), ask.max_tokens, "max_tokens")
        return Answer(text, count_tokens(text), "end")
    if ask.max_tokens is not None and n > ask.max_tokens:
        return Answer(words(ask.seed, ask.max_tokens), ask.max_tokens, "max_tokens")
    if said.stop and ask.stop:
        return Answer(words(ask.seed, n), n, "stop_sequence", stop_sequence=ask.stop[0])
    return Answer(words(ask.seed, n), n, "end")


def _clip(text: str, tokens: int) -> str:
    """The longest start of `text` (roughly) that counts at most `tokens`."""
    cut = text[: max(0, 4 * tokens - 3)]
    while cut and count_tokens(cut) > tokens:
        cut = cut[: len(cut) * 9 // 10]
    return cut


def _tool(ask: Ask, asked: bool, asked_name: str | None) -> Tool | None:
    if not ask.tools or ask.tool_mode == "none":
        return None
    if ask.tool_mode == "named":
        name = ask.tool_name
    elif ask.tool_mode == "any" or asked:
        name = asked_name
    else:
        return None
    return next((t for t in ask.tools if t.name == name), ask.tools[0])
