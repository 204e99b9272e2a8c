"""Batch prices: genai-prices' `processing: batch` variant where it gives one, else the documented 50 %
discount on every unit (Anthropic: docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing;
OpenAI: platform.openai.com/docs/guides/batch, "50% lower costs"). A `price:` override in fleet.yaml is
halved the same way. Per-request and server-tool fees keep their real-time price (no published batch rate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING

from ..config import PRICE_PROVIDER, Config
from ..pricing import Rates, _rates, _with_extras

if TYPE_CHECKING:
    from ..call import Call

# platform.claude.com/docs/en/about-claude/pricing ("Fast mode pricing"): "Fast mode is not available with the
# Batch API": batch prices carry no speed variants, and a fast-mode request is refused before it is queued
FAST_IN_BATCH = "speed: fast mode is not available with the Batch API: drop speed or send the call in real time"


def fast_mode(call: Call) -> bool:
    """Whether `call` asks for Anthropic's fast mode, which the Batch API does not take."""
    return call.api == "anthropic" and call.body.get("speed") == "fast"


HALF = Decimal("0.5")


def batch_rates(config: Config, model: str) -> Rates:
    provider = PRICE_PROVIDER[config.models[model].provider.kind]
    return _cached(config.prices, model, provider, int(datetime.now(UTC).timestamp() // 86400))


@cache
def _cached(prices: object, model: str, provider: str | None, day: int) -> Rates:
    real: Rates = prices.rates(model, provider)  # type: ignore[attr-defined]
    if real.source == "genai-prices":
        listed = _listed(model, provider)
        if listed is not None:  # the inference-geography premium stacks on batch prices too
            factor = prices.uplift_of(model)  # type: ignore[attr-defined]  # and a data-residency endpoint's
            return replace(listed.scaled(factor) if factor else listed, geos=real.geos)
    return halved(real)


def _listed(model: str, provider: str | None) -> Rates | None:
    """genai-prices' batch prices for the model, when it lists them (differing from the standard ones)."""
    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
        now = datetime.now(UTC)
        batch = info.get_prices(now, {"processing": "batch"})
        if batch == info.get_prices(now):
            return None
    except (LookupError, TypeError, ValueError):
        return None
    return _with_extras(_rates(model, batch, info.context_window, "genai-prices batch", {}), provider)


def halved(r: Rates) -> Rates:
    """Every token price of `r` halved (its service tiers and speed variants dropped — fast mode is not available
    with the Batch API, levers/batch.py — its geographies kept)."""
    return replace(r.scaled(HALF), source=r.source + " batch (50%)", tiers={}, speeds={}, geos=r.geos)
