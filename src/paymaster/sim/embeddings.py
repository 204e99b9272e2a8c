"""The OpenAI Embeddings API as the simulator speaks it (developers.openai.com/api/reference/resources/embeddings):
`input` a string, strings, token ids or lists of them (at most 2,048 inputs, each at most 8,192 tokens, 300,000
in all); `dimensions` (text-embedding-3 models only, at most the model's); `encoding_format` float or base64
(little-endian float32). Vectors are deterministic unit vectors seeded by the input.
"""

from __future__ import annotations

import base64
import math
import random
import struct
from typing import Any

from ..costmodel.tokenizer import encoding
from .asgi import Reply, json_reply
from .ids import new_id
from .openai import OpenAIWire
from .text import seed

DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS, MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS = 2048, 8192, 300_000


class EmbeddingsWire(OpenAIWire):
    name = "embeddings"

    def create(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return self.error(400, "The request body must be a JSON object.", code="invalid_type")
        model = body.get("model")
        if model not in DIMENSIONS:
            return self.error(404, f"The model '{model}' does not exist or you do not have access to it.",
                              code="model_not_found")  # fmt: skip
        items = _inputs(body.get("input"))
        if items is None:
            return self.error(400, "'input' : input must be a string, an array of strings, an array of tokens, or "
                              "an array of token arrays, and not empty", param="input")  # fmt: skip
        if len(items) > MAX_INPUTS:
            return self.error(400, f"'input' : maximum {MAX_INPUTS} inputs per request", param="input")
        enc = encoding("cl100k_base")
        counts = [len(enc.encode_ordinary(i)) if isinstance(i, str) else len(i) for i in items]
        for n in counts:
            if n > MAX_INPUT_TOKENS:
                return self.error(400, f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
                                  f"requested {n} tokens in the input. Please reduce your input.")  # fmt: skip
        if sum(counts) > MAX_REQUEST_TOKENS:
            return self.error(400, f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
                              param="input")  # fmt: skip
        dims = body.get("dimensions")
        full = DIMENSIONS[model]
        if dims is not None:
            if model == "text-embedding-ada-002":
                return self.error(400, "This model does not support specifying dimensions.", param="dimensions")
            if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= full:
                return self.error(400, f"Invalid value for 'dimensions' = {dims}. Must be between 1 and {full}.",
                                  param="dimensions")  # fmt: skip
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return self.error(400, f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                              param="encoding_format", code="invalid_value")  # fmt: skip
        data = []
        for i, item in enumerate(items):
            vec = _vector(seed(item), dims or full)
            value: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if fmt == "base64" else vec
            data.append({"object": "embedding", "index": i, "embedding": value})
        total = sum(counts)
        body_out = {"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": total, "total_tokens": total}}  # fmt: skip
        return json_reply(200, body_out, [(b"x-request-id", new_id("req_").encode())])


def _inputs(inp: Any) -> list[Any] | None:
    if isinstance(inp, str):
        return [inp] if inp else None
    if not isinstance(inp, list) or not inp:
        return None
    if all(isinstance(t, int) and not isinstance(t, bool) for t in inp):
        return [inp]
    for item in inp:
        ok = (isinstance(item, str) and item) or (
            isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )
        if not ok:
            return None
    return list(inp)


def _vector(s: int, n: int) -> list[float]:
    rng = random.Random(s)
    v = [rng.gauss(0, 1) for _ in range(n)]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]
