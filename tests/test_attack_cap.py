"""Attacks on the cap: requests the providers accept whose bill could pass the reservation, and the
ways a settled call could be booked below the provider's bill. Each test failed on the code before
its fix."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from paymaster.costmodel import Unbounded, estimate
from paymaster.pricing import PriceTable
from paymaster.wire import anthropic as wire_anthropic
from tests.attachments import b64, pdf, wav

TABLE = PriceTable()
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def post(gw: Any, path: str, agent: str, body: Any) -> httpx2.Response:
    auth = {"x-api-key": gw.keys[agent]} if path == "/v1/messages" else {"authorization": f"Bearer {gw.keys[agent]}"}
    return httpx2.post(gw.url + path, content=orjson.dumps(body), headers={**ANTHROPIC_HEADERS, **auth}, timeout=30)


def worst(body: dict[str, Any], api: str, model: str) -> Decimal:
    rates = TABLE.rates(model, api)
    return estimate(body, api, len(orjson.dumps(body)), rates, rates.context_window).worst_case(0, 0)


# -- a document whose source is not an object: bounded at the page limit, refused by the provider -----


@pytest.mark.parametrize("source", [None, True, 0, "x", [], {}, {"type": "text"}, {"type": "content", "content": 3}])
def test_a_document_with_an_unreadable_source_is_never_bounded_at_zero(source: Any) -> None:
    doc = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    plain = worst(doc, "anthropic", "claude-haiku-4-5")
    doc["messages"][0]["content"] = [{"type": "text", "text": "x"}, {"type": "document", "source": source}]
    # the most a document can be: 100 pages of page image plus page text
    assert worst(doc, "anthropic", "claude-haiku-4-5") >= plain + 100 * 1500 * Decimal(1) / 1_000_000


@pytest.mark.parametrize("source", [None, True, "x", [], {}, {"type": "pdf"}, {"type": "base64"}])
def test_a_document_or_image_without_a_valid_source_is_refused_and_spends_nothing(gateway: Any, source: Any) -> None:
    gw = gateway()
    before = gw.spend()
    for kind in ("document", "image"):
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": kind, "source": source}]}
            ],
        }
        r = post(gw, "/v1/messages", "alice", body)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "error"
    rows = gw.ledger("alice")
    assert all(r["cost_nanos"] == 0 for r in rows)  # the provider refused: nothing billed
    assert gw.spend()[:-1] == before[:-1]


# -- a non-string tool or block type: a 400, not a crash in a lever -------------------------------------


@pytest.mark.parametrize("kind", [[], {}, [1], {"a": 1}, 3])
def test_a_tool_or_block_type_that_is_not_a_string_is_a_400_in_the_callers_shape(gateway: Any, kind: Any) -> None:
    gw = gateway()
    before = gw.spend()
    oai = {
        "model": "gpt-4.1-mini",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": kind, "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    r = post(gw, "/v1/chat/completions", "olivia", oai)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text
    oai = {"model": "gpt-4.1-mini", "max_tokens": 20, "messages": [{"role": "user", "content": [{"type": kind}]}]}
    r = post(gw, "/v1/chat/completions", "olivia", oai)
    assert r.status_code == 400 and "error" in r.json(), r.text
    for blocks in (
        [{"type": "text", "text": "a"}, {"type": kind}],
        [{"type": "tool_result", "content": [{"type": kind}]}],
    ):
        body = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": blocks}]}
        r = post(gw, "/v1/messages", "alice", body)
        assert r.status_code == 400 and r.json()["type"] == "error", r.text
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": kind, "name": "t", "input_schema": {"type": "object"}}],
    }
    r = post(gw, "/v1/messages", "alice", body)
    assert r.status_code == 400 and r.json()["type"] == "error", r.text
    assert gw.spend() == before


# -- audio on a model whose audio price the table lacks ------------------------------------------------


def test_audio_is_reserved_and_booked_at_audio_rates_or_refused_when_unpriced(gateway: Any) -> None:
    """gpt-4o-audio-preview bills audio at $40 / $80 per MTok (text: $2.50 / $10); genai-prices has only
    its text prices, so audio was reserved and booked 8x under. Its audio prices now come from
    data/extra_prices.yaml; a model with no audio price at all refuses audio (a 400)."""
    rates = TABLE.rates("gpt-4o-audio-preview", "openai")
    assert rates.rate("input_audio", 0) == Decimal(40) / 1_000_000
    assert rates.rate("output_audio", 0) == Decimal(80) / 1_000_000
    clip = {"type": "input_audio", "input_audio": {"data": b64(wav(30)), "format": "wav"}}
    heard = {"model": "gpt-4o-audio-preview", "messages": [{"role": "user", "content": [clip]}]}
    spoken = {
        "model": "gpt-4o-audio-preview",
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "messages": [{"role": "user", "content": "say hi"}],
    }
    replayed = {
        "model": "gpt-4o-audio-preview",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "audio": {"id": "audio_abc123"}},
            {"role": "user", "content": "again"},
        ],
    }

    def held(body: dict[str, Any], r: Any, out: int = 0) -> Decimal:
        return estimate(body, "openai", len(orjson.dumps(body)), r, r.context_window).worst_case(0, out)

    assert held(heard, rates) >= 300 * Decimal(40) / 1_000_000  # 30 s at 10 tokens a second, audio rate
    assert held(spoken, rates, 1000) >= 1000 * Decimal(80) / 1_000_000  # every output token may be audio
    assert held(replayed, rates) >= 16384 * Decimal(40) / 1_000_000  # an earlier answer's audio, sent back
    plain = TABLE.rates("gpt-4o", "openai")  # no audio price at all: audio cannot be bounded
    for body, param in ((heard, "messages"), (spoken, "modalities"), (replayed, "messages")):
        with pytest.raises(Unbounded) as e:
            held({**body, "model": "gpt-4o"}, plain)
        assert e.value.param == param
    # through the gateway: booked at the audio rate, within the reservation; unpriced audio is a 400
    gw = gateway(
        agents={
            "olivia": {"model": "gpt-4o-audio-preview", "models": ["gpt-4o-audio-preview", "gpt-4o"], "daily_usd": 5}
        }
    )
    gw.openai().chat.completions.create(**heard, max_tokens=50)
    row = gw.ledger("olivia")[-1]
    assert Decimal(row["cost_usd"]) >= 300 * Decimal(40) / 1_000_000 and row["cost_nanos"] <= row["worst_nanos"]
    before = gw.spend()
    with pytest.raises(openai.BadRequestError) as err:
        gw.openai().chat.completions.create(**{**heard, "model": "gpt-4o"}, max_tokens=50)
    assert "audio" in err.value.message
    assert gw.spend() == before


# -- an OpenAI search model's per-search fee ------------------------------------------------------------


def test_an_openai_search_call_reserves_the_documented_search_fee() -> None:
    body = {"model": "gpt-4o-search-preview", "web_search_options": {}, "messages": [{"role": "user", "content": "q"}]}
    # the table has no fee for gpt-4o-search-preview; OpenAI bills up to $50 per 1,000 searches
    assert TABLE.rates("gpt-4o-search-preview", "openai").fee("web_search") is None
    rates = TABLE.rates("gpt-4o-search-preview", "openai")
    e = estimate(body, "openai", len(orjson.dumps(body)), rates, rates.context_window)
    results = e.measure.server_results * rates.rate("input", e.tokens)
    assert e.worst_case(0, 0) - results >= Decimal("0.05")


# -- a cut stream with server tools: the searches it may have made are still owed -------------------------


def test_a_cut_stream_with_web_search_stays_at_its_worst_case(gateway: Any, sim: Any) -> None:
    gw = gateway()
    sim.inject("cut")
    with pytest.raises(anthropic.APIError):
        with gw.anthropic().messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
            messages=[{"role": "user", "content": "x [sim:tokens=40]"}],
        ) as s:
            for _ in s:
                pass
    row = gw.ledger("alice")[-1]
    assert row["status"] == "cut" and row["reconcile"] == 1
    # three searches may have run ($0.01 each) and added their results to the input
    assert Decimal(row["cost_usd"]) >= Decimal("0.03")
    assert row["cost_nanos"] == row["worst_nanos"]


# -- the tight bound counts what the provider bills: a structured output's schema ----------------------


def test_the_count_tokens_bound_includes_a_structured_outputs_schema(gateway: Any) -> None:
    """count_tokens takes `output_config` (its schema is billed input); left out, the tightened bound of a
    call with a large schema was below its bill."""
    gw = gateway(agents={"sam": {"model": "claude-haiku-4-5", "daily_usd": "0.02", "max_tokens": 64}})
    props = {
        f"field_{i}": {"type": "string", "description": f"the value of field number {i} in words"} for i in range(400)
    }
    schema = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        "messages": [{"role": "user", "content": "fill it [sim:tokens=10]"}],
    }
    r = post(gw, "/v1/messages", "sam", body)
    assert r.status_code == 200, r.text  # the coarse bound (~$0.03) does not fit: tightened by count_tokens
    row = gw.ledger("sam")[-1]
    assert row["input_tokens"] > 5_000  # the schema, billed
    assert row["output_tokens"] <= 64  # a provider never writes past max_tokens, JSON or not
    assert row["cost_nanos"] <= row["worst_nanos"], row


def test_the_simulator_never_answers_past_max_tokens_json_or_tool_call(gateway: Any) -> None:
    """Both APIs stop generating at max_tokens (finish reason `length` / stop reason `max_tokens`); the
    simulator used to write a whole schema-sized JSON or tool call past it, billing above any reservation."""
    gw = gateway()
    props = {f"f{i}": {"type": "string"} for i in range(200)}
    schema = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    o = gw.openai().chat.completions.create(
        model="gpt-4.1-mini",
        max_tokens=16,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        messages=[{"role": "user", "content": "fill"}],
    )
    assert o.usage is not None and o.usage.completion_tokens <= 16 and o.choices[0].finish_reason == "length"
    a = gw.anthropic().messages.create(
        model="claude-haiku-4-5",
        max_tokens=16,
        tools=[{"name": "fill", "input_schema": schema}],
        tool_choice={"type": "tool", "name": "fill"},
        messages=[{"role": "user", "content": "fill"}],
    )
    assert a.usage.output_tokens <= 16 and a.stop_reason == "max_tokens"
    for row in gw.ledger("olivia") + gw.ledger("alice"):
        assert row["cost_nanos"] <= row["worst_nanos"], row


@pytest.mark.parametrize("offset, value", [(28, 0xFFFFFFFF), (20, 2)])  # byte_rate 4 GB/s; a non-PCM format tag
def test_a_wav_header_cannot_shorten_its_audio(offset: int, value: int) -> None:
    """WAV's byte_rate repeats sample_rate x block_align; a header claiming 4 GB/s made 30 s of 8 kHz audio
    cost one token. The bound takes the lowest rate the header gives (compressed formats: 8 kbit/s)."""
    clip = bytearray(wav(30))
    clip[offset : offset + (4 if offset == 28 else 2)] = struct.pack("<I" if offset == 28 else "<H", value)
    table = PriceTable({"voice": {"input_mtok": "2.5", "output_mtok": "10", "input_audio_mtok": "40"}})
    part = {"type": "input_audio", "input_audio": {"data": b64(bytes(clip)), "format": "wav"}}
    body = {"model": "voice", "messages": [{"role": "user", "content": [part]}]}
    e = estimate(body, "openai", len(orjson.dumps(body)), table.rates("voice"), None)
    assert e.measure.audio >= 300  # 30 s at 10 tokens a second


# -- an openai-compatible server's tokenizer is not OpenAI's ---------------------------------------------


def test_an_openai_compatible_model_is_not_tightened_with_openais_tokenizer(gateway: Any, sim: Any) -> None:
    """A model on an openai-compatible server (vLLM, Ollama, ...) has its own tokenizer, which can need
    several times o200k's tokens for the same text (CJK on a 32k vocabulary: about one per byte). Its
    bound stays the byte bound: the call that only fits when counted with o200k is refused, not admitted."""
    gw = gateway(
        providers={
            "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 5},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
            "local": {"kind": "openai-compatible", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
        },
        models={"llama-local": {"provider": "local", "price": {"input_mtok": "1", "output_mtok": "1"}}},
        agents={"lia": {"model": "llama-local", "daily_usd": "0.005", "max_tokens": 16}},
    )
    text = "数据库连接池在高并发下的表现" * 200  # 2,800 CJK characters, 8,400 bytes: o200k needs ~2,000 tokens
    with pytest.raises(openai.APIStatusError) as e:
        gw.openai("lia").chat.completions.create(
            model="llama-local", max_tokens=16, messages=[{"role": "user", "content": text}]
        )
    assert e.value.status_code == 402 and e.value.code == "call_too_large"
    assert not gw.ledger("lia")
    # on OpenAI itself the tokenizer is public, and the same call is admitted by its exact count
    gw2 = gateway(agents={"olivia": {"model": "gpt-4.1-mini", "daily_usd": "0.0035", "max_tokens": 16}})
    gw2.openai().chat.completions.create(
        model="gpt-4.1-mini", max_tokens=16, messages=[{"role": "user", "content": text}]
    )


# -- a max_tokens the gateway lowers keeps a thinking request valid --------------------------------------


def test_a_lowered_max_tokens_lowers_a_thinking_budget_that_no_longer_fits(gateway: Any, sim: Any) -> None:
    """Anthropic refuses `budget_tokens` >= `max_tokens`. The agent's ceiling (or fitting to budget) lowered
    max_tokens under the caller's thinking budget, so every such call came back a 400."""
    body: dict[str, Any] = {"max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 4000}}
    wire_anthropic.set_max_tokens(body, 2048, "anthropic")
    assert body["max_tokens"] == 2048 and body["thinking"]["budget_tokens"] == 2047
    untouched: dict[str, Any] = {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 8000}}
    wire_anthropic.set_max_tokens(untouched, 2000, "anthropic")  # the caller's own choice (interleaved thinking)
    assert untouched["thinking"]["budget_tokens"] == 8000
    gw = gateway()  # alice's ceiling: 2,048 tokens
    r = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4000},
        messages=[{"role": "user", "content": "think [sim:tokens=5]"}],
    )
    assert r.status_code == 200
    sent = [q["body"] for q in sim.requests if q["path"] == "/v1/messages"][-1]
    assert sent["thinking"]["budget_tokens"] < sent["max_tokens"] <= 2048


