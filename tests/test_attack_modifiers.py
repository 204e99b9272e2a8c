"""Attacks on the cap and the bill through Anthropic's pricing modifiers: fast mode (`speed: "fast"`) and
US-only inference (`inference_geo: "us"`), alone, together and with prompt caching.

The bill is computed here by an independent calculator written from Anthropic's documents, not from
the gateway's pricing code:

- platform.claude.com/docs/en/about-claude/pricing, "Model pricing": Claude Opus 4.8 $5 / MTok input,
  $25 / MTok output; Claude Sonnet 4.6 $3 / $15; 5-minute cache writes 1.25x the input price, 1-hour
  writes 2x, cache hits 0.1x;
- platform.claude.com/docs/en/build-with-claude/fast-mode, "Pricing": Opus 4.8 in fast mode $10 / $50
  per MTok across the full context window, with the prompt-caching multipliers on top, and fast mode
  stacking with the other pricing modifiers;
- platform.claude.com/docs/en/about-claude/pricing, "Data residency pricing", and
  platform.claude.com/docs/en/manage-claude/data-residency: `inference_geo: "us"` costs 1.1x on every
  token price (input, output, cache writes and reads); the response's `usage.inference_geo` and
  `usage.speed` say how the call ran.

Each test failed on the code before its fix: the request's bound ignored both modifiers (a call the
provider bills 2x or 1.1x was reserved at the standard price, so a fitted call ran past its cap), and
settlement booked such a call at its standard-price reservation, below the provider's bill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import orjson
import pytest
import transport_kit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.config import ConfigError
from paymaster.costmodel import Unbounded, estimate
from paymaster.pricing import PriceTable
from paymaster.wire import anthropic as wire

MTOK = Decimal(1_000_000)
# (input, output) USD per MTok at standard speed and in fast mode, from the pages named above
DOCUMENTED = {
    "claude-opus-4-8": {"standard": (Decimal(5), Decimal(25)), "fast": (Decimal(10), Decimal(50))},
    "claude-sonnet-4-6": {"standard": (Decimal(3), Decimal(15))},
}
CACHE = {"write_5m": Decimal("1.25"), "write_1h": Decimal(2), "read": Decimal("0.1")}
GEO = {"global": Decimal(1), "us": Decimal("1.1")}
TABLE = PriceTable()


def documented_bill(model: str, usage: dict[str, Any]) -> Decimal:
    """What Anthropic bills for a Messages usage object (its `input_tokens` excludes cache reads and writes)."""
    speed = usage.get("speed") or "standard"
    geo = GEO[usage.get("inference_geo") or "global"]
    inp, out = DOCUMENTED[model][speed]
    split = usage.get("cache_creation") or {}
    w1h = split.get("ephemeral_1h_input_tokens", 0)
    w5m = usage.get("cache_creation_input_tokens", 0) - w1h
    tokens = (
        usage["input_tokens"] * inp
        + w5m * inp * CACHE["write_5m"]
        + w1h * inp * CACHE["write_1h"]
        + usage.get("cache_read_input_tokens", 0) * inp * CACHE["read"]
        + usage["output_tokens"] * out
    )
    return tokens * geo / MTOK


def reserved(body: dict[str, Any]) -> Decimal:
    rates = TABLE.rates(body["model"], "anthropic")
    est = estimate(body, "anthropic", len(orjson.dumps(body)), rates, rates.context_window)
    return est.worst_case(0, body["max_tokens"])


def ledger_usd(row: dict[str, Any]) -> Decimal:
    return Decimal(row["cost_nanos"]) / 1_000_000_000


# -- the bound: each modifier priced, and the bill of any usage the provider can report fits it ------------


@pytest.mark.parametrize(
    ("model", "speed", "geo", "factor"),
    [
        ("claude-opus-4-8", "fast", None, Decimal(2)),
        ("claude-opus-4-8", None, "us", Decimal("1.1")),
        ("claude-opus-4-8", "fast", "us", Decimal("2.2")),
        ("claude-sonnet-4-6", None, "us", Decimal("1.1")),
        ("claude-sonnet-4-6", "standard", "global", Decimal(1)),
    ],
)
def test_each_modifier_scales_the_reservation_by_its_documented_price(
    model: str, speed: str | None, geo: str | None, factor: Decimal
) -> None:
    base = {"model": model, "max_tokens": 4000, "messages": [{"role": "user", "content": "hello " * 50}]}
    modified = {**base, **({"speed": speed} if speed else {}), **({"inference_geo": geo} if geo else {})}
    # the same bytes with the fields renamed: the same bound at the standard price
    plain = {k.replace("speed", "spoed").replace("_geo", "_gex"): v for k, v in modified.items()}
    assert reserved(modified) == reserved(plain) * factor


@pytest.mark.parametrize("body", [{"speed": "fast"}, {"speed": "turbo"}, {"inference_geo": "eu"}])
def test_a_modifier_the_table_cannot_price_is_refused_not_bounded_at_the_standard_price(body: dict[str, Any]) -> None:
    """Haiku 4.5 has no fast-mode price (and the API has no fast mode for it); "eu" and "turbo" are no
    documented value: bounding them at the standard price would be a guess below the bill."""
    req = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(Unbounded) as e:
        reserved(req)
    assert e.value.param == next(iter(body))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["claude-opus-4-8", "claude-sonnet-4-6"]),
    speed=st.sampled_from([None, "standard", "fast"]),
    geo=st.sampled_from([None, "global", "us"]),
    ttl=st.sampled_from([None, "5m", "1h"]),
    text=st.text(min_size=1, max_size=400),
    max_tokens=st.integers(1, 64_000),
    data=st.data(),
)
def test_no_bill_the_provider_can_send_for_a_modified_request_exceeds_its_reservation(
    model: str, speed: str | None, geo: str | None, ttl: str | None, text: str, max_tokens: int, data: Any
) -> None:
    if speed == "fast" and "fast" not in DOCUMENTED[model]:
        speed = None
    block: dict[str, Any] = {"type": "text", "text": text}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [block]}],
        **({"speed": speed} if speed else {}),
        **({"inference_geo": geo} if geo else {}),
    }
    # what the provider can count: at most one token a byte of the text, plus a template far under
    # the request's other bytes; every counted token may be written to the cache at the breakpoint's TTL
    counted = data.draw(st.integers(1, len(text.encode()) + 8), label="counted")
    written = data.draw(st.integers(0, counted), label="written") if ttl else 0
    read = data.draw(st.integers(0, counted - written), label="read") if ttl else 0
    usage = {
        "input_tokens": counted - written - read,
        "cache_creation_input_tokens": written,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written if ttl == "5m" else 0,
            "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
        },
        "cache_read_input_tokens": read,
        "output_tokens": data.draw(st.integers(0, max_tokens), label="output"),
        **({"speed": speed} if speed else {}),
        **({"inference_geo": geo} if geo else {}),
    }
    bill = documented_bill(model, usage)
    assert bill <= reserved(body)
    # and settlement prices that usage exactly as the documents do
    parsed = wire.usage(usage)
    assert parsed is not None and not parsed.unpriced
    assert TABLE.rates(model, "anthropic").cost(parsed) == bill


def test_usage_reporting_how_the_call_ran_is_priced_not_flagged() -> None:
    usage = {"input_tokens": 100, "output_tokens": 10, "speed": "fast", "inference_geo": "us"}
    parsed = wire.usage(usage)
    assert parsed is not None and parsed.unpriced == ()
    assert (parsed.speed, parsed.inference_geo) == ("fast", "us")
    assert TABLE.rates("claude-opus-4-8", "anthropic").cost(parsed) == documented_bill("claude-opus-4-8", usage)
    standard = wire.usage({"input_tokens": 100, "output_tokens": 10, "speed": "standard", "inference_geo": "global"})
    assert standard is not None and (standard.speed, standard.inference_geo, standard.unpriced) == ("", "", ())
    odd = wire.usage({"input_tokens": 100, "output_tokens": 10, "speed": "warp", "inference_geo": "mars"})
    assert odd is not None and set(odd.unpriced) == {"speed=warp", "inference_geo=mars"}


# -- end to end: the official SDK, the gateway and the simulator -----------------------------------------


def _fleet(**agent: Any) -> dict[str, Any]:
    return {"agents": {"fay": {"max_tokens": 4096, "monthly_usd": 50, **agent}}}


def test_a_fast_mode_call_is_fitted_to_the_cap_at_fast_prices_and_booked_at_the_bill(gateway: Any) -> None:
    """$0.05 a day: 1,500 output tokens fit at the standard $25 / MTok ($0.0375) but not at fast mode's
    $50 ($0.075). Before the fix the call went out with max_tokens 1500, the provider billed ~$0.075
    against a $0.05 cap, and the ledger booked the standard-price reservation."""
    gw = gateway(**_fleet(model="claude-opus-4-8", daily_usd="0.05"))
    client = gw.anthropic("fay")
    raw = client.messages.with_raw_response.create(
        model="claude-opus-4-8",
        max_tokens=1500,
        speed="fast",
        messages=[{"role": "user", "content": "write at length [sim:tokens=1500]"}],
    )
    msg = raw.parse()
    assert msg.usage.speed == "fast"
    assert "fitted to budget" in raw.headers.get("x-paymaster-max-tokens", "")
    (row,) = gw.ledger("fay")
    bill = documented_bill("claude-opus-4-8", msg.usage.model_dump(exclude_none=True))
    assert ledger_usd(row) == bill and row["reconcile"] == 0
    assert bill <= Decimal("0.05")


@pytest.mark.parametrize("stream", [False, True])
def test_a_us_only_call_is_reserved_and_booked_at_the_data_residency_premium(gateway: Any, stream: bool) -> None:
    """$0.031 a day on Sonnet 4.6: 2,000 output tokens cost $0.030 at the standard price, $0.033 at 1.1x."""
    gw = gateway(**_fleet(model="claude-sonnet-4-6", daily_usd="0.031"))
    client = gw.anthropic("fay")
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 2000,
        "inference_geo": "us",
        "messages": [{"role": "user", "content": "write at length [sim:tokens=2000]"}],
    }
    if stream:
        with client.messages.stream(**body) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**body)
    usage = msg.usage.model_dump(exclude_none=True)
    if stream:  # the stream's final usage keeps where it ran from message_start
        usage["inference_geo"] = "us"
    else:
        assert msg.usage.inference_geo == "us"
    (row,) = gw.ledger("fay")
    bill = documented_bill("claude-sonnet-4-6", usage)
    assert ledger_usd(row) == bill and row["reconcile"] == 0
    assert bill <= Decimal("0.031")
    assert msg.usage.output_tokens < 2000  # fitted: the whole 2,000 at 1.1x would not fit


def test_fast_mode_with_prompt_caching_and_us_inference_is_booked_at_the_stacked_bill(gateway: Any) -> None:
    gw = gateway(**_fleet(model="claude-opus-4-8", daily_usd=5))
    client = gw.anthropic("fay")
    system = [{"type": "text", "text": "policy " * 3000, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    bills = []
    for _ in range(2):  # the first writes the cache, the second reads it
        msg = client.messages.create(
            model="claude-opus-4-8",
            max_tokens=200,
            speed="fast",
            inference_geo="us",
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "q [sim:tokens=50]"}],
        )
        bills.append(documented_bill("claude-opus-4-8", msg.usage.model_dump(exclude_none=True)))
    rows = gw.ledger("fay")
    assert sorted(ledger_usd(r) for r in rows) == sorted(bills)
    assert bills[1] < bills[0]  # the second call read what the first wrote
    assert all(r["reconcile"] == 0 for r in rows)


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [("claude-haiku-4-5", {"speed": "fast"}, "speed"), ("claude-haiku-4-5", {"inference_geo": "eu"}, "inference_geo")],
)
def test_an_unpriceable_modifier_is_a_400_in_anthropics_shape_and_spends_nothing(
    gateway: Any, model: str, extra: dict[str, Any], param: str
) -> None:
    gw = gateway()
    before = gw.spend()
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic("alice").messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}], extra_body=extra
        )
    assert param in str(e.value)
    assert gw.spend()[:-1] == before[:-1]


# -- batch: the data-residency premium stacks on batch prices ---------------------------------------------


def test_a_batch_request_with_us_inference_is_bounded_and_priced_at_half_price_times_the_premium() -> None:
    """Opus 4.8's batch prices come from genai-prices' `processing: batch` variant, which knew no inference
    geography: a batch request with inference_geo "us" was refused (a false refusal), though the Batch
    API takes it and bills 50 % of the price times 1.1."""
    from paymaster.batch.prices import _cached

    for model in ("claude-opus-4-8", "claude-sonnet-4-6"):
        rates = _cached(TABLE, model, "anthropic", 0)
        body = {
            "model": model,
            "max_tokens": 1000,
            "inference_geo": "us",
            "messages": [{"role": "user", "content": "x"}],
        }
        est = estimate(body, "anthropic", len(orjson.dumps(body)), rates, rates.context_window)
        usage = {"input_tokens": 10, "output_tokens": 1000, "inference_geo": "us"}
        bill = documented_bill(model, usage) / 2
        parsed = wire.usage(usage)
        assert parsed is not None and rates.cost(parsed) == bill
        assert bill <= est.worst_case(0, 1000)


# -- a bill above the bound: booked in full, flagged, and the agent stopped ------------------------------


class _Canned:
    """An upstream answering every Messages call with one fixed message (its usage set per test)."""

    def __init__(self, usage: dict[str, Any], model: str = "claude-haiku-4-5") -> None:
        self.body = orjson.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await transport_kit.asgi_lifespan(receive, send)
        await transport_kit.asgi_body(receive)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _on(gateway: Any, url: str, **agent: Any) -> Any:
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": url, "api_key_env": "SIM_KEY", "timeout_s": 5},
        "openai": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }
    return gateway(providers=providers, agents={"x": agent})


def test_a_bill_above_the_reservation_is_booked_in_full_flagged_and_blocks_the_spent_agent(gateway: Any) -> None:
    """Haiku 4.5 ($1 / $5 per MTok): 10,000 output tokens against max_tokens 100 is $0.050012, past the
    $0.02 cap. Before, the row was booked unflagged and the agent stayed `active` until its next call."""
    from paymaster.server import ServerThread

    with ServerThread(_Canned({"input_tokens": 12, "output_tokens": 10_000})) as up:
        gw = _on(gateway, up.url, model="claude-haiku-4-5", daily_usd="0.02")
        gw.anthropic("x").messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        (row,) = gw.ledger("x")
        assert ledger_usd(row) == (12 * Decimal(1) + 10_000 * Decimal(5)) / MTOK  # the bill, in full
        assert row["reconcile"] == 1 and "above its reserved worst case" in row["error"]
        view = gw.admin("/admin/agents/x").json()
        assert view["status"]["state"] == "blocked", view["status"]
        with pytest.raises(anthropic.APIStatusError) as e:
            gw.anthropic("x").messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        assert e.value.status_code == 402
        assert len(gw.ledger("x")) == 1  # refused without contacting the provider


# -- the workspace's default inference geography --------------------------------------------------------


def test_a_workspace_defaulting_to_us_inference_is_reserved_at_the_premium_once_configured(
    gateway: Any, sim: Any
) -> None:
    """platform.claude.com/docs/en/manage-claude/data-residency: a request naming no inference_geo runs in
    the workspace's default geography. With the workspace on "us", every Sonnet 4.6 call is billed 1.1x;
    `providers.anthropic.inference_geo: us` tells the gateway, which then fits and books at that price."""
    sim.workspace("us")
    providers = {
        "anthropic": {
            "kind": "anthropic",
            "base_url": sim.url,
            "api_key_env": "SIM_KEY",
            "timeout_s": 5,
            "inference_geo": "us",
        },
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }
    gw = gateway(providers=providers, **_fleet(model="claude-sonnet-4-6", daily_usd="0.031"))
    msg = gw.anthropic("fay").messages.create(
        model="claude-sonnet-4-6", max_tokens=2000, messages=[{"role": "user", "content": "go [sim:tokens=2000]"}]
    )
    assert msg.usage.inference_geo == "us"
    (row,) = gw.ledger("fay")
    bill = documented_bill("claude-sonnet-4-6", msg.usage.model_dump(exclude_none=True))
    assert ledger_usd(row) == bill <= Decimal("0.031") and row["reconcile"] == 0


def test_a_workspace_defaulting_to_us_reserves_a_legacy_model_at_the_price_it_charges(gateway: Any, sim: Any) -> None:
    """…/manage-claude/data-residency: `inference_geo` is for Claude Opus 4.6 and later ("requests with
    inference_geo on legacy models return a 400 error"): Haiku 4.5 runs, and is billed, at its standard price
    whatever the workspace's default. Before, a "us" workspace reserved it at 1.1x: a call that fits the cap at
    the price it is billed was shrunk. Naming `inference_geo` on it is refused as the provider refuses it."""
    sim.workspace("us")
    providers = {
        "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 5,
                      "inference_geo": "us"},
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
    }  # fmt: skip
    body: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 2000,
                            "messages": [{"role": "user", "content": "go [sim:tokens=2000]"}]}  # fmt: skip
    standard = reserved(body)  # the bound at the standard price (no geography)
    cap = (standard * Decimal("1.05")).quantize(Decimal("0.000001"))  # fits at 1x, not at 1.1x
    gw = gateway(providers=providers, **_fleet(model="claude-haiku-4-5", daily_usd=str(cap)))
    raw = gw.anthropic("fay").messages.with_raw_response.create(**body)
    msg = raw.parse()
    assert "x-paymaster-max-tokens" not in raw.headers  # not shrunk
    assert msg.usage.output_tokens == 2000 and msg.usage.inference_geo in (None, "not_available", "global")
    (row,) = gw.ledger("fay")
    assert ledger_usd(row) == (msg.usage.input_tokens * 1 + msg.usage.output_tokens * 5) / MTOK  # $1 / $5
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic("fay").messages.create(**body, inference_geo="us")
    assert e.value.body["error"]["message"].startswith("inference_geo")
    assert len(gw.ledger("fay")) == 1  # nothing sent, nothing booked


def test_a_workspace_geography_is_only_for_anthropic_providers(gateway: Any) -> None:
    from paymaster.config import ConfigError, parse

    raw = {
        "providers": {"openai": {"kind": "openai", "api_key_env": "K", "inference_geo": "us"}},
        "agents": {"a": {"model": "gpt-4.1-mini", "daily_usd": 1, "key_sha256": "0" * 64}},
    }
    with pytest.raises(ConfigError) as e:
        parse(raw, env={"K": "x"})
    assert any(line.startswith("providers.openai.inference_geo") for line in e.value.problems)


# -- server-side compaction: an extra, billed sampling step outside the top-level counts ---------------


# the documents' example (compaction-threshold, "Understanding usage"): the compaction step, then the answer
COMPACTED = {
    "input_tokens": 23_000,
    "output_tokens": 1000,
    "iterations": [
        {"type": "compaction", "input_tokens": 180_000, "output_tokens": 3_500},
        {"type": "message", "input_tokens": 23_000, "output_tokens": 1000},
    ],
}


def _compacting(text: str, trigger: int | None, **extra: Any) -> dict[str, Any]:
    edit: dict[str, Any] = {"type": "compact_20260112"}
    if trigger is not None:
        edit["trigger"] = {"type": "input_tokens", "value": trigger}
    return {
        "model": "claude-opus-4-6",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": text}],
        "context_management": {"edits": [edit]},
        **extra,
    }


def test_a_compacting_request_is_reserved_for_its_compaction_step() -> None:
    """platform.claude.com/docs/en/build-with-claude/compaction-threshold: when the input reaches the
    trigger, a summary is made in an additional, billed sampling step that reads the whole conversation;
    its counts are in usage `iterations`, outside the top-level ones. The documents' example: 180,000 in
    and 3,500 out for the compaction, then 23,000 in and 1,000 out. The bound covered one pass only."""
    text = "word " * 40_000  # 200,000 bytes: at most ~200k tokens, past a 50,000 trigger
    body = _compacting(text, 50_000)
    usage = COMPACTED
    bill = (Decimal(23_000 + 180_000) * 5 + Decimal(1000 + 3_500) * 25) / MTOK  # Opus 4.6: $5 / $25
    assert bill <= reserved(body)
    # the worst the documents allow: the compaction reads everything, writes its longest summary, and the
    # answer reads as much again
    n = len(orjson.dumps(body))
    worst = (Decimal(2 * n) * 5 + Decimal(128_000 + 1000) * 25) / MTOK
    assert worst <= reserved(body)
    parsed = wire.usage(usage)
    assert parsed is not None and parsed.unpriced == ()
    assert TABLE.rates("claude-opus-4-6", "anthropic").cost(parsed) == bill


def test_a_compaction_step_count_the_sum_does_not_read_is_flagged() -> None:
    """The compaction step's counts are added to the totals; one the sum does not read (a server tool the
    step used, a count of a later API version) would be dropped from the bill: it is flagged instead."""
    step = {"type": "compaction", "input_tokens": 180_000, "output_tokens": 3_500}
    usage = {**COMPACTED, "iterations": [{**step, "server_tool_use": {"web_search_requests": 2}, "new_tokens": 5}]}
    parsed = wire.usage(usage)
    assert parsed is not None
    assert parsed.unpriced == (
        "iterations.compaction.server_tool_use.web_search_requests",
        "iterations.compaction.new_tokens",
    )
    read = wire.usage({**COMPACTED, "iterations": [{**step, "cache_creation": {"ephemeral_5m_input_tokens": 7}}]})
    assert read is not None and read.unpriced == () and read.cache_write_tokens == 7


def test_a_request_that_cannot_reach_its_compaction_trigger_is_not_reserved_for_one() -> None:
    """No false refusal: below the trigger (default 150,000 input tokens) no compaction can run."""
    small = _compacting("hello", None)
    plain = {k: v for k, v in small.items() if k != "context_management"}
    plain["context_managemenx"] = small["context_management"]  # the same bytes, no compaction
    assert reserved(small) == reserved(plain)


def test_a_compaction_step_is_booked_at_its_documented_bill(gateway: Any) -> None:
    from paymaster.server import ServerThread

    usage = COMPACTED
    with ServerThread(_Canned(usage, "claude-opus-4-6")) as up:
        gw = _on(gateway, up.url, model="claude-opus-4-6", daily_usd=20, max_tokens=4096)
        gw.anthropic("x").messages.create(
            model="claude-opus-4-6",
            max_tokens=1000,
            messages=[{"role": "user", "content": "word " * 40_000}],
            extra_body={"context_management": {"edits": [{"type": "compact_20260112"}]}},
        )
        (row,) = gw.ledger("x")
    assert ledger_usd(row) == (Decimal(203_000) * 5 + Decimal(4_500) * 25) / MTOK
    assert row["reconcile"] == 0


def test_fast_prices_in_a_price_override_price_fast_mode_on_that_model(gateway: Any) -> None:
    """A `price:` override replaces genai-prices' prices, fast mode's with them: before, `fast_input_mtok` was an
    unknown field and a fast-mode call on such a model was refused (400, param speed). With fast prices given,
    the call is booked at them, the prompt-cache prices at the documented multiples of the fast input price
    (platform.claude.com …/fast-mode: "Prompt caching multipliers apply on top of fast mode pricing")."""
    inp, out, fast_in, fast_out = Decimal(4), Decimal(20), Decimal(9), Decimal(45)
    price = {"input_mtok": str(inp), "output_mtok": str(out), "cache_read_mtok": str(inp * CACHE["read"]),
             "cache_write_mtok": str(inp * CACHE["write_5m"])}  # fmt: skip
    text = [{"type": "text", "text": "a long and stable preamble " * 200, "cache_control": {"type": "ephemeral"}}]
    ask: dict[str, Any] = {"model": "claude-opus-5-5", "max_tokens": 300, "speed": "fast",
                           "messages": [{"role": "user", "content": text}]}  # fmt: skip

    plain = gateway(models={"claude-opus-5-5": {"provider": "anthropic", "price": price}},
                    **_fleet(model="claude-opus-5-5", daily_usd=5))  # fmt: skip
    with pytest.raises(anthropic.BadRequestError) as e:
        plain.anthropic("fay").messages.create(**ask)
    assert e.value.body["error"]["message"].startswith("speed")  # no fast price: refused, nothing spent
    assert plain.ledger("fay") == []

    fast = {**price, "fast_input_mtok": str(fast_in), "fast_output_mtok": str(fast_out)}
    gw = gateway(models={"claude-opus-5-5": {"provider": "anthropic", "price": fast}},
                 **_fleet(model="claude-opus-5-5", daily_usd=5))  # fmt: skip
    client = gw.anthropic("fay")
    for _ in range(2):  # the first writes the cache, the second reads it
        msg = client.messages.create(**ask)
        u = msg.usage
        assert u.speed == "fast"
        bill = (
            u.input_tokens * fast_in
            + (u.cache_creation_input_tokens or 0) * fast_in * CACHE["write_5m"]
            + (u.cache_read_input_tokens or 0) * fast_in * CACHE["read"]
            + u.output_tokens * fast_out
        ) / MTOK
        assert ledger_usd(gw.ledger("fay")[-1]) == bill
    assert u.cache_read_input_tokens  # the cache read was priced too


def test_a_fast_input_price_without_its_output_price_is_a_config_error(gateway: Any) -> None:
    price = {"input_mtok": "4", "output_mtok": "20", "fast_input_mtok": "9"}
    with pytest.raises(ConfigError, match="fast_input_mtok and fast_output_mtok go together"):
        gateway(
            models={"claude-opus-5-5": {"provider": "anthropic", "price": price}}, **_fleet(model="claude-opus-5-5")
        )
