"""The hot path's shortcuts give the answers of the plain code they stand in for (hypothesis): the
prompt-caching lever's breakpoint check read from the JSON, the request fields made plain, the
request body's depth check walked level by level, the breakpoint placement's per-block counts, the cost
model's coarse OpenAI walk, and the caching lever's counterfactual usage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from hypothesis import example, given, settings
from hypothesis import strategies as st

from paymaster import costmodel
from paymaster.call import Call, Usage
from paymaster.costmodel import openai as costmodel_openai
from paymaster.http import MAX_JSON_DEPTH, too_deep
from paymaster.levers import cache_breakpoints
from paymaster.levers.base import Bill, LeverContext
from paymaster.levers.caching import Caching, has_breakpoint
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


def plain_text_chars(node: Any) -> int:
    """The plain walk: the length of every string value, base64 media data and cache_control objects left out."""
    if isinstance(node, str):
        return len(node)
    if isinstance(node, list):
        return sum(plain_text_chars(v) for v in node)
    if isinstance(node, dict):
        if node.get("type") == "base64" and "data" in node:
            return 0
        return sum(plain_text_chars(v) for k, v in node.items() if isinstance(v, str) or k != "cache_control")
    return 0


BLOCK_KEYS = st.sampled_from(["type", "text", "data", "cache_control", "content", "source", "ttl", "x"])
BLOCKISH = st.recursive(
    SCALARS | st.sampled_from(["base64", "text", "tool_result", "document", "1h"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(BLOCK_KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(BLOCKISH)
def test_breakpoint_text_count_matches_the_walk(node: Any) -> None:
    assert cache_breakpoints._text_chars(node) == plain_text_chars(node)


def plain_previous_turn(spots: list[Any]) -> int | None:
    last_message = max((s.message for s in spots), default=-1)
    replies = {s.message for s in spots if s.section == "messages" and s.role == "assistant"}
    before = [m for m in replies if m < last_message]
    if not before:
        return None
    reply = max(before)
    return next((i for i in range(len(spots) - 1, -1, -1) if spots[i].message < reply and spots[i].markable), None)


def plain_nested(block: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """Blocks inside a tool_result or document, and the TTLs of their breakpoints, looked up every time."""
    if block.get("type") not in ("tool_result", "document"):
        return 0, ()
    inner = cache_breakpoints._inner(block)
    return len(inner), tuple(t for b in inner if (t := cache_breakpoints._ttl(b.get("cache_control"))))


def plain_running_totals(body: dict[str, Any]) -> list[tuple[int, int]]:
    """(a quarter of the text characters, blocks) through each top-level block of a body without tools; a
    message's nested blocks count, a system block's do not."""
    chars = blocks = 0
    out = []
    system = body.get("system")
    prompt = [b for b in system if isinstance(b, dict)] if isinstance(system, list) else [system] if system else []
    for block in prompt:
        chars, blocks = chars + plain_text_chars(block), blocks + 1
        out.append((chars // 4, blocks))
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars, blocks = chars + len(content), blocks + 1
            out.append((chars // 4, blocks))
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict):
                chars, blocks = chars + plain_text_chars(block), blocks + 1 + plain_nested(block)[0]
                out.append((chars // 4, blocks))
    return out


ROLES = st.sampled_from(["user", "assistant", "user", 7])
CONTROL = st.sampled_from([{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}, "x"])
TYPES = st.sampled_from(["text", "tool_result", "document", "tool_use", "thinking", "image", 3])
INNER = st.lists(
    st.fixed_dictionaries({"type": TYPES}, optional={"text": st.text(max_size=2), "cache_control": CONTROL}) | BLOCKISH,
    max_size=3,
)
BLOCK = st.fixed_dictionaries(
    {"type": TYPES},
    optional={
        "text": st.text(max_size=3),
        "content": st.text(max_size=3) | INNER,
        "source": st.fixed_dictionaries({"type": st.sampled_from(["content", "base64"])}, optional={"content": INNER}),
        "cache_control": CONTROL,
    },
)
CONTENT = st.text(max_size=3) | st.lists(BLOCK | BLOCKISH, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({"role": ROLES, "content": CONTENT}), max_size=6),
    st.none() | st.text(max_size=3) | st.lists(BLOCK, max_size=3),
)
@example(
    [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "text", "text": "t"}, {"type": "tool_use", "input": {"a": "b"}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "content": [{"type": "text", "text": "r", "cache_control": {}}]}],
        },
    ],
    None,
)
def test_breakpoint_spots_match_the_plain_lookups(messages: list[Any], system: Any) -> None:
    body: dict[str, Any] = {"messages": messages, **({"system": system} if system is not None else {})}
    spots = cache_breakpoints._spots(body, 0)
    assert [(s.tokens, s.blocks) for s in spots] == plain_running_totals(body)
    assert cache_breakpoints._previous_turn(spots) == plain_previous_turn(spots)
    for s in spots:
        if s.block is not None:
            assert (s.inner, s.nested) == plain_nested(s.block)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["role", "content", "name", "refusal", "x"]), JSON), max_size=4))
def test_coarse_openai_walk_skips_only_what_counts_nothing(messages: list[dict[str, Any]]) -> None:
    """Coarse, the cost model's OpenAI walk leaves out string (or other non-list) content and unknown message
    fields: walked, each counts 0 tokens and adds nothing to the measure."""
    conf = costmodel.data()["openai"]
    m = costmodel.Measure()
    w = costmodel_openai._Walk(m, costmodel.spec_for(conf["images"], "gpt-4.1-mini"), conf, None)
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            assert w.content(content) == 0
        for key, value in message.items():
            if key not in costmodel_openai.KNOWN_FIELDS and value is not None:
                assert w.json(value) == 0
    assert m == costmodel.Measure() and w.counted == 0


COUNTS = st.integers(0, 3)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Usage,
        *[COUNTS] * 9,
        server_tool_uses=st.dictionaries(st.sampled_from(["web_search", "web_fetch"]), COUNTS, max_size=2),
        service_tier=st.sampled_from(["", "priority"]),
        unpriced=st.sampled_from([(), ("x",)]),
    )
)
def test_caching_undo_matches_the_plain_copy(u: Usage) -> None:
    """The caching lever's counterfactual: the same usage with its cache reads and writes as plain input."""
    plain = replace(u, cache_read_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0, cache_audio_read_tokens=0)
    bill = Bill("m", u)
    got = Caching.undo(cast(Caching, None), bill, cast(Call, None), cast(LeverContext, None))
    assert got is bill if plain == u else (got.model, got.usage) == ("m", plain)