# -- a dense PDF page holds more than the typical page's text ----------------------------------------------


@pytest.mark.parametrize("api, model", [("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o")])
def test_a_dense_pdf_page_is_bounded_by_its_text_not_a_typical_page(gateway: Any, api: str, model: str) -> None:
    """The PDF bound took the smaller of the page's content-stream bytes and 4,000 tokens a page (a
    typical page holds 1,500-3,000): one page of 24 kB of text was bounded at 4,000 text tokens and billed
    above its reservation. Text known from the bytes bounds it; 4,000 a page only when it cannot be read."""
    doc = b64(pdf(1, "dense " * 4000))
    if api == "anthropic":
        part: dict[str, Any] = {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": doc},
        }
        agents = {"alice": {"model": model, "daily_usd": 5, "max_tokens": 64}}
    else:
        part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + doc}}
        agents = {"olivia": {"model": model, "daily_usd": 5, "max_tokens": 64}}
    gw = gateway(agents=agents)
    msgs = [{"role": "user", "content": [part, {"type": "text", "text": "summarise [sim:tokens=10]"}]}]
    if api == "anthropic":
        gw.anthropic().messages.create(model=model, max_tokens=64, messages=msgs)
        row = gw.ledger("alice")[-1]
    else:
        gw.openai().chat.completions.create(model=model, max_tokens=64, messages=msgs)
        row = gw.ledger("olivia")[-1]
    assert row["input_tokens"] > 4000 and row["cost_nanos"] <= row["worst_nanos"], row  # more than a typical page
