"""Embeddings requests: input tokens, bounded from above; there is no output.

Each input is billed at most the model's input limit (the API refuses a longer one, unbilled) and a
request at most its total limit (data/responses.yaml `embeddings`): a string by its UTF-8 bytes (a
byte-level BPE token covers at least one byte), a token array by its length.
"""

from __future__ import annotations

from typing import Any

from . import Measure
from .responses import conf


def measure(body: dict[str, Any]) -> Measure:
    from ..wire.embeddings import inputs  # the wire module checks the shape (and imports this package)

    limits = conf()["embeddings"]
    per_input, per_request = limits["max_input_tokens"], limits["max_request_tokens"]
    total = 0
    for item in inputs(body):
        n = len(item.encode()) if isinstance(item, str) else len(item)
        total += min(n, per_input)
    return Measure(text=min(total, per_request))
