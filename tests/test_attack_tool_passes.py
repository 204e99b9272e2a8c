"""Attacks on the cap through OpenAI Responses built-in tool rounds: a call the agent can afford once its
`max_output_tokens` is lowered must be fitted, not refused, and the lowered call's bill must still fit its
hold — with bills written from OpenAI's documents, not from the gateway's cost model. Each test failed on
the code before its fix.

Documented figures used here (and only these):
- developers.openai.com/api/reference/resources/responses/methods/create: `max_output_tokens` is "an upper
  bound for the number of tokens that can be generated for a response, including visible output tokens and
  reasoning tokens"; `max_tool_calls` "the maximum number of total calls to built-in tools that can be
  processed in a response".
- developers.openai.com/api/docs/guides/tools-web-search and …/guides/reasoning: a built-in tool's results
  are read by the next sampling round, which reads the whole context again — the request, the results so far
  and what the model wrote before (reasoning items stay in context between tool calls in a response).
- developers.openai.com/api/docs/pricing: gpt-4.1 $2.00 / $8.00 per MTok; gpt-5.4 $2.50 / $15.00, and for
  "prompts with >272K input tokens" 2x input and 1.5x output ($5.00 / $22.50); web search $10.00 / 1k calls.
  Context windows (…/models): gpt-4.1 1,047,576 tokens, gpt-5.4 1,050,000.
- 25,000 result tokens per search: the gateway's own published ceiling (data/responses.yaml), which the
  attacker may use in full.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable

MTOK = Decimal(1_000_000)
TABLE = PriceTable({})
SEARCH_RESULT = 25_000
SEARCH_FEE = Decimal("0.01")
WINDOW = {"gpt-4.1": 1_047_576, "gpt-5.4": 1_050_000}


def documented_bill(model: str, request: int, searches: int, written: int) -> Decimal:
    """The most OpenAI bills a response making `searches` web searches and writing `written` tokens: round 0
    reads the request, round k the request, k results and all written so far, each round at most the window;
    gpt-5.4 past 272K input tokens at its long-context prices."""
    window = WINDOW[model]
    read = sum(min(window, request + k * SEARCH_RESULT + (written if k else 0)) for k in range(searches + 1))
    if model == "gpt-4.1":
        inp, out = Decimal(2), Decimal(8)
    else:
        inp, out = (Decimal(5), Decimal("22.5")) if read > 272_000 else (Decimal("2.5"), Decimal(15))
    return (read * inp + written * out) / MTOK + searches * SEARCH_FEE


def search_body(model: str, searches: int, max_output: int, text: str = "look it up") -> dict[str, Any]:
    return {"model": model, "input": f"{text} [sim:web_search={searches}]", "tools": [{"type": "web_search"}],
            "max_tool_calls": searches, "max_output_tokens": max_output}  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(WINDOW)),
    searches=st.integers(1, 6),
    asked=st.integers(16, 128_000),
    share=st.integers(1, 1000),
    pad=st.integers(0, 200_000),
)
def test_a_fitted_max_output_tokens_bounds_the_bill_it_allows(
    model: str, searches: int, asked: int, share: int, pad: int
) -> None:
    """The budget prices a call once (at the `max_output_tokens` asked for) and fits a lower one from that
    estimate's USD per output token: at any lower figure, the documented bill of the lowered call must fit
    the hold — long-context prices included, reached by what the rounds read again."""
    body = search_body(model, searches, asked, "x " * pad)
    rates = TABLE.rates(model, "openai")
    est = estimate(body, "responses", len(orjson.dumps(body)), rates, rates.context_window)
    fitted = max(1, asked * share // 1000)
    bill = documented_bill(model, len(orjson.dumps(body)), searches, fitted)
    assert bill <= est.worst_case(0, fitted), (bill, est.worst_case(0, fitted))


def test_lowering_max_output_tokens_lowers_the_reservation_of_each_round() -> None:
    """gpt-4.1, two searches, max_output_tokens 30,000: the rounds after each search read what was written,
    so the reservation holds 3 × 30,000 tokens of it (output once, input twice). Fitted to 1,000 tokens the
    call can cost no more than $0.19; the fixed part of the old estimate kept 2 × 30,000 tokens of input in
    it, so no lower max_output_tokens could bring it under $0.29."""
    body = search_body("gpt-4.1", 2, 30_000)
    rates = TABLE.rates("gpt-4.1", "openai")
    est = estimate(body, "responses", len(orjson.dumps(body)), rates, rates.context_window)
    bill = documented_bill("gpt-4.1", len(orjson.dumps(body)), 2, 1000)
    assert bill <= est.worst_case(0, 1000) < Decimal("0.19"), (bill, est.worst_case(0, 1000))


def test_a_searching_responses_agent_is_fitted_to_its_cap_not_refused(gateway: Any) -> None:
    """Through the gateway and the official SDK: a $0.25 daily cap, gpt-4.1, two web searches, max_output_tokens
    30,000 (a $0.53 worst case). At a lower max_output_tokens the call fits the cap, so it must be fitted — it
    was refused with a 402 ("never refusing a call an agent can afford")."""
    gw = gateway(agents={"x": {"model": "gpt-4.1", "daily_usd": "0.25", "max_tokens": 30_000}})
    raw = gw.openai("x").responses.with_raw_response.create(
        model="gpt-4.1",
        input="look it up [sim:web_search=2]",
        tools=[{"type": "web_search"}],
        max_tool_calls=2,
        max_output_tokens=30_000,
    )
    assert raw.headers["x-paymaster-max-tokens"].endswith("fitted to budget")
    (row,) = [r for r in gw.ledger("x") if r["api"] == "responses"]
    assert row["status"] == "ok" and Decimal(row["cost_usd"]) <= Decimal("0.25"), row
    assert row["cost_nanos"] <= row["worst_nanos"]


def test_what_the_rounds_read_again_counts_toward_the_long_context_price() -> None:
    """gpt-5.4, a 100,127-token request, one search, max_output_tokens 128,000: round 1 reads the request,
    the results and the 128,000 written tokens, 353,254 input tokens in all — past 272K, so the whole response
    is at $5 / $22.50 ($4.66). Priced per output token, the written part must still count toward the tier:
    without it the input side stayed under 272K and the hold was $2.81."""
    body = search_body("gpt-5.4", 1, 128_000, "x " * 50_000)
    request = len(orjson.dumps(body))
    rates = TABLE.rates("gpt-5.4", "openai")
    est = estimate(body, "responses", request, rates, rates.context_window)
    bill = documented_bill("gpt-5.4", request, 1, 128_000)
    assert bill > Decimal("4.6")
    assert bill <= est.worst_case(0, 128_000), (bill, est.worst_case(0, 128_000))


def test_an_anthropic_search_iteration_reading_what_was_written_reaches_the_long_context_price() -> None:
    """platform.claude.com/docs/en/about-claude/pricing, "Long context pricing": Claude Sonnet 4.5 requests
    over 200K input tokens are charged $6 / $22.50 per MTok (else $3 / $15), search $10 / 1k. A 70,164-byte
    request (plus the 346-token tool prompt), one search, max_tokens 64,000: iteration 1 reads the request, the
    search's 25,000 tokens and the 64,000 written — 230,020 input tokens in all, past 200K ($2.83). The written
    part, priced per output token, did not count toward the tier: $1.66 held, $1.17 short."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64_000,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
            "messages": [{"role": "user", "content": "x " * 35_000}]}  # fmt: skip
    request = len(orjson.dumps(body)) + 346
    read = request + (request + 25_000 + 64_000)
    assert read > 200_000
    bill = (read * Decimal(6) + 64_000 * Decimal("22.5")) / MTOK + SEARCH_FEE
    rates = TABLE.rates("claude-sonnet-4-5", "anthropic")
    est = estimate(body, "anthropic", len(orjson.dumps(body)), rates, rates.context_window)
    assert bill <= est.worst_case(0, 64_000), (bill, est.worst_case(0, 64_000))
