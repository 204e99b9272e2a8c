"""Compression through the whole gateway: the official SDKs in front, the simulator behind.

What the provider receives is read from the simulator's request log, and checked against the
providers' documented conversation rules (`conversation_rules`, written from the documents).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from paymaster.levers.compression import TASK, Squeezed
from paymaster.levers.compression.summarise import HEADER
from paymaster.sim import Simulator
from tests.conversation_rules import anthropic_problems, openai_problems

SMALL = {"threshold_tokens": 1500, "keep_turns": 2, "keep_tokens": 200, "max_tokens": 200}


def agents(summarise: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    comp: dict[str, Any] = {"summarise": summarise or {"enabled": False}, **extra}
    return {
        "cara": {
            "model": "claude-sonnet-4-6",
            "models": ["claude-sonnet-4-6", "claude-haiku-4-5"],
            "daily_usd": 5,
            "max_tokens": 1024,
            "compression": comp,
        },
        "otto": {
            "model": "gpt-4o",
            "models": ["gpt-4o", "gpt-4.1-mini"],
            "daily_usd": 5,
            "max_tokens": 1024,
            "compression": comp,
        },
    }


def search_result(n: int = 40) -> str:
    return orjson.dumps(
        {
            "request_id": "req_1",
            "items": [
                {"title": f"Widget {i}", "url": f"https://shop.example/{i}", "thumbnail": None, "etag": f"e{i}"}
                for i in range(n)
            ],
            "next_page_token": "abc",
        },
        option=orjson.OPT_INDENT_2,
    ).decode()


def anthropic_loop(turns: int, result: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Turn {t}: find widgets, the order number is 7{t:03d}."})
        msgs.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Searching."},
                    {"type": "tool_use", "id": f"toolu_{t}", "name": "search", "input": {"q": "widgets"}},
                ],
            }
        )
        msgs.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{t}", "content": result}]}
        )
        msgs.append({"role": "assistant", "content": f"Found {t} widgets. " * 20})
    msgs.append({"role": "user", "content": "Which is cheapest?"})
    return msgs


def openai_loop(turns: int, result: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a shopping agent."}]
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Turn {t}: find widgets, the order number is 7{t:03d}."})
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"call_{t}", "type": "function", "function": {"name": "search", "arguments": "{}"}}
                ],
            }
        )
        msgs.append({"role": "tool", "tool_call_id": f"call_{t}", "content": result})
        msgs.append({"role": "assistant", "content": f"Found {t} widgets. " * 20})
    msgs.append({"role": "user", "content": "Which is cheapest?"})
    return msgs


TOOLS_A = [{"name": "search", "description": "Search.", "input_schema": {"type": "object", "properties": {}}}]
TOOLS_O = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]


def sent(sim: Simulator, model: str | None = None) -> list[dict[str, Any]]:
    return [r["body"] for r in sim.requests if model is None or r["body"].get("model") == model]


def ledger(gw: Any, agent: str) -> list[dict[str, Any]]:
    r = gw.admin("/admin/ledger", agent=agent)
    return r.json()["data"]


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_tool_results_reach_the_provider_pruned(gateway: Any, sim: Simulator, api: str) -> None:
    gw = gateway(agents=agents())
    if api == "anthropic":
        r = gw.anthropic("cara").messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=anthropic_loop(1, search_result()), tools=TOOLS_A
        )
        result = sent(sim)[-1]["messages"][2]["content"][0]["content"]
    else:
        r = gw.openai("otto").chat.completions.with_raw_response.create(
            model="gpt-4o", max_tokens=100, messages=openai_loop(1, search_result()), tools=TOOLS_O
        )
        result = next(m["content"] for m in sent(sim)[-1]["messages"] if m["role"] == "tool")
    assert r.http_response.status_code == 200
    assert "prune -" in r.headers["x-paymaster-compression"]
    head, body = result.split("\n", 1)
    assert "20 array items omitted" in head
    data = orjson.loads(body)
    assert "request_id" not in data and "next_page_token" not in data
    assert data["items"][0] == {"title": "Widget 0", "url": "https://shop.example/0"}
    assert data["items"][-1] == "[… 20 more items omitted]"


def test_compression_off_sends_results_as_they_came(gateway: Any, sim: Simulator) -> None:
    raw = agents()
    raw["cara"]["compression"] = {"enabled": False}
    gw = gateway(agents=raw)
    msgs = anthropic_loop(1, search_result())
    r = gw.anthropic("cara").messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=msgs, tools=TOOLS_A
    )
    assert "x-paymaster-compression" not in r.headers
    assert sent(sim)[-1]["messages"][2]["content"][0]["content"] == search_result()


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_long_conversation_summarised_then_reused(gateway: Any, sim: Simulator, api: str) -> None:
    """Past the threshold the light model writes a summary through the gateway (booked to the agent
    as compression); the next call of the same conversation reuses it: one summary, same prefix."""
    gw = gateway(agents=agents(SMALL))
    light = "claude-haiku-4-5" if api == "anthropic" else "gpt-4.1-mini"
    main = "claude-sonnet-4-6" if api == "anthropic" else "gpt-4o"
    problems = anthropic_problems if api == "anthropic" else openai_problems

    def ask(msgs: list[dict[str, Any]]) -> Any:
        if api == "anthropic":
            return gw.anthropic("cara").messages.with_raw_response.create(
                model=main, max_tokens=100, messages=msgs, tools=TOOLS_A
            )
        return gw.openai("otto").chat.completions.with_raw_response.create(
            model=main, max_tokens=100, messages=msgs, tools=TOOLS_O
        )

    loop = anthropic_loop if api == "anthropic" else openai_loop
    first = loop(6, search_result(8))
    r = ask(first)
    assert r.http_response.status_code == 200
    assert "summary new" in r.headers["x-paymaster-compression"]
    summaries = sent(sim, light)
    assert len(summaries) == 1
    assert "order number is 7000" in orjson.dumps(summaries[0]).decode()  # the old turns went to the summariser
    body = sent(sim, main)[-1]
    msgs = body["messages"]
    assert problems(msgs) == []
    k = next(i for i, m in enumerate(msgs) if m["role"] == "user")  # OpenAI: after the system messages
    text = msgs[k]["content"] if api == "openai" else msgs[k]["content"][0]["text"]
    assert text.startswith(HEADER.split("{n}")[0])
    if api == "openai":
        assert {"role": "system", "content": "You are a shopping agent."} in msgs[:k]
    assert msgs[-1] == first[-1]  # the latest turn verbatim

    # the conversation goes on: the same summary, the same prefix (a cache read, not a write)
    nxt = loop(6, search_result(8))[:-1] + [first[-1], {"role": "assistant", "content": "Widget 3."}]
    nxt.append({"role": "user", "content": "And the second cheapest?"})
    r2 = ask(nxt)
    assert "summary reused" in r2.headers["x-paymaster-compression"]
    assert len(sent(sim, light)) == 1
    again = sent(sim, main)[-1]["messages"]
    assert problems(again) == []
    assert _plain(again[: k + 1]) == _plain(msgs[: k + 1])

    rows = ledger(gw, "cara" if api == "anthropic" else "otto")
    overhead = [row for row in rows if row["task"] == TASK]
    assert len(overhead) == 1 and overhead[0]["model"] == light and float(overhead[0]["cost_usd"]) > 0

    # each compressed call recorded: tokens per technique, the saving, the summary's cost (on the first only)
    lever = next(lv for lv in gw.gw.levers if lv.name == "compression")
    calls = lever.store.calls()
    assert [c["summary"] for c in calls] == ["new", "reused"]
    assert all(c["model"] == main and c["status"] == "ok" for c in calls)
    for c in calls:
        assert c["tokens_before"] - c["tokens_after"] == c["prune"] + c["html"] + c["strip"] + c["summarise"]
        assert c["summarise"] > 0 and c["saved_nanos"] > 0
    assert calls[0]["summary_cost_nanos"] > 0 and calls[1]["summary_cost_nanos"] == 0


def _plain(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without the caching lever's breakpoints (they move to the newest turn each call; a string
    content gets one as a text block)."""
    out = []
    for m in msgs:
        c = m.get("content")
        if isinstance(c, str):
            c = [{"type": "text", "text": c}]
        if isinstance(c, list):
            c = [{k: v for k, v in b.items() if k != "cache_control"} for b in c]
        out.append({**m, "content": c})
    return out


