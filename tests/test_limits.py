"""Denial-of-wallet limits (issue 16) with the official SDKs: each limit refuses the noisy agent with 429 and
retry-after in its own API's shape, while a bystander's calls all succeed, unthrottled."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import anthropic
import openai
import pytest

HI = [{"role": "user", "content": "hi"}]


def noisy(limits: dict[str, Any]) -> dict[str, Any]:
    return {"agents": {"bob": {"model": "claude-haiku-4-5", "daily_usd": 5, "max_tokens": 256, "limits": limits}}}


def call(c: anthropic.Anthropic, text: str = "hi") -> Any:
    return c.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": text}])


def bystander_ok(g: Any, n: int = 10) -> None:
    for i in range(n):
        assert call(g.anthropic("alice"), f"question {i}").content


def test_requests_per_minute_refuses_the_noisy_agent_only(gateway: Any) -> None:
    g = gateway(**noisy({"requests_per_minute": 3}))
    bob = g.anthropic("bob")
    for _ in range(3):
        call(bob)
    with pytest.raises(anthropic.RateLimitError) as e:
        call(bob)
    assert e.value.response.headers["retry-after"] == "20"  # one call's worth of a 3-per-minute bucket
    err = e.value.body["error"]
    assert err["type"] == "rate_limit_error" and "requests per minute" in err["message"]
    bystander_ok(g)
    assert len(g.ledger("bob")) == 3  # nothing booked for the refused call


def test_tokens_per_minute_counts_settled_tokens(gateway: Any) -> None:
    g = gateway(**noisy({"tokens_per_minute": 5}))
    bob = g.anthropic("bob")
    call(bob)  # admitted with a full bucket; its tokens empty it
    with pytest.raises(anthropic.RateLimitError) as e:
        call(bob)
    assert int(e.value.response.headers["retry-after"]) >= 1
    bystander_ok(g)


def test_in_flight_cap_refuses_a_second_open_call(gateway: Any, sim: Any) -> None:
    g = gateway(**noisy({"max_in_flight": 1}))
    bob = g.anthropic("bob")
    sim.inject("timeout", model="claude-haiku-4-5")  # the provider holds bob's first call open

    def hold() -> None:
        with contextlib.suppress(anthropic.APIStatusError, anthropic.APIConnectionError):
            call(bob)

    held = threading.Thread(target=hold)
    held.start()
    deadline = time.monotonic() + 5
    while not (g.gw.limits.meters.get("bob") and g.gw.limits.meters["bob"].open == 1):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(anthropic.RateLimitError) as e:
        call(bob)
    assert e.value.response.headers["retry-after"] == "1"
    bystander_ok(g, 3)
    held.join(10)
    call(bob)  # the held call ended: room again


def test_loop_detector_flags_and_blocks_a_scripted_looping_agent(gateway: Any) -> None:
    g = gateway(agents={"olivia": {"model": "gpt-4.1-mini", "daily_usd": 5, "max_tokens": 256,
                                   "limits": {"loop_calls": 4, "loop_window_s": 60, "loop_block": True}}})  # fmt: skip
    client = g.openai("olivia")
    refused = 0
    for attempt in range(8):  # the same failing step, retried with a counter in the text
        msg = [{"role": "user", "content": f"Tool call failed (attempt {attempt}). Try again."}]
        try:
            client.chat.completions.create(model="gpt-4.1-mini", messages=msg)
        except openai.RateLimitError as e:
            refused += 1
            assert e.response.headers["retry-after"] == "60"
            assert e.body["code"] == "loop_detected"
    assert refused == 5  # calls 4..8
    events = b"".join(f for _, f in g.gw.board.history)
    assert events.count(b'"type":"agent.looping"') == 1 and b'"agent":"olivia"' in events
    other = [{"role": "user", "content": "Something else entirely"}]
    assert client.chat.completions.create(model="gpt-4.1-mini", messages=other).choices
    bystander_ok(g)


def test_loop_detector_without_block_only_reports(gateway: Any) -> None:
    g = gateway(**noisy({"loop_calls": 3}))
    for _ in range(5):
        call(g.anthropic("bob"), "same again")
    assert b'"type":"agent.looping"' in b"".join(f for _, f in g.gw.board.history)
