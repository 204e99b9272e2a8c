"""Retries against the bill: a request the provider may have run is never sent twice while the ledger
books it once.

A provider that read a request in full and then lost its connection before answering may have run it
and billed it (an LLM call is not idempotent: each run is a new bill). RFC 9112 §9.3.1: a client "MUST
NOT automatically retry a request with a non-idempotent method unless it has some means to ... detect
that the original request was never applied". The gateway used to send a POST again on a fresh
connection whenever a reused one died before any byte of the answer came — the provider billed two runs,
the ledger one. Now such an attempt is booked at its worst case (flagged for reconciliation) and the
agent gets a 502, which the official SDKs retry as a new, admitted call."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import transport_kit
from transport_kit import PKI, Loop, Origin

loop, pki = transport_kit.loop, transport_kit.pki  # module-scoped fixtures

# platform.claude.com/docs/en/about-claude/pricing: Claude Haiku 4.5, $1 / MTok input, $5 / MTok output
HAIKU_IN, HAIKU_OUT = Decimal(1), Decimal(5)
KIT_BILL = (10 * HAIKU_IN + 2 * HAIKU_OUT) / 10**6  # the kit's answer: 10 input, 2 output tokens


def test_a_request_the_provider_read_is_not_sent_again_unbooked(gateway, sim, loop: Loop, pki: PKI, tmp_path: Path):
    """Every request the provider read may be billed; the ledger books at least that much."""
    with Origin(loop, pki.server_ctx(), drop_reused=True) as o:
        hop: dict[str, Any] = {"kind": "anthropic", "base_url": o.url, "api_key_env": "SIM_KEY"}
        gw = gateway(
            providers={
                "anthropic": {**hop, "ca_bundle": pki.bundle(tmp_path)},
                "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
            }
        )
        client = gw.anthropic().with_options(max_retries=2)  # the SDK retries the gateway's 502 as a new call
        answers = [
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            for _ in range(3)
        ]
        assert [a.content[0].text for a in answers] == ["hello"] * 3
        read = len(o.requests) + o.dropped  # every request the provider read in full
    assert o.dropped >= 1
    rows = gw.ledger("alice")
    booked = sum(Decimal(r["cost_nanos"]) for r in rows) / 10**9
    assert booked >= read * KIT_BILL, (booked, read, rows)
    lost = [r for r in rows if r["status"] != "ok"]
    assert len(lost) == o.dropped and all(r["reconcile"] == 1 and r["cost_nanos"] == r["worst_nanos"] for r in lost)
