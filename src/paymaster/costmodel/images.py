"""Image tokens by each provider's documented formula, bounded from above.

The figures (per model family) are in data/costmodel.yaml, each with its document; the rules:

- Anthropic (platform.claude.com/docs/en/build-with-claude/vision, "Evaluate image size"): an image
  above the model's native resolution (long edge, pixel count) is scaled down keeping its aspect
  ratio, then padded to a multiple of 28 px; it costs ceil(w/28) * ceil(h/28) visual tokens (earlier
  revisions of the page: about w*h/750). We take the larger of the two, plus 5% and 16 tokens,
  never more than the model's maximum plus the same margin.
- OpenAI (developers.openai.com/api/docs/guides/images-vision, "Calculating costs"):
  tile models: `detail: low` costs `base`; otherwise the image is fit in 2048x2048, its shortest side
  scaled to 768 px, and costs `base` + `tile` per 512 px tile. Whether an image smaller than 768 px
  is scaled *up* is not said: we take the larger of both readings. `auto` is bounded as `high`.
  patch models: ceil(w/32) * ceil(h/32) patches, scaled down to fit `cap`, times `multiplier`
  (rounded up); the patches before scaling, capped, bound it.
- Unknown size (a URL, a file id, an unreadable header): the most the formula can give.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

ANTHROPIC_MARGIN = (Decimal("1.05"), 16)


def anthropic_tokens(size: tuple[int, int] | None, spec: dict[str, Any]) -> int:
    cap: int = math.ceil(spec["max_tokens"] * ANTHROPIC_MARGIN[0]) + ANTHROPIC_MARGIN[1]
    if size is None:
        return cap
    w, h = size
    scale = min(1.0, spec["long_edge"] / max(w, h), math.sqrt(spec["max_pixels"] / (w * h)))
    w, h = max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))
    tokens: int = max(math.ceil(w * h / 750), math.ceil(w / 28) * math.ceil(h / 28))
    return min(cap, math.ceil(tokens * ANTHROPIC_MARGIN[0]) + ANTHROPIC_MARGIN[1])


def openai_tokens(size: tuple[int, int] | None, detail: Any, spec: dict[str, Any]) -> int:
    if "multiplier" in spec:
        mult = Decimal(str(spec["multiplier"]))
        cap = int(spec["cap"])
        patches = cap if size is None else min(cap, math.ceil(size[0] / 32) * math.ceil(size[1] / 32))
        return math.ceil(patches * mult)
    base, tile = int(spec["base"]), int(spec["tile"])
    if detail == "low":
        return base
    if size is None:
        return base + tile * 8  # 768 x 2048 after scaling: 2 x 4 tiles, the most there can be
    return base + tile * max(_tiles(*size, upscale=False), _tiles(*size, upscale=True))


def _tiles(w: float, h: float, *, upscale: bool) -> int:
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768 or upscale:
        s = 768 / min(w, h)
        w, h = w * s, h * s
        if max(w, h) > 2048:  # an upscaled sliver: keep it within the 2048 square
            s = 2048 / max(w, h)
            w, h = w * s, h * s
    return min(8, math.ceil(w / 512 - 1e-9) * math.ceil(h / 512 - 1e-9))
