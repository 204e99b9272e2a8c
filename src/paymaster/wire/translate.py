"""Cross-provider translation: an agent speaking one API, served by a model behind the other.

    from paymaster.wire import translate as tr
    body = tr.openai_request_to_anthropic(caller_body, "claude-sonnet-4-6")
    answer = tr.anthropic_response_to_openai(provider_json, requested_model="gpt-4.1-mini")
    s = tr.AnthropicToOpenAIStream("gpt-4.1-mini", include_usage=True)
    out = [g for f in frames for g in s.frame(f)] + s.close()

Pure functions and small classes, no I/O, in six modules: `translate_openai_request` and
`translate_anthropic_request` (one per caller API), `translate_response` (answers, usage, stop
reasons, error bodies), `translate_stream`, and `translate_refuse` (the field tables' checks); OpenAI
fields Claude has no same-named field for are given their nearest form in `translate_openai_options`.

The rule: what maps exactly is mapped; a field whose dropping cannot change the answer's meaning is
left out with a note in `x-paymaster-dropped` (the fleet's `translation.policy: lenient`, the default)
or refused (`strict`); anything else is refused with `BadRequest` naming the field and saying why.
An answer the caller's API cannot express (a pause_turn, a server
tool block, tool arguments that are not a JSON object) raises `UpstreamFailed` the same way; in a
stream it becomes the caller's error event. Both directions map system prompts
(system/developer messages → `system`, in order, wherever they stand: Claude takes system text up
front only), multi-turn text, images (base64 and URL), tools, tool calls (JSON-text arguments ↔ input
objects) and tool results, tool_choice (auto / required↔any / none / named, parallel_tool_calls=false
↔ disable_parallel_tool_use), stop sequences, temperature (0–1) and top_p, the end-user id
(user / safety_identifier ↔ metadata.user_id), service tier (auto, default ↔ standard_only),
structured output (json_schema ↔ `output_config.format`), streaming, usage, finish/stop reasons and
error bodies. Tool call ids pass through unchanged, so a tool result always names the provider's id.

Structured output uses Claude's own `output_config.format` rather than a forced tool: it constrains
decoding to the schema and returns the JSON as the text answer, as OpenAI's json_schema does, so
nothing has to be unwrapped (streams included) and the caller's own tools and tool_choice still work.

Limits a provider enforces per model are left to it, and its 400 reaches the caller translated:
sampling parameters on Claude Opus 4.7 and later, temperature with top_p on recent Claude models,
mid-conversation system messages before Opus 4.8, structured outputs before Claude 4.5, stop on
OpenAI reasoning models.

Mapped too, OpenAI caller → Claude: json_object (the answer comes as the input of a tool
`json_object_answer`, forced, or offered beside the caller's tools with a call required, and goes
back as the text), reasoning_effort (extended thinking, budget = low 25% / medium 50% / high 75% /
xhigh 90% of max_tokens, at least 1,024; "none"/"minimal" no thinking), metadata.user_id, a
conversation ending on an assistant turn (a prefill: Claude continues that text).

Dropped with a note (lenient) or refused (strict), OpenAI caller → Claude: store, metadata tags,
image detail "low", message `name`s when each role has one participant, tool-call arguments that are
no JSON object (sent as {"arguments": text}), and reasoning_effort where Claude cannot think (forced
tool choice, a temperature, a turn continuing a tool call, max_tokens under 1,025).

Refused, OpenAI caller → Claude: n > 1, logprobs / top_logprobs, logit_bias, frequency / presence
penalties, seed, audio (input parts, output, modalities), file parts, prediction, verbosity,
web_search_options, the deprecated functions API, moderation, custom tools, json_schema.description,
`name`s of several participants in one role, assistant refusals, temperature > 1, a missing output
limit (Claude has no default), and any field this module does not know.

Refused, Anthropic caller → OpenAI: top_k, thinking (and thinking blocks), documents / PDFs, file
images, server tools (web search, code execution, …) and their blocks, citations, search results,
tool results that carry images (is_error maps: the result's text starts "Error: "), text after a
tool_use in one turn, prefill, more than
four stop sequences, output_config.effort, container, context_management, mcp_servers,
inference_geo, speed "fast", diagnostics, metadata other than user_id, max_tokens 0, and any field
this module does not know.

Not forwarded, because they only steer where a provider caches the prompt and change neither the
answer nor what its usage fields mean: Anthropic `cache_control`, OpenAI `prompt_cache_key`,
`prompt_cache_retention`, `prompt_cache_options` and `prompt_cache_breakpoint`; likewise OpenAI's
`stream_options` (usage is always asked for; obfuscation is padding).

Inexact by nature, and said here rather than hidden: OpenAI's "stop" does not tell a stop sequence
from the model's own end, so it comes back as end_turn with no stop_sequence; a translated Anthropic
stream's message_start carries zero tokens, and its message_delta the whole usage (OpenAI reports
usage at the end only); Claude's thinking is left out of OpenAI answers (its tokens stay counted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import anthropic as anthropic_wire
from . import translate_responses
from .translate_anthropic_request import anthropic_request_to_openai
from .translate_openai_request import openai_request_to_anthropic
from .translate_refuse import Drops
from .translate_response import (
    anthropic_error_to_openai,
    anthropic_response_to_openai,
    error_from_text,
    is_error_body,
    openai_error_to_anthropic,
    openai_response_to_anthropic,
)
from .translate_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream

if TYPE_CHECKING:
    from typing import Any

    from ..call import Call

# -- the gateway's glue: the caller's API chooses the direction ---------------------------------------


def addendum_up_front(messages: list[Any], addendum: str) -> list[Any]:
    """Move the gateway's closing system message to the end of the leading system messages."""
    rest = messages[:-1] if messages and messages[-1] == {"role": "system", "content": addendum} else list(messages)
    lead = 0
    while lead < len(rest) and isinstance(rest[lead], dict) and rest[lead].get("role") in ("system", "developer"):
        lead += 1
    return [*rest[:lead], {"role": "system", "content": addendum}, *rest[lead:]]


