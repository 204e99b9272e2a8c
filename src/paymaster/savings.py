"""What each lever saved a call: the counterfactual baseline and its split by lever, in integer nano-dollars.

The baseline is the same call as the agent would have sent it without the gateway's levers: on the
model it asked for (the agent's top tier for `model: auto`), uncached, real-time, uncompressed, with
the output it would have produced. The saving is `baseline − actual`, split by these rules:

1. Start from the baseline *shape* (model, usage, batch, served free) and walk the levers in `ORDER`.
   Each lever that acted hands over a `Change`: the part of the shape it changed. Applying it gives
   the next shape; levers that did not act change nothing and are credited nothing.
2. A lever's saving is the price of the shape before it minus the price of the shape after it.
   Prices are rounded to nano-dollars *before* subtracting, so the savings telescope: their sum is
   exactly `price(baseline shape) − price(final shape)`.
3. The final shape is the call as billed. The booked baseline is `actual + Σ savings`, so the
   per-lever savings add up exactly to `baseline − actual` even when the booked cost carries something
   no lever touched (a per-search fee, a service tier): that part is in both, and in no lever's saving.
4. A saving can be negative: a cache write costs more than plain input, a fallback may run on a
   pricier model. It is booked as it is, never clipped, so the sum stays exact.

The order is the pipeline's (output control → compression → routing → caching), then batch and the
response cache: output tokens are priced on the baseline model, compression's tokens on the baseline
model too (it acts before routing), routing moves the remaining usage to the model that ran, caching
reprices that usage with its cache reads and writes, batch applies the batch rate, and the response
cache takes what is left to zero. A lever that lands later adds its name to `ORDER` and hands over a
`Change`; nothing else changes.

What the gateway can see for itself: the model (routing), cache reads and writes (caching), tokens a
lever took out of the prompt (compression hands over how many), a response-cache hit. What it cannot
see is how long an answer would have been without structured output or brevity framing: output
control's saving is credited only when something hands over the output tokens it removed (the demo's
before run measures them; live, it is zero unless a lever reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import orjson

from .call import Usage
from .pricing import Rates, to_nanos

ORDER = ("output", "compression", "routing", "caching", "batch", "response_cache")


@dataclass(frozen=True, slots=True)
class Shape:
    """What a call is billed on."""

    model: str
    usage: Usage
    batch: bool = False
    free: bool = False  # answered without a provider (the response cache): costs nothing


@dataclass(frozen=True, slots=True)
class Change:
    """What one lever changed in a call's shape; fields left at their defaults are untouched."""

    lever: str
    model: str | None = None  # routing: the model the call ran on instead
    input_tokens_removed: int = 0  # compression: prompt tokens it took out
    output_tokens_removed: int = 0  # output control: answer tokens it kept from being generated (when known)
    cache: Usage | None = None  # caching: the usage as billed, cache reads and writes included
    batch: bool = False  # batch: sent through the provider's batch API
    free: bool = False  # response cache: answered from the gateway's store


Price = Callable[[Shape], int]  # nano-dollars, rounded up as the ledger books them


@dataclass(frozen=True, slots=True)
class Attribution:
    baseline_nanos: int
    actual_nanos: int
    by_lever: dict[str, int]  # only levers that acted; sums exactly to baseline − actual

    @property
    def saved_nanos(self) -> int:
        return self.baseline_nanos - self.actual_nanos

    def json(self) -> str:
        return orjson.dumps(self.by_lever).decode() if self.by_lever else "{}"


def uncached(u: Usage) -> Usage:
    """The usage with its cache reads and writes billed as plain input (input_tokens already counts them)."""
    return replace(u, cache_read_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0, cache_audio_read_tokens=0)


def baseline_shape(model: str, billed: Usage, changes: Iterable[Change]) -> Shape:
    """The call before any lever: `billed` with every change undone (tokens put back, cache reads and
    writes billed as plain input) on `model`."""
    u = uncached(billed)
    for c in changes:
        u = replace(
            u,
            input_tokens=u.input_tokens + c.input_tokens_removed,
            output_tokens=u.output_tokens + c.output_tokens_removed,
        )
    return Shape(model, u)


def apply(shape: Shape, c: Change) -> Shape:
    u = shape.usage
    if c.output_tokens_removed:
        u = replace(u, output_tokens=max(0, u.output_tokens - c.output_tokens_removed))
    if c.input_tokens_removed:
        u = replace(u, input_tokens=max(0, u.input_tokens - c.input_tokens_removed))
    if c.cache is not None:
        u = c.cache
    return Shape(
        c.model or shape.model,
        u,
        batch=shape.batch or c.batch,
        free=shape.free or c.free,
    )


def attribute(price: Price, baseline: Shape, changes: Iterable[Change], actual_nanos: int) -> Attribution:
    """Split `price(baseline) − price(final shape)` between the levers that acted, in `ORDER` (rules above)."""
    by_name: dict[str, list[Change]] = {}
    for c in changes:
        if c.lever not in ORDER:
            raise ValueError(f"unknown lever {c.lever!r}: add it to savings.ORDER")
        by_name.setdefault(c.lever, []).append(c)
    shape, before = baseline, price(baseline)
    start = before
    by_lever: dict[str, int] = {}
    for lever in ORDER:
        for c in by_name.get(lever, ()):
            shape = apply(shape, c)
        if lever in by_name:
            after = price(shape)
            by_lever[lever] = by_lever.get(lever, 0) + before - after
            before = after
    return Attribution(actual_nanos + start - before, actual_nanos, by_lever)


def add(total: dict[str, int], by_lever: Mapping[str, int]) -> None:
    for k, v in by_lever.items():
        total[k] = total.get(k, 0) + v


def parse(column: str) -> dict[str, int]:
    """A ledger row's `savings` column."""
    if not column:
        return {}
    value = orjson.loads(column)
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}


def pricer(rates_of: Callable[[str], Rates]) -> Price:
    """Price a shape with the gateway's rates (genai-prices plus overrides). Batch is half the real-time
    price on both providers (Anthropic: docs.claude.com/en/docs/build-with-claude/batch-processing,
    "50% of standard API prices"; OpenAI: platform.openai.com/docs/guides/batch, "50% lower costs")."""

    def price(shape: Shape) -> int:
        if shape.free:
            return 0
        cost = rates_of(shape.model).cost(shape.usage)
        return to_nanos(cost / 2 if shape.batch else cost)

    return price


def of_call(
    price: Price,
    *,
    model: str,
    baseline_model: str | None,
    billed: Usage,
    actual_nanos: int,
    handed: Iterable[Change] = (),
) -> Attribution:
    """A settled call's attribution: what the gateway sees for itself (the model routing chose, the cache
    reads and writes in `billed`) plus what levers handed over (tokens compression removed, …)."""
    changes = list(handed)
    if baseline_model and baseline_model != model:
        changes.append(Change("routing", model=model))
    if billed.cache_read_tokens or billed.cache_write_tokens:
        changes.append(Change("caching", cache=billed))
    if not changes:
        return Attribution(actual_nanos, actual_nanos, {})
    try:
        return attribute(price, baseline_shape(baseline_model or model, billed, changes), changes, actual_nanos)
    except (LookupError, ValueError):  # a baseline model nobody prices: no counterfactual to book
        return Attribution(actual_nanos, actual_nanos, {})
