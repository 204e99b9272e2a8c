"""Attacks on the cap through Anthropic's server tools (web search, web fetch) and server-side compaction, and
through a context window the price table rounds down (GPT-5.5), with bills written from the providers'
documents, not from the gateway's cost model. Each test failed on the code before its fix.

Documented figures used here (and only these):
- platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool, "How web search works": "The API
  executes the searches and provides Claude with the results. This process may repeat multiple times
  throughout a single request"; "Usage and pricing": "$10 per 1,000 searches, plus standard token costs for
  search-generated content. Web search results retrieved throughout a conversation are counted as input
  tokens, in search iterations executed during a single turn and in subsequent conversation turns";
  "Prompt caching": with a `cache_control` breakpoint in the request, "the system will automatically cache
  up until the last web_search_tool_result block when executing the tool" (so every iteration may write).
  `max_uses` "limits the number of searches performed".
- …/web-fetch-tool: no fee beyond tokens; `max_content_tokens` limits what one fetch adds to the context.
- …/server-tools: the server-side loop samples, runs the tool, and samples again with its result, all in
  one API call: iteration k reads the request, the k results so far and what the model wrote before them.
- platform.claude.com/docs/en/about-claude/pricing: Claude Haiku 4.5 $1 / $5 per MTok, Sonnet 4.6 $3 / $15,
  Opus 4.6 $5 / $25; 5-minute cache writes 1.25x the input price, 1-hour writes 2x. Context windows (models
  overview): Haiku 4.5 200,000 tokens; Sonnet 4.6 and Opus 4.6 1,000,000.
- tool-use overview, "Pricing": tool use adds a system prompt of 346 tokens (Claude 4.x, tool_choice auto).
- the gateway's own published ceiling for one search's results (25,000 tokens) and for a fetch without
  `max_content_tokens` (100,000), which the attacker may use in full.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import transport_kit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable

MTOK = Decimal(1_000_000)
PRICES = {  # (input, output) USD per MTok, context window
    "claude-haiku-4-5": (Decimal(1), Decimal(5), 200_000),
    "claude-sonnet-4-6": (Decimal(3), Decimal(15), 1_000_000),
    "claude-opus-4-6": (Decimal(5), Decimal(25), 1_000_000),
}
WRITE = {None: Decimal(1), "5m": Decimal("1.25"), "1h": Decimal(2)}
SEARCH_FEE = Decimal("0.01")
SEARCH_RESULT = 25_000
FETCH_RESULT = 100_000
TOOL_PROMPT = 346
TABLE = PriceTable()


def reserved(body: dict[str, Any]) -> Decimal:
    rates = TABLE.rates(body["model"], "anthropic")
    est = estimate(body, "anthropic", len(orjson.dumps(body)), rates, rates.context_window)
    return est.worst_case(0, body["max_tokens"])


def documented_bill(body: dict[str, Any], searches: int, fetches: int, fetch_result: int, ttl: str | None) -> Decimal:
    """The most Anthropic can bill for `body` when the model makes every search and fetch it may: one
    iteration per tool use after the first, each reading the request (its tools and messages, at most a
    token a byte, plus the tool system prompt), every result so far and everything written so far (at most
    max_tokens in all), each at most the context window; with a breakpoint every input token may be a cache
    write."""
    inp, out, window = PRICES[body["model"]]
    request = len(orjson.dumps(body["tools"])) + len(orjson.dumps(body["messages"])) + TOOL_PROMPT
    written = body["max_tokens"]
    per_result = max(SEARCH_RESULT if searches else 0, fetch_result if fetches else 0)
    read = sum(min(window, request + k * per_result + (written if k else 0)) for k in range(searches + fetches + 1))
    return (read * inp * WRITE[ttl] + written * out) / MTOK + searches * SEARCH_FEE


def _body(model: str, max_tokens: int, text: str, searches: int, fetches: int, fetch_limit: int | None,
          ttl: str | None) -> dict[str, Any]:  # fmt: skip
    tools: list[dict[str, Any]] = []
    if searches:
        tools.append({"type": "web_search_20250305", "name": "web_search", "max_uses": searches})
    if fetches:
        fetch: dict[str, Any] = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": fetches}
        if fetch_limit is not None:
            fetch["max_content_tokens"] = fetch_limit
        tools.append(fetch)
    block: dict[str, Any] = {"type": "text", "text": text}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    messages = [{"role": "user", "content": [block]}]
    return {"model": model, "max_tokens": max_tokens, "tools": tools, "messages": messages}


def test_each_search_iteration_reads_the_request_and_the_results_so_far_again() -> None:
    """The plainest documented case: Haiku 4.5 searches three times, 25,000 tokens of results each, and
    writes 1,000 tokens. Four iterations: the request, then the request with one, two, three results and
    what was written. The bound counted the request and the results once: $0.111 reserved against a
    documented bill of up to $0.190."""
    body = _body("claude-haiku-4-5", 1000, "what happened today?", 3, 0, None, None)
    bill = documented_bill(body, 3, 0, 0, None)
    assert bill <= reserved(body), (bill, reserved(body))


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(PRICES)),
    max_tokens=st.integers(1, 64_000),
    text=st.text(min_size=1, max_size=300),
    searches=st.integers(0, 6),
    fetches=st.integers(0, 3),
    fetch_limit=st.one_of(st.none(), st.integers(1, 150_000)),
    ttl=st.sampled_from([None, "5m", "1h"]),
)
def test_no_server_tool_bill_the_documents_allow_exceeds_the_reservation(
    model: str, max_tokens: int, text: str, searches: int, fetches: int, fetch_limit: int | None, ttl: str | None
) -> None:
    assume(searches + fetches > 0)
    body = _body(model, max_tokens, text, searches, fetches, fetch_limit, ttl)
    fetch_result = FETCH_RESULT if fetch_limit is None else min(FETCH_RESULT, fetch_limit)
    bill = documented_bill(body, searches, fetches, fetch_result, ttl)
    assert bill <= reserved(body), (bill, reserved(body))


# -- through the gateway: an upstream that bills what the documents allow keeps the agent under its cap ----


class _Documented:
    """An Anthropic upstream that makes every search a request allows and bills it as the documents say:
    each iteration reads the request it received, the results so far and all it wrote (max_tokens)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await transport_kit.asgi_lifespan(receive, send)
        raw = await transport_kit.asgi_body(receive)
        req = orjson.loads(raw)
        request = len(orjson.dumps(req.get("tools", []))) + len(orjson.dumps(req["messages"])) + TOOL_PROMPT
        request += len(orjson.dumps(req.get("system", "")))
        if scope["path"].endswith("/count_tokens"):  # the request alone (what count_tokens counts)
            return await self._answer(send, {"input_tokens": request})
        self.seen.append(req)
        searches = sum(t.get("max_uses", 0) for t in req.get("tools", []) if t["type"].startswith("web_search"))
        written = req["max_tokens"]
        read = sum(request + k * SEARCH_RESULT + (written if k else 0) for k in range(searches + 1))
        usage: dict[str, Any] = {"input_tokens": read, "output_tokens": written}
        if b"cache_control" in raw:  # every iteration writes what it read (the 5-minute default)
            usage = {"input_tokens": 0, "cache_creation_input_tokens": read, "output_tokens": written,
                     "cache_creation": {"ephemeral_5m_input_tokens": read, "ephemeral_1h_input_tokens": 0}}  # fmt: skip
        usage["server_tool_use"] = {"web_search_requests": searches}
        await self._answer(
            send,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": req["model"],
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            },  # fmt: skip
        )

    @staticmethod
    async def _answer(send: Any, answer: dict[str, Any]) -> None:
        body = orjson.dumps(answer)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def test_a_searching_agent_is_fitted_to_its_cap_not_billed_past_it(gateway: Any) -> None:
    """Haiku 4.5, three searches, max_tokens 20,000, a $0.25 daily cap. The old bound ($0.21: the request
    and the results read once) admitted the call as it was; the provider then billed four iterations, past
    $0.34, and the agent ended $0.09 over its cap. Now the call is fitted to what the cap allows."""
    from paymaster.server import ServerThread

    upstream = _Documented()
    with ServerThread(upstream) as up:
        providers = {
            "anthropic": {"kind": "anthropic", "base_url": up.url, "api_key_env": "SIM_KEY", "timeout_s": 5},
            "openai": {"kind": "openai", "base_url": up.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
        }
        gw = gateway(providers=providers, agents={"x": {"model": "claude-haiku-4-5", "daily_usd": "0.25",
                                                        "max_tokens": 20_000}})  # fmt: skip
        raw = gw.anthropic("x").messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=20_000,
            messages=[{"role": "user", "content": "what happened today?"}],
            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],  # type: ignore[list-item]
        )
        (row,) = gw.ledger("x")
    assert raw.headers["x-paymaster-max-tokens"].endswith("fitted to budget")
    assert upstream.seen[0]["max_tokens"] < 20_000
    assert Decimal(row["cost_usd"]) <= Decimal("0.25") and row["reconcile"] == 0, row
    assert row["cost_nanos"] <= row["worst_nanos"]


