"""The request cost model: a request in its provider's shape → the most it can cost.

    request ──measure (per provider)──▶ Measure: input tokens bounded from above, per billable kind
            ──price (Rates)──────────▶ Estimate: fixed USD for the input side + USD per output token

One number for the budget comes out of it: `Estimate.worst_case(_, max_tokens)`. Every billable input
is bounded by a rule from the provider's documents (named where each rule is coded, figures in
data/costmodel.yaml):

- text, tool definitions, tool inputs and tool results, wherever they sit: by the request's bytes
  (a byte-level BPE token covers at least one byte; JSON never makes text shorter), or exactly with
  OpenAI's public tokenizer; Claude's tokenizer is not public, so its tight count is the provider's
  own `count_tokens` plus a margin, asked only when the byte bound would refuse or shrink the call;
- the tool-use system prompt each provider adds, and Anthropic's client tools' own prompts;
- images by each model family's documented formula from the image's header, else its maximum;
- PDFs and files: pages (counted from the bytes, else the documented page limit) × (page image +
  page text);
- audio at the audio rate (duration from the header, else from the bytes);
- server tools: per-use fee × `max_uses` and the result tokens each use can add;
- service tiers at their own prices (a tier the table does not price is refused); Anthropic fast mode
  (`speed`) at its own prices and an `inference_geo` at its multiplier, likewise refused when unpriced;
- long-context tiers: the tier an input of the bound's size reaches;
- cache writes only for the prefix before a `cache_control` breakpoint the request carries, at
  that breakpoint's TTL rate; the rest at the plain input rate.

Anything the model does not recognise is bounded by its bytes (text) or by the largest documented
cost of its kind; never zero.
"""

from __future__ import annotations

import importlib.resources
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

import yaml

from ..pricing import Rates

__all__ = ["Estimate", "Measure", "Unbounded", "data", "estimate", "price", "spec_for", "window"]


class Unbounded(ValueError):
    """The request carries something whose cost cannot be bounded (or priced): it is refused."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@cache
def data() -> dict[str, Any]:
    """data/costmodel.yaml, parsed once."""
    text = (importlib.resources.files("paymaster") / "data" / "costmodel.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def spec_for(table: dict[str, Any], model: str) -> Any:
    """The entry for `model`: its exact name, or its name with a dated snapshot suffix, else `default`."""
    hit = table.get(model)
    if hit is not None:
        return hit
    best = ""
    for key in table:
        if key != "default" and model.startswith(key + "-") and _SNAPSHOT.fullmatch(model[len(key) + 1 :]):
            if len(key) > len(best):
                best = key
    return table[best] if best else table["default"]


_SNAPSHOT = re.compile(r"\d{8}|\d{4}-\d{2}-\d{2}|latest")


@dataclass(slots=True)
class Measure:
    """A request's input, bounded from above, by what it is billed as (tokens unless said)."""

    text: int = 0  # text, tool definitions and calls, tool results, chat-format and tool-prompt overhead
    media: int = 0  # images and document pages
    audio: int = 0  # input audio (billed at the audio rate)
    cache_5m: int = 0  # the prefix before the last 5-minute cache breakpoint (written at 1.25x)
    cache_1h: int = 0  # the prefix before the last 1-hour cache breakpoint (written at 2x)
    server_results: int = 0  # what server tools (web search, web fetch) can add to the input
    results_ttl: str = ""  # Anthropic: server-tool iterations may write all they read to the cache at this TTL
    round_max: int = 0  # the most one sampling iteration / tool round of a server-tool call reads (0: no rounds)
    rereads: int = 0  # server-tool rounds that read again every token written before them (output, as input)
    reread_tokens: int = 0  # the most those rounds can read of it (max_tokens as asked): sets the price tier
    server_uses: dict[str, int] = field(default_factory=dict)  # per-use fees: tool → most uses
    fee_defaults: dict[str, Decimal] = field(default_factory=dict)  # USD per use where the table has none
    output_audio: bool = False  # the answer may be audio (billed at the audio output rate)
    extra_output: int = 0  # tokens billed at the output rate beyond max_tokens (OpenAI rejected predictions)
    compactions: int = 0  # Anthropic server-side compaction steps the request can run (each: input + summary)
    summary_tokens: int = 0  # the most one compaction summary can write (billed as output)
    service_tier: str = ""
    speed: str = ""  # Anthropic `speed` other than standard ("fast")
    geo: str = ""  # Anthropic `inference_geo` other than global ("us")
    implicit_cache: bool = False  # any input may be written to the prompt cache (OpenAI: automatic caching)
    exact: bool = False  # text counted by the provider's tokenizer (else bounded by bytes)
    media_bytes: int = 0  # base64 bytes of the media priced above (the byte bound leaves them out)

    @property
    def tokens(self) -> int:
        return self.text + self.media + self.audio + self.server_results


