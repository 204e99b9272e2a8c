"""Denial-of-wallet limits (issue 16) with the official SDKs: each limit refuses the noisy agent with 429 and
retry-after in its own API's shape, while a bystander's calls all succeed, unthrottled."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import yaml

from paymaster.limits import MAX_HOLD_S, REFUSAL_BURST, REFUSALS_PER_S, Limits, Meter
from paymaster.server import free_port, wait_port
from tests.conftest import PROVIDER_KEY, fleet

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


def test_an_agent_over_its_rate_is_refused_before_its_body_is_read(gateway: Any) -> None:
    """The rate and calls in flight are known from the key alone: the 429 comes before the body is read or
    parsed (a body that is not JSON, or larger than the gateway accepts, still gets the 429), and the
    connection stays usable for the next call."""
    g = gateway(**noisy({"requests_per_minute": 1}))
    call(g.anthropic("bob"))
    headers = {"x-api-key": g.keys["bob"], "anthropic-version": "2023-06-01", "content-type": "application/json"}
    with httpx2.Client(base_url=g.url, headers=headers) as c:
        r = c.post("/v1/messages", content=b"{not json")
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error", r.text
        r = c.post("/v1/messages", content=b"[" * (2 * 1024 * 1024))  # unread past the headers
        assert r.status_code == 429 and "requests per minute" in r.json()["error"]["message"], r.text
        body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}
        r = c.post("/v1/messages", json=body, headers={"x-api-key": g.keys["alice"]})  # the same connection
        assert r.status_code == 200, r.text
    refused = g.admin("/metrics").text
    assert 'paymaster_refusals_total{agent="bob",reason="requests_per_minute"} 2.0' in refused


def test_one_limited_event_per_episode_not_per_refusal(gateway: Any) -> None:
    g = gateway(**noisy({"requests_per_minute": 1}))
    bob = g.anthropic("bob")
    call(bob)
    for _ in range(5):
        with pytest.raises(anthropic.RateLimitError):
            call(bob)
    events = [f for _, f in g.gw.board.history if b"event: agent.limited" in f]
    assert len(events) == 1, events
    assert b'"agent":"bob"' in events[0] and b'"limit":"requests_per_minute"' in events[0]


def test_a_call_refused_as_a_loop_takes_nothing_from_the_rate(gateway: Any) -> None:
    g = gateway(**noisy({"requests_per_minute": 4, "loop_calls": 2, "loop_block": True}))
    bob = g.anthropic("bob")
    call(bob, "again")
    for _ in range(4):
        with pytest.raises(anthropic.RateLimitError) as e:
            call(bob, "again")
        assert e.value.body["error"]["message"].startswith("agent 'bob' is sending the same call in a loop")
    assert call(bob, "something else").content  # three of the four calls a minute are left


def test_refusals_that_come_too_fast_are_held_at_a_bounded_pace() -> None:
    """An agent that ignores retry-after gets its refusals at most REFUSALS_PER_S a second (after a burst),
    each held no longer than MAX_HOLD_S; one that waits between calls is never held."""
    m = Meter(0.0)
    holds = [Limits.hold(m, 100.0) for _ in range(200)]  # a flood: 200 refusals at one instant
    assert holds[:REFUSAL_BURST] == [0.0] * REFUSAL_BURST
    paced = holds[REFUSAL_BURST:]
    assert all(0 < h <= MAX_HOLD_S for h in paced) and paced == sorted(paced)
    assert paced[0] == pytest.approx(1 / REFUSALS_PER_S) and paced[-1] == MAX_HOLD_S
    answered = [h for h in holds if h < MAX_HOLD_S]  # answered within the second: the burst and the pace
    assert len(answered) <= REFUSAL_BURST + REFUSALS_PER_S
    calm = Meter(0.0)
    assert all(Limits.hold(calm, 100.0 + i / REFUSALS_PER_S) == 0.0 for i in range(500))


def test_a_bystander_never_hangs_beside_a_noisy_agent_when_stderr_is_not_read(sim: Any, tmp_path: Path) -> None:
    """The hang once seen beside a noisy agent: the gateway's stderr a pipe nobody reads (here; a stalled log
    shipper in production) fills with access-log lines, one per call, the noisy agent's refusals included, and
    the write that found it full stopped the event loop, every agent's calls with it. The access log now
    writes to a pipe from a thread; every line still gets there once the pipe is read."""
    keys = {n: f"pm-{n}-hang" for n in ("alice", "olivia", "bob")}
    port = free_port()
    raw = fleet(sim.url, keys, tmp_path, **noisy({"requests_per_minute": 1}))  # type: ignore[attr-defined]
    raw.update(listen={"host": "127.0.0.1", "port": port}, observability={"log_prompts": True})
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "SIM_KEY": PROVIDER_KEY}
    cmd = [sys.executable, "-m", "paymaster.cli", "serve", "--config", str(path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # stderr: never read
    try:
        wait_port(port, alive=lambda: proc.poll() is None)
        ask = {"model": "claude-haiku-4-5", "max_tokens": 16}
        long = [{"role": "user", "content": "Summarise this. " + "lorem ipsum " * 4000}]  # a ~50 kB log line
        statuses = []
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for i in range(12):  # ~600 kB of access log against a 64 kB pipe
                if i == 6:
                    time.sleep(1.5)  # the log is written at least once a second: the pipe is full from here on
                for agent, messages in (("bob", HI), ("alice", long)):
                    h = {"x-api-key": keys[agent], "anthropic-version": "2023-06-01"}
                    statuses.append((agent, c.post("/v1/messages", json={**ask, "messages": messages}, headers=h)))
            time.sleep(1.5)  # … and written again
            h = {"x-api-key": keys["alice"], "anthropic-version": "2023-06-01"}
            statuses.append(("alice", c.post("/v1/messages", json={**ask, "messages": HI}, headers=h)))
        assert [r.status_code for a, r in statuses if a == "alice"] == [200] * 13
        assert [r.status_code for a, r in statuses if a == "bob"] == [200] + [429] * 11
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = err.splitlines()
    assert sum(b'"agent":"alice"' in x for x in lines) == 13 and sum(b'"status":"refused"' in x for x in lines) == 11