# -- the context window the request part is capped at: GPT-5.5's documented one ------------------------


def test_a_gpt_5_5_request_past_the_price_tables_rounded_window_is_bounded_by_what_it_holds() -> None:
    """developers.openai.com/api/docs/models/gpt-5.5 (and gpt-5.5-pro): a 1,050,000-token context window,
    as GPT-5.4's; genai-prices lists 1,000,000. A request of 1,040,000 tokens (" x" is one o200k token, as
    the gpt-4.1 test in test_attack_responses checks) is accepted and billed in full, at the long-context
    rates past 272,000 input tokens ($10 / MTok input for gpt-5.5, $60 for -pro): the bound capped it at
    1,000,000, $0.40 (gpt-5.5) and $2.40 (-pro) short."""
    from paymaster.call import Usage

    tokens = 1_040_000
    for model, per_mtok in (("gpt-5.5", Decimal(10)), ("gpt-5.5-pro", Decimal(60))):
        body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": " x" * tokens}]}
        rates = TABLE.rates(model, "openai")
        worst = estimate(body, "openai", len(orjson.dumps(body)), rates, rates.context_window).worst_case(0, 1)
        assert worst >= tokens * per_mtok / MTOK
        assert worst >= rates.cost(Usage(tokens, 1))


# -- a cut stream that may have compacted: the compaction step's counts arrive only at the end ----------


