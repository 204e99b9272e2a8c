"""Usage → exact cost, and the worst-case bound a call is reserved at.

Prices come from genai-prices (resolved once per model and day, then applied with plain Decimal
arithmetic: genai-prices' own `calc_price` takes ~0.3 ms, too slow for every call) and from the
`price:` overrides in fleet.yaml. The arithmetic follows genai-prices exactly, and the test-suite
checks it against `genai_prices.calc_price` to the micro-dollar:

- `input_tokens` is the total input; priced cache reads / writes are carved out of it and the rest
  is charged at the input rate;
- a tiered price applies the tier whose `start` the *total* input exceeds to all tokens;
- `requests_kcount` is a per-request price.

Money in the budget is integer nano-dollars (`to_nanos` rounds up, so spend is never under-counted);
the ledger also keeps the exact Decimal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from .call import Usage

MILLION = Decimal(1_000_000)
NANOS = Decimal(1_000_000_000)

# price keys we apply, by the usage they price (genai-prices names)
PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")
OVERRIDE_KEYS = frozenset(PRICE_KEYS) | {"requests_kcount"}

Tiered = tuple[tuple[int, Decimal], ...]  # ((start, $/MTok), ...) ascending; the base tier has start -1


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
    per_request: Decimal = Decimal(0)  # USD per request
    context_window: int | None = None
    source: str = "genai-prices"
    _flat: tuple[Decimal, Decimal] | None = field(default=None, compare=False, repr=False)

    def cost(self, u: Usage) -> Decimal:
        """Exact USD cost of one call's usage."""
        total = u.input_tokens
        uncached = total
        usd = Decimal(0)
        if self.cache_read and u.cache_read_tokens:
            usd += u.cache_read_tokens * _at(self.cache_read, total)
            uncached -= u.cache_read_tokens
        if u.cache_write_tokens:
            write_5m = u.cache_write_tokens
            if self.cache_write_1h and u.cache_write_1h_tokens:
                usd += u.cache_write_1h_tokens * _at(self.cache_write_1h, total)
                write_5m -= u.cache_write_1h_tokens
                uncached -= u.cache_write_1h_tokens
            if self.cache_write:
                usd += write_5m * _at(self.cache_write, total)
                uncached -= write_5m
        if uncached < 0:
            raise ValueError(f"usage reports more cached than total input tokens: {u}")
        usd += uncached * _at(self.input, total)
        usd += u.output_tokens * _at(self.output, total)
        return usd / MILLION + self.per_request

    def worst_case(self, input_bound: int, output_bound: int) -> Decimal:
        """The most a call with at most these tokens can cost: every input token at the highest
        input rate that can apply (cache writes included), every output token at the output rate."""
        top_in, top_out = self._top(input_bound)
        return (input_bound * top_in + output_bound * top_out) / MILLION + self.per_request

    def _top(self, input_bound: int) -> tuple[Decimal, Decimal]:
        """(highest input rate, highest output rate) for inputs up to `input_bound`; flat prices are cached."""
        flat = self._flat
        if flat is not None:
            return flat
        top_in = max(
            _max_upto(t, input_bound) for t in (self.input, self.cache_read, self.cache_write, self.cache_write_1h) if t
        )
        return top_in, _max_upto(self.output, input_bound)

    def __post_init__(self) -> None:
        tiers = (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h)
        if not any(len(t) > 1 for t in tiers):  # no long-context tiers: the top rates never change
            flat = max(t[0][1] for t in tiers[:1] + tiers[2:] if t), self.output[0][1]
            object.__setattr__(self, "_flat", flat)

    def input_rate(self) -> Decimal:
        """USD per uncached input token (base tier)."""
        return self.input[0][1] / MILLION

    def cache_read_rate(self) -> Decimal:
        """USD per input token read from the cache (the input rate where the model has no cache price)."""
        return (self.cache_read or self.input)[0][1] / MILLION

    def output_rate(self, input_bound: int) -> Decimal:
        """Worst-case USD per output token for a call of this input size."""
        return self._top(input_bound)[1] / MILLION


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


class PriceTable:
    """Model name → Rates, from genai-prices plus fleet.yaml overrides."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides = {name: dict(p) for name, p in (overrides or {}).items()}
        self._cache: dict[tuple[str, str | None, int], Rates] = {}

    def rates(self, model: str, provider_id: str | None = None, when: datetime | None = None) -> Rates:
        # genai-prices prices can change by date: resolved once per model and UTC day
        day = int((when.timestamp() if when else time.time()) // 86400)
        key = (model, provider_id, day)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._resolve(model, provider_id, when)
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
            return Rates(
                model=model,
                input=_tiered(override.get("input_mtok", 0)),
                output=_tiered(override.get("output_mtok", 0)),
                cache_read=_tiered(override.get("cache_read_mtok")),
                cache_write=_tiered(override.get("cache_write_mtok")),
                cache_write_1h=_tiered(override.get("cache_write_1h_mtok")),
                per_request=Decimal(override.get("requests_kcount", 0)) / 1000,
                context_window=override.get("context_window"),
                source="config",
            )
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
        except LookupError as e:
            raise UnknownModel(
                f"no price for model {model!r}"
                + (f" at provider {provider_id!r}" if provider_id else "")
                + " in genai-prices; add a `price:` override for it under `models:` in fleet.yaml"
            ) from e
        price = info.get_prices(when or datetime.now(UTC))
        per_request = price.requests_kcount
        return Rates(
            model=model,
            input=_tiered(price.input_mtok) or ((-1, Decimal(0)),),
            output=_tiered(price.output_mtok) or ((-1, Decimal(0)),),
            cache_read=_tiered(price.cache_read_mtok),
            cache_write=_tiered(price.cache_write_mtok),
            cache_write_1h=_tiered(price.cache_write_1h_mtok),
            per_request=Decimal(per_request) / 1000 if per_request is not None else Decimal(0),
            context_window=info.context_window,
        )