def test_a_failing_summariser_leaves_the_call_as_sent(gateway: Any, sim: Simulator) -> None:
    gw = gateway(agents=agents(SMALL))
    sim.inject("500", model="claude-haiku-4-5")
    msgs = anthropic_loop(6, search_result(8))
    r = gw.anthropic("cara").messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=msgs, tools=TOOLS_A
    )
    assert r.http_response.status_code == 200
    assert r.headers["x-paymaster-compression"] == "skipped (SummaryFailed)"
    body = sent(sim, "claude-sonnet-4-6")[-1]
    assert _plain(body["messages"]) == _plain(msgs)  # uncompressed, nothing lost
    # the next calls are pruned but do not ask the failing summariser again (for a minute)
    r2 = gw.anthropic("cara").messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=msgs, tools=TOOLS_A
    )
    assert "prune -" in r2.headers["x-paymaster-compression"] and "summary" not in r2.headers["x-paymaster-compression"]
    assert len(sent(sim, "claude-haiku-4-5")) == 1


def test_pinned_turns_stay_and_the_pin_never_reaches_the_provider(gateway: Any, sim: Simulator) -> None:
    gw = gateway(agents=agents(SMALL))
    msgs = anthropic_loop(6, search_result(8))
    msgs[0] = {**msgs[0], "content": "The contract id is K-5521. Keep it.", "paymaster_pin": True}
    r = gw.anthropic("cara").messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=msgs, tools=TOOLS_A
    )
    assert "summary new" in r.headers["x-paymaster-compression"]
    raw = orjson.dumps(sent(sim)).decode()
    assert "paymaster_pin" not in raw
    out = sent(sim, "claude-sonnet-4-6")[-1]["messages"]
    assert {"type": "text", "text": "The contract id is K-5521. Keep it."} in out[0]["content"]
    assert anthropic_problems(out) == []