def test_a_cut_stream_that_may_have_compacted_stays_at_its_worst_case(gateway: Any, sim: Any) -> None:
    """platform.claude.com/docs/en/build-with-claude/compaction: when the input reaches the trigger, a
    compaction step reads the whole conversation and writes a summary, billed, before the answer; its counts
    come in the final usage's `iterations`, not in message_start's. A stream cut after message_start was
    booked at message_start's input plus max_tokens ($0.34 for Opus 4.6 here), below a bill the provider
    may send: the compaction step reading the 50,015 input tokens again ($0.25 more at $5 / MTok), its
    summary, and the answer. It stays at its worst case, flagged, as a cut stream with server tools does."""
    import anthropic
    import pytest

    gw = gateway(agents={"cara": {"model": "claude-opus-4-6", "daily_usd": 50, "max_tokens": 4096}})
    sim.inject("cut")
    edit = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50_000}}
    with pytest.raises(anthropic.APIError):
        with gw.anthropic("cara").messages.stream(
            model="claude-opus-4-6",
            max_tokens=1000,
            messages=[{"role": "user", "content": "word " * 40_000 + " [sim:tokens=200]"}],
            extra_body={"context_management": {"edits": [edit]}},
        ) as s:
            for _ in s:
                pass
    (row,) = gw.ledger("cara")
    assert row["status"] == "cut" and row["reconcile"] == 1
    read = row["input_tokens"]  # what message_start reported; the compaction step reads it all again
    step = read * Decimal(5) / MTOK
    answered = (read * Decimal(5) * WRITE["5m"] + 1000 * Decimal(25)) / MTOK  # at most: a cache write
    assert Decimal(row["cost_usd"]) >= step + answered
    assert row["cost_nanos"] == row["worst_nanos"]


def test_a_sonnet_4_6_compaction_summary_is_bounded_by_its_documented_max_output() -> None:
    """platform.claude.com/docs/en/models/sonnet-4-6/overview: "Max output: 128K tokens" (an earlier models
    overview said 64K). No document bounds a compaction summary below the model's largest output, so one step
    may write 128,000 tokens; the bound took 64,000 for Sonnet 4.6, $0.96 short per step at $15 / MTok."""
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "word " * 40_000}],
        "context_management": {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens",
                                                                                 "value": 50_000}}]},
    }  # fmt: skip
    request = len(orjson.dumps(body["messages"]))  # at most a token a byte
    # the compaction step reads the conversation and writes its summary; the answer reads it again
    bill = (2 * request * Decimal(3) + (128_000 + 1000) * Decimal(15)) / MTOK
    assert bill <= reserved(body), (bill, reserved(body))


