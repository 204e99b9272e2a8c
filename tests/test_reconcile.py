"""Reconciling a call booked at its worst case from the provider's usage: the usage is priced as the provider
bills it — at the speed, inference geography and service tier it ran at, with server tools' per-use fees and at
batch prices for a batch call — not at the model's standard rates. Before, `usage` took the five token counts
only, priced at standard rates: a fast-mode call reconciled from its usage was booked at half its bill (and any
of the new fields was a 400).

Independent figures (platform.claude.com/docs/en/about-claude/pricing): Claude Opus 4.8 $5 / MTok input and
$25 / MTok output, fast mode $10 / $50 (build-with-claude/fast-mode), `inference_geo: "us"` 1.1x every token
price; Claude Haiku 4.5 $1 / $5, the Batch API 50 % of those; web search $10 per 1,000 searches."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import pytest

from tests.conftest import ADMIN_KEY

MTOK = Decimal(1_000_000)


def _flagged(gateway: Any, sim: Any, model: str, **extra: Any) -> tuple[Any, dict[str, Any]]:
    """A gateway and one of its calls booked at the worst case (the provider sent no usage)."""
    gw = gateway(agents={"fay": {"model": model, "max_tokens": 4096, "daily_usd": 20, "monthly_usd": 50}})
    sim.inject("no_usage")
    gw.anthropic("fay").messages.create(
        model=model, max_tokens=300, messages=[{"role": "user", "content": "x [sim:tokens=5]"}], **extra
    )
    row = gw.ledger("fay")[-1]
    assert row["reconcile"] == 1
    return gw, row


def _reconcile(gw: Any, call_id: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        gw.url + f"/admin/ledger/{call_id}/reconcile", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )


def _spent(gw: Any, agent: str) -> Decimal:
    daily = next(w for w in gw.admin(f"/admin/agents/{agent}").json()["windows"] if w["window"] == "agent daily")
    return Decimal(daily["spent_usd"])


@pytest.mark.parametrize(
    ("modes", "in_price", "out_price"),
    [
        ({}, Decimal(5), Decimal(25)),
        ({"speed": "fast"}, Decimal(10), Decimal(50)),
        ({"inference_geo": "us"}, Decimal("5.5"), Decimal("27.5")),
        ({"speed": "fast", "inference_geo": "us"}, Decimal(11), Decimal(55)),
    ],
)
def test_usage_is_reconciled_at_the_speed_and_geography_the_call_ran_at(
    gateway: Any, sim: Any, modes: dict[str, str], in_price: Decimal, out_price: Decimal
) -> None:
    gw, row = _flagged(gateway, sim, "claude-opus-4-8")
    r = _reconcile(gw, row["id"], {"usage": {"input_tokens": 20_000, "output_tokens": 3_000, **modes}})
    assert r.status_code == 200, r.text
    bill = (20_000 * in_price + 3_000 * out_price) / MTOK
    assert Decimal(r.json()["cost_usd"]) == bill
    assert _spent(gw, "fay") == bill


def test_a_batch_call_is_reconciled_at_batch_prices_with_its_server_tool_fees(gateway: Any, sim: Any) -> None:
    gw, row = _flagged(gateway, sim, "claude-haiku-4-5")
    usage = {"input_tokens": 100_000, "output_tokens": 10_000, "server_tool_uses": {"web_search": 3}}
    r = _reconcile(gw, row["id"], {"usage": usage, "batch": True})
    assert r.status_code == 200, r.text
    bill = (100_000 * Decimal("0.5") + 10_000 * Decimal("2.5")) / MTOK + 3 * Decimal("0.01")
    assert Decimal(r.json()["cost_usd"]) == bill
    assert _spent(gw, "fay") == bill


@pytest.mark.parametrize(
    "body",
    [
        {"usage": {"input_tokens": 10, "speed": "fast"}},  # Haiku 4.5 has no fast-mode price
        {"usage": {"input_tokens": 10, "inference_geo": "mars"}},
        {"usage": {"input_tokens": 10, "speed": 2}},
        {"usage": {"input_tokens": 10, "server_tool_uses": {"web_search": -1}}},
        {"usage": {"input_tokens": 10, "server_tool_uses": ["web_search"]}},
        {"usage": {"input_tokens": 10}, "batch": "yes"},
        {"usage": {"input_tokens": 10}, "extra": 1},
        {"usage": {"input_tokens": True}},
        {"usage": {"tokens": 10}},
    ],
)
def test_usage_that_cannot_be_priced_is_a_400_and_changes_nothing(gateway: Any, sim: Any, body: dict[str, Any]) -> None:
    gw, row = _flagged(gateway, sim, "claude-haiku-4-5")
    before = _spent(gw, "fay")
    r = _reconcile(gw, row["id"], body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert _spent(gw, "fay") == before
    assert gw.ledger("fay")[-1]["cost_nanos"] == row["cost_nanos"]
