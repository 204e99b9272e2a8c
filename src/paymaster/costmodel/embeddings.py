"""Embeddings requests: input tokens, bounded from above; there is no output.

OpenAI's embedding models (`text-embedding-*`) bill each input at most the model's input limit (the API
refuses a longer one, unbilled) and a request at most its total limit (data/responses.yaml `embeddings`):
a string by its UTF-8 bytes (a byte-level BPE token covers at least one byte) or, `exact`, by its tokens in
cl100k_base, the encoding those models use (OpenAI cookbook, "How to count tokens with tiktoken"), plus the
chat margin; a token array by its length. Any other model (an OpenAI-compatible server's) has limits and a
tokenizer of its own: no cap is assumed, and each input may add special tokens (`special_tokens`, ours:
BERT-style models add [CLS] and [SEP]).
"""

from __future__ import annotations

from typing import Any

from . import Measure, data, margin
from .responses import conf
from .tokenizer import Counter, encoding

OPENAI_MODELS = "text-embedding-"
TOKENIZE_LIMIT = 2 * 1024 * 1024  # bytes tokenized per request (~150 ms at most); the rest by its bytes


def measure(body: dict[str, Any], exact: bool = False) -> Measure:
    from ..wire.embeddings import inputs  # the wire module checks the shape (and imports this package)

    limits = conf()["embeddings"]
    model = body.get("model")
    documented = isinstance(model, str) and model.startswith(OPENAI_MODELS)
    counter = Counter(encoding("cl100k_base"), TOKENIZE_LIMIT) if exact and documented else None
    per_input = limits["max_input_tokens"] if documented else None
    extra = 0 if documented else limits["special_tokens"]
    total = 0
    for item in inputs(body):
        if isinstance(item, list):
            n = len(item)
        elif counter is not None:
            n = counter.count(item)
        else:
            n = len(item.encode())
        n += extra
        total += min(n, per_input) if per_input is not None else n
    if counter is not None:
        oa = data()["openai"]["margin"]
        total = margin(total, oa["ratio"], oa["tokens"])
    return Measure(text=min(total, limits["max_request_tokens"]) if documented else total, exact=counter is not None)