# -- OpenAI Responses server-side compaction: a compaction pass reads the context again ---------------------


def test_a_responses_compaction_pass_is_reserved_for() -> None:
    """developers.openai.com/api/docs/guides/compaction: with `context_management: [{"type": "compaction",
    "compact_threshold": N}]`, "if the context size crosses the threshold, the server triggers a compaction
    pass, emits a compaction output item in the same stream, and prunes context before continuing inference"
    (its output is the response's: such requests need max_output_tokens of at least 20,000). A 120,000-token
    gpt-5.4 request past a 100,000 threshold is read by the compaction pass and then (compacted, at most as
    much) by the answer: up to 240,000 input tokens at $2.50 / MTok. The tight bound (OpenAI's tokenizer,
    used when the coarse one does not fit the agent's budget) counted one read: $0.29 short."""
    from paymaster.call import Usage

    tokens = 120_000  # " x" is one o200k token (test_attack_responses checks it)
    body = {"model": "gpt-5.4", "input": " x" * tokens, "max_output_tokens": 20_000,
            "context_management": [{"type": "compaction", "compact_threshold": 100_000}]}  # fmt: skip
    rates = TABLE.rates("gpt-5.4", "openai")

    def tight(b: dict[str, Any]) -> Decimal:
        return estimate(b, "responses", 0, rates, rates.context_window, exact=True).worst_case(0, 20_000)

    bill = (2 * tokens * Decimal("2.5") + 20_000 * Decimal(15)) / MTOK
    assert bill <= tight(body), (bill, tight(body))
    assert rates.cost(Usage(2 * tokens, 20_000)) <= tight(body)
    # a threshold the request cannot reach: no pass, nothing added
    plain = {k: v for k, v in body.items() if k != "context_management"}
    below = {**body, "context_management": [{"type": "compaction", "compact_threshold": 400_000}]}
    assert tight(below) - tight(plain) < Decimal("0.001")


# -- OpenAI Responses hosted shell: a built-in tool, not a client one -----------------------------------


HOSTED_SHELL = {"type": "shell", "environment": {"type": "container_auto"}}


def test_a_hosted_shell_is_bounded_as_a_built_in_tool_with_its_container() -> None:
    """developers.openai.com/api/docs/guides/tools-shell: `{"type": "shell", "environment": {"type":
    "container_auto"}}` runs the commands in a container OpenAI hosts, inside the response (the quickstart's
    request); containers are billed per session by memory limit, 1 GB $0.03 (developers.openai.com …/pricing,
    "Containers", shared with code interpreter). Nothing documents how much a command prints, so each round
    after a command may read up to the context window. The gateway took every `shell` tool for a client
    one: no `max_tool_calls` (the rounds were unbounded), no rounds and no container in the reservation."""
    from paymaster.costmodel.responses import bound_tool_calls

    body: dict[str, Any] = {"model": "gpt-5.4", "input": "Execute: ls -lah /mnt/data", "max_output_tokens": 1000,
                            "tools": [HOSTED_SHELL]}  # fmt: skip
    calls = bound_tool_calls(body)
    assert calls is not None and body["max_tool_calls"] == calls  # the rounds are bounded
    rates = TABLE.rates("gpt-5.4", "openai")
    worst = estimate(body, "responses", len(orjson.dumps(body)), rates, rates.context_window).worst_case(0, 1000)
    window = 1_050_000  # developers.openai.com …/models/gpt-5.4
    bill = Decimal("0.03") + (calls * window * Decimal(5) + 1000 * Decimal("22.5")) / MTOK  # past 272k: $5 / $22.50
    assert bill <= worst, (bill, worst)
    # a local shell (no hosted environment) stays a client tool: no rounds, no fee
    local = {**body, "tools": [{"type": "shell"}]}
    local.pop("max_tool_calls")
    assert bound_tool_calls(local) is None


