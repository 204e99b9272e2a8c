"""Attacks on the cap through the OpenAI Responses API and the context-window cap, with an independent
bound written from the providers' documents (not from the cost model): for each request the provider
would accept, the most it can bill must fit what the gateway reserves. Each test failed before its fix.

Documented figures used here (and only these):
- context windows, developers.openai.com/api/docs/models/<model>: gpt-4.1 / -mini / -nano 1,047,576;
  gpt-4o 128,000; o3 200,000; gpt-5 400,000.
- `max_output_tokens` bounds everything a response generates — visible output and reasoning — across all
  of its sampling rounds (API reference, responses.create).
- a built-in tool call's results are read as input by the next sampling round, which reads the whole
  context again: the request, the results so far and what the model wrote before
  (developers.openai.com/api/docs/guides/tools, "tools-web-search", "reasoning": reasoning items stay in
  context between tool calls within a response).
- remote MCP: the server's tool list is imported (`mcp_list_tools`) and read by the model as tool
  definitions, whatever `max_tool_calls` allows (developers.openai.com/api/docs/guides/tools-connectors-mcp).
- web search: $10 / 1k calls (developers.openai.com/api/docs/pricing); 25,000 result tokens a search is
  the gateway's own published ceiling (data/responses.yaml), which the attacker may use in full.
"""

from __future__ import annotations

import base64
import threading
import time
from decimal import Decimal
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.costmodel import estimate
from paymaster.costmodel.responses import tool_fees
from paymaster.costmodel.tokenizer import encoding
from paymaster.pricing import PriceTable, to_nanos
from tests.conftest import PROVIDER_KEY

TABLE = PriceTable({})
DOCUMENTED_WINDOW = {"gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576, "gpt-4.1-nano": 1_047_576,
                     "gpt-4o": 128_000, "o3": 200_000, "gpt-5": 400_000}  # fmt: skip
SEARCH_RESULT = 25_000
SEARCH_FEE = Decimal("0.01")


def reserved(body: dict[str, Any], api: str, stored: int | None = 0) -> tuple[Any, Decimal]:
    rates = TABLE.rates(body["model"], "openai")
    worst = estimate(body, api, len(orjson.dumps(body)), rates, rates.context_window, stored=stored)
    out = body.get("max_output_tokens") or body.get("max_tokens") or 0
    return rates, worst.worst_case(0, out)


# -- the context-window cap: never below the documented window ------------------------------------------


@pytest.mark.parametrize("model", sorted(DOCUMENTED_WINDOW))
def test_unknown_stored_context_is_bounded_by_the_documented_window(model: str) -> None:
    """A previous response the gateway never served can hold up to the documented window (the provider
    accepts it); the reservation's input side must cover that much."""
    body = {"model": model, "previous_response_id": "resp_elsewhere", "input": "go on", "max_output_tokens": 16}
    rates, worst = reserved(body, "responses", stored=None)
    assert worst >= DOCUMENTED_WINDOW[model] * rates.rate("input", DOCUMENTED_WINDOW[model])


