"""Conversation summarisation's structure: where it cuts, what it sends, what it stores.

The property tests generate tool-heavy conversations in both APIs and check every spliced request
against `conversation_rules` (written from the providers' documents, not from the code under test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.levers.compression.summaries import Summary, SummaryStore, path_beside, prefix_hashes
from paymaster.levers.compression.summarise import (
    HEADER,
    can_cut,
    choose_cut,
    pins_closed,
    request,
    sizes,
    splice,
    take_pins,
    transcript,
)
from tests.conversation_rules import anthropic_problems, openai_problems

# a conversation is a list of steps: "u" a user text turn, an int n: an assistant turn calling n tools
# (then their results), "a" an assistant text turn
steps = st.lists(st.one_of(st.just("u"), st.just("a"), st.integers(1, 3)), min_size=1, max_size=30)


def build(plan: list[Any], api: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "Start the task."}]
    calls = 0
    for step in plan:
        last = msgs[-1]["role"]
        if step == "u":
            if api == "anthropic" and last == "user":
                msgs.append({"role": "assistant", "content": "Noted."})
            msgs.append({"role": "user", "content": f"More detail please, turn {len(msgs)}."})
        elif step == "a":
            if api == "anthropic" and last == "assistant":
                msgs.append({"role": "user", "content": "Go on."})
            msgs.append({"role": "assistant", "content": f"Here is what I found at {len(msgs)}."})
        else:
            if last == "assistant" and api == "anthropic":
                msgs.append({"role": "user", "content": "Go on."})
            ids = [f"call_{calls + i}" for i in range(step)]
            calls += step
            if api == "anthropic":
                msgs.append(
                    {
                        "role": "assistant",
                        "content": [{"type": "text", "text": "Looking."}]
                        + [{"type": "tool_use", "id": i, "name": "search", "input": {"q": i}} for i in ids],
                    }
                )
                msgs.append(
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": i, "content": f"result {i}"} for i in ids],
                    }
                )
            else:
                msgs.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": i, "type": "function", "function": {"name": "search", "arguments": "{}"}}
                            for i in ids
                        ],
                    }
                )
                msgs += [{"role": "tool", "tool_call_id": i, "content": f"result {i}"} for i in ids]
    return msgs


@settings(max_examples=80, deadline=None)
@given(plan=steps, api=st.sampled_from(["anthropic", "openai"]), keep=st.integers(1, 6), tail=st.integers(0, 200),
       pins=st.sets(st.integers(0, 80), max_size=4))  # fmt: skip
def test_every_spliced_conversation_is_valid(plan: list[Any], api: str, keep: int, tail: int, pins: set[int]) -> None:
    msgs = build(plan, api)
    problems = anthropic_problems if api == "anthropic" else openai_problems
    assert problems(msgs) == []  # the generator itself is valid
    size = sizes(msgs)
    cut = choose_cut(msgs, size, api, keep, tail, 0)
    if cut is None:
        return
    assert 0 < cut <= len(msgs) - keep
    assert can_cut(msgs, cut, api)
    pinned = pins_closed(msgs, {p for p in pins if p < len(msgs)}, cut, api)
    out = splice(msgs, cut, "Goal: widgets. Facts: none yet.", pinned, api)
    assert problems(out) == [], (cut, pinned)
    assert out[-(len(msgs) - cut) :] == msgs[cut:] or api == "anthropic"  # OpenAI: the tail untouched
    text = out[0]["content"] if api == "openai" else out[0]["content"][0]["text"]
    assert text.startswith(HEADER.format(n=cut))
    for i in pinned:  # pinned turns verbatim (Anthropic may merge a neighbour into them)
        m = msgs[i]
        assert any(m == o or (isinstance(o.get("content"), list) and _within(m, o)) for o in out)


def _within(m: dict[str, Any], o: dict[str, Any]) -> bool:
    c = m["content"]
    blocks = [{"type": "text", "text": c}] if isinstance(c, str) else c
    return o["role"] == m["role"] and all(b in o["content"] for b in blocks)


def test_cut_never_separates_a_tool_call_from_its_result() -> None:
    msgs = build([2, 1, "a", "u", 1, "a"], "anthropic")
    for k in range(1, len(msgs)):
        ok = can_cut(msgs, k, "anthropic")
        is_result = (
            any(b.get("type") == "tool_result" for b in msgs[k]["content"] if isinstance(b, dict))
            if isinstance(msgs[k]["content"], list)
            else False
        )
        assert ok == (not is_result)


def test_the_tail_keeps_the_latest_turns_and_what_fits() -> None:
    msgs = build(["u", "a"] * 10, "openai")
    size = [10] * len(msgs)
    assert choose_cut(msgs, size, "openai", 4, 0, 0) == len(msgs) - 4
    assert choose_cut(msgs, size, "openai", 4, 80, 0) == len(msgs) - 8
    assert choose_cut(msgs, size, "openai", 4, 80, len(msgs) - 4) is None  # nothing new to summarise


def test_openai_system_messages_stay_verbatim_and_first() -> None:
    msgs = [{"role": "system", "content": "You are terse."}, *build(["a", "u", "a", "u", "a"], "openai")]
    out = splice(msgs, 5, "S", [], "openai")
    assert out[0] == msgs[0]
    assert out[1]["role"] == "user" and out[1]["content"].endswith("S")
    assert out[2:] == msgs[5:]


def test_pins_are_taken_out_of_the_request() -> None:
    msgs = [{"role": "user", "content": "keep me", "paymaster_pin": True}, {"role": "assistant", "content": "ok"}]
    out, pinned = take_pins(msgs)
    assert pinned == {0}
    assert out[0] == {"role": "user", "content": "keep me"}
    assert "paymaster_pin" in msgs[0]  # the caller's list is left as it came
    same, none = take_pins(out)
    assert same is out and none == set()


def test_a_pinned_tool_result_brings_its_call() -> None:
    msgs = build(["u", 2, "a", "u"], "openai")  # 0 user, 1 user, 2 assistant(2 calls), 3 tool, 4 tool, 5 a, 6 u
    assert pins_closed(msgs, {4}, 6, "openai") == [2, 3, 4]
    assert pins_closed(msgs, {2}, 6, "openai") == [2, 3, 4]


def test_summary_request_in_each_api() -> None:
    msgs = build([1, "a"], "anthropic")
    body = request("anthropic", "claude-haiku-4-5", "Earlier: X=1.", msgs, 500)
    assert body["system"] and body["max_tokens"] == 500 and "temperature" not in body
    ask = body["messages"][0]["content"]
    assert "Earlier: X=1." in ask and "[assistant → tool search]" in ask and "[user tool result] result call_0" in ask
    oai = request("openai", "gpt-4.1-mini", None, build([1], "openai"), 500)
    assert [m["role"] for m in oai["messages"]] == ["system", "user"]
    assert oai["max_completion_tokens"] == 500 and "max_tokens" not in oai and "temperature" not in oai
    vllm = request("openai", "llama", None, build([1], "openai"), 500, provider_kind="openai-compatible")
    assert vllm["max_tokens"] == 500
    assert "[tool] result call_0" in transcript(build([1], "openai"), "openai")


def test_prefix_hashes_ignore_cache_markers_and_see_everything_else() -> None:
    a = [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]
    b = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    c = [{"role": "user", "content": [{"type": "text", "text": "hj"}]}]
    assert prefix_hashes(["x", "anthropic", None], a) == prefix_hashes(["x", "anthropic", None], b)
    assert prefix_hashes(["x", "anthropic", None], b) != prefix_hashes(["x", "anthropic", None], c)
    assert prefix_hashes(["x", "anthropic", None], b) != prefix_hashes(["y", "anthropic", None], b)  # per agent
    grown = prefix_hashes(["x", "anthropic", None], b + c)
    assert grown[0] == prefix_hashes(["x", "anthropic", None], b)[0]


def test_store_finds_the_longest_summarised_prefix_after_a_restart(tmp_path: Path) -> None:
    path = path_beside(str(tmp_path / "paymaster.db"))
    assert path == str(tmp_path / "paymaster.summaries.db")
    assert path_beside(f"sqlite:///{tmp_path}/paymaster.db") == path
    assert path_beside("postgresql://pm@db/ledger") == ":memory:"
    hashes = [f"h{i}" for i in range(10)]
    s = SummaryStore(path)
    assert s.longest("a", hashes) is None
    s.put("a", "h3", Summary(4, "four", "m", 7), 1.0)
    s.put("a", "h6", Summary(7, "seven", "m", 9), 2.0)
    s.put("b", "h8", Summary(9, "other agent", "m", 1), 3.0)
    assert s.longest("a", hashes) == Summary(7, "seven", "m", 9)
    s.close()
    again = SummaryStore(path)  # a new process: from SQLite
    assert again.longest("a", hashes[:5]) == Summary(4, "four", "m", 7)
    assert again.longest("a", hashes) == Summary(7, "seven", "m", 9)
    again.close()


def test_the_summariser_reads_the_callers_shape_whatever_api_it_speaks() -> None:
    """An OpenAI conversation summarised by a Claude model: its tool calls still reach the summariser."""
    body = request("anthropic", "claude-haiku-4-5", None, build([1], "openai"), 300, source="openai")
    assert "[assistant → tool search] {}" in body["messages"][0]["content"]
    assert "system" in body and body["messages"][0]["role"] == "user"
