"""The levers, in the order the pipeline runs them. Each line names a module of this package that
defines `make(config, gateway) -> Lever` (see `base.py`); removing a lever is deleting its module and
its line here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .base import Lever, Services

LEVERS: tuple[str, ...] = (
    "cascade",  # verified cascades: cheaper tiers answer first, checked, escalated on failure (opt-in per task)
    "output",  # ceilings on max_tokens, structured output, brevity framing
    "compression",  # tool results pruned and stripped, long conversations summarised
    "routing",  # model: auto → the cheapest sufficient tier; fallbacks
    "caching",  # prompt-cache breakpoints, prompt_cache_key, per-agent isolation
    "response_cache",  # identical deterministic requests answered from the gateway's store
    "batch",  # x-paymaster-defer: queued for the provider's batch API at half price, answered 202
)


def build(config: Config, gateway: Services, names: tuple[str, ...] = LEVERS) -> list[Lever]:
    """The pipeline's levers, constructed in `names`' order."""
    return [import_module(f"{__name__}.{name}").make(config, gateway) for name in names]