def test_the_pin_is_removed_when_compression_is_off(gateway: Any, sim: Simulator) -> None:
    gw = gateway()
    gw.anthropic("alice").messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi", "paymaster_pin": True}],  # type: ignore[typeddict-unknown-key]
    )
    assert sent(sim)[-1]["messages"] == [{"role": "user", "content": "hi"}]


def test_undo_adds_back_what_compression_removed() -> None:
    from paymaster.call import Usage
    from paymaster.levers.base import Bill
    from paymaster.levers.compression import Compressor

    lever = Compressor.__new__(Compressor)
    ctx = type("Ctx", (), {"state": {"compression": Squeezed(9000, 2000, {"prune": 5000, "summarise": 2000})}})()
    bill = Bill("claude-sonnet-4-6", Usage(input_tokens=2100, output_tokens=300, cache_read_tokens=1000))
    before = lever.undo(bill, None, ctx)  # type: ignore[arg-type]
    assert before.usage.input_tokens == 9100 and before.usage.output_tokens == 300
    assert before.usage.cache_read_tokens == 1000 and bill.usage.input_tokens == 2100
    assert lever.undo(bill, None, type("Ctx", (), {"state": {}})()) is bill  # type: ignore[arg-type]


def test_a_summary_is_extended_not_rewritten_as_the_conversation_grows(gateway: Any, sim: Simulator) -> None:
    gw = gateway(agents=agents({**SMALL, "threshold_tokens": 900}))
    client = gw.anthropic("cara")
    msgs = anthropic_loop(6, search_result(8))
    r1 = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=msgs, tools=TOOLS_A
    )
    assert "summary new" in r1.headers["x-paymaster-compression"]
    first_summary = sent(sim, "claude-sonnet-4-6")[-1]["messages"][0]["content"][0]["text"]
    grown = [*msgs, {"role": "assistant", "content": "Widget 1."}]
    grown += anthropic_loop(6, search_result(8))[4:]  # six more turns of search
    r2 = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=grown, tools=TOOLS_A
    )
    assert "summary extended" in r2.headers["x-paymaster-compression"]
    asks = sent(sim, "claude-haiku-4-5")
    assert len(asks) == 2
    second_ask = asks[1]["messages"][0]["content"]
    assert first_summary.split("\n", 1)[1] in second_ask  # the summary so far, extended with the new turns only
    assert "order number is 7000" not in second_ask.split("</summary>", 1)[1]
    assert anthropic_problems(sent(sim, "claude-sonnet-4-6")[-1]["messages"]) == []


