"""`read_counts` reads a plain int directly (the hot path) and everything else through `count` /
`optional_count`: the result is the same as reading every path through them, for any JSON value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.wire import anthropic, openai
from paymaster.wire.usage_fields import Paths, count, optional_count, read_counts

ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, -1), st.floats(allow_nan=False), st.text(max_size=3))
VALUES = st.one_of(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12), ODD)  # mostly counts


def reference(u: dict[str, Any], required: Paths, optional: Paths) -> list[int] | None:
    out = []
    for group, read in ((required, count), (optional, optional_count)):
        for head, rest in group:
            node: Any = u
            for part in (head, *rest):
                node = node.get(part) if isinstance(node, dict) else None
            n = read(node)
            if n is None:
                return None
            out.append(n)
    return out


@st.composite
def usage_objects(draw, required: Paths, optional: Paths) -> dict[str, Any]:
    """A usage object with some of the paths set (to any JSON scalar, or an object where a parent is)."""
    u: dict[str, Any] = {}
    for head, rest in required + optional:
        if draw(st.integers(0, 4)) == 0:
            continue
        if rest and draw(st.booleans()):
            parent = u.setdefault(head, {})
            if isinstance(parent, dict):
                parent[rest[0]] = draw(VALUES)
        else:
            u[head] = draw(VALUES)
    return u


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_read_counts_equals_reading_each_path_through_count(data):
    wire = data.draw(st.sampled_from([anthropic, openai]))
    u = data.draw(usage_objects(wire.REQUIRED, wire.OPTIONAL))
    assert read_counts(u, wire.REQUIRED, wire.OPTIONAL) == reference(u, wire.REQUIRED, wire.OPTIONAL)
