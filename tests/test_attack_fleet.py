"""A cap lowered at run time while calls are in flight: what the guarantee is at the moment of the change.

Calls admitted before the change were sent with their worst case held under the old cap; the provider may bill
them in full, so the new cap cannot undo them. What must hold: spend never passes max(new cap, spent + held at
the change) — the in-flight calls settle within their holds — and no call is admitted after the change unless
it fits the new cap with every hold still open counted."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from tests.test_fleet_live import live  # noqa: F401  (the fixture)

HI = [{"role": "user", "content": "tell me [sim:tokens=300]"}]


def windows(g: Any, agent: str) -> dict[str, tuple[Decimal, Decimal, Decimal | None]]:
    a = next(a for a in g.admin("GET", "/admin/agents").json()["agents"] if a["name"] == agent)
    return {
        w["window"]: (
            Decimal(w["spent_usd"]),
            Decimal(w["reserved_usd"]),
            Decimal(w["cap_usd"]) if w["cap_usd"] else None,
        )
        for w in a["windows"]
    }


def test_a_cap_lowered_under_calls_in_flight_binds_every_later_admission(live: Any, sim: Any) -> None:  # noqa: F811
    g = live(agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": "1", "monthly_usd": 50, "max_tokens": 400}})
    client = g.claude(g.keys["bob"])
    sim.token_delay = 0.01
    done: list[Any] = []

    def slow() -> None:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=400, messages=HI) as s:
            done.append(s.get_final_message())

    try:
        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while sum(1 for r in list(sim.requests) if r["path"] == "/v1/messages") < 3 and time.time() < deadline:
            time.sleep(0.01)  # until all three are admitted and sent
        spent, held, _ = windows(g, "bob")["agent daily"]
        assert held > 0
        new_cap = ((spent + held) / 4).quantize(Decimal("0.000001"))  # below what the calls in flight hold
        assert g.admin("PATCH", "/admin/agents/bob", {"daily_usd": str(new_cap)}).status_code == 200
        admitted_after = 0
        for _ in range(3):
            try:
                client.messages.create(model="claude-haiku-4-5", max_tokens=400, messages=HI, timeout=10)
                admitted_after += 1
            except anthropic.APIStatusError as e:
                assert e.status_code in (402, 429), e
        for t in threads:
            t.join()
    finally:
        sim.token_delay = 0.0
    assert len(done) == 3
    final, open_holds, cap = windows(g, "bob")["agent daily"]
    assert open_holds == 0 and cap == new_cap
    assert final <= max(new_cap, spent + held)
    # a call admitted after the change fitted the new cap with the in-flight holds counted
    assert admitted_after == 0 or final <= new_cap


@pytest.mark.parametrize("field", ["daily_usd", "monthly_usd"])
def test_a_cap_raised_lets_the_next_call_through_without_waiting(live: Any, field: str) -> None:  # noqa: F811
    g = live(agents={"bob": {"model": "claude-haiku-4-5", field: "0.0001", "max_tokens": 2048}})
    client = g.claude(g.keys["bob"])
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=HI)
    assert e.value.status_code == 402
    assert g.admin("PATCH", "/admin/agents/bob", {field: "5"}).status_code == 200
    client.messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=HI)
