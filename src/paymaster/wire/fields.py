"""What both APIs accept in a request's top-level fields and the gateway reads loosely, made plain
before anything else looks at the body:

- null is "not set": OpenAI's specification marks most optional fields nullable, and clients generated
  from it send null for each one they leave unset; a null field is removed (never forwarded);
- an integer field given as a whole-number float (`max_tokens: 5.0`, `n: 1.0`) is that integer, as the
  APIs themselves accept it; it is rewritten as the integer. Any other float stays and is refused by
  the field's own check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def plain(body: dict[str, Any], integers: Iterable[str]) -> None:
    """Drop the body's null fields; write its whole-number floats in `integers` as integers."""
    if None in body.values():
        for key in [k for k, v in body.items() if v is None]:
            del body[key]
    for key in body.keys() & integers:  # the integer fields the body has (one set operation; most have one)
        value = body[key]
        if isinstance(value, float) and value.is_integer():
            body[key] = int(value)


def whole(value: Any) -> Any:
    """`value` as an int when it is a float with no fraction; otherwise unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
