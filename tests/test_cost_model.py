"""Issue 7 findings 1, 2, 4 and 8, through the real gateway with the official SDKs, and the cost
model's parts (image headers, PDF pages, audio, server tools, service tiers) on their own."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest

from paymaster.costmodel import Unbounded, estimate, media
from paymaster.costmodel.images import anthropic_tokens, openai_tokens
from paymaster.pricing import PriceTable, from_nanos
from tests.attachments import b64, gif, jpeg, pdf, png, wav, webp

TABLE = PriceTable()


def spent(gw: Any, agent: str) -> Decimal:
    return sum((Decimal(r["cost_usd"]) for r in gw.ledger(agent)), Decimal(0))


def each_row_within_its_reservation(gw: Any, agent: str) -> None:
    for r in gw.ledger(agent):
        assert r["cost_nanos"] <= r["worst_nanos"], r


async def parallel(n: int, make: Any) -> list[Any]:
    async def one() -> Any:
        try:
            return await make()
        except (anthropic.APIStatusError, openai.APIStatusError) as e:
            return e

    return await asyncio.gather(*(one() for _ in range(n)))


# -- finding 1: an "image" inside a tool input is text to the provider ---------------------------------


def test_images_inside_tool_inputs_are_billed_as_text_and_the_cap_holds(gateway: Any) -> None:
    gw = gateway(agents={"tina": {"model": "claude-haiku-4-5", "daily_usd": "0.10", "max_tokens": 100}})
    fake_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "a " * 190_000}}
    messages = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "see", "input": fake_image}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    tools = [{"name": "see", "input_schema": {"type": "object"}}]
    client = gw.async_anthropic("tina")
    outcomes = asyncio.run(
        parallel(
            5, lambda: client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=messages, tools=tools)
        )
    )
    assert spent(gw, "tina") <= Decimal("0.10")
    each_row_within_its_reservation(gw, "tina")
    assert all(isinstance(o, anthropic.APIStatusError) and o.status_code == 402 for o in outcomes)


# -- finding 2: images reserved at their documented cost -----------------------------------------------


def test_a_tall_high_detail_image_on_gpt_4o_mini_is_reserved_at_its_tiles(gateway: Any) -> None:
    gw = gateway(agents={"ivy": {"model": "gpt-4o-mini", "daily_usd": "0.02", "max_tokens": 50}})
    image = {"url": "data:image/png;base64," + b64(png(768, 2048)), "detail": "high"}
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": image}]
    client = gw.async_openai("ivy")
    outcomes = asyncio.run(
        parallel(
            10,
            lambda: client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": content}]
            ),
        )
    )
    rows = gw.ledger("ivy")
    assert rows and all(r["input_tokens"] >= 2833 + 8 * 5667 for r in rows)  # the sim bills the documented tiles
    assert spent(gw, "ivy") <= Decimal("0.02")
    each_row_within_its_reservation(gw, "ivy")
    assert sum(isinstance(o, openai.APIStatusError) for o in outcomes) >= 7


# -- finding 4: provider extras --------------------------------------------------------------------------


def test_web_search_gets_a_max_uses_and_its_fees_and_results_are_reserved(gateway: Any) -> None:
    gw = gateway()
    c = gw.anthropic()
    msg = [{"role": "user", "content": "news?"}]
    raw = c.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=msg,
        tools=[{"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
    )
    assert raw.headers["x-paymaster-max-uses"] == "web_search=5"
    worst = from_nanos(gw.ledger("alice")[-1]["worst_nanos"])
    assert worst >= 5 * Decimal("0.01") + 5 * 25_000 * Decimal("0.000001")  # fees + result tokens at $1/MTok
    c.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=msg,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],  # type: ignore[list-item]
    )
    one = from_nanos(gw.ledger("alice")[-1]["worst_nanos"])
    assert Decimal("0.01") + 25_000 * Decimal("0.000001") <= one < worst


def test_a_server_tool_that_cannot_be_bounded_is_refused_in_the_callers_shape(gateway: Any) -> None:
    gw = gateway()
    before = gw.spend()
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "run it"}],
            tools=[{"type": "code_execution_20250522", "name": "code_execution"}],  # type: ignore[list-item]
        )
    assert "can bound the cost of" in e.value.body["error"]["message"]
    assert gw.spend() == before


def test_priority_service_tier_is_reserved_at_priority_prices_and_unpriced_tiers_refused(gateway: Any) -> None:
    gw = gateway()
    c = gw.openai()
    msg = [{"role": "user", "content": "hello"}]
    c.chat.completions.create(model="gpt-4.1-mini", max_tokens=100, messages=msg)
    standard = gw.ledger("olivia")[-1]["worst_nanos"]
    c.chat.completions.create(model="gpt-4.1-mini", max_tokens=100, messages=msg, service_tier="priority")
    priority = gw.ledger("olivia")[-1]["worst_nanos"]
    # genai-prices: gpt-4.1-mini priority $0.70 / $2.80 against $0.40 / $1.60 per MTok
    assert priority * 16 >= standard * 28 - 16
    before = gw.spend()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="gpt-4.1-mini", max_tokens=100, messages=msg, service_tier="flex")
    assert e.value.body["param"] == "service_tier"  # type: ignore[index]
    assert gw.spend() == before


def test_audio_input_is_reserved_at_the_audio_rate() -> None:
    table = PriceTable({"voice": {"input_mtok": "2.5", "output_mtok": "10", "input_audio_mtok": "40"}})
    rates = table.rates("voice")
    body = {
        "model": "voice",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": b64(wav(30)), "format": "wav"}}],
            }
        ],
    }
    e = estimate(body, "openai", len(orjson.dumps(body)), rates, None)
    assert e.measure.audio >= 300  # 30 s at 10 tokens per second
    assert e.worst_case(0, 0) >= 300 * Decimal(40) / 1_000_000
    # no audio rate in the table: text rates would under-reserve it (audio is billed far above them)
    with pytest.raises(Unbounded):
        estimate(body, "openai", len(orjson.dumps(body)), PriceTable().rates("gpt-4o", "openai"), None)


# -- finding 8: tight enough that honest calls are not refused ------------------------------------------


def test_a_35kb_prompt_with_a_dime_left_is_not_refused(gateway: Any) -> None:
    gw = gateway(agents={"pia": {"model": "claude-sonnet-4-6", "daily_usd": "0.10", "max_tokens": 256}})
    prose = ("The quick brown fox jumps over the lazy dog while the committee reviews its findings. " * 420)[:35_000]
    reply = gw.anthropic("pia").messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=[{"role": "user", "content": prose}]
    )
    assert reply.usage.input_tokens < 10_000
    row = gw.ledger("pia")[-1]
    assert from_nanos(row["worst_nanos"]) < Decimal("0.05")


def test_a_one_page_pdf_on_sonnet_reserves_cents_not_dollars(gateway: Any) -> None:
    gw = gateway()
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(pdf(1, "Q3"))}}
    gw.anthropic().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[{"role": "user", "content": [doc, {"type": "text", "text": "summarise"}]}],
    )
    row = gw.ledger("alice")[-1]
    assert row["cost_nanos"] <= row["worst_nanos"] < 100_000_000  # under $0.10 (was $3.65)


# -- the parts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [png, gif, webp, jpeg, lambda w, h: jpeg(w, h, exif=40_000)])
def test_image_headers_give_their_size(make: Any) -> None:
    assert media.image_size(make(1234, 567)) == (1234, 567)


def test_unreadable_images_cost_the_documented_maximum() -> None:
    assert media.image_size(b"not an image") is None
    assert anthropic_tokens(None, {"long_edge": 1568, "max_pixels": 1_150_000, "max_tokens": 1600}) >= 1600
    assert openai_tokens(None, "high", {"base": 2833, "tile": 5667}) == 2833 + 8 * 5667
    assert openai_tokens(None, None, {"multiplier": "1.62", "cap": 1536}) == 2489


def test_pdf_pages_are_counted_from_the_bytes() -> None:
    assert media.pdf_pages(pdf(3)) == 3
    assert media.pdf_pages(b"%PDF-1.7 nothing here") is None  # then the documented 100-page limit applies


def test_wav_duration_and_compressed_audio_bound() -> None:
    assert abs(media.audio_seconds(wav(2.0), len(wav(2.0))) - 2.0) < 0.01
    assert media.audio_seconds(b"ID3....", 16_000) == 16.0  # 8 kbit/s, the lowest MP3 rate


def test_huge_text_is_bounded_without_tokenizing_all_of_it() -> None:
    rates = TABLE.rates("gpt-4.1-mini", "openai")
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "word " * 600_000}]}
    e = estimate(body, "openai", len(orjson.dumps(body)), rates, None, exact=True)
    assert e.measure.text >= 600_000  # 3 MB: past the tokenizing budget, bounded by bytes


def test_cache_writes_only_at_the_rate_of_a_breakpoint_that_is_there() -> None:
    rates = TABLE.rates("claude-sonnet-4-6", "anthropic")
    long = "a b c " * 2_000

    def worst(cache: dict[str, Any] | None) -> Decimal:
        block: dict[str, Any] = {"type": "text", "text": long}
        if cache:
            block["cache_control"] = cache
        body = {"model": "claude-sonnet-4-6", "max_tokens": 1, "messages": [{"role": "user", "content": [block]}]}
        return estimate(body, "anthropic", len(orjson.dumps(body)), rates, None).worst_case(0, 0)

    plain, five, hour = worst(None), worst({"type": "ephemeral"}), worst({"type": "ephemeral", "ttl": "1h"})
    assert plain < five < hour
    assert five <= plain * Decimal("1.26") and hour <= plain * Decimal("2.01")


def test_mcp_servers_are_refused_their_results_cannot_be_bounded(gateway: Any) -> None:
    gw = gateway()
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]},
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_count_tokens_is_asked_only_when_the_coarse_bound_would_not_fit(gateway: Any) -> None:
    gw = gateway(agents={"pia": {"model": "claude-sonnet-4-6", "daily_usd": "0.10", "max_tokens": 256}})
    up = gw.gw.upstreams["anthropic"]
    paths: list[str] = []
    post = up.post

    async def spy(path: str, *a: Any, **kw: Any) -> Any:
        paths.append(path)
        return await post(path, *a, **kw)

    up.post = spy
    c = gw.anthropic("pia")
    c.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=[{"role": "user", "content": "short"}])
    assert up.count_tokens_path not in paths  # the hot path: bytes only
    prose = "The committee reviews the findings of the quarterly report in detail. " * 500  # ~35 kB
    c.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=[{"role": "user", "content": prose}])
    assert paths.count(up.count_tokens_path) == 1


def test_long_context_tier_follows_the_bound() -> None:
    """Sonnet 4.5 doubles its input price past 200k input tokens (genai-prices tiers): a request whose
    bound passes the threshold is held at the higher tier; one the context window caps is not."""
    rates = TABLE.rates("claude-sonnet-4-5", "anthropic")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "x " * 150_000}]}
    size = len(orjson.dumps(body))
    long = estimate(body, "anthropic", size, rates, None)  # the context-1m beta: no cap
    capped = estimate(body, "anthropic", size, rates, 200_000)
    assert long.tokens > 200_000 and capped.tokens == 200_000
    assert long.worst_case(0, 0) >= long.tokens * Decimal(6) / 1_000_000
    assert capped.worst_case(0, 0) == 200_000 * Decimal(3) / 1_000_000
    assert long.output_rate(0) > capped.output_rate(0)