def test_a_chat_request_past_the_price_tables_rounded_window_is_bounded_by_what_it_holds() -> None:
    """genai-prices says 1,000,000 for gpt-4.1; OpenAI documents 1,047,576 and accepts a request of
    1,040,000 tokens, which must not be capped at the rounded figure."""
    text = " x" * 1_040_000
    tokens = len(encoding("o200k_base").encode(text))
    assert tokens == 1_040_000
    body = {"model": "gpt-4.1", "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    rates, worst = reserved(body, "openai")
    assert worst >= rates.cost(Usage(tokens, 1))


# -- built-in tool rounds: later rounds read what earlier rounds wrote ---------------------------------


def tool_round_bill(request: int, uses: int, per_result: int, written: int, window: int) -> int:
    """The most a response with `uses` built-in tool calls can bill as input (independent of the cost
    model): round 0 reads the request; round k reads the request, k results and everything written so far
    (at most `written` = max_output_tokens), each round at most the window."""
    return sum(min(window, request + k * per_result + (written if k else 0)) for k in range(uses + 1))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["gpt-5", "o3", "gpt-4.1"]),
    st.integers(0, 6),
    st.integers(16, 100_000),
    st.sampled_from(["web_search", "web_search_preview"]),
)
def test_tool_rounds_count_what_earlier_rounds_wrote(model: str, uses: int, written: int, tool: str) -> None:
    body = {"model": model, "input": "look it up", "tools": [{"type": tool}], "max_tool_calls": uses,
            "max_output_tokens": written}  # fmt: skip
    rates, worst = reserved(body, "responses")
    request = len(orjson.dumps(body))  # the request's own text: at most one token per byte
    bill = tool_round_bill(request, uses, SEARCH_RESULT, written, DOCUMENTED_WINDOW[model])
    usage = Usage(bill, written, server_tool_uses={"web_search_call": uses})
    billed = rates.cost(usage) + tool_fees(rates, usage.server_tool_uses, body)
    assert billed <= worst, (billed, worst)


def test_reasoning_before_a_search_is_read_again_after_it() -> None:
    """The plainest case: gpt-5 reasons for 60,000 tokens, searches once, answers. Round 1 reads the
    request, the search's results and the 60,000 reasoning tokens."""
    body = {"model": "gpt-5", "input": "look it up", "tools": [{"type": "web_search"}], "max_tool_calls": 1,
            "max_output_tokens": 60_000}  # fmt: skip
    rates, worst = reserved(body, "responses")
    request = len(orjson.dumps(body))
    usage = Usage(request + (request + SEARCH_RESULT + 60_000), 60_000, server_tool_uses={"web_search_call": 1})
    assert rates.cost(usage) + SEARCH_FEE <= worst


# -- remote MCP: the imported tool list is input the request does not show -------------------------------


@pytest.mark.parametrize("uses", [0, 1, 3])
def test_an_mcp_tool_list_can_fill_the_first_round(uses: int) -> None:
    body = {"model": "gpt-4.1", "input": "hi", "max_output_tokens": 16, "max_tool_calls": uses,
            "tools": [{"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp",
                       "require_approval": "never"}]}  # fmt: skip
    rates, worst = reserved(body, "responses")
    window = DOCUMENTED_WINDOW["gpt-4.1"]
    # every round, the first included, may read up to the window (tool list, then tool output)
    assert worst >= rates.cost(Usage(window * (uses + 1), 16))


# -- input files: the Responses API reads non-PDF files' text, with no page limit ------------------------


def file_request(part: dict[str, Any]) -> dict[str, Any]:
    content = [part, {"type": "input_text", "text": "summarise"}]
    return {"model": "gpt-4.1", "max_output_tokens": 16, "input": [{"role": "user", "content": content}]}


def test_an_inline_text_file_is_bounded_by_the_text_it_holds() -> None:
    """developers.openai.com/api/docs/guides/file-inputs: for .txt (and code, .md, …) the API extracts the
    text; a 2 MB text file holds 1,040,000 tokens, far past 100 pages of 4,000."""
    text = " x" * 1_040_000
    tokens = len(encoding("o200k_base").encode(text))
    data = "data:text/plain;base64," + base64.b64encode(text.encode()).decode()
    body = file_request({"type": "input_file", "filename": "notes.txt", "file_data": data})
    rates, worst = reserved(body, "responses")
    assert worst >= rates.cost(Usage(tokens, 16))


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_file", "file_id": "file-abc"},
        {"type": "input_file", "file_url": "https://example.com/book.txt"},
        {"type": "input_file", "filename": "book.docx",
         "file_data": "data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,"
         + base64.b64encode(b"PK\x03\x04" + bytes(200)).decode()},
    ],
    ids=["file_id", "file_url", "docx"],
)  # fmt: skip
def test_a_file_the_gateway_cannot_read_is_bounded_by_the_window(part: dict[str, Any]) -> None:
    """A file by id or URL, or a compressed document, may hold a whole window of text."""
    rates, worst = reserved(file_request(part), "responses")
    window = DOCUMENTED_WINDOW["gpt-4.1"]
    assert worst >= rates.cost(Usage(window, 16))


