"""Attacks on the gateway through the tool-use counts a caller writes: `max_uses` (Anthropic server tools) and
`max_tool_calls` (OpenAI Responses built-in tools) are the caller's own numbers, and the worst case of a call
that may use a tool that many times must be found without doing work per use — an estimate that walked the
rounds one by one ran on the event loop for minutes (10**10 uses) or for ever, every other agent's call stuck
behind it. Its figure must still cover the documented bill. Each test failed on the code before its fix.

The work is counted, not timed: the lines of the cost model one estimate executes (`sys.settrace`).

Documented figures used here (and only these):
- platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool: `max_uses` "limits the number of
  searches performed"; "$10 per 1,000 searches, plus standard token costs for search-generated content";
  results "are counted as input tokens, in search iterations executed during a single turn".
- platform.claude.com/docs/en/about-claude/pricing: Claude Haiku 4.5 $1 / $5 per MTok; models overview: its
  context window 200,000 tokens.
- developers.openai.com/api/docs/pricing: gpt-4.1 $2.00 / $8.00 per MTok, web search $10.00 / 1k calls;
  …/models: gpt-4.1's context window 1,047,576 tokens. `max_tool_calls`: "the maximum number of total calls
  to built-in tools that can be processed in a response" (…/responses/methods/create).
- 25,000 result tokens per search: the gateway's own published ceiling, which the attacker may use in full.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from types import FrameType
from typing import Any

import anthropic
import orjson
import pytest

from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable

MTOK = Decimal(1_000_000)
TABLE = PriceTable({})
SEARCH_RESULT = 25_000
SEARCH_FEE = Decimal("0.01")
STEP_LIMIT = 200_000  # lines of the cost model one estimate may execute (a few thousand are enough)


class TooMuchWork(Exception):
    pass


def work(fn: Any) -> int:
    """Lines of paymaster/costmodel executed by `fn()` (TooMuchWork past STEP_LIMIT)."""
    steps = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
            if steps > STEP_LIMIT:
                raise TooMuchWork(f"more than {STEP_LIMIT} lines of the cost model for one estimate")
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if "paymaster/costmodel" in frame.f_code.co_filename.replace("\\", "/") else None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return steps


def rounds_read(window: int, request: int, uses: int, written: int) -> int:
    """What `uses` rounds after the first read in all, round k reading the request, k results and what was
    written before it, at most the window: the first K rounds below the window, the rest at it."""
    room = window - request - written  # round k is below the window while k * SEARCH_RESULT < room
    below = min(uses, max(0, -(-room // SEARCH_RESULT) - 1))
    return below * (request + written) + SEARCH_RESULT * below * (below + 1) // 2 + (uses - below) * window


def anthropic_body(uses: int) -> dict[str, Any]:
    return {"model": "claude-haiku-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "look"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": uses}]}  # fmt: skip


def responses_body(uses: int) -> dict[str, Any]:
    return {"model": "gpt-4.1", "input": "look", "tools": [{"type": "web_search"}], "max_tool_calls": uses,
            "max_output_tokens": 1000}  # fmt: skip


@pytest.mark.parametrize("uses", [10**7, 10**15])
def test_a_huge_max_uses_is_priced_without_walking_its_iterations(uses: int) -> None:
    body = anthropic_body(uses)
    rates = TABLE.rates(body["model"], "anthropic")
    size = len(orjson.dumps(body))
    small = work(lambda: estimate(anthropic_body(3), "anthropic", size, rates, rates.context_window))
    big = work(lambda: estimate(body, "anthropic", size, rates, rates.context_window))
    assert big <= 2 * small, (big, small)
    est = estimate(body, "anthropic", size, rates, rates.context_window)
    request = size  # at most a token a byte (the tool system prompt is far inside the margin of the bound)
    documented = (request + rounds_read(200_000, request, uses, 1000)) * Decimal(1) / MTOK
    documented += 1000 * Decimal(5) / MTOK + uses * SEARCH_FEE
    assert est.worst_case(0, 1000) >= documented


@pytest.mark.parametrize("uses", [10**7, 10**15])
def test_a_huge_max_tool_calls_is_priced_without_walking_its_rounds(uses: int) -> None:
    body = responses_body(uses)
    rates = TABLE.rates(body["model"], "openai")
    size = len(orjson.dumps(body))
    small = work(lambda: estimate(responses_body(3), "responses", size, rates, rates.context_window))
    big = work(lambda: estimate(body, "responses", size, rates, rates.context_window))
    assert big <= 2 * small, (big, small)
    est = estimate(body, "responses", size, rates, rates.context_window)
    request = size
    documented = (request + rounds_read(1_047_576, request, uses, 1000)) * Decimal(2) / MTOK
    documented += 1000 * Decimal(8) / MTOK + uses * SEARCH_FEE
    assert est.worst_case(0, 1000) >= documented


@pytest.mark.parametrize("uses", [0, 1, 2, 7, 8, 9, 40])
def test_the_closed_form_keeps_the_documented_bound_at_every_count(uses: int) -> None:
    """Around the round where the reads reach the window (Haiku: the 8th), the bound still covers the bill."""
    body = anthropic_body(uses)
    body["max_tokens"] = 8000
    rates = TABLE.rates(body["model"], "anthropic")
    size = len(orjson.dumps(body))
    est = estimate(body, "anthropic", size, rates, rates.context_window)
    for written in (1, 4000, 8000):  # fitted lower: the bill of the lowered call fits its hold
        read = size + sum(min(200_000, size + k * SEARCH_RESULT + written) for k in range(1, uses + 1))
        documented = (read * Decimal(1) + written * Decimal(5)) / MTOK + uses * SEARCH_FEE
        assert est.worst_case(0, written) >= documented, (uses, written)


def test_through_the_gateway_a_huge_max_uses_is_refused_in_the_callers_shape_and_spends_nothing(gateway: Any) -> None:
    """End to end (the old code never answered: the gateway's loop was busy walking 10**15 iterations): the
    call's worst case, over $10,000,000,000 in search fees alone, is past any budget — a 402 in Anthropic's
    shape, nothing sent, nothing spent; and the gateway goes on answering."""
    gw = gateway()
    before = gw.spend()
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["alice"], max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(**anthropic_body(10**15))
    assert e.value.status_code == 402 and e.value.body["type"] == "error", e.value.body  # type: ignore[index]
    assert gw.spend()[:-1] == before[:-1]
    ok = client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert ok.content


def test_an_agent_with_no_cap_is_served_a_call_whose_worst_case_passes_any_ledger_integer(gateway: Any) -> None:
    """An agent with no cap is never refused for money; a worst case past 2**63 nano-dollars could not be
    written to the journal (a 500). It is held at HOLD_MAX (a figure that limits nothing), the
    provider answers, and the call is booked at its bill."""
    gw = gateway(agents={"ursula": {"model": "claude-haiku-4-5", "max_tokens": 2048}})
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["ursula"], max_retries=0)
    r = client.messages.with_raw_response.create(**anthropic_body(10**15))
    assert r.status_code == 200
    (row,) = gw.ledger("ursula")
    assert row["status"] == "ok" and 0 < row["cost_nanos"] < 10**9, row
