"""Attack the Responses API's cost bound: for random requests and previous_response_id chains, what the
simulator (which counts input with OpenAI's tokenizer, stored context included, as the provider bills)
bills must never exceed the worst case the gateway reserves — stored context taken from the gateway's
own book (the earlier response's input + output tokens)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.costmodel import estimate
from paymaster.costmodel.responses import bound_tool_calls, tool_fees
from paymaster.pricing import PriceTable
from paymaster.sim.answer import answer
from paymaster.sim.responses import ResponsesAsk, ResponsesWire
from paymaster.wire import responses as wire

TABLE = PriceTable({})
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
words = st.lists(st.sampled_from(["the", "ok", "Zürich", "日本語", "🙂", "{", "\n", "a b c"]), max_size=60).map(
    " ".join
)
schema = st.just(
    {
        "type": "object",
        "properties": {"a": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["a", "n"],
        "additionalProperties": False,
    }
)  # noqa: E501
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer"]), "content": st.one_of(text, words)}
)
call_pair = st.builds(
    lambda name, args, out: [
        {"type": "function_call", "call_id": "call_1", "name": name, "arguments": args},
        {"type": "function_call_output", "call_id": "call_1", "output": out},
    ],
    st.sampled_from(["get_weather", "f"]),
    st.one_of(text, st.just('{"city": "Oslo"}')),
    st.one_of(text, words),
)
items = st.lists(st.one_of(message.map(lambda m: [m]), call_pair), max_size=6).map(
    lambda xs: [i for x in xs for i in x]
)


@st.composite
def request(draw: Any) -> dict[str, Any]:
    model = draw(st.sampled_from(["gpt-4.1-mini", "gpt-4o", "gpt-5-mini", "o4-mini"]))
    body: dict[str, Any] = {"model": model}
    tail = f"{draw(words)} [sim:tokens={draw(st.integers(0, 400))}]"
    body["input"] = draw(st.one_of(st.just(tail), items.map(lambda xs: [*xs, {"role": "user", "content": tail}])))
    if draw(st.booleans()):
        body["instructions"] = draw(st.one_of(text, words))
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "name": "get_weather", "parameters": draw(schema)}]
        if draw(st.booleans()):
            body["input"] = [{"role": "user", "content": "[sim:tool=get_weather]"}]
    if draw(st.booleans()):
        body["text"] = {"format": {"type": "json_schema", "name": "x", "schema": draw(schema), "strict": True}}
    body["max_output_tokens"] = draw(st.integers(16, 600))
    if model.startswith(("gpt-5", "o")):
        body["reasoning"] = {"effort": draw(st.sampled_from(["minimal", "low", "medium", "high"]))}
    return body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request(), min_size=1, max_size=4))
def test_billed_never_exceeds_reserved_along_a_chain(chain: list[dict[str, Any]]) -> None:
    sim = ResponsesWire()
    book: int | None = 0  # the gateway's figure for the stored context the next request names
    prev: str | None = None
    for body in chain:
        body = {**body, "model": chain[0]["model"]}  # a chain stays on one model
        if prev is not None:
            body["previous_response_id"] = prev
        rates = TABLE.rates(body["model"], "openai")
        bound_tool_calls(body)
        payload = orjson.dumps(body)
        worst = estimate(body, "responses", len(payload), rates, rates.context_window, stored=book)
        ask = sim.ask(orjson.loads(payload), payload)
        assert isinstance(ask, ResponsesAsk), ask
        resp = sim._finish(ask, answer(ask, 50))
        usage = wire.answer_usage(resp)
        assert usage is not None
        billed = rates.cost(usage) + tool_fees(rates, usage.server_tool_uses, body)
        reserved = worst.worst_case(0, body["max_output_tokens"])
        assert billed <= reserved, (billed, reserved, usage, worst.measure)
        # and part by part: the input side alone within its bound, the output within max_output_tokens
        input_side = rates.cost(Usage(usage.input_tokens, 0, usage.cache_read_tokens))
        assert input_side <= worst.input_usd, (input_side, worst.input_usd, usage, worst.measure)
        assert usage.output_tokens <= body["max_output_tokens"]
        tight = estimate(body, "responses", 0, rates, rates.context_window, exact=True, stored=book)
        assert input_side <= tight.input_usd, (input_side, tight.input_usd, usage, tight.measure)
        book = usage.input_tokens + usage.output_tokens
        prev = resp["id"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 8), st.integers(1, 8), st.sampled_from(["web_search", "web_search_preview", "file_search"]))
def test_built_in_tool_rounds_bound_any_documented_usage(used: int, limit: int, tool: str) -> None:
    """However many tool calls (up to max_tool_calls) a response makes, and whatever each returns within
    its documented limit, a round reads at most the context window: input ≤ (calls + 1) × window."""
    used = min(used, limit)
    rates = TABLE.rates("gpt-4.1-mini", "openai")
    window = rates.context_window
    assert window is not None
    body = {"model": "gpt-4.1-mini", "input": "find it", "tools": [{"type": tool}], "max_tool_calls": limit}
    worst = estimate(body, "responses", len(orjson.dumps(body)), rates, window)
    per_result = 50 * 4096 if tool == "file_search" else 25_000
    request_tokens = len(orjson.dumps(body))
    rounds = [min(window, request_tokens + k * per_result) for k in range(used + 1)]
    input_tokens = sum(rounds)  # the most the documented limits allow
    uses = {"file_search_call" if tool == "file_search" else "web_search_call": used}
    billed = rates.cost(Usage(input_tokens, 100)) + tool_fees(rates, uses, body)
    assert billed <= worst.worst_case(0, 100)
    assert worst.worst_case(0, 100) >= Decimal(used) * Decimal("0.0025")
