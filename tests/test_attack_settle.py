"""Attacks on settlement: usage a misbehaving provider (or an openai-compatible server) can send that
the ledger must still book exactly once, never below the reservation's promise, and never by crashing."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from paymaster.wire import anthropic as wire_anthropic
from paymaster.wire import openai as wire_openai


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "cache_read_input_tokens"])
def test_an_absurd_usage_count_is_booked_at_the_worst_case_not_a_500(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, stream: bool, field: str
) -> None:
    """A count no call can reach (10^30 tokens) does not fit the ledger's integers: the call used to end in
    a 500 with its reservation never settled. It is malformed usage: booked at the worst case, flagged."""
    gw = gateway()
    answer = {"type": "message", "usage": {"input_tokens": 5, "output_tokens": 3, field: 10**30}}
    assert wire_anthropic.answer_usage(answer) is None
    assert wire_openai.usage({"prompt_tokens": 10**30, "completion_tokens": 1}) is None
    real = wire_anthropic.usage

    def absurd(u: Any) -> Any:
        if isinstance(u, dict) and field in u:
            u = {**u, field: 10**30}
        return real(u)

    monkeypatch.setattr(wire_anthropic, "usage", absurd)
    c = gw.anthropic()
    args: dict[str, Any] = dict(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "x"}])
    if stream:
        with c.messages.stream(**args) as s:
            for _ in s:
                pass
    else:
        c.messages.create(**args)
    monkeypatch.undo()
    row = gw.ledger("alice")[-1]
    assert row["reconcile"] == 1 and row["cost_nanos"] == row["worst_nanos"]
    assert not gw.gw.budget.open
    assert httpx2.get(gw.url + "/healthz").json()["status"] == "ok"
    # the gateway goes on serving and booking
    gw.anthropic().messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "y"}])
    assert len(gw.ledger("alice")) == 2 and gw.ledger("alice")[-1]["reconcile"] == 0
