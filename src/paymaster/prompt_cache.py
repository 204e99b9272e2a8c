"""What the providers' prompt caches accept, from `data/prompt_cache.yaml` (read once, on import).

    from paymaster.prompt_cache import MAX_BREAKPOINTS, min_cacheable_tokens
    min_cacheable_tokens("claude-haiku-4-5-20251001")   # → 4096

Anthropic caches at `cache_control` breakpoints (at most `MAX_BREAKPOINTS`), and only prefixes of
at least `min_cacheable_tokens(model)` tokens; entries live `TTL_SECONDS[ttl]` from their last use.
OpenAI caches prompts of `OPENAI_MIN_TOKENS`+ tokens automatically, hits counted in `OPENAI_STEP`s.
The price multipliers are documentation: prices themselves come from genai-prices.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml

_DATA: dict[str, Any] = yaml.safe_load(files("paymaster").joinpath("data/prompt_cache.yaml").read_text())
_ANTHROPIC: dict[str, Any] = _DATA["anthropic"]
_OPENAI: dict[str, Any] = _DATA["openai"]

MAX_BREAKPOINTS: int = _ANTHROPIC["max_breakpoints"]
LOOKBACK_BLOCKS: int = _ANTHROPIC["lookback_blocks"]
TTL_SECONDS: dict[str, int] = {name: t["seconds"] for name, t in _ANTHROPIC["ttl"].items()}
WRITE_MULTIPLIERS: dict[str, float] = {name: t["write_multiplier"] for name, t in _ANTHROPIC["ttl"].items()}
READ_MULTIPLIER: float = _ANTHROPIC["read_multiplier"]

OPENAI_MIN_TOKENS: int = _OPENAI["min_tokens"]
OPENAI_STEP: int = _OPENAI["step"]
OPENAI_TTL_SECONDS: int = _OPENAI["ttl_seconds"]
OPENAI_EXTENDED_TTL_SECONDS: int = _OPENAI["extended_ttl_seconds"]

_MINIMUMS: dict[str, int] = dict(_ANTHROPIC["min_cacheable_tokens"])
_DEFAULT_MINIMUM = _MINIMUMS.pop("default")
_PREFIXES = sorted(_MINIMUMS, key=len, reverse=True)  # most specific first


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix (in tokens) Anthropic caches for `model`, by the longest matching name prefix.

    Platform-qualified names ("us.anthropic.claude-sonnet-4-6-v1:0") are matched from "claude-".
    """
    start = model.find("claude-")
    name = model[start:] if start > 0 else model
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return _MINIMUMS[prefix]
    return _DEFAULT_MINIMUM
