"""`read_counts` reads a plain int directly (the hot path) and everything else through `count` /
`optional_count`: the result is the same as reading every path through them, for any JSON value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.wire import anthropic, openai
from paymaster.wire.usage_fields import Paths, _timing, count, optional_count, read_counts, unknown_counts

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


def reference_unknown(obj: Any, known: Any) -> list[str]:
    """The specification, as a plain walk: every field looked at, every dotted name built."""

    def walk(node: Any, rules: Any, path: str):
        items = node if isinstance(node, list) else ()
        for item in items:
            yield from walk(item, rules, path)
        for key, value in node.items() if isinstance(node, dict) else ():
            name = f"{path}.{key}" if path else str(key)
            if key in rules:
                yield from walk(value, rules[key], name) if rules[key] is not None else ()
            elif isinstance(value, dict | list):
                yield from walk(value, {}, name)
            elif type(value) in (int, float) and value > 0 and not _timing(key):
                yield name

    return list(walk(obj, known, ""))


def json_like(names: list[str]):
    """JSON values whose object keys are mostly names a decoder knows, sometimes not."""
    keys = st.sampled_from([*names, "extra_tokens", "latency_ms", "x"])
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-2, 5), st.floats(-1, 2), st.text(max_size=2)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=5)),
        max_leaves=12,
    )


def _known_names(known: Any) -> list[str]:
    return [n for k, v in known.items() for n in (k, *(_known_names(v) if v else ()))]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_unknown_counts_flags_what_the_plain_walk_flags(data):
    wire = data.draw(st.sampled_from([anthropic, openai]))
    obj = data.draw(json_like(_known_names(wire.KNOWN)))
    assert unknown_counts(obj, wire.KNOWN) == reference_unknown(obj, wire.KNOWN)


CASES = [  # (usage object, Anthropic fields flagged)
    ({"cache_creation": [{"ephemeral_5m_input_tokens": 3, "x_tokens": 2}]}, ["cache_creation.x_tokens"]),
    ({"cache_creation": None, "server_tool_use": {}, "output_tokens_details": 0}, []),
    ({"server_tool_use": {"web_search_requests": 1, "code_runs": 4}}, ["server_tool_use.code_runs"]),
    ({"novel": {"deep": [{"n": 2.5}]}, "novel_ms": 40, "input_tokens": 5}, ["novel.deep.n"]),
    ({"iterations": [{"input_tokens": 9}], "speed": 3}, []),
]


def test_unknown_counts_cases():
    for obj, flagged in CASES:
        assert unknown_counts(obj, anthropic.KNOWN) == reference_unknown(obj, anthropic.KNOWN) == flagged
