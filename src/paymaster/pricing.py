"""Usage → exact cost, and the worst-case bound a call is reserved at.

Prices come from genai-prices (resolved once per model and day, then applied with plain Decimal
arithmetic: genai-prices' own `calc_price` takes ~0.3 ms, too slow for every call) and from the
`price:` overrides in fleet.yaml. The arithmetic follows genai-prices exactly, and the test-suite
checks it against `genai_prices.calc_price` to the micro-dollar:

- every usage count is a *total* that includes its more specific parts: `input_tokens` includes cache
  reads, cache writes and audio; `cache_write_tokens` includes the 1-hour writes; `cache_read_tokens`
  includes audio cache reads; `output_tokens` includes audio output. Each priced unit is charged for
  what is left of it once its priced, more specific parts are carved out (genai-prices' "leaf
  values"); a part the model has no price for stays in its parent and is charged at the parent's rate;
- a tiered price applies the tier whose `start` the *total* input exceeds to all tokens;
- per-use fees (`web_searches_kcount`, `code_executions_kcount`) and `requests_kcount` are per 1,000;
- a service tier ("priority", "flex") is priced from genai-prices' price variants for that tier.

Money in the budget is integer nano-dollars (`to_nanos` rounds up, so spend is never under-counted);
the ledger also keeps the exact Decimal.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from functools import cache
from typing import Any, Protocol

from .call import Usage

MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1_000)
NANOS = Decimal(1_000_000_000)

# Token units we price: (Rates field, genai-prices price key, the unit's dimensions). A unit is a
# descendant of another when its dimensions include the other's (genai-prices' unit registry).
TOKEN_UNITS: tuple[tuple[str, str, frozenset[tuple[str, str]]], ...] = tuple(
    (name, key, frozenset(dims.items()))
    for name, key, dims in (
        ("input", "input_mtok", {"direction": "input"}),
        ("cache_read", "cache_read_mtok", {"direction": "input", "token_type": "cache_read"}),
        ("cache_write", "cache_write_mtok", {"direction": "input", "token_type": "cache_write"}),
        ("cache_write_1h", "cache_write_1h_mtok", {"direction": "input", "token_type": "cache_write", "ttl": "1h"}),
        ("input_audio", "input_audio_mtok", {"direction": "input", "modality": "audio"}),
        (
            "cache_audio_read",
            "cache_audio_read_mtok",
            {"direction": "input", "modality": "audio", "token_type": "cache_read"},
        ),
        ("output", "output_mtok", {"direction": "output"}),
        ("output_audio", "output_audio_mtok", {"direction": "output", "modality": "audio"}),
    )
)
# per-use fees, per 1,000 uses: Rates field → genai-prices price key (and the Usage.server_tool_uses name)
FEE_UNITS = (("web_search", "web_searches_kcount"), ("code_execution", "code_executions_kcount"))
PRICE_KEYS = tuple(k for _, k, _ in TOKEN_UNITS)
SERVICE_TIERS = ("priority", "flex")
SPEEDS = ("fast",)  # Anthropic `speed` values priced from genai-prices' variants ("standard" is the base)
STANDARD_TIERS = frozenset({"", "default", "standard", "auto", "standard_only"})
# OpenAI tiers billed as another: developers.openai.com/api/docs/guides/fast-mode ("Priority processing was
# renamed Fast mode on July 30, 2026 ... use either service_tier: "priority" or service_tier: "fast"";
# the API reference: "The response will show service_tier=priority regardless")
TIER_ALIASES = {"fast": "priority"}
# fleet.yaml `price:` keys: genai-prices' names, plus `<tier>_input_mtok` / `<tier>_output_mtok` and
# `<speed>_input_mtok` / `<speed>_output_mtok` (Anthropic fast mode)
SPEED_KEYS = {s: (f"{s}_input_mtok", f"{s}_output_mtok") for s in SPEEDS}
OVERRIDE_KEYS = (
    frozenset(PRICE_KEYS)
    | {k for _, k in FEE_UNITS}
    | {"requests_kcount"}
    | {f"{t}_{k}" for t in SERVICE_TIERS for k in ("input_mtok", "output_mtok")}
    | {k for keys in SPEED_KEYS.values() for k in keys}
)
_CACHE_KEYS = ("cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")

Tiered = tuple[tuple[int, Decimal], ...]  # ((start, $/MTok), ...) ascending; the base tier has start -1
TextBand = tuple[Decimal | None, Decimal | None, Decimal | None, Decimal, Decimal, Decimal]
"""`Rates._text_cost`'s prices for one input band: cache_write_1h, cache_read, cache_write (None where the
model has no price for the unit), input, output, and the zero the cost starts from (see `_text_bands`)."""
EXACT_TOKENS = 10**10  # the text fast path takes counts below this (its Decimal sums then never round)


class Priced(Protocol):
    """What the budget asks of a call's prices: its worst case for an output bound, and the rate of
    one more output token. `Rates` answers from token counts; a request's `costmodel.Estimate`
    answers with its input side already fixed (and ignores `input_bound`)."""

    def worst_case(self, input_bound: int, output_bound: int) -> Decimal: ...

    def output_rate(self, input_bound: int) -> Decimal: ...


class UnknownModel(LookupError):
    """The price table has no entry for the model and config gives no override."""


def _tiered(value: Any) -> Tiered:
    if value is None:
        return ()
    base = getattr(value, "base", None)
    if base is None:
        return ((-1, Decimal(value)),)
    return ((-1, Decimal(base)), *((int(t.start), Decimal(t.price)) for t in value.tiers))


def _at(tiers: Tiered, total_input: int) -> Decimal:
    rate = tiers[0][1]
    for start, price in tiers[1:]:
        if total_input > start:
            rate = price
    return rate


def _max_upto(tiers: Tiered, total_input: int) -> Decimal:
    """The highest rate any input up to `total_input` tokens could be charged."""
    return max((p for s, p in tiers if s < total_input or s == -1), default=Decimal(0))


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's prices, ready for fast arithmetic."""

    model: str
    input: Tiered
    output: Tiered
    cache_read: Tiered = ()
    cache_write: Tiered = ()
    cache_write_1h: Tiered = ()
    input_audio: Tiered = ()
    cache_audio_read: Tiered = ()
    output_audio: Tiered = ()
    web_search: Decimal | None = None  # USD per 1,000 uses
    code_execution: Decimal | None = None  # USD per 1,000 uses
    per_request: Decimal = Decimal(0)  # USD per request
    context_window: int | None = None
    source: str = "genai-prices"
    tiers: Mapping[str, Rates] = field(default_factory=dict, compare=False)  # service tier → its prices
    speeds: Mapping[str, Rates] = field(default_factory=dict, compare=False)  # Anthropic `speed` → its prices
    geos: Mapping[str, Decimal] = field(default_factory=dict, compare=False)  # inference geo → token multiplier
    # derived from the prices above (init=False: `replace` never copies them, each Rates computes its own)
    _variants: dict[tuple[str, str], Rates | None] = field(default_factory=dict, init=False, compare=False, repr=False)
    _flat: tuple[Decimal, Decimal] | None = field(default=None, init=False, compare=False, repr=False)
    _plan: tuple[tuple[str, Tiered, tuple[int, ...]], ...] = field(default=(), init=False, compare=False, repr=False)
    _unit: dict[str, Decimal] | None = field(default=None, init=False, compare=False, repr=False)  # per token
    _starts: tuple[int, ...] = field(default=(), init=False, compare=False, repr=False)  # long-context tier starts
    _text: tuple[TextBand, ...] = field(default=(), init=False, compare=False, repr=False)  # per band above each

    def __post_init__(self) -> None:
        priced = [(n, d) for n, _, d in TOKEN_UNITS if getattr(self, n)]
        # most specific first, as genai-prices computes leaf values; each with its priced descendants
        priced.sort(key=lambda nd: -len(nd[1]))
        plan = tuple(
            (n, getattr(self, n), tuple(j for j, (m, e) in enumerate(priced) if m != n and d <= e)) for n, d in priced
        )
        object.__setattr__(self, "_plan", plan)
        tiered = [getattr(self, n) for n, _, _ in TOKEN_UNITS if getattr(self, n)]
        if not any(len(t) > 1 for t in tiered):  # no long-context tiers: the top rates never change
            object.__setattr__(self, "_flat", self._tops(0))
            units = (
                "input",
                "cache_write",
                "cache_write_1h",
                "input_audio",
                "cache_audio_read",
                "output",
                "output_audio",
            )
            object.__setattr__(self, "_unit", {u: self._rate(u, 0) for u in units})
        self._text_bands()

    def _text_bands(self) -> None:
        """Precompute `_text_cost`'s prices: for each band of total input between two tier starts, the rate
        of each text unit, and a zero whose exponent is the smallest of any priced unit's rate at that band.

        `_plan_cost` adds a term (rate × leaf / 1e6) for every priced unit, zero leaves included; a zero
        term changes no value but can lower the Decimal's exponent (0.8 + 0.00 is "0.80"), and `str(cost)`
        goes into the ledger. Starting from this zero makes the skipped terms' exponents count all the same.
        Left empty (no fast path) when a rate is too fine or too large for the sums to stay exact."""
        plan = {n: tiers for n, tiers, _ in self._plan}
        rates = [p for tiers in plan.values() for _, p in tiers]
        # rates under $100,000/MTok with at most 9 decimals: below EXACT_TOKENS, sums stay within 28 digits
        exact = all(p.is_finite() and int(p.as_tuple().exponent) >= -9 and p.adjusted() < 5 for p in rates)
        if not exact or "input" not in plan or "output" not in plan:
            return
        starts = tuple(sorted({s for tiers in plan.values() for s, _ in tiers[1:]}))
        bands = []
        for j in range(len(starts) + 1):
            total = starts[j - 1] + 1 if j else (starts[0] if starts else 0)  # a total input inside band j
            at = {n: _at(tiers, total) for n, tiers in plan.items()}
            exponent = min(0, *(int(p.as_tuple().exponent) for p in at.values()))
            zero = Decimal((0, (0,), exponent))
            bands.append(
                (at.get("cache_write_1h"), at.get("cache_read"), at.get("cache_write"), at["input"], at["output"], zero)
            )
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_text", tuple(bands))

    # -- exact cost

    def cost(self, u: Usage) -> Decimal:
        """Exact USD cost of one call's usage (its service tier's prices when the table has them).

        A service tier the table cannot price is charged at the dearest prices the model has; a speed or
        inference geography it cannot price at its standard prices (settlement flags it: `unpriceable`).
        """
        if u.speed or u.inference_geo:
            plain = replace(u, speed="", inference_geo="")
            return (self.modified(u.speed, u.inference_geo) or self).cost(plain)
        tier = TIER_ALIASES.get(u.service_tier, u.service_tier)
        if tier and tier not in STANDARD_TIERS and self.tiers:
            plain = replace(u, service_tier="")
            variant = self.tiers.get(tier)
            if variant is not None:
                return variant.cost(plain)
            return max(r.cost(plain) for r in (self, *self.tiers.values()))
        usd = self._text_cost(u)
        if usd is None:
            usd = self._plan_cost(u)
        if u.server_tool_uses:
            for name, _ in FEE_UNITS:
                fee = getattr(self, name)
                uses = u.server_tool_uses.get(name, 0)
                if fee is not None and uses:
                    usd += fee * uses / THOUSAND
        return usd + self.per_request

    def _text_cost(self, u: Usage) -> Decimal | None:
        """`_plan_cost` for the common usage, ~5× faster: no audio counts, every count below EXACT_TOKENS and
        consistent with its total (None otherwise: the general path then prices it, or raises). Every
        settlement prices its call (and, for a call with cache parts, its uncached cost), so this is on the
        hot path. With no audio, the audio units' leaves are all zero; the text units' leaves are computed
        directly and only non-zero terms added (the band's zero keeps the Decimal exactly as `_plan_cost`
        builds it: same value, same exponent; tests/test_pricing_fast_path.py holds the two paths equal)."""
        if not self._text or u.input_audio_tokens or u.cache_audio_read_tokens or u.output_audio_tokens:
            return None
        total, out = u.input_tokens, u.output_tokens
        if not (0 <= total < EXACT_TOKENS and 0 <= out < EXACT_TOKENS):
            return None
        p_1h, p_read, p_write, p_in, p_out, usd = self._text[bisect_left(self._starts, total) if self._starts else 0]
        # each priced unit's leaf: its count less its priced, more specific parts (as in `_plan_cost`)
        w1h = u.cache_write_1h_tokens if p_1h is not None else 0
        read = u.cache_read_tokens if p_read is not None else 0
        write = u.cache_write_tokens - w1h if p_write is not None else 0
        rest = total - read - write - w1h
        if w1h < 0 or read < 0 or write < 0 or rest < 0:
            return None
        if w1h:
            usd += p_1h * w1h / MILLION  # type: ignore[operator]
        if read:
            usd += p_read * read / MILLION  # type: ignore[operator]
        if write:
            usd += p_write * write / MILLION  # type: ignore[operator]
        if rest:
            usd += p_in * rest / MILLION
        if out:
            usd += p_out * out / MILLION
        return usd

    def _plan_cost(self, u: Usage) -> Decimal:
        """The token cost of any usage: genai-prices' leaf values, each unit at its tier's rate."""
        values = {
            "input": u.input_tokens,
            "cache_read": u.cache_read_tokens,
            "cache_write": u.cache_write_tokens,
            "cache_write_1h": u.cache_write_1h_tokens,
            "input_audio": u.input_audio_tokens,
            "cache_audio_read": u.cache_audio_read_tokens,
            "output": u.output_tokens,
            "output_audio": u.output_audio_tokens,
        }
        total = u.input_tokens
        leaves: list[int] = []
        usd = Decimal(0)
        for name, tiers, below in self._plan:
            leaf = values[name] - sum(leaves[j] for j in below)
            if leaf < 0:
                raise ValueError(f"usage reports more {name.replace('_', ' ')} parts than its total: {u}")
            leaves.append(leaf)
            usd += _at(tiers, total) * leaf / MILLION
        return usd

    def modified(self, speed: str, geo: str) -> Rates | None:
        """These prices in a speed mode (`speed: "fast"`: genai-prices' `speed` variant) and/or at an
        inference geography's premium (every token price times its multiplier, data/extra_prices.yaml);
        "" for either means standard. None when the table does not price that speed or that geography
        (`unpriced_modifiers` says which).

        platform.claude.com/docs/en/build-with-claude/fast-mode ("Pricing"): fast mode stacks with the
        other modifiers (prompt caching, data residency); …/about-claude/pricing ("Data residency
        pricing"): US-only inference is 1.1x every token price (input, output, cache writes and reads)."""
        key = (speed, geo)
        if key in self._variants:
            return self._variants[key]
        out: Rates | None = self.speeds.get(speed) if speed else self
        if out is not None and geo:
            factor = self.geos.get(geo)
            out = out.scaled(factor) if factor is not None else None
        self._variants[key] = out
        return out

    def served(self, tier: str, geo: str) -> Rates:
        """These prices where a provider runs a call that names no service tier or geography: at the OpenAI
        project's default `tier` and the Anthropic workspace's `geo` (each only when the table prices it for
        this model — an older Claude model runs at its standard price wherever the workspace is)."""
        out = self
        variant = TIER_ALIASES.get(tier, tier)
        if variant not in STANDARD_TIERS:
            out = self.tiers.get(variant, self)
        if geo in out.geos:
            out = out.modified("", geo) or out
        return out

    def unpriced_modifiers(self, speed: str, geo: str) -> list[tuple[str, str]]:
        """Which of `speed` and `geo` ("" for standard) `modified` has no price for, as (parameter, value)."""
        return [
            (param, value)
            for param, value, priced in (("speed", speed, self.speeds), ("inference_geo", geo, self.geos))
            if value and value not in priced
        ]

    def scaled(self, factor: Decimal) -> Rates:
        """Every token price times `factor` (per-use fees and per-request prices unchanged)."""

        def times(t: Tiered) -> Tiered:
            return tuple((start, price * factor) for start, price in t)

        units: dict[str, Any] = {name: times(getattr(self, name)) for name, _, _ in TOKEN_UNITS if getattr(self, name)}
        tiers = {k: v.scaled(factor) for k, v in self.tiers.items()}
        return replace(self, **units, tiers=tiers, speeds={}, geos={})

    def prices_tier(self, tier: str) -> bool:
        """Whether a call served at this service tier can be priced exactly."""
        return tier in STANDARD_TIERS or TIER_ALIASES.get(tier, tier) in self.tiers

    def fee(self, tool: str) -> Decimal | None:
        """USD per use of a server tool ("web_search", "code_execution"), when the table prices it."""
        per_k = getattr(self, tool, None) if tool in ("web_search", "code_execution") else None
        return per_k / THOUSAND if per_k is not None else None

    # -- bounds

    def worst_case(self, input_bound: int, output_bound: int) -> Decimal:
        """The most a call with at most these tokens can cost, knowing nothing else about it: every
        input token at the highest input rate that can apply (cache writes and audio included), every
        output token at the highest output rate. The cost model (`paymaster.costmodel`) is tighter."""
        top_in, top_out = self._top(input_bound)
        return (input_bound * top_in + output_bound * top_out) / MILLION + self.per_request

    def _top(self, input_bound: int) -> tuple[Decimal, Decimal]:
        flat = self._flat
        return flat if flat is not None else self._tops(input_bound)

    def _tops(self, input_bound: int) -> tuple[Decimal, Decimal]:
        ins = (
            self.input,
            self.cache_read,
            self.cache_write,
            self.cache_write_1h,
            self.input_audio,
            self.cache_audio_read,
        )
        top_in = max(_max_upto(t, input_bound) for t in ins if t)
        top_out = max(_max_upto(t, input_bound) for t in (self.output, self.output_audio) if t)
        return top_in, top_out

    def rate(self, unit: str, input_bound: int) -> Decimal:
        """USD per token of one unit ("input", "cache_write_1h", …) at the highest tier an input of up
        to `input_bound` tokens can reach; a unit the model does not price falls back to its parent's."""
        flat = self._unit
        return flat[unit] if flat is not None else self._rate(unit, input_bound)

    def _rate(self, unit: str, input_bound: int) -> Decimal:
        tiers = getattr(self, unit) or (self.input if unit != "output_audio" else self.output)
        if unit in ("cache_write_1h",) and not self.cache_write_1h:
            tiers = self.cache_write or self.input
        if unit == "cache_audio_read" and not self.cache_audio_read:
            tiers = self.input_audio or self.cache_read or self.input
        return _max_upto(tiers, input_bound) / MILLION

    def input_rate(self) -> Decimal:
        """USD per uncached input token (base tier)."""
        return self.input[0][1] / MILLION

    def cache_read_rate(self) -> Decimal:
        """USD per input token read from the cache (the input rate where the model has no cache price)."""
        return (self.cache_read or self.input)[0][1] / MILLION

    def output_rate(self, input_bound: int) -> Decimal:
        """Worst-case USD per output token for a call of this input size."""
        return self._top(input_bound)[1] / MILLION


