"""Property: whatever usage object a provider sends, no billable-looking count is dropped — it is read
into a priced field, or listed in `Usage.unpriced` (booked at the worst case), or the whole usage is
unusable (booked at the worst case); and a usable usage never reports less input than its parts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.wire import anthropic as wire_anthropic
from paymaster.wire import openai as wire_openai

counts = st.integers(min_value=0, max_value=10**7)
bad = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3), st.integers(max_value=-1))
# names a provider might add; timings (`*_time`, `*_ms`, `*latency*`) are the documented exception
novel = st.from_regex(r"[a-z]{3,12}_(tokens|requests|units|count|uses)", fullmatch=True)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(None), value)


@st.composite
def anthropic_usage(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    u: dict[str, Any] = {}
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        v = draw(maybe(st.one_of(counts, counts, bad)))
        if v is not None:
            u[key] = v
    if draw(st.booleans()):
        u["cache_creation"] = {"ephemeral_5m_input_tokens": draw(counts), "ephemeral_1h_input_tokens": draw(counts)}
    if draw(st.booleans()):
        u["server_tool_use"] = {"web_search_requests": draw(counts), "web_fetch_requests": draw(counts)}
    unknown: set[str] = set()
    for name in draw(st.lists(novel, max_size=3, unique=True)):
        if name in wire_anthropic.KNOWN:
            continue
        where = draw(st.sampled_from(["top", "server_tool_use", "cache_creation"]))
        value = draw(st.integers(min_value=1, max_value=1000))
        if where == "top":
            u[name] = value
            unknown.add(name)
        elif isinstance(u.get(where), dict) and name not in u[where]:
            u[where][name] = value
            unknown.add(f"{where}.{name}")
    return u, unknown


@settings(max_examples=300, deadline=None)
@given(anthropic_usage())
def test_no_anthropic_usage_field_is_dropped(case: tuple[dict[str, Any], set[str]]) -> None:
    u, unknown = case
    got = wire_anthropic.usage(u)
    valid = all(
        u.get(k) is None or (isinstance(u[k], int) and not isinstance(u[k], bool) and u[k] >= 0)
        for k in ("cache_read_input_tokens", "cache_creation_input_tokens")
    ) and all(
        isinstance(u.get(k), int) and not isinstance(u[k], bool) and u[k] >= 0
        for k in ("input_tokens", "output_tokens")
    )
    if not valid:
        assert got is None, "a missing or malformed count makes the usage unusable (worst case)"
        return
    assert got is not None
    assert set(got.unpriced) == unknown
    split = u.get("cache_creation") or {}
    written = max(
        u.get("cache_creation_input_tokens") or 0,
        split.get("ephemeral_5m_input_tokens", 0) + split.get("ephemeral_1h_input_tokens", 0),
    )
    assert got.input_tokens == u["input_tokens"] + (u.get("cache_read_input_tokens") or 0) + written
    assert got.input_tokens >= got.cache_read_tokens + got.cache_write_tokens >= got.cache_write_1h_tokens
    assert got.output_tokens == u["output_tokens"]
    stu = u.get("server_tool_use") or {}
    assert got.server_tool_uses.get("web_search", 0) == stu.get("web_search_requests", 0)


@st.composite
def openai_usage(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    u: dict[str, Any] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        v = draw(maybe(st.one_of(counts, counts, bad)))
        if v is not None:
            u[key] = v
    if draw(st.booleans()):
        u["prompt_tokens_details"] = {"cached_tokens": draw(counts), "audio_tokens": draw(counts)}
    if draw(st.booleans()):
        u["completion_tokens_details"] = {"reasoning_tokens": draw(counts), "rejected_prediction_tokens": draw(counts)}
    unknown: set[str] = set()
    for name in draw(st.lists(novel, max_size=3, unique=True)):
        where = draw(st.sampled_from(["top", "prompt_tokens_details", "completion_tokens_details"]))
        known = wire_openai.KNOWN if where == "top" else wire_openai.KNOWN[where]
        if name in (known or {}):
            continue
        value = draw(st.integers(min_value=1, max_value=1000))
        if where == "top":
            u[name] = value
            unknown.add(name)
        elif isinstance(u.get(where), dict):
            u[where][name] = value
            unknown.add(f"{where}.{name}")
    return u, unknown


@settings(max_examples=300, deadline=None)
@given(openai_usage())
def test_no_openai_usage_field_is_dropped(case: tuple[dict[str, Any], set[str]]) -> None:
    u, unknown = case
    got = wire_openai.usage(u, "default")
    valid = all(
        isinstance(u.get(k), int) and not isinstance(u[k], bool) and u[k] >= 0
        for k in ("prompt_tokens", "completion_tokens")
    )
    if not valid:
        assert got is None
        return
    assert got is not None and set(got.unpriced) == unknown
    assert got.input_tokens == u["prompt_tokens"] and got.output_tokens == u["completion_tokens"]
    details = u.get("prompt_tokens_details") or {}
    assert got.cache_read_tokens == details.get("cached_tokens", 0)
    assert got.input_audio_tokens == details.get("audio_tokens", 0)
