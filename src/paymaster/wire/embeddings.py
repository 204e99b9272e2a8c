"""The OpenAI Embeddings API on the wire (POST /v1/embeddings; OpenAI-compatible servers speak it too):
request checks, usage, error bodies (OpenAI's shape). Never streamed; nothing but input is billed.

`input` is a string, a list of strings, a list of token ids, or a list of such lists
(developers.openai.com/api/reference/resources/embeddings/methods/create); `dimensions`,
`encoding_format` and `user` pass through untouched.
"""

from __future__ import annotations

from typing import Any

from ..call import Usage
from ..costmodel.responses import conf
from ..errors import BadRequest
from . import openai as wire_openai
from .usage_fields import Known, paths, read_counts, unknown_counts

API = "embeddings"


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a model name string)", param="model")
    inputs(body)
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise BadRequest(f"encoding_format: must be 'float' or 'base64', got {fmt!r}", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise BadRequest("dimensions: must be a positive integer", param="dimensions")
    if body.get("stream") not in (None, False):
        raise BadRequest("stream: embeddings are not streamed", param="stream")
    return model, None, False


def inputs(body: dict[str, Any]) -> list[str | list[int]]:
    """The request's inputs, each a string or a list of token ids; a 400 for any other shape, an empty
    input, or more inputs than the API takes."""
    inp = body.get("input")
    limit = conf()["embeddings"]["max_inputs"]
    if isinstance(inp, str):
        items: list[Any] = [inp]
    elif isinstance(inp, list) and inp and all(_token(t) for t in inp):
        items = [inp]
    elif isinstance(inp, list) and inp:
        items = inp
    else:
        raise BadRequest("input: must be a non-empty string, list of strings or list of token arrays", param="input")
    if len(items) > limit:
        raise BadRequest(f"input: at most {limit} inputs per request, got {len(items)}", param="input")
    for i, item in enumerate(items):
        ok = (isinstance(item, str) and item) or (isinstance(item, list) and item and all(_token(t) for t in item))
        if not ok:
            raise BadRequest(f"input[{i}]: must be a non-empty string or a non-empty list of token ids", param="input")
    return items


def _token(t: Any) -> bool:
    return isinstance(t, int) and not isinstance(t, bool) and t >= 0


def set_max_tokens(body: dict[str, Any], n: int, provider_kind: str) -> None:
    """Embeddings have no output to bound."""


KNOWN: Known = {"prompt_tokens": None, "total_tokens": None}
REQUIRED = paths("prompt_tokens")


def answer_usage(answer: Any) -> Usage | None:
    if not isinstance(answer, dict):
        return None
    u = answer.get("usage")
    if not isinstance(u, dict):
        return None
    counts = read_counts(u, REQUIRED, ())
    if counts is None:
        return None
    return Usage(counts[0], 0, unpriced=tuple(unknown_counts(u, KNOWN)))


StreamWatch = wire_openai.StreamWatch  # never used: embeddings are not streamed
error_body = wire_openai.error_body
stream_error = wire_openai.stream_error
models_body = wire_openai.models_body
