"""The internal types every stage of the pipeline speaks: Call, Usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token usage as the provider reported it, normalised.

    `input_tokens` is the *total* input, cache reads and writes included (genai-prices' convention);
    the wire decoders convert from each API's own convention.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, 5-minute and 1-hour
    cache_write_1h_tokens: int = 0  # the 1-hour part of cache_write_tokens
    input_audio_tokens: int = 0  # the part of input_tokens the provider bills at its audio input rate
    cache_audio_read_tokens: int = 0  # the part of cache_read_tokens that is audio
    output_audio_tokens: int = 0  # the part of output_tokens billed at the audio output rate
    reasoning_tokens: int = 0  # the part of output_tokens spent thinking (billed as output; kept for reports)
    server_tool_uses: dict[str, int] = field(default_factory=dict)  # e.g. {"web_search": 3}: per-use fees
    service_tier: str = ""  # the tier the provider says it served the call at ("priority", "flex", …)
    speed: str = ""  # Anthropic: "fast" when the call ran in fast mode ("" for standard speed)
    inference_geo: str = ""  # Anthropic: the priced inference geography it ran in ("us"; "" for global)
    unpriced: tuple[str, ...] = ()  # reported usage fields nothing can price: booked at the worst case, flagged


@dataclass(slots=True)
class Call:
    """One agent request on its way through the gateway.

    `body` is the caller's JSON object; levers edit it in place, unknown fields are never touched.
    Only facts every stage may read live here: a lever's own per-call notes live in the pipeline's
    `LeverContext.state` (see `levers/base.py`). `system_tail`, `addendum` and `structured_tool` are
    output control's, kept here because translation, caching and the wire decoders must honour them.
    """

    api: str  # "anthropic" | "openai": the wire format the caller speaks
    agent: str
    body: dict[str, Any]
    model: str
    stream: bool
    max_tokens: int | None  # as requested (None: the caller set none)
    input_bound: int = 0  # tokens; can only over-estimate
    choices: int = 1  # OpenAI `n`: the output bound is multiplied by it
    task: str | None = None  # the declared task type (x-paymaster-task)
    raw_len: int = 0  # bytes of the request body as the caller sent it
    max_tokens_requested: int | None = None  # as the caller sent it, before any ceiling (set at decode)
    system_tail: int = 0  # trailing system blocks the gateway appended (kept out of the cached prefix)
    addendum: str | None = None  # OpenAI: the closing system message the gateway appended (brevity)
    structured_tool: str | None = None  # Anthropic: the forced tool carrying a structured answer
    notes: dict[str, str] = field(default_factory=dict)  # response headers the levers want to add
    wants_usage_chunk: bool = False  # OpenAI stream: did the caller ask for the usage chunk itself
    target_api: str = ""  # the wire format of the provider the call goes to (translation when it differs)
    response_id: str = ""  # Responses API: the id the provider gave the response (the stored-context book)