@dataclass(frozen=True, slots=True)
class Estimate:
    """A request's worst case, priced: what the budget holds for it.

    It answers the budget's two questions (the same as `Rates.worst_case` / `Rates.output_rate`),
    with the input side already fixed by the request, so `input_bound` is ignored.
    """

    tokens: int  # input tokens, bounded from above (every kind)
    input_usd: Decimal  # the input side: every input token at its own worst rate, fees, per-request price
    output_usd: Decimal  # USD per output token, at the highest rate that can apply
    measure: Measure

    def worst_case(self, input_bound: int, output_bound: int) -> Decimal:
        return self.input_usd + output_bound * self.output_usd

    def output_rate(self, input_bound: int) -> Decimal:
        return self.output_usd


def price(m: Measure, rates: Rates, context_cap: int | None) -> Estimate:
    """The most `m` can cost at `rates`: each input token in the dearest bucket it could be billed in.

    The request part (text, media, audio) is capped by the context window when the provider enforces
    it; server-tool results come on top. Buckets are filled dearest first, each up to its own bound
    (audio, 1-hour writes, 5-minute writes), and what is left is plain input: no real split of at
    most that many tokens can cost more.
    """
    if m.service_tier:
        variant = rates.tiers.get(m.service_tier)
        if variant is None:
            raise Unbounded(
                f"service_tier {m.service_tier!r} has no price for model {rates.model!r}; "
                "send it without service_tier or add its prices under models.<name>.price",
                param="service_tier",
            )
        rates = variant
    if m.speed or m.geo:
        modified = rates.modified(m.speed, m.geo)
        if modified is None:
            param, value = rates.unpriced_modifiers(m.speed, m.geo)[0]
            raise Unbounded(
                f"{param} {value!r} has no price for model {rates.model!r}; send the call without it", param=param
            )
        rates = modified
    for needed, unit, key in (
        (m.audio, "input_audio", "input_audio_mtok"),
        (m.output_audio, "output_audio", "output_audio_mtok"),
    ):
        # audio is billed at its own rate (e.g. gpt-4o-audio-preview: $40 / $80 per MTok against $2.50 / $10
        # for text, developers.openai.com/api/docs/pricing); genai-prices does not carry it for every model
        if needed and not getattr(rates, unit):
            raise Unbounded(
                f"model {rates.model!r} has no {unit.replace('_', ' ')} price, so this call's audio cannot be "
                f"bounded; add {key} under models.<name>.price",
                param="modalities" if unit == "output_audio" else "messages",
            )
    request = m.text + m.media + m.audio
    if context_cap:
        request = min(request, context_cap)
    total = request + m.server_results
    # the tier is set by all the input billed, the output the rounds read again included (at the max_tokens
    # asked for: a lower fitted one keeps a tier at least as high, never a lower one)
    reach = total + m.rereads * m.reread_tokens
    plain = rates.rate("input", reach)
    usd = (request + m.server_results) * plain
    # OpenAI caches any prompt of 1,024 tokens or more without being asked, and from the GPT-5.6 family on bills
    # the write at 1.25x the input rate (developers.openai.com/api/docs/guides/prompt-caching): every input
    # token, server-tool results included, may be a write (a model with no write price: no premium)
    implicit = m.implicit_cache and bool(rates.cache_write)
    writes, left = (total, total) if implicit else (m.cache_5m, request)
    if m.audio or m.cache_1h or writes:
        # the dearest buckets first, each up to its own bound; what they take is no longer plain input
        buckets = sorted(
            (
                (rates.rate("input_audio", reach), m.audio),
                (rates.rate("cache_write_1h", reach), m.cache_1h),
                (rates.rate("cache_write", reach), writes),
            ),
            key=lambda b: -b[0],
        )
        for rate, bound in buckets:
            take = min(bound, left)
            if take > 0 and rate > plain:
                usd += take * (rate - plain)
                left -= take
    dearest = plain  # the most one input token of an iteration can cost
    if m.results_ttl:
        # a server-tool call with a cache breakpoint caches "up until the last web_search_tool_result block"
        # at every iteration (platform.claude.com …/web-search-tool, "Prompt caching"): any token the later
        # iterations read may be a write at the breakpoint's TTL
        dearest = max(plain, rates.rate("cache_write_1h" if m.results_ttl == "1h" else "cache_write", reach))
        usd += m.server_results * (dearest - plain)
    if m.compactions:  # each step reads the input again and writes a summary (platform.claude.com …/compaction)
        summary = m.summary_tokens * rates.rate("output", reach)
        if m.round_max:  # with server-tool iterations, a step reads at most what one iteration reads
            rate = dearest
            if writes:
                rate = max(rate, rates.rate("cache_write", reach))
            if m.cache_1h:
                rate = max(rate, rates.rate("cache_write_1h", reach))
            usd += m.compactions * (m.round_max * rate + summary)
        else:
            usd += m.compactions * (usd + summary)
    for tool, uses in m.server_uses.items():
        # the table's fee, or the documented one when the table has none or a lower one (a bound)
        fee = max(rates.fee(tool) or Decimal(0), m.fee_defaults.get(tool, Decimal(0)))
        usd += uses * fee
    out = rates.rate("output", reach)
    usd += m.extra_output * out
    if m.output_audio:
        out = max(out, rates.rate("output_audio", reach))
    if implicit and m.rereads:  # OpenAI's implicit cache: what the rounds read again may be a write too
        dearest = max(dearest, rates.rate("cache_write", reach))
    out += m.rereads * dearest
    return Estimate(total, usd + rates.per_request, out, m)