# -- conversations: a conversation grows while a call in it is in flight ----------------------------------


def streaming(sim: Any, marker: str, stream: Any) -> threading.Thread:
    """Read the stream `stream()` opens to its end on a thread; return once the simulator has its request (the
    request's text holds `marker`), so the caller's next call overlaps it."""

    def read() -> None:
        with stream() as s:
            for _ in s:
                pass

    t = threading.Thread(target=read)
    t.start()
    deadline = time.time() + 5
    while not any(marker in str(q["body"]) for q in list(sim.requests)) and time.time() < deadline:
        time.sleep(0.01)
    return t


def test_a_call_on_a_conversation_another_call_is_growing_stays_within_its_reservation(gateway: Any, sim: Any) -> None:
    """API reference, responses.create `conversation`: the conversation's items are prepended to the input,
    and the response's input and output items are added to it when it completes. B starts while A (same
    conversation, a long input) is still streaming: the provider has A's items in the conversation when B
    reads it, but the gateway's book still holds the size before A. Every call's bill must fit its hold."""
    r = httpx2.post(sim.url + "/v1/conversations", json={}, headers={"authorization": f"Bearer {PROVIDER_KEY}"})
    conv = r.json()["id"]
    gw = gateway()
    client = gw.openai()
    client.responses.create(model="gpt-4.1-mini", conversation=conv, input="hello", max_output_tokens=16)
    sim.token_delay = 0.02
    try:
        long = "the figures for the quarter " * 4000  # ~24,000 tokens A adds to the conversation
        t = streaming(sim, "the figures", lambda: client.responses.stream(
            model="gpt-4.1-mini", conversation=conv, input=long + " [sim:tokens=60]",
            max_output_tokens=100))  # fmt: skip
        client.responses.create(model="gpt-4.1-mini", conversation=conv, input="and B?", max_output_tokens=16)
        t.join()
    finally:
        sim.token_delay = 0.0
    client.responses.create(model="gpt-4.1-mini", conversation=conv, input="and C?", max_output_tokens=16)
    rows = [r for r in gw.ledger("olivia") if r["api"] == "responses"]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
    for row in rows:
        assert row["cost_nanos"] <= row["worst_nanos"], row


def test_a_conversation_grows_with_store_false_responses_too(gateway: Any, sim: Any) -> None:
    r = httpx2.post(sim.url + "/v1/conversations", json={}, headers={"authorization": f"Bearer {PROVIDER_KEY}"})
    conv = r.json()["id"]
    gw = gateway()
    client = gw.openai()
    client.responses.create(model="gpt-4.1-mini", conversation=conv, input="hello", max_output_tokens=16)
    client.responses.create(model="gpt-4.1-mini", conversation=conv, input="the figures " * 6000, store=False,
                            max_output_tokens=16)  # fmt: skip
    client.responses.create(model="gpt-4.1-mini", conversation=conv, input="and now?", max_output_tokens=16)
    rows = [r for r in gw.ledger("olivia") if r["api"] == "responses"]
    assert len(rows) == 3
    for row in rows:
        assert row["cost_nanos"] <= row["worst_nanos"], row


# -- client-run tools' output items are not billed uses ---------------------------------------------------


