"""The hot path's shortcuts give the answers of the plain code they stand in for (hypothesis): the
prompt-caching lever's breakpoint check read from the JSON, the request fields made plain, and the
request body's depth check walked level by level."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.http import MAX_JSON_DEPTH, too_deep
from paymaster.levers.caching import has_breakpoint
from paymaster.wire import anthropic as wire_anthropic
from paymaster.wire import openai as wire_openai
from paymaster.wire.fields import plain

# integers as orjson reads them (a body is parsed by orjson: beyond 64 bits it gives a float)
KEYS = st.sampled_from(["cache_control", "type", "text", "content", "cache_control:", '"cache_control"', "x"])
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | KEYS
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(), inner, max_size=4),
    max_leaves=20,
)


def asks(node: Any) -> bool:
    """The plain walk: a `cache_control` key in any object at any depth."""
    if isinstance(node, dict):
        return "cache_control" in node or any(asks(v) for v in node.values())
    if isinstance(node, list):
        return any(asks(v) for v in node)
    return False


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["tools", "system", "messages", "metadata", "cache_control", "model"]), JSON))
def test_breakpoint_check_matches_the_walk(body: dict[str, Any]) -> None:
    expected = "cache_control" in body or any(asks(body.get(k)) for k in ("tools", "system", "messages"))
    assert has_breakpoint(body) is expected


def test_breakpoint_check_ignores_the_words_in_text() -> None:
    text = {"role": "user", "content": [{"type": "text", "text": '"cache_control": {"type": "ephemeral"}'}]}
    assert not has_breakpoint({"messages": [text, {"role": "user", "content": "cache_control"}]})
    assert not has_breakpoint({"metadata": {"cache_control": {}}, "messages": []})  # not where it is read
    nested = {"type": "tool_result", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}
    assert has_breakpoint({"messages": [{"role": "user", "content": [nested]}]})


def reference_plain(body: dict[str, Any], integers: tuple[str, ...]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if v is not None}
    for k in integers:
        v = out.get(k)
        if isinstance(v, float) and v.is_integer():
            out[k] = int(v)
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["max_tokens", "max_completion_tokens", "n", "top_k", "seed", "top_logprobs", "model", "x"]),
        st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3),
    )
)
def test_plain_fields(body: dict[str, Any]) -> None:
    for integers in (wire_openai.INTEGERS, wire_anthropic.INTEGERS):
        got = dict(body)
        plain(got, integers)
        want = reference_plain(body, tuple(integers))
        assert got == want and list(got) == list(want)
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


def stack_depth(node: Any, limit: int) -> bool:
    """The plain walk: a stack of (node, depth)."""
    stack = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        items = n.values() if isinstance(n, dict) else n if isinstance(n, list) else None
        if items is None:
            continue
        if depth > limit:
            return True
        stack.extend((v, depth + 1) for v in items if isinstance(v, dict | list))
    return False


@settings(max_examples=150, deadline=None)
@given(JSON, st.integers(min_value=1, max_value=6))
def test_depth_check_matches_the_walk(node: Any, limit: int) -> None:
    assert too_deep(node, limit) is stack_depth(node, limit)


def test_depth_check_at_the_limit() -> None:
    for depth in (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1):
        node: list[Any] = []
        inner = node
        for _ in range(depth - 1):
            inner.append([])
            inner = inner[0]
        assert too_deep({"messages": node}) is (depth + 1 > MAX_JSON_DEPTH)