def plain_tokens(u: Usage) -> bool:
    """Whether a usage is nothing but input and output tokens at the standard tier, so it costs exactly
    what `Usage(u.input_tokens, u.output_tokens)` costs (a call's uncached cost is then its cost: most
    calls, and settlement prices every call's uncached cost)."""
    return (
        not (
            u.cache_read_tokens
            or u.cache_write_tokens
            or u.cache_write_1h_tokens
            or u.input_audio_tokens
            or u.cache_audio_read_tokens
            or u.output_audio_tokens
            or u.server_tool_uses
            or u.speed
            or u.inference_geo
        )
        and u.service_tier in STANDARD_TIERS
    )


def to_nanos(usd: Decimal) -> int:
    """USD → integer nano-dollars, rounded up (the budget never under-counts)."""
    return int((usd * NANOS).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS


def usd_str(usd: Decimal | int) -> str:
    """A dollar figure for headers and reports, to 6 decimal places, rounded up."""
    nanos = usd if isinstance(usd, int) else to_nanos(usd)
    micros = -(-nanos // 1000)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    return f"{sign}{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _rates(model: str, price: Any, context_window: int | None, source: str, tiers: Mapping[str, Rates]) -> Rates:
    """Rates from anything with genai-prices' price attributes (a ModelPrice, or config overrides)."""
    per_request = getattr(price, "requests_kcount", None)
    fees = {name: getattr(price, key, None) for name, key in FEE_UNITS}
    return Rates(
        model=model,
        input=_tiered(price.input_mtok) or ((-1, Decimal(0)),),
        output=_tiered(price.output_mtok) or ((-1, Decimal(0)),),
        cache_read=_tiered(price.cache_read_mtok),
        cache_write=_tiered(price.cache_write_mtok),
        cache_write_1h=_tiered(price.cache_write_1h_mtok),
        input_audio=_tiered(price.input_audio_mtok),
        cache_audio_read=_tiered(price.cache_audio_read_mtok),
        output_audio=_tiered(price.output_audio_mtok),
        web_search=Decimal(fees["web_search"]) if fees["web_search"] is not None else None,
        code_execution=Decimal(fees["code_execution"]) if fees["code_execution"] is not None else None,
        per_request=Decimal(per_request) / 1000 if per_request is not None else Decimal(0),
        context_window=context_window,
        source=source,
        tiers=tiers,
    )


class _Prices:
    """Config overrides seen through genai-prices' attribute names (absent keys read as None)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values.get(name)


class PriceTable:
    """Model name → Rates, from genai-prices plus fleet.yaml overrides."""

    def __init__(
        self, overrides: Mapping[str, Mapping[str, Any]] | None = None, uplifts: Mapping[str, Decimal] | None = None
    ) -> None:
        """`uplifts`: model → multiplier on every token price, for a model served from an endpoint that charges
        a premium (`data_residency_uplift`). A table never changes once built (batch/prices.py caches by it)."""
        self._overrides = {name: dict(p) for name, p in (overrides or {}).items()}
        self._cache: dict[tuple[str, str | None, int], Rates] = {}
        self._uplifts = dict(uplifts or {})

    def uplift_of(self, model: str) -> Decimal | None:
        """The multiplier on `model`'s token prices, if any (batch prices take it too)."""
        return self._uplifts.get(model)

    def rates(self, model: str, provider_id: str | None = None, when: datetime | None = None) -> Rates:
        # genai-prices prices can change by date: resolved once per model and UTC day
        day = int((when.timestamp() if when else time.time()) // 86400)
        key = (model, provider_id, day)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(model, provider_id, when)
            factor = self._uplifts.get(model)
            hit = self._cache[key] = hit.scaled(factor) if factor is not None else hit
        return hit

    def in_table(self, model: str, provider_id: str) -> bool:
        """Whether genai-prices itself prices the model at that provider (overrides aside)."""
        from genai_prices import data_snapshot

        try:
            data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
        except LookupError:
            return False
        return True

    def _resolve(self, model: str, provider_id: str | None, when: datetime | None) -> Rates:
        override = self._overrides.get(model)
        if override is not None:
            tiers = {}
            for t in SERVICE_TIERS:
                if f"{t}_input_mtok" in override or f"{t}_output_mtok" in override:
                    tier_price = dict(override)
                    tier_price["input_mtok"] = override.get(f"{t}_input_mtok", override.get("input_mtok", 0))
                    tier_price["output_mtok"] = override.get(f"{t}_output_mtok", override.get("output_mtok", 0))
                    tiers[t] = _rates(model, _Prices(tier_price), override.get("context_window"), "config", {})
            speeds = {
                speed: _rates(model, _Prices(_at_speed(override, *keys)), override.get("context_window"), "config", {})
                for speed, keys in SPEED_KEYS.items()
                if keys[0] in override
            }
            rates = _rates(model, _Prices(override), override.get("context_window"), "config", tiers)
            return _with_modifiers(rates, provider_id, speeds)
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
        except LookupError as e:
            raise UnknownModel(
                f"no price for model {model!r}"
                + (f" at provider {provider_id!r}" if provider_id else "")
                + " in genai-prices; add a `price:` override for it under `models:` in fleet.yaml"
            ) from e
        at = when or datetime.now(UTC)
        standard = info.get_prices(at)
        tiers = {}
        for t in SERVICE_TIERS:
            variant = info.get_prices(at, {"service_tier": t})
            if variant != standard:
                tiers[t] = _with_extras(_rates(model, variant, info.context_window, "genai-prices", {}), provider_id)
        speeds = {}
        for speed in SPEEDS:
            variant = info.get_prices(at, {"speed": speed})
            if variant != standard:
                speeds[speed] = _with_extras(
                    _rates(model, variant, info.context_window, "genai-prices", {}), provider_id
                )
        rates = _with_extras(_rates(model, standard, info.context_window, "genai-prices", tiers), provider_id)
        return _with_modifiers(rates, provider_id, speeds)


def _at_speed(override: Mapping[str, Any], input_key: str, output_key: str) -> dict[str, Any]:
    """A `price:` override's prices in a speed mode: its `fast_input_mtok` / `fast_output_mtok`, and the
    prompt-cache prices at the same multiples of the fast input price as of the standard one (Anthropic:
    "Prompt caching multipliers apply on top of fast mode pricing")."""
    out = dict(override)
    standard, fast = Decimal(override["input_mtok"]), Decimal(override[input_key])
    out["input_mtok"], out["output_mtok"] = fast, override[output_key]
    for k in _CACHE_KEYS:
        if k in override:
            out[k] = Decimal(override[k]) * fast / standard if standard else override[k]
    return out


def data_residency_hosts() -> frozenset[str]:
    """OpenAI's regional (data-residency) API domains."""
    return frozenset(_extra_prices()["modifiers"]["openai"]["data_residency"]["hosts"])


def data_residency_uplift(model: str, host: str) -> Decimal | None:
    """The multiplier an OpenAI data-residency (regional processing) endpoint charges on `model`'s token
    prices (data/extra_prices.yaml `modifiers.openai.data_residency`); None when it charges none.
    `host`: "" for an endpoint known to be regional whatever its name (the provider's `data_residency`)."""
    rule = _extra_prices()["modifiers"]["openai"]["data_residency"]
    if host and host not in rule["hosts"]:
        return None
    if not any(model == m or model.startswith(m + "-") for m in rule["models"]):
        return None
    return Decimal(str(rule["multiplier"]))


def _with_modifiers(rates: Rates, provider_id: str | None, speeds: Mapping[str, Rates]) -> Rates:
    """`rates` with its speed variants and the provider's inference-geography multipliers
    (data/extra_prices.yaml `modifiers`), each speed variant carrying the same multipliers."""
    rule = _extra_prices()["modifiers"].get(provider_id or "", {})
    geos = (
        {} if _legacy_geo(rates.model, rule) else {k: Decimal(str(v)) for k, v in rule.get("inference_geo", {}).items()}
    )
    if not geos and not speeds:
        return rates
    speeds = {k: replace(v, geos=geos) for k, v in speeds.items()}
    return replace(rates, speeds=speeds, geos=geos)


def _legacy_geo(model: str, rule: Mapping[str, Any]) -> bool:
    """Whether `model` is one that refuses `inference_geo` (data/extra_prices.yaml `inference_geo_legacy`)."""
    for m in rule.get("inference_geo_legacy", ()):
        if model.startswith(m) if m.endswith("-") else model == m or re.fullmatch(re.escape(m) + r"-\d{8}", model):
            return True
    return False


def _with_extras(rates: Rates, provider_id: str | None) -> Rates:
    """`rates` with the units genai-prices leaves unpriced filled from data/extra_prices.yaml."""
    extra = _extra_prices().get(provider_id or "", {})
    key = next((k for k in extra if rates.model == k or rates.model.startswith(k + "-20")), None)
    if key is None:
        return rates
    fill: dict[str, Any] = {  # the unit fields only; `replace` checks the names
        name: _tiered(extra[key][price_key])
        for name, price_key, _ in TOKEN_UNITS
        if price_key in extra[key] and not getattr(rates, name)
    }
    return replace(rates, **fill) if fill else rates


@cache
def _extra_prices() -> dict[str, Any]:
    import importlib.resources

    import yaml

    loaded: dict[str, Any] = yaml.safe_load(
        (importlib.resources.files("paymaster") / "data" / "extra_prices.yaml").read_text()
    )
    return loaded
