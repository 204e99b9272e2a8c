"""Log probabilities for an answer's text, as Chat Completions returns them with `logprobs: true`
(`choices[].logprobs.content`: one entry per token, each with `top_logprobs` alternatives).

Tokens: a word with its leading space (the sim's words are one token each), or a run of at most four
other characters (JSON). The chosen token is the most likely; values are deterministic per token.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

_TOKEN = re.compile(r"\s*\S{1,4}|\s+$")
_ALTERNATIVES = (" the", " of", " and", " to", " in", " is", " it", " was", " for", " on")
MAX_TOP = 20  # the API's limit for top_logprobs


def tokens(text: str) -> list[str]:
    """`text` cut into tokens; joined they give `text` back."""
    return _TOKEN.findall(text)


def content(text: str, top: int) -> list[dict[str, Any]]:
    """The `logprobs.content` entries of `text`, each with `top` alternatives (the token itself first)."""
    return [_entry(t, top) for t in tokens(text)]


def _entry(token: str, top: int) -> dict[str, Any]:
    logprob = -((zlib.crc32(token.encode()) % 997) + 1) / 10_000  # in [-0.0997, -0.0001]: the likeliest
    others = [a for a in _ALTERNATIVES if a != token][: max(0, top - 1)]
    alternatives = [(token, logprob)] + [(a, round(logprob - 2.0 - k, 4)) for k, a in enumerate(others)]
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in alternatives[:top]],
    }