_DOCUMENTED: dict[str, int] = {}  # model → its documented window (0: none listed), filled as models are seen


def window(model: str, listed: int | None) -> int | None:
    """The context window to cap `model`'s input at: the price table's (`listed`; None: no cap), raised to
    the documented one where the table rounds it down (data/costmodel.yaml `context_windows`)."""
    if listed is None:
        return None
    documented = _DOCUMENTED.get(model)
    if documented is None:
        found = spec_for(data()["context_windows"], model)
        documented = _DOCUMENTED[model] = found if isinstance(found, int) else 0
    return documented if documented > listed else listed


def margin(tokens: int, ratio: str, extra: int) -> int:
    """`tokens` plus a safety margin, rounded up."""
    return math.ceil(Decimal(tokens) * (1 + Decimal(ratio))) + extra


def rounds(base: int, step: int, n: int, full: int | None) -> tuple[int, int]:
    """Rounds k = 1..n of a server-side tool loop, round k reading `base + k * step` tokens, at most `full`
    (None: no cap): what they read in all, and how many read less than `full`. In closed form: `n` is the
    caller's own number (max_uses, max_tool_calls), so the work must not grow with it."""
    if n <= 0:
        return 0, 0
    if full is None:
        below = n
    elif step <= 0:
        below = n if base < full else 0
    else:  # base + k * step < full  <=>  k <= (full - base - 1) // step
        below = min(n, max(0, (full - base - 1) // step))
    return below * base + step * below * (below + 1) // 2 + (n - below) * (full or 0), below


def estimate(
    body: dict[str, Any],
    api: str,
    size: int,
    rates: Rates,
    context_cap: int | None,
    *,
    exact: bool = False,
    counted: int | None = None,
    default_tier: str = "",
    stored: int | None = 0,
    default_geo: str = "",
) -> Estimate:
    """The worst case of a request in provider wire format `api` ("anthropic" | "openai"), `size`
    bytes of JSON: coarse by default; `exact` counts OpenAI text with its tokenizer, `counted` is
    Anthropic's count_tokens answer for it; `default_tier` the OpenAI project's tier for a request
    that names none; `stored` the tokens of the stored context a Responses request names (None: unknown);
    `default_geo` the Anthropic workspace's inference geography, for a request that names none."""
    context_cap = window(rates.model, context_cap)
    if default_geo not in rates.geos:  # the workspace's geography is where the models that take one run
        default_geo = ""
    if api == "anthropic":
        m = anthropic.measure(body, size, rates.model, counted, default_geo, context_cap)
    elif api == "responses":
        m = responses.measure(body, size, rates, stored, context_cap, default_tier, exact)
    elif api == "embeddings":  # the context window is per input here, not per request
        return price(embeddings.measure(body, exact), rates, None)
    else:
        m = openai.measure(body, size, rates.model, exact, default_tier)
    return price(m, rates, context_cap)


from . import anthropic, embeddings, openai, responses  # noqa: E402  (they use the types above)
