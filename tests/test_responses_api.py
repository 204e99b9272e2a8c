"""The OpenAI Responses API through the gateway, driven by the official `openai` SDK against the simulator:
create (plain and streamed), parse (structured output), retrieve / delete / input_items with per-agent
ownership, stored context bounded from the gateway's own book, reasoning usage, built-in tools, translation
to Claude, and bad input in the Responses error shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from paymaster.call import Usage
from paymaster.pricing import usd_str

MODELS = ["gpt-4.1-mini", "gpt-4o", "gpt-5-mini", "claude-haiku-4-5"]


def olivia(**over: Any) -> dict[str, Any]:
    agent = {"model": "gpt-4.1-mini", "models": MODELS, "daily_usd": 5, "monthly_usd": 50, "max_tokens": 2048}
    agent.update(over)
    return agent


def sent(gw: Any, path: str = "/v1/responses") -> list[dict[str, Any]]:
    """What reached the simulator at `path` (its request log)."""
    sim_url = gw.config.providers["openai"].base_url.removesuffix("/v1")
    return [r for r in httpx2.get(sim_url + "/_sim/requests").json() if r["path"] == path]


def cost_of(gw: Any, model: str, u: Any) -> Decimal:
    usage = Usage(u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens)
    usage.reasoning_tokens = u.output_tokens_details.reasoning_tokens
    return gw.gw.rates_of(model).cost(usage)


def test_create_is_booked_from_its_usage(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    raw = gw.openai().responses.with_raw_response.create(model="gpt-4.1-mini", input="Say hi [sim:tokens=12]")
    resp = raw.parse()
    assert resp.status == "completed"
    assert len(resp.output_text.split()) == 12
    assert resp.usage is not None and resp.usage.output_tokens == 12
    [row] = gw.ledger("olivia")
    assert (row["api"], row["status"], row["model"]) == ("responses", "ok", "gpt-4.1-mini")
    assert (row["input_tokens"], row["output_tokens"]) == (resp.usage.input_tokens, 12)
    expected = cost_of(gw, "gpt-4.1-mini", resp.usage)
    assert Decimal(row["cost_usd"]) == expected
    assert raw.headers["x-paymaster-cost-usd"] == usd_str(expected)
    assert sent(gw)[-1]["body"]["max_output_tokens"] == 2048  # the agent's ceiling, set by output control
    assert "prompt_cache_key" in sent(gw)[-1]["body"]  # the caching lever groups the agent's prefixes


def test_stream_relays_semantic_events_and_settles(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    client = gw.openai()
    with client.responses.stream(model="gpt-4.1-mini", input="Tell me [sim:tokens=30]") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 10
    assert len(final.output_text.split()) == 30
    [row] = gw.ledger("olivia")
    assert row["stream"] == 1 and row["output_tokens"] == 30
    assert Decimal(row["cost_usd"]) == cost_of(gw, "gpt-4.1-mini", final.usage)


def test_create_stream_true_iterates_events(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    events = list(gw.openai().responses.create(model="gpt-4.1-mini", input="hi [sim:tokens=5]", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.output_tokens == 5


class Weather(BaseModel):
    city: str
    celsius: int


def test_parse_structured_output(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    parsed = gw.openai().responses.parse(model="gpt-4.1-mini", input="Weather in Oslo?", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    assert sent(gw)[-1]["body"]["text"]["format"]["type"] == "json_schema"


def test_task_schema_becomes_text_format(gateway: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}},
        "required": ["label"],
        "additionalProperties": False,
    }
    gw = gateway(agents={"olivia": olivia(tasks={"classify": {"schema": schema, "max_tokens": 100}})})
    resp = gw.openai().responses.create(
        model="gpt-4.1-mini", input="Label this", extra_headers={"x-paymaster-task": "classify"}
    )
    fmt = sent(gw)[-1]["body"]["text"]["format"]
    assert fmt == {"type": "json_schema", "name": "classify", "schema": schema, "strict": True}
    assert sent(gw)[-1]["body"]["max_output_tokens"] == 100
    assert "label" in resp.output_text


def test_retrieve_delete_and_input_items_for_the_owner_only(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia(), "oscar": olivia()})
    mine, other = gw.openai("olivia"), gw.openai("oscar")
    resp = mine.responses.create(model="gpt-4.1-mini", input="Remember this [sim:tokens=4]")
    assert mine.responses.retrieve(resp.id).output_text == resp.output_text
    items = mine.responses.input_items.list(resp.id)
    assert [i.type for i in items.data] == ["message"]
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):  # nor continue it
        other.responses.create(model="gpt-4.1-mini", input="and?", previous_response_id=resp.id)
    with pytest.raises(openai.BadRequestError):  # cancel: background responses only (the provider says so)
        mine.responses.cancel(resp.id)
    mine.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(resp.id)
    assert len(gw.ledger("olivia")) == 1  # none of those is billed


def test_previous_response_chain_is_bounded_by_its_stored_context(gateway: Any) -> None:
    """Each turn's request body is tiny, but the provider bills the whole stored chain as input: the
    gateway bounds it from its own book, so the turn that would pass the cap is refused up front."""
    gw = gateway(agents={"olivia": olivia(daily_usd=0.02, max_tokens=2000)})
    client = gw.openai()
    prev = None
    refused = None
    for turn in range(40):
        try:
            raw = client.responses.with_raw_response.create(
                model="gpt-4.1-mini",
                input=f"turn {turn} [sim:tokens=2000]",
                previous_response_id=prev,
                max_output_tokens=2000,
            )
        except openai.APIStatusError as e:
            refused = e
            break
        resp = raw.parse()
        assert resp.usage is not None
        if prev is not None:  # the provider billed the stored context: far more than this turn's body
            assert resp.usage.input_tokens > 2000 * turn
            reserved = Decimal(raw.headers.get("x-paymaster-cost-usd"))
            assert reserved > 0
        prev = resp.id
    assert refused is not None and refused.status_code == 402
    rows = gw.ledger("olivia")
    spent = sum(Decimal(r["cost_usd"]) for r in rows)
    assert spent <= Decimal("0.02")
    assert all(r["cost_nanos"] <= r["worst_nanos"] for r in rows)


def test_unknown_previous_response_is_bounded_by_the_context_window_or_refused(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    client = gw.openai()
    # never served by the gateway: bounded by gpt-4.1-mini's 1M-token window ($0.40), which fits
    with pytest.raises(openai.BadRequestError) as e:  # the provider does not know it either
        client.responses.create(model="gpt-4.1-mini", input="hi", previous_response_id="resp_unknown")
    assert e.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    [row] = gw.ledger("olivia")
    assert row["worst_nanos"] >= 1_000_000 * 400  # 1M tokens at $0.40/MTok, in nano-dollars
    assert row["cost_nanos"] == 0
    strict = gateway(agents={"olivia": olivia()}, responses={"unknown_stored_context": "refuse"})
    with pytest.raises(openai.BadRequestError) as e:
        strict.openai().responses.create(model="gpt-4.1-mini", input="hi", previous_response_id="resp_unknown")
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert strict.ledger("olivia") == []


def test_reasoning_tokens_are_output_and_bounded_by_max_output_tokens(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    client = gw.openai()
    resp = client.responses.create(
        model="gpt-5-mini", input="Think [sim:tokens=10]", reasoning={"effort": "low"}, max_output_tokens=100
    )
    assert resp.usage.output_tokens_details.reasoning_tokens == 16
    assert resp.usage.output_tokens == 26
    assert sent(gw)[-1]["body"]["reasoning"] == {"effort": "low"}  # passed through
    [row] = gw.ledger("olivia")
    assert row["output_tokens"] == 26 and row["max_tokens"] == 100
    short = client.responses.create(
        model="gpt-5-mini", input="Think [sim:tokens=10]", reasoning={"effort": "high"}, max_output_tokens=100
    )
    assert short.status == "incomplete" and short.usage.output_tokens == 100


def test_built_in_tools_are_priced_per_use_or_refused(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    client = gw.openai()
    raw = client.responses.with_raw_response.create(
        model="gpt-4.1-mini", input="Search [sim:tokens=5]", tools=[{"type": "web_search"}]
    )
    assert raw.headers["x-paymaster-max-tool-calls"].startswith("5")
    assert sent(gw)[-1]["body"]["max_tool_calls"] == 5
    [row] = gw.ledger("olivia")
    # reserved: 5 searches at $0.01 each, and six sampling rounds reading the context and results
    assert row["worst_nanos"] >= 5 * 10_000_000
    searched = client.responses.create(
        model="gpt-4.1-mini", input="Search [sim:web_search=2] [sim:tokens=5]", tools=[{"type": "web_search"}]
    )
    assert [i.type for i in searched.output] == ["web_search_call", "web_search_call", "message"]
    row = next(r for r in gw.ledger("olivia") if r["input_tokens"] == searched.usage.input_tokens)
    rates = gw.gw.rates_of("gpt-4.1-mini")
    assert Decimal(row["cost_usd"]) == cost_of(gw, "gpt-4.1-mini", searched.usage) + 2 * rates.fee("web_search")
    assert row["reconcile"] == 0 and row["cost_nanos"] <= row["worst_nanos"]
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-4.1-mini", input="Draw", tools=[{"type": "image_generation"}])
    assert e.value.body["param"] == "tools"  # type: ignore[index]
    assert len(gw.ledger("olivia")) == 2


def test_translated_to_claude_when_stateless(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    client = gw.openai()
    raw = client.responses.with_raw_response.create(
        model="claude-haiku-4-5", input="Hello [sim:tokens=8]", instructions="Be brief.", store=False
    )
    resp = raw.parse()
    assert raw.headers["x-paymaster-translated"] == "responses -> anthropic"
    assert len(resp.output_text.split()) == 8 and resp.usage.output_tokens == 8
    with client.responses.stream(model="claude-haiku-4-5", input="Hi [sim:tokens=9]", store=False) as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert len(final.output_text.split()) == 9
    with pytest.raises(openai.BadRequestError) as e:  # stored state exists only at OpenAI
        client.responses.create(model="claude-haiku-4-5", input="and?", previous_response_id=resp.id)
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:  # no mapping: a 400, never dropped
        client.responses.create(model="claude-haiku-4-5", input="x", store=False, tools=[{"type": "web_search"}])
    assert e.value.body["param"] == "tools[0]"  # type: ignore[index]
    assert [r["status"] for r in gw.ledger("olivia")] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4.1-mini"}, "input"),
        ({"model": "gpt-4.1-mini", "input": 5}, "input"),
        ({"model": "gpt-4.1-mini", "input": [{"content": "x"}]}, "input[0].role"),
        ({"model": "gpt-4.1-mini", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "gpt-4.1-mini", "input": "x", "background": True}, "background"),
        ({"model": "gpt-4.1-mini", "input": "x", "tools": [{"name": "f"}]}, "tools"),
        ({"model": "gpt-4.1-mini", "input": "x", "previous_response_id": "r", "conversation": "c"}, "conversation"),
        ({"model": "gpt-4.1-mini", "input": "x", "stream": "yes"}, "stream"),
        ({"input": "x"}, "model"),
    ],
)
def test_bad_input_is_a_4xx_in_the_responses_error_shape(gateway: Any, body: dict[str, Any], param: str) -> None:
    gw = gateway(agents={"olivia": olivia()})
    before = gw.spend()
    r = httpx2.post(gw.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {gw.keys['olivia']}"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    assert gw.spend() == before
    assert sent(gw) == []


def test_unknown_fields_pass_through(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    gw.openai().responses.create(
        model="gpt-4.1-mini", input="hi", extra_body={"x_future_field": {"a": 1}}, truncation="disabled", top_p=0.5
    )
    body = sent(gw)[-1]["body"]
    assert body["x_future_field"] == {"a": 1} and body["truncation"] == "disabled" and body["top_p"] == 0.5


def test_a_cut_stream_is_booked_at_its_worst_and_told_in_the_responses_shape(gateway: Any, sim: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    sim.inject("cut", model="gpt-4.1-mini")
    events = []
    with pytest.raises(openai.APIError):
        for event in gw.openai().responses.create(
            model="gpt-4.1-mini", input="long [sim:tokens=300]", stream=True, max_output_tokens=300
        ):
            events.append(event.type)
            if event.type == "error":  # the gateway's closing error event, as the SDK yields it
                raise openai.APIError(event.message, request=None, body=None)  # type: ignore[arg-type]
    assert events[0] == "response.created" and events[-1] == "error"
    [row] = gw.ledger("olivia")
    assert row["status"] == "cut" and row["reconcile"] == 1
    assert row["cost_nanos"] == row["worst_nanos"]  # no usage came: the full worst case, never zero


def test_provider_errors_reach_the_caller_in_its_shape_and_cost_nothing(gateway: Any, sim: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    sim.inject("429", model="gpt-4.1-mini")
    with pytest.raises(openai.RateLimitError) as e:
        gw.openai().responses.create(model="gpt-4.1-mini", input="hi")
    assert e.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    [row] = gw.ledger("olivia")
    assert row["status"] == "upstream_error" and row["cost_nanos"] == 0


def test_auto_routes_a_responses_call(gateway: Any) -> None:
    agent = olivia(model="auto", tiers={"light": "gpt-4.1-mini", "heavy": "gpt-4o"})
    gw = gateway(agents={"olivia": agent})
    raw = gw.openai().responses.with_raw_response.create(model="auto", input="What is 2+2?")
    assert raw.headers["x-paymaster-model"] in ("gpt-4.1-mini", "gpt-4o")
    assert sent(gw)[-1]["body"]["model"] == raw.headers["x-paymaster-model"]


def test_no_false_refusal_text_counted_exactly_when_the_byte_bound_does_not_fit(gateway: Any) -> None:
    """Bytes bound the text coarsely (3 bytes per CJK character); when that would not fit what the agent
    has left, the gateway counts the text with the model's public tokenizer instead."""
    gw = gateway(agents={"olivia": olivia(daily_usd=0.01)})
    raw = gw.openai().responses.with_raw_response.create(
        model="gpt-4.1-mini", input="日本語 " * 5000, max_output_tokens=16
    )
    assert raw.parse().status in ("completed", "incomplete")
    [row] = gw.ledger("olivia")
    assert row["status"] == "ok" and row["cost_nanos"] <= row["worst_nanos"] < 10_000_000  # under the $0.01 cap


def test_store_true_to_claude_follows_the_translation_policy(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    raw = gw.openai().responses.with_raw_response.create(
        model="claude-haiku-4-5", input="hi [sim:tokens=3]", store=True
    )
    assert "store" in raw.headers["x-paymaster-dropped"]
    strict = gateway(agents={"olivia": olivia()}, translation={"policy": "strict"})
    with pytest.raises(openai.BadRequestError) as e:
        strict.openai().responses.create(model="claude-haiku-4-5", input="hi", store=True)
    assert e.value.body["param"] == "store"  # type: ignore[index]


def test_deferral_is_for_messages_and_chat_only(gateway: Any) -> None:
    gw = gateway(agents={"olivia": olivia()})
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai().responses.create(model="gpt-4.1-mini", input="hi", extra_headers={"x-paymaster-defer": "1h"})
    assert e.value.body["param"] == "x-paymaster-defer"  # type: ignore[index]
    assert gw.ledger("olivia") == [] and sent(gw) == []
