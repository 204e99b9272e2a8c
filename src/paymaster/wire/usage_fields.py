"""Usage objects on the wire: reading their counts strictly, and finding the billable-looking fields
no decoder has a rule for. Shared by `wire.anthropic` and `wire.openai`."""

from __future__ import annotations

from typing import Any

Known = dict[str, "Known | None"]
"""A usage object's known fields: a name maps to None (a value the decoder reads) or to the known fields
of the object under it."""


MAX_COUNT = 10**12
"""More tokens (or uses) than any one call can hold, by orders of magnitude: a count above it is malformed.
Booked as it stands it would not even fit the ledger's 64-bit integers."""


def count(value: Any) -> int | None:
    """A usage count as the providers send it (a non-negative integer, below MAX_COUNT), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT else None


def optional_count(value: Any) -> int | None:
    """An optional usage count: absent or null is 0; anything but a non-negative integer is None."""
    return 0 if value is None else count(value)


Paths = tuple[tuple[str, tuple[str, ...]], ...]
"""Paths into a usage object, each as (its first key, the keys below it)."""


def paths(*dotted: str) -> Paths:
    """Dotted paths into a usage object ("cache_creation.ephemeral_1h_input_tokens"), split once."""
    return tuple((head, tuple(rest)) for head, *rest in (d.split(".") for d in dotted))


def read_counts(u: dict[str, Any], required: Paths, optional: Paths) -> list[int] | None:
    """The counts at these paths of a usage object, required ones first; None when a required one is
    missing or any is malformed (an optional one may be absent or null: 0)."""
    out: list[int] = []
    for group, read in ((required, count), (optional, optional_count)):
        for head, rest in group:
            node: Any = u.get(head)
            if rest:
                for part in rest:
                    node = node.get(part) if isinstance(node, dict) else None
            if type(node) is not int or not 0 <= node <= MAX_COUNT:  # a plain count reads as itself either way
                node = read(node)
                if node is None:
                    return None
            out.append(node)
    return out


def unknown_counts(obj: Any, known: Known, where: str = "") -> list[str]:
    """The billable-looking fields of a usage object the gateway does not know: any positive number under
    a name it has no rule for, at any depth (timings — `*_time`, `*_ms`, `*latency*` — excepted, as some
    compatible servers report them). They are booked at the worst case and flagged, never dropped."""
    out: list[str] = []
    if isinstance(obj, list):
        for item in obj:
            out += unknown_counts(item, known, where)
        return out
    if not isinstance(obj, dict):
        return out
    for key, value in obj.items():
        sub = known.get(key, _UNKNOWN)
        if sub is None:  # a count the decoder reads (most fields)
            continue
        if sub is not _UNKNOWN:
            if value:  # an empty or null object holds nothing
                out += unknown_counts(value, sub, _name(where, key))
        elif isinstance(value, dict | list):
            out += unknown_counts(value, {}, _name(where, key))
        elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and not _timing(key):
            out.append(_name(where, key))
    return out


_UNKNOWN: Known = {}  # `known.get`'s answer for a field with no rule (one lookup per field, not two)


def _name(where: str, key: Any) -> str:
    """A field's dotted name, built only for the fields that need one (the walk runs on every call)."""
    return f"{where}.{key}" if where else str(key)


def _timing(key: str) -> bool:
    return key.endswith(("_time", "_ms")) or "latency" in key
