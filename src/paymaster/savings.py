"""What each lever saved a call: the counterfactual baseline and its split by lever, in integer nano-dollars.

The baseline is the same call as the agent would have sent it without the gateway's levers: on the
model it asked for (the agent's top tier for `model: auto`), uncached, real-time, uncompressed, with
the output it would have produced. The saving is `baseline − actual`, split by these rules:

1. Start from the call as billed (its *bill*: model and usage; a call answered by the gateway itself
   is a bill of no tokens) and walk the levers in reverse pipeline order (`ORDER` backwards). Each
   lever that acted undoes its change: the bill as it would have been without it. A lever that did
   not act, or whose counterfactual cannot be known, leaves the bill as it is and is credited nothing.
2. A lever's saving is the price of the bill after its undo minus the price before it. Prices are
   rounded to nano-dollars *before* subtracting, so the savings telescope: their sum is exactly
   `price(baseline bill) − price(actual bill)`.
3. The booked baseline is `actual + Σ savings`, so the per-lever savings add up exactly to
   `baseline − actual` even when the booked cost carries something no lever touched (a per-search fee,
   a service tier): that part is in both, and in no lever's saving.
4. A saving can be negative: a cache write costs more than plain input, a fallback may run on a
   pricier model. It is booked as it is, never clipped, so the sum stays exact.

What each lever undoes (the pipeline's order is output control → compression → routing → caching →
response cache, then batch): the response cache puts back the call as it ran when its answer was
made; batch puts back the real-time price; caching bills cache reads and writes as plain input;
routing moves the usage to the model asked for; compression puts back the input tokens it removed,
output control the output tokens it kept from being generated; a cascade (credited to routing) moves a
passing attempt to the top tier and a failed one to no call at all (levers/cascade.py). Undone in reverse,
compression's and output control's tokens are priced on the baseline model, routing's move on uncached usage.

What the gateway cannot see is how long an answer would have been without structured output or
brevity framing: output control is credited only when something measured the tokens it removed (the
demo's before run does; live, it is zero). Never guessed upward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .call import Usage
from .pricing import Rates, to_nanos

ORDER = ("output", "compression", "routing", "caching", "response_cache", "batch")  # the pipeline's order


@dataclass(frozen=True, slots=True)
class Shape:
    """A call as it is (or would have been) billed."""

    model: str
    usage: Usage
    batch: bool = False  # sent through the provider's batch API


Price = Callable[[Shape], int]  # nano-dollars, rounded up as the ledger books them
Undo = Callable[[Shape], Shape]  # a lever's counterfactual: the bill without it


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


def walk(
    price: Callable[[Any], int],
    actual: Any,
    actual_nanos: int,
    undos: Sequence[tuple[str, Any]],
    priced: int | None = None,
    args: tuple[Any, ...] = (),
) -> Attribution:
    """Undo the levers (given in pipeline order) from the last to the first, crediting each the price
    its undo puts back (rules above). `priced`: `price(actual)`, when the caller has it already; `args`:
    what each undo takes after the bill."""
    bill, before = actual, price(actual) if priced is None else priced
    start = before
    by_lever: dict[str, int] = {}
    for name, undo in reversed(undos):
        prior = undo(bill, *args)
        if prior is bill or prior == bill:  # a lever that did not act hands the same bill back
            continue
        after = price(prior)
        by_lever[name] = by_lever.get(name, 0) + after - before
        bill, before = prior, after
    return Attribution(actual_nanos + before - start, actual_nanos, by_lever)


def uncached(u: Usage) -> Usage:
    """The usage with its cache reads and writes billed as plain input (input_tokens already counts them)."""
    return Usage(  # built, not `dataclasses.replace`d: this runs on every cached call's settlement
        u.input_tokens,
        u.output_tokens,
        input_audio_tokens=u.input_audio_tokens,
        output_audio_tokens=u.output_audio_tokens,
        reasoning_tokens=u.reasoning_tokens,
        server_tool_uses=u.server_tool_uses,
        service_tier=u.service_tier,
        speed=u.speed,
        inference_geo=u.inference_geo,
        unpriced=u.unpriced,
    )


@dataclass(frozen=True, slots=True)
class Change:
    """What one lever changed, handed over for attribution; fields left at their defaults are untouched."""

    lever: str
    model: str | None = None  # routing: the model asked for; response cache: the model that made the answer
    usage: Usage | None = None  # response cache: the usage that made the answer
    input_tokens_removed: int = 0  # compression: prompt tokens it took out
    output_tokens_removed: int = 0  # output control: answer tokens it kept from being generated (measured)
    uncached: bool = False  # caching: cache reads and writes were billed as such
    batch: bool = False  # batch: sent through the batch API

    def undo(self, bill: Shape) -> Shape:
        u = bill.usage
        if self.usage is not None:
            u = self.usage
        if self.uncached:
            u = uncached(u)
        if self.input_tokens_removed or self.output_tokens_removed:
            u = replace(
                u,
                input_tokens=u.input_tokens + self.input_tokens_removed,
                output_tokens=u.output_tokens + self.output_tokens_removed,
            )
        return Shape(self.model or bill.model, u, bill.batch and not self.batch)


def attribute(
    price: Price, actual: Shape, actual_nanos: int, changes: Iterable[Change], priced: int | None = None
) -> Attribution:
    """`walk` over handed-over changes, put in pipeline order."""
    undos: list[tuple[str, Undo]] = []
    for c in changes:
        if c.lever not in ORDER:
            raise ValueError(f"unknown lever {c.lever!r}: add it to savings.ORDER")
        undos.append((c.lever, c.undo))
    undos.sort(key=lambda u: ORDER.index(u[0]))
    return walk(price, actual, actual_nanos, undos, priced)


Undos = tuple[tuple[str, Any], ...]
"""The levers' `undo` hooks in pipeline order, each under the name it is credited under (`undos_of`)."""