def test_a_hosted_shell_container_is_booked_and_a_local_shell_call_is_not() -> None:
    from paymaster.costmodel.responses import tool_fees
    from paymaster.wire.responses import tool_uses

    rates = TABLE.rates("gpt-5.4", "openai")
    output = [{"type": "shell_call", "id": "sh_1", "call_id": "c1", "action": {"commands": ["ls"]}},
              {"type": "shell_call_output", "call_id": "c1", "output": []},
              {"type": "shell_call", "id": "sh_2", "call_id": "c2", "action": {"commands": ["pwd"]}},
              {"type": "message", "role": "assistant", "content": []}]  # fmt: skip
    uses = tool_uses(output)
    hosted = {"model": "gpt-5.4", "input": "x", "tools": [HOSTED_SHELL]}
    big = {"model": "gpt-5.4", "input": "x", "tools": [{**HOSTED_SHELL, "environment": {
        "type": "container_auto", "memory_limit": "4g"}}]}  # fmt: skip
    assert tool_fees(rates, uses, hosted) == Decimal("0.03")  # one container for the response
    assert tool_fees(rates, uses, big) == Decimal("0.12")
    assert tool_fees(rates, uses, {"model": "gpt-5.4", "input": "x", "tools": [{"type": "shell"}]}) == 0


# -- web fetch: the per-fetch ceiling is the provider's to enforce, not an assumption ----------------------


def test_a_web_fetch_without_max_content_tokens_gets_the_ceiling_its_bound_assumes(gateway: Any, sim: Any) -> None:
    """platform.claude.com/docs/en/agents-and-tools/tool-use/web-fetch-tool: web fetch retrieves "full content"
    of web pages and PDFs (text extracted), and `max_content_tokens` "limits the amount of content that will be
    included in the context"; without it nothing bounds a fetch (a long PDF's text can pass any figure). The
    bound assumed 100,000 tokens a fetch and sent the request without the limit, so a fetch past it was billed
    above the reservation. The gateway now writes the ceiling it reserves for into the request, as it writes
    `max_uses`, and says so in `x-paymaster-max-content-tokens`; a request's own limit is kept."""
    from paymaster.costmodel.anthropic import bound_server_tools

    tools = [{"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2},
             {"type": "web_fetch_20260209", "name": "fetch2", "max_uses": 1, "max_content_tokens": 5_000}]  # fmt: skip
    body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}],
            "tools": tools}  # fmt: skip
    bound_server_tools(body)
    assert body["tools"][0]["max_content_tokens"] == FETCH_RESULT
    assert body["tools"][1]["max_content_tokens"] == 5_000
    # through the gateway: the request the provider gets carries the limit
    gw = gateway()
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "read https://example.com"}],
        tools=[{"type": "web_fetch_20250910", "name": "web_fetch"}],  # type: ignore[list-item]
    )
    assert raw.headers["x-paymaster-max-content-tokens"] == f"web_fetch={FETCH_RESULT}"
    sent = [q["body"] for q in sim.requests if q["path"] == "/v1/messages"][-1]
    assert sent["tools"][0]["max_content_tokens"] == FETCH_RESULT


def test_a_responses_compaction_threshold_no_round_can_reach_adds_nothing() -> None:
    """The compaction pass runs "when the rendered token count crosses the configured threshold"
    (developers.openai.com/api/docs/guides/compaction): one round's context, not the sum of every round's reads.
    A 30,000-token gpt-5.4 request with two web searches (25,000 result tokens each) and 1,000 output tokens
    never holds more than 81,000 tokens, under a 100,000 threshold: no pass can run. The rounds' reads summed
    (30,000 + 56,000 + 81,000) passed the threshold, and 167,000 more input tokens ($0.42) were reserved for a
    pass that cannot happen, shrinking or refusing a call the agent can afford."""
    tokens = 30_000
    body = {"model": "gpt-5.4", "input": " x" * tokens, "max_output_tokens": 1_000, "max_tool_calls": 2,
            "tools": [{"type": "web_search"}]}  # fmt: skip
    rates = TABLE.rates("gpt-5.4", "openai")

    def tight(b: dict[str, Any]) -> Decimal:
        return estimate(b, "responses", 0, rates, rates.context_window, exact=True).worst_case(0, 1_000)

    below = {**body, "context_management": [{"type": "compaction", "compact_threshold": 100_000}]}
    assert tight(below) - tight(body) < Decimal("0.001"), (tight(below), tight(body))
    # the largest round reaches a lower threshold: the pass is reserved for, every round read once more
    reached = {**body, "context_management": [{"type": "compaction", "compact_threshold": 80_000}]}
    reads = tokens + (tokens + 25_000 + 1_000) + (tokens + 2 * 25_000 + 1_000)
    assert tight(reached) - tight(body) >= reads * Decimal("2.5") / MTOK
