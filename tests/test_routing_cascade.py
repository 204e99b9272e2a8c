"""Verified cascades: the answer check (routing_cascade.check) on real wire answers and documented shapes."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx2
import openai
import pytest
from conftest import PROVIDER_KEY

from paymaster.levers.routing_cascade import Attempt, cascade, check, schema_errors

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
LIGHT = "claude-haiku-4-5"


def raw_anthropic(sim, **kw) -> tuple[dict, dict]:
    c = anthropic.Anthropic(base_url=sim.url, api_key=PROVIDER_KEY, max_retries=0)
    body = {"model": LIGHT, "max_tokens": 300, **kw}
    return body, json.loads(c.messages.with_raw_response.create(**body).http_response.text)


def raw_openai(sim, **kw) -> tuple[dict, dict]:
    c = openai.OpenAI(base_url=sim.url + "/v1", api_key=PROVIDER_KEY, max_retries=0)
    body = {"model": "gpt-4.1-mini", "max_completion_tokens": 300, **kw}
    return body, json.loads(c.chat.completions.with_raw_response.create(**body).http_response.text)


TOOL = {"name": "forecast", "description": "weather", "input_schema": WEATHER}
OA_TOOL = {"type": "function", "function": {"name": "forecast", "parameters": WEATHER}}
ASK = [{"role": "user", "content": "Weather in Paris for 3 days?"}]


def test_a_good_anthropic_tool_call_passes_and_a_spoiled_one_fails(sim):
    body, ans = raw_anthropic(sim, messages=ASK, tools=[TOOL], tool_choice={"type": "tool", "name": "forecast"})
    assert ans["stop_reason"] == "tool_use" and check("anthropic", body, ans) is None
    sim.flaws.set(LIGHT, 1.0)
    body, ans = raw_anthropic(sim, messages=ASK, tools=[TOOL], tool_choice={"type": "tool", "name": "forecast"})
    why = check("anthropic", body, ans)
    assert why is not None and "input_schema" in why and "city" in why


def test_anthropic_json_output_is_checked_against_its_schema(sim):
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": WEATHER}}}
    body, ans = raw_anthropic(sim, messages=ASK, extra_body=fmt)
    body.update(fmt)
    assert check("anthropic", body, ans) is None
    sim.flaws.set(LIGHT, 1.0)
    body, ans = raw_anthropic(sim, messages=ASK, extra_body=fmt)
    body.update(fmt)
    assert check("anthropic", body, ans) == "the answer is not JSON"
    wrong = {**ans, "content": [{"type": "text", "text": '{"city": "Paris", "days": 0}'}]}
    assert "days" in check("anthropic", body, wrong)
    beta = {"model": LIGHT, "output_format": {"type": "json_schema", "schema": WEATHER}}  # the beta field
    assert "days" in check("anthropic", beta, wrong)


def test_openai_json_schema_tool_calls_and_json_object(sim):
    rf = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}}
    body, ans = raw_openai(sim, messages=ASK, response_format=rf)
    assert check("openai", body, ans) is None
    body, ans = raw_openai(sim, messages=ASK, tools=[OA_TOOL], tool_choice="required")
    assert ans["choices"][0]["message"]["tool_calls"] and check("openai", body, ans) is None
    sim.flaws.set("gpt-4.1-mini", 1.0)
    body, ans = raw_openai(sim, messages=ASK, tools=[OA_TOOL], tool_choice="required")
    assert "parameters" in check("openai", body, ans)
    body, ans = raw_openai(sim, messages=ASK, response_format=rf)
    assert check("openai", body, ans) == "the answer is not JSON"
    body, ans = raw_openai(sim, messages=ASK, response_format={"type": "json_object"})
    assert check("openai", body, ans) == "the answer is not JSON"
    array = {**ans, "choices": [{**ans["choices"][0], "message": {"role": "assistant", "content": "[1]"}}]}
    assert check("openai", body, array) == "the answer is JSON but not an object"


def test_cut_off_answers_fail_on_both_apis(sim):
    long = [{"role": "user", "content": "Tell me everything [sim:tokens=200]"}]
    body, ans = raw_anthropic(sim, messages=long, max_tokens=20)
    assert ans["stop_reason"] == "max_tokens" and check("anthropic", body, ans) == "cut off at max_tokens"
    body, ans = raw_openai(sim, messages=long, max_completion_tokens=20)
    assert ans["choices"][0]["finish_reason"] == "length"
    assert check("openai", body, ans) == "cut off at max_tokens"
    body, ans = raw_anthropic(sim, messages=[{"role": "user", "content": "Hi [sim:tokens=5]"}])
    assert check("anthropic", body, ans) is None  # a plain, complete answer passes


def test_refusals_in_the_documented_shapes():
    # Anthropic: stop_reason "refusal" (Claude 4 models' streaming classifier intervention).
    req = {"model": LIGHT, "messages": ASK}
    ans = {"type": "message", "role": "assistant", "content": [], "stop_reason": "refusal", "usage": {}}
    assert check("anthropic", req, ans) == "refusal"
    # OpenAI: message.refusal set (structured outputs), or finish_reason "content_filter".
    msg = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    ans = {"object": "chat.completion", "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
    assert check("openai", {"messages": ASK}, ans) == "refusal"
    filt = {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"}
    assert check("openai", {"messages": ASK}, {"choices": [filt]}) == "refusal (content filter)"


def test_tool_choice_rules_and_undeclared_tools():
    text_only = {"content": [{"type": "text", "text": "It will be sunny."}], "stop_reason": "end_turn"}
    req = {"tools": [TOOL], "tool_choice": {"type": "any"}}
    assert check("anthropic", req, text_only) == "tool_choice requires a tool call and there is none"
    assert check("anthropic", {"tools": [TOOL], "tool_choice": {"type": "auto"}}, text_only) is None
    other = {"content": [{"type": "tool_use", "id": "t", "name": "search", "input": {}}], "stop_reason": "tool_use"}
    assert check("anthropic", req, other) == "tool call to an undeclared tool 'search'"
    search = {"name": "search", "input_schema": {"type": "object"}}
    named = {"tools": [TOOL, search], "tool_choice": {"type": "tool", "name": "forecast"}}
    assert check("anthropic", named, other) == "tool_choice requires 'forecast'"
    bad_args = {
        "function": {"name": "forecast", "arguments": '{"city": "Paris", "days": 2'},
        "id": "c",
        "type": "function",
    }
    msg = {"role": "assistant", "content": None, "tool_calls": [bad_args]}
    ans = {"choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls"}]}
    assert check("openai", {"tools": [OA_TOOL]}, ans) == "tool 'forecast' arguments are not JSON"
    good = {"index": 1, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    cut = {"index": 0, "message": {"role": "assistant", "content": "o"}, "finish_reason": "length"}
    assert check("openai", {}, {"choices": [good, cut]}) == "choice 0: cut off at max_tokens"  # every choice counts
    assert check("openai", {}, {"choices": []}) == "no choices"


def test_schema_errors_name_the_place_and_accept_what_the_schema_allows():
    assert schema_errors(WEATHER, {"city": "Oslo", "days": 2}) is None
    assert schema_errors(WEATHER, {"city": "Oslo"}).startswith("(root): 'days' is a required property")
    assert schema_errors(WEATHER, {"city": "Oslo", "days": "2"}).startswith("days:")
    assert schema_errors(None, 42) is None  # no schema: anything
    assert schema_errors({"type": "bogus-type"}, 1) is None  # a schema we cannot read is not held against the answer
    deep = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    assert schema_errors(deep, [1, 2]) is None and schema_errors(deep, [1, "x"]).startswith("1:")


def test_the_simulator_flaw_rate_spoils_about_that_share(sim):
    rate = 0.5
    sim.flaws.set(LIGHT, rate)
    failed = 0
    for i in range(40):
        ask = [{"role": "user", "content": f"Weather in city number {i}?"}]
        body, ans = raw_anthropic(sim, messages=ask, tools=[TOOL], tool_choice={"type": "any"})
        failed += check("anthropic", body, ans) is not None
    assert failed / 40 == pytest.approx(rate, abs=0.2)


def test_cascade_returns_the_first_passing_answer_or_hands_over_to_the_last_model(sim):
    import asyncio

    sent: list[str] = []

    async def run(body: dict) -> tuple[bytes | None, list[Attempt]]:
        headers = {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}
        async with httpx2.AsyncClient(base_url=sim.url, headers=headers) as http:

            async def ask(b: dict) -> tuple[int, bytes]:
                sent.append(b["model"])
                r = await http.post("/v1/messages", json=b)
                return r.status_code, r.content

            return await cascade("anthropic", body, [LIGHT, "claude-sonnet-4-6", "claude-opus-4-8"], ask)

    body = {"max_tokens": 300, "messages": ASK, "tools": [TOOL], "tool_choice": {"type": "any"}}
    answer, tried = asyncio.run(run(body))
    assert answer is not None and json.loads(answer)["model"] == LIGHT
    assert tried == [Attempt(LIGHT, 200, None)] and sent == [LIGHT]
    sim.flaws.set(LIGHT, 1.0)
    sim.flaws.set("claude-sonnet-4-6", 1.0)
    sent.clear()
    answer, tried = asyncio.run(run(body))
    assert answer is None and sent == [LIGHT, "claude-sonnet-4-6"]  # the last model is the caller's to run
    assert all(a.status == 200 and "input_schema" in (a.failed or "") for a in tried)
    sent.clear()
    answer, tried = asyncio.run(run({**body, "max_tokens": -1}))  # the provider refuses: escalate
    assert answer is None and [a.failed for a in tried] == ["HTTP 400", "HTTP 400"]


# -- through the gateway ------------------------------------------------------------------------------

LADDER = {"light": LIGHT, "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}


def cascade_gateway(gateway):
    agents = {"alice": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 400}}
    return gateway(agents=agents, routing={"cascade": ["extraction"]})


EXTRACT = dict(
    model="auto",
    max_tokens=300,
    messages=ASK,
    tools=[TOOL],
    tool_choice={"type": "tool", "name": "forecast"},
    extra_headers={"x-paymaster-task": "extraction"},
)


def extract(gw):
    return gw.anthropic().messages.with_raw_response.create(**EXTRACT)


def test_gateway_cascade_answers_from_the_light_tier_when_its_answer_passes(gateway, sim):
    gw = cascade_gateway(gateway)
    raw = extract(gw)
    msg = raw.parse()
    assert msg.model == LIGHT and msg.content[0].type == "tool_use"
    assert raw.headers["x-paymaster-cascade"] == f"{LIGHT} passed"
    attempt, answer = gw.ledger("alice")  # the attempt at its cost; the caller's answer at zero, from it
    assert (attempt["model"], attempt["status"], attempt["task"]) == (LIGHT, "ok", "extraction")
    assert attempt["cost_nanos"] > 0
    assert (answer["model"], answer["status"], answer["cost_nanos"]) == (LIGHT, "cascade", 0)
    assert raw.headers["x-paymaster-call-id"] == answer["id"]
    rated = httpx2.post(
        gw.url + "/v1/paymaster/feedback",
        json={"call_id": answer["id"], "success": True},
        headers={"authorization": f"Bearer {gw.keys['alice']}"},
    )
    assert rated.status_code == 200 and rated.json()["tier"] == "light"  # the caller can rate the answer it got


def test_gateway_cascade_escalates_on_a_failed_check_and_books_every_attempt(gateway, sim):
    gw = cascade_gateway(gateway)
    sim.flaws.set(LIGHT, 1.0)
    raw = extract(gw)
    msg = raw.parse()
    assert msg.model == "claude-sonnet-4-6" and check("anthropic", {"tools": [TOOL]}, msg.model_dump()) is None
    assert raw.headers["x-paymaster-cascade"].startswith(f"{LIGHT} failed: tool 'forecast' input")
    rows = gw.ledger("alice")
    assert [(r["model"], r["status"]) for r in rows] == [
        (LIGHT, "ok"),  # the failed attempt, booked at its cost
        ("claude-sonnet-4-6", "ok"),  # the attempt that passed
        ("claude-sonnet-4-6", "cascade"),  # the caller's answer, from it, at zero
    ]
    assert all(r["cost_nanos"] > 0 and r["task"] == "extraction" for r in rows[:2]) and rows[2]["cost_nanos"] == 0
    agent = gw.admin("/admin/agents/alice").json()
    spent = sum(r["cost_nanos"] for r in rows)
    assert Decimal(agent["remaining_daily_usd"]) == 50 - Decimal(spent) / 10**9  # the cap counts both attempts

    sim.flaws.set("claude-sonnet-4-6", 1.0)  # both cheaper tiers fail: the top tier answers, unchecked
    raw = extract(gw)
    assert raw.parse().model == "claude-opus-4-8"
    assert raw.headers["x-paymaster-route"].startswith("cascade: ")
    assert [r["model"] for r in gw.ledger("alice")][3:] == [LIGHT, "claude-sonnet-4-6", "claude-opus-4-8"]


def test_gateway_cascade_is_opt_in_and_never_for_streams(gateway, sim):
    gw = cascade_gateway(gateway)
    sim.flaws.set(LIGHT, 1.0)
    with gw.anthropic().messages.stream(**EXTRACT) as s:
        s.get_final_message()
    raw = gw.anthropic().messages.with_raw_response.create(
        model="auto", max_tokens=50, messages=ASK, extra_headers={"x-paymaster-task": "formatting"}
    )
    assert "x-paymaster-cascade" not in raw.headers
    assert len(gw.ledger("alice")) == 2  # one row each: neither was cascaded


def test_gateway_cascade_on_the_openai_api_checks_the_json_schema_answer(gateway, sim):
    tiers = {"light": "gpt-4.1-mini", "heavy": "gpt-4o"}
    agents = {"olga": {"model": "auto", "tiers": tiers, "daily_usd": 50, "max_tokens": 400}}
    gw = gateway(agents=agents, routing={"cascade": ["extraction"]})
    rf = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}}
    sim.flaws.set("gpt-4.1-mini", 1.0)
    raw = gw.openai("olga").chat.completions.with_raw_response.create(
        model="auto", messages=ASK, response_format=rf, extra_headers={"x-paymaster-task": "extraction"}
    )
    out = raw.parse()
    assert out.model.startswith("gpt-4o") and json.loads(out.choices[0].message.content)["days"] == 1
    assert raw.headers["x-paymaster-cascade"] == "gpt-4.1-mini failed: the answer is not JSON"
    assert [r["model"] for r in gw.ledger("olga")] == ["gpt-4.1-mini", "gpt-4o"]


def test_cascades_never_take_an_agent_past_its_cap(gateway, sim):
    agents = {"alice": {"model": "auto", "tiers": LADDER, "daily_usd": "0.01", "max_tokens": 400}}
    gw = gateway(agents=agents, routing={"cascade": ["extraction"]})
    sim.flaws.set(LIGHT, 1.0)  # every call pays light, then standard
    refused = 0
    for _ in range(40):
        try:
            extract(gw)
        except anthropic.APIStatusError as e:
            assert e.status_code == 402 and e.body["type"] == "error", e.body  # the caller's own error shape
            refused += 1
    rows = gw.ledger("alice")
    assert refused and sum(r["cost_nanos"] for r in rows) <= 10_000_000  # $0.01 in nano-dollars
    assert Decimal(gw.admin("/admin/agents/alice").json()["remaining_daily_usd"]) >= 0


def test_cascade_savings_net_every_attempt_against_the_top_tier(gateway, sim):
    """A passing attempt is credited (to routing) the top tier's price for its usage less its own cost; a failed
    attempt has no counterfactual, so its whole cost is a negative saving. Over the ledger, baseline - actual is
    exactly what the cascades saved net of every attempt (savings.py rules)."""
    from paymaster.call import Usage
    from paymaster.pricing import to_nanos

    gw = cascade_gateway(gateway)
    top = gw.gw.rates_of("claude-opus-4-8")

    def on_top(r: dict) -> int:
        return to_nanos(top.cost(Usage(r["input_tokens"], r["output_tokens"])))

    extract(gw)  # light passes
    sim.flaws.set(LIGHT, 1.0)
    extract(gw)  # light fails, standard passes
    sim.flaws.set("claude-sonnet-4-6", 1.0)
    extract(gw)  # both fail: the top tier answers
    rows = [r for r in gw.ledger("alice") if r["status"] != "cascade"]
    assert [r["model"] for r in rows] == [
        LIGHT,
        LIGHT,
        "claude-sonnet-4-6",
        LIGHT,
        "claude-sonnet-4-6",
        "claude-opus-4-8",
    ]
    saved = [json.loads(r["savings"] or "{}").get("routing", 0) for r in rows]
    passed, failed_light, passed_std, failed_a, failed_b, top_row = zip(rows, saved, strict=True)
    for row, s in (passed, passed_std):
        assert s == on_top(row) - row["cost_nanos"] > 0 and row["baseline_cost_nanos"] == on_top(row)
    for row, s in (failed_light, failed_a, failed_b):
        assert s == -row["cost_nanos"] < 0 and row["baseline_cost_nanos"] == 0
    assert top_row[1] == 0 and top_row[0]["baseline_cost_nanos"] == top_row[0]["cost_nanos"]
    answers = [r for r in gw.ledger("alice") if r["status"] == "cascade"]
    assert len(answers) == 2 and all(r["baseline_cost_nanos"] == 0 for r in answers)  # nothing counted twice


def test_each_attempt_is_checked_once_the_verdict_shared_by_the_decision_and_the_savings(gateway, sim, monkeypatch):
    """The settlement hook judges an attempt for savings attribution; the cascade decides on that verdict
    instead of checking the same answer again (before: two checks per attempt, each a schema validation)."""
    import paymaster.levers.routing_cascade as rc

    checked: list[str] = []
    real = rc.check

    def counting(api, request, answer, schema=None):
        checked.append(answer.get("model", ""))
        return real(api, request, answer, schema)

    monkeypatch.setattr(rc, "check", counting)
    gw = cascade_gateway(gateway)
    sim.flaws.set(LIGHT, 1.0)
    raw = extract(gw)
    assert raw.parse().model == "claude-sonnet-4-6"
    assert raw.headers["x-paymaster-cascade"].startswith(f"{LIGHT} failed: tool 'forecast' input")
    assert checked == [LIGHT, "claude-sonnet-4-6"]  # one check per attempt
    light, standard = (json.loads(r["savings"] or "{}").get("routing", 0) for r in gw.ledger("alice")[:2])
    assert light < 0 < standard  # the same verdicts attributed the savings: the failed attempt's cost is negative


def test_a_passing_answer_the_gateway_could_not_price_exactly_is_still_the_answer(gateway, sim):
    """An attempt answered 200 but booked at its worst case (usage with a count no price knows): its settlement
    carries no answer to judge, so the cascade checks the answer itself, as it would any other, and keeps it."""
    gw = cascade_gateway(gateway)
    sim.faults.inject("extra_usage", model=LIGHT)
    raw = extract(gw)
    assert raw.parse().model == LIGHT
    assert raw.headers["x-paymaster-cascade"] == f"{LIGHT} passed"
    attempt = gw.ledger("alice")[0]
    assert (attempt["model"], attempt["reconcile"]) == (LIGHT, 1)  # booked at the worst case, flagged
