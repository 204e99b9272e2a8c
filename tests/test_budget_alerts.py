"""Threshold alerts fire exactly when a window's spent share reaches a threshold, also at the boundary
(settlement skips the Decimal share below the lowest threshold: that shortcut must never drop an alert)."""

from __future__ import annotations

from fractions import Fraction

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.blackboard import Blackboard
from paymaster.budget import Budget
from paymaster.config import hash_key, parse

THRESHOLDS = (0.5, 0.8, 0.95)


def budget(daily_usd: str) -> Budget:
    raw = {
        "ledger": ":memory:",
        "providers": {"anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:9", "api_key_env": "K"}},
        "fleet": {"alert_thresholds": list(THRESHOLDS)},
        "agents": {"a": {"model": "claude-haiku-4-5", "daily_usd": daily_usd, "key_sha256": hash_key("pm-x")}},
    }
    config = parse(raw, env={"K": "sk"})
    return Budget(config, None, Blackboard(["a"]), lambda: 1_764_633_600.0)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10**9), st.sampled_from(THRESHOLDS), st.integers(-2, 2))
def test_an_alert_fires_exactly_at_its_threshold(cap_micros, th, offset):
    b = budget(f"{cap_micros / 1e6:.6f}")
    w = b.windows("a", b.clock())[0]  # the agent's daily window
    assert w.cap is not None
    spent = max(0, int(Fraction(str(th)) * w.cap) + offset)
    b.counters[w.key] = [spent, 0]
    b._alerts("a", (w.key,))
    fired = {orjson.loads(f.split(b"data: ")[1])["threshold"] for _, f in b.board.history}
    assert fired == {t for t in THRESHOLDS if Fraction(spent, w.cap) >= Fraction(str(t))}