def undos_of(levers: Iterable[Any]) -> Undos:
    """The levers (in list order) that define `undo(bill, *args)` (the lever protocol's hook:
    `undo(bill, call, ctx) -> Bill`), each under its `credit` name when it has one (the cascade:
    routing), else its own. The levers are fixed for a gateway's life: built once, not per call."""
    return tuple((getattr(lv, "credit", lv.name), lv.undo) for lv in levers if callable(getattr(lv, "undo", None)))


def of_levers(
    levers: Iterable[Any],
    price: Callable[[Any], int],
    actual: Any,
    actual_nanos: int,
    *args: Any,
    priced: int | None = None,
) -> Attribution:
    """The pipeline's attribution: `of_undos` over the levers' `undo` hooks (`undos_of`)."""
    return of_undos(undos_of(levers), price, actual, actual_nanos, *args, priced=priced)


def of_undos(
    undos: Undos, price: Callable[[Any], int], actual: Any, actual_nanos: int, *args: Any, priced: int | None = None
) -> Attribution:
    """`walk` over the levers' undo hooks from the call's actual bill; no attribution (the actual cost as
    the baseline) when the baseline cannot be priced."""
    try:
        return walk(price, actual, actual_nanos, undos, priced, args)
    except (LookupError, ValueError):  # a baseline model nobody prices: no counterfactual to book
        return Attribution(actual_nanos, actual_nanos, {})


def pricer(rates_of: Callable[[str], Rates]) -> Price:
    """Price a bill with the gateway's rates (genai-prices plus overrides). Batch is half the real-time
    price on both providers (Anthropic: docs.claude.com/en/docs/build-with-claude/batch-processing,
    "50% of standard API prices"; OpenAI: platform.openai.com/docs/guides/batch, "50% lower costs")."""

    def price(bill: Shape) -> int:
        cost = rates_of(bill.model).cost(bill.usage)
        return to_nanos(cost / 2 if bill.batch else cost)

    return price


def add(total: dict[str, int], by_lever: Mapping[str, int]) -> None:
    for k, v in by_lever.items():
        total[k] = total.get(k, 0) + v


def parse(column: str) -> dict[str, int]:
    """A ledger row's `savings` column."""
    if not column:
        return {}
    value = orjson.loads(column)
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}