@pytest.mark.parametrize("item", ["computer_call", "local_shell_call", "shell_call", "apply_patch_call"])
def test_a_client_tool_call_in_the_answer_is_not_booked_as_an_unpriced_use(item: str) -> None:
    """A `computer_call` (or shell / apply_patch call) asks the caller to act: the API reference bills no use
    for it. Booking it as an unpriced built-in tool put the whole reservation on the agent's spend."""
    from paymaster.call import Call
    from paymaster.settle import price
    from paymaster.wire import responses as wire

    body = {"model": "gpt-4.1", "input": "click it", "max_output_tokens": 200,
            "tools": [{"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                       "environment": "browser"}]}  # fmt: skip
    answer = {"id": "resp_1", "status": "completed", "output": [{"type": item, "id": "cu_1", "call_id": "c_1"}],
              "usage": {"input_tokens": 500, "output_tokens": 40, "total_tokens": 540}}  # fmt: skip
    usage = wire.answer_usage(answer)
    assert usage is not None
    rates, worst = reserved(body, "responses")
    call = Call(api="responses", agent="a", body=body, model="gpt-4.1", stream=False, max_tokens=200,
                target_api="responses")  # fmt: skip
    charge = price(call, rates, to_nanos(worst), 200, "ok", usage, "", None)
    assert (charge.cost_usd, charge.reconcile) == (rates.cost(Usage(500, 40)), 0)


# -- end to end: random Responses traffic through the gateway, every bill within its hold ----------------


def test_random_responses_traffic_never_bills_past_a_hold_or_the_cap(gateway: Any, sim: Any) -> None:
    """Chains, conversations, web search, reasoning, function tools, streams and store:false, mixed at random
    (seeded), through the official SDK, against a cap that runs out: every ledger row within its reservation,
    the day's spend within the cap."""
    import random

    import openai

    rng = random.Random(20261202)
    cap = Decimal("0.5")
    agent = {"model": "gpt-4.1-mini", "models": ["gpt-4.1-mini", "gpt-5-mini", "o4-mini"], "daily_usd": str(cap),
             "max_tokens": 600}  # fmt: skip
    gw = gateway(agents={"olivia": agent})
    client = gw.openai()
    conv = httpx2.post(
        sim.url + "/v1/conversations", json={}, headers={"authorization": f"Bearer {PROVIDER_KEY}"}
    ).json()["id"]
    last: dict[str, str] = {}
    for i in range(40):
        model = rng.choice(agent["models"])
        words = " ".join(
            rng.choice(["alpha", "Zürich", "日本語", "{", "data", "🙂"]) for _ in range(rng.randint(1, 400))
        )
        kw: dict[str, Any] = {"model": model, "input": f"{words} [sim:tokens={rng.randint(0, 500)}]"}
        if rng.random() < 0.5:
            kw["max_output_tokens"] = rng.randint(16, 600)
        if model != "gpt-4.1-mini" and rng.random() < 0.5:
            kw["reasoning"] = {"effort": rng.choice(["low", "medium", "high"])}
        if rng.random() < 0.3:
            kw["tools"] = [{"type": rng.choice(["web_search", "web_search_preview"])}]
            kw["input"] += f" [sim:web_search={rng.randint(0, 4)}]"
        where = rng.random()
        if where < 0.3 and model in last:
            kw["previous_response_id"] = last[model]
        elif where < 0.5:
            kw["conversation"] = conv
        if rng.random() < 0.2:
            kw["store"] = False
        try:
            if rng.random() < 0.3:
                with client.responses.stream(**kw) as s:
                    done = [e.response for e in s if e.type in ("response.completed", "response.incomplete")]
                resp = done[-1]
            else:
                resp = client.responses.create(**kw)
        except openai.APIStatusError as e:
            assert e.status_code in (402, 429), (i, e.status_code, e.body)
            continue
        if kw.get("store") is not False and "conversation" not in kw:
            last[model] = resp.id
    rows = gw.ledger("olivia")
    assert rows
    for row in rows:
        assert row["cost_nanos"] <= row["worst_nanos"], row
    assert sum(r["cost_nanos"] for r in rows) <= to_nanos(cap)