def error_for(caller_api: str, status: int, data: bytes, translated: bool) -> bytes:
    """A provider's error answer in its caller's API's shape: a JSON error of the provider's API as it came
    (translated when the caller speaks the other API); anything else (a CDN's or proxy's HTML page, an empty
    body) as its text, in the caller's shape, typed by its status."""
    caller = "anthropic" if caller_api == "anthropic" else "openai"  # one error shape for every OpenAI API
    provider = ("openai" if caller == "anthropic" else "anthropic") if translated else caller
    if not is_error_body(provider, data):
        return error_from_text(caller, status, data)
    if not translated:
        return data
    if caller == "openai":
        return anthropic_error_to_openai(data)
    return openai_error_to_anthropic(data)


def answer_for(caller_api: str, answer: dict[str, Any], model: str) -> dict[str, Any]:
    if caller_api == "responses":
        return translate_responses.chat_to_response(anthropic_response_to_openai(answer, model), model)
    if caller_api == "openai":
        return anthropic_response_to_openai(answer, model)
    return openai_response_to_anthropic(answer, model)


class StreamFor:
    """The provider's stream frames as the caller's API's frames (and a structured answer's forced tool
    call back as text, for an Anthropic caller)."""

    def __init__(self, call: Call) -> None:
        if call.api == "responses":
            self.stream: Any = translate_responses.AnthropicToResponsesStream(call.model)
        elif call.api == "openai":
            self.stream = AnthropicToOpenAIStream(call.model, call.wants_usage_chunk)
        else:
            self.stream = OpenAIToAnthropicStream(call.model)
        self.untool = anthropic_wire.StreamWatch(call) if call.structured_tool else None

    @property
    def seq(self) -> int:
        """The next event's sequence number, in a stream translated to the Responses API (else 0)."""
        return getattr(self.stream, "seq", 0)

    def _post(self, frames: list[bytes]) -> list[bytes]:
        if self.untool is None:
            return frames
        return [g for f in frames if (g := self.untool.frame(f)) is not None]

    def frame(self, f: bytes) -> list[bytes]:
        return self._post(self.stream.frame(f))

    def close(self) -> list[bytes]:
        return self._post(self.stream.close())


__all__ = [
    "Drops",
    "StreamFor",
    "addendum_up_front",
    "answer_for",
    "error_for",
    "error_from_text",
    "is_error_body",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "anthropic_error_to_openai",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "openai_error_to_anthropic",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
]