def test_concurrent_calls_of_one_conversation_share_one_summary(gateway: Any, sim: Simulator) -> None:
    import asyncio

    gw = gateway(agents=agents(SMALL))
    msgs = anthropic_loop(6, search_result(8))

    async def three() -> list[Any]:
        client = gw.async_anthropic("cara")
        calls = (
            client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=msgs, tools=TOOLS_A)
            for _ in range(3)
        )
        return await asyncio.gather(*calls)

    rs = asyncio.run(three())
    assert all(r.content for r in rs)
    assert len(sent(sim, "claude-haiku-4-5")) == 1
    firsts = {orjson.dumps(b["messages"][0]["content"][0]["text"]) for b in sent(sim, "claude-sonnet-4-6")}
    assert len(firsts) == 1  # the same summary in all three
    # one process on SQLite: the summary stored once, and its cost counted once in the compressed-call rows
    # (by the call that had it written; the two that waited for it reused it)
    lever = next(lv for lv in gw.gw.levers if lv.name == "compression")
    calls = lever.store.calls()
    assert sorted(c["summary"] for c in calls) == ["new", "reused", "reused"]
    paid = [c["summary_cost_nanos"] for c in calls if c["summary_cost_nanos"]]
    overhead = [row for row in ledger(gw, "cara") if row["task"] == TASK]
    assert len(paid) == 1 and len(overhead) == 1
    assert lever.store.shared is None
    assert lever.store.conn().execute("SELECT COUNT(*) FROM summaries").fetchone() == (1,)


def test_an_openai_agent_summarised_by_a_claude_model(gateway: Any, sim: Simulator) -> None:
    raw = agents({**SMALL, "model": "claude-haiku-4-5"})
    raw["otto"]["models"].append("claude-haiku-4-5")
    gw = gateway(agents=raw)
    r = gw.openai("otto").chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=100, messages=openai_loop(6, search_result(8)), tools=TOOLS_O
    )
    assert "summary new" in r.headers["x-paymaster-compression"]
    ask = sent(sim, "claude-haiku-4-5")[0]
    assert "[assistant → tool search]" in ask["messages"][0]["content"]  # read in the caller's (OpenAI) shape
    assert openai_problems(sent(sim, "gpt-4o")[-1]["messages"]) == []
    assert [row["task"] for row in ledger(gw, "otto") if row["model"] == "claude-haiku-4-5"] == ["compression"]


def test_compressed_history_is_read_from_the_prompt_cache_on_the_next_turn(gateway: Any, sim: Simulator) -> None:
    """Earlier results compress to the same bytes every call, so the next turn reads the cached prefix
    (the simulator keeps Anthropic's prompt cache by exact prefix) — and so does the turn after a summary."""
    gw = gateway(agents=agents({**SMALL, "threshold_tokens": 6000, "keep_tokens": 3000}))
    client = gw.anthropic("cara")
    system = "You are a careful shopping agent. " * 300  # past the model's minimum cacheable prefix
    msgs = anthropic_loop(3, search_result(60))

    def turn(m: list[dict[str, Any]]) -> Any:
        return client.messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=50, system=system, messages=m, tools=TOOLS_A
        )

    first = turn(msgs)
    assert (
        "prune -" in first.headers["x-paymaster-compression"]
        and "summary" not in first.headers["x-paymaster-compression"]
    )
    msgs = [*msgs, {"role": "assistant", "content": "Widget 2."}, {"role": "user", "content": "And the next?"}]
    second = turn(msgs)
    u = second.parse().usage
    assert u.cache_read_input_tokens and u.cache_read_input_tokens > 0.8 * (
        u.input_tokens + u.cache_read_input_tokens + (u.cache_creation_input_tokens or 0)
    )


def test_a_streamed_call_translated_to_the_other_api_carries_the_pruned_result(gateway: Any, sim: Simulator) -> None:
    """An OpenAI caller's tool message, compressed in its own shape, then translated for a Claude model."""
    raw = agents()
    raw["otto"]["models"].append("claude-haiku-4-5")
    gw = gateway(agents=raw)
    stream = gw.openai("otto").chat.completions.create(
        model="claude-haiku-4-5", max_tokens=50, messages=openai_loop(1, search_result()), tools=TOOLS_O, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    body = sent(sim, "claude-haiku-4-5")[-1]
    results = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]  # fmt: skip
    text = results[0]["content"] if isinstance(results[0]["content"], str) else results[0]["content"][0]["text"]
    assert text.startswith("[gateway-compressed tool result:") and "request_id" not in text
    assert anthropic_problems(body["messages"]) == []
