"""Alerts: per-agent thresholds and burn-rate projections on the event stream, and webhooks against a local
receiver — HMAC-SHA256 signature checked independently, retried with backoff, Slack payload, never blocking."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from conftest import PROVIDER_KEY, Clock

from paymaster.config import ConfigError, hash_key, parse
from paymaster.server import ServerThread

SECRET = PROVIDER_KEY  # the gateway fixture's environment holds SIM_KEY only: the webhooks sign with it


class Receiver:
    """A webhook endpoint: records each POST; answers `fail_first` of them 503; can hold answers back."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503) -> None:
        self.got: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.release = threading.Event()
        self.release.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.got.append({"path": scope["path"], "headers": headers, "body": body})
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        status = self.fail_status if len(self.got) <= self.fail_first else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wait(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n:
            assert time.monotonic() < deadline, f"{len(self.got)} of {n} webhook posts arrived"
            time.sleep(0.02)
        return self.got


def until(cond: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "not within 10 s"
        time.sleep(0.02)


def valid(post: dict[str, Any], secret: str = SECRET) -> bool:
    """The receiver's check, written from the documented scheme: HMAC-SHA256 over "<timestamp>." + body."""
    ts = post["headers"]["x-paymaster-timestamp"]
    want = hmac.new(secret.encode(), ts.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(post["headers"]["x-paymaster-signature"], "sha256=" + want)


def ask(gw, n: int = 1) -> None:
    for _ in range(n):
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "hi [sim:tokens=200]"}]
        )


@pytest.fixture
def receiver():
    started = []

    def start(**kw: Any) -> tuple[Receiver, str]:
        r = Receiver(**kw)
        srv = ServerThread(r).start()
        started.append(srv)
        return r, srv.url

    yield start
    for s in started:
        s.stop()


def hook(url: str, **kw: Any) -> dict[str, Any]:
    return {"url": url + "/hooks/paymaster?team=finops", "secret_env": "SIM_KEY", "backoff_s": 0.05, **kw}


def test_an_agents_own_threshold_reaches_a_signed_webhook(gateway, receiver):
    r, url = receiver()
    gw = gateway(
        agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": 0.004, "monthly_usd": 50}},
        alerts={"thresholds": {"alice": [0.25]}, "webhooks": [hook(url, events=["budget.threshold"])]},
    )
    ask(gw)  # one call: ~$0.001 of $0.004
    post = r.wait(1)[0]
    event = orjson.loads(post["body"])
    assert event["type"] == "budget.threshold" and event["agent"] == "alice" and event["threshold"] == 0.25
    assert event["window"] == "agent daily" and event["cap_usd"] == "0.004000"
    assert post["path"] == "/hooks/paymaster" and post["headers"]["x-paymaster-event"] == "budget.threshold"
    assert valid(post) and not valid(post, "another secret")
    assert abs(int(post["headers"]["x-paymaster-timestamp"]) - time.time()) < 60
    tampered = dict(post, body=post["body"].replace(b"alice", b"bobby"))
    assert not valid(tampered)
    assert int(post["headers"]["x-paymaster-event-id"]) >= 1
    assert [e for e in gw.gw.board.history if b"budget.threshold" in e[1]]  # on the event stream too
    bob = gateway(
        ledger=str(gw.config.ledger) + ".bob", agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": 0.004}}
    )
    assert bob.config.alerts.thresholds == {}  # without alerts: the fleet's thresholds, no webhooks


def test_a_failing_receiver_is_retried_with_backoff(gateway, receiver):
    r, url = receiver(fail_first=2)
    gw = gateway(alerts={"webhooks": [hook(url, events=["agent.blocked"], retries=3)]})
    gw.gw.board.publish("agent.blocked", agent="bob", reason="test", window="agent daily", until="tomorrow")
    posts = r.wait(3)
    assert all(valid(p) for p in posts)
    assert len({p["body"] for p in posts}) == 1  # the same event each time
    d = gw.gw.alerts.deliveries[0]
    until(lambda: d.delivered == 1)
    assert len(r.got) == 3  # delivered on the third attempt: no more
    assert d.delivered == 1 and d.waits == [0.05, 0.1]  # backoff_s, then doubled


def test_retries_stop_and_a_client_error_is_final(gateway, receiver):
    r, url = receiver(fail_first=100)
    gw = gateway(alerts={"webhooks": [hook(url, events=["agent.blocked"], retries=2)]})
    gw.gw.board.publish("agent.blocked", agent="bob", reason="x", window="agent daily", until="t")
    r.wait(3)
    until(lambda: gw.gw.alerts.deliveries[0].failed == 1)
    assert len(r.got) == 3
    r4, url4 = receiver(fail_first=100, fail_status=400)
    gw4 = gateway(ledger=str(gw.config.ledger) + ".4", alerts={"webhooks": [hook(url4, retries=5)]})
    gw4.gw.board.publish("agent.blocked", agent="bob", reason="x", window="agent daily", until="t")
    r4.wait(1)
    until(lambda: gw4.gw.alerts.deliveries[0].failed == 1)
    assert len(r4.got) == 1  # a 400 is not retried


def test_slack_payload(gateway, receiver):
    r, url = receiver()
    gw = gateway(alerts={"webhooks": [hook(url, format="slack")]})
    gw.gw.board.publish("agent.blocked", agent="bob", reason="daily cap reached", window="agent daily", until="00:00")
    body = orjson.loads(r.wait(1)[0]["body"])
    assert set(body) == {"text"} and "bob is blocked until 00:00: daily cap reached" in body["text"]
    assert valid(r.got[0])


def test_a_slow_receiver_never_holds_up_a_call(gateway, receiver):
    r, url = receiver()
    r.release.clear()  # the receiver takes the request and does not answer
    gw = gateway(
        agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": 0.004, "monthly_usd": 50}},
        alerts={"thresholds": {"alice": [0.1]}, "webhooks": [hook(url, timeout_s=30)]},
    )
    ask(gw)
    r.wait(1)
    ask(gw, 2)  # answered while the webhook's first post is still unanswered
    assert len(gw.ledger("alice")) == 3 and not r.release.is_set()
    r.release.set()


def test_projected_to_hit_the_cap_before_reset(gateway):
    one_am = datetime.fromisoformat("2026-11-20T01:00:00+00:00").timestamp()
    clock = Clock(one_am)
    gw = gateway(
        clock=clock,
        agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": 0.01, "monthly_usd": 50}},
        fleet={"alert_thresholds": [0.95]},
    )
    ask(gw)  # ~$0.001 in the first hour: $0.024 by midnight at this rate, over the $0.01 cap
    gw.ledger()
    gw.gw.alerts.check()
    gw.gw.alerts.check()  # once per window
    events = [orjson.loads(f.split(b"data: ")[1]) for _, f in gw.gw.board.history if b"budget.projected" in f]
    assert len(events) == 1
    e = events[0]
    assert (e["agent"], e["window"], e["cap_usd"]) == ("alice", "agent daily", "0.010000")
    hits = datetime.fromisoformat(e["hits_cap_at"])
    assert datetime.fromisoformat("2026-11-20T05:00:00+00:00") < hits < datetime.fromisoformat(e["resets_at"])
    spent = float(e["spent_usd"])
    assert abs(hits.timestamp() - (one_am + (0.01 - spent) / (spent / 3600))) < 2
    gw.srv.stop()  # a restart: the projection is in the stored history, and not published again
    again = gateway(clock=clock, ledger=gw.config.ledger, agents={"alice": {"model": "claude-haiku-4-5",
                    "daily_usd": 0.01, "monthly_usd": 50}}, fleet={"alert_thresholds": [0.95]})  # fmt: skip
    again.gw.alerts._projected_before()  # what the check loop does first
    ask(again)
    again.ledger()
    again.gw.alerts.check()
    assert sum(b"budget.projected" in f for _, f in again.gw.board.history) == 1


def test_alert_settings_are_checked():
    def config(alerts: Any) -> Any:
        raw = {
            "ledger": ":memory:",
            "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
            "agents": {"a": {"model": "claude-haiku-4-5", "key_sha256": hash_key("pm-a")}},
            "alerts": alerts,
        }
        return parse(raw, env={"K": "sk", "HOOK": "s3cret"})

    c = config({"thresholds": {"a": [1, 0.5]}, "webhooks": [{"url": "https://h.example/x", "secret_env": "HOOK"}]})
    assert [str(t) for t in c.alerts.thresholds["a"]] == ["0.5", "1"]
    assert c.alerts.webhooks[0].secret == "s3cret" and "s3cret" not in repr(c.alerts.webhooks[0])
    for bad, says in [
        ({"thresholds": {"nobody": [0.5]}}, "alerts.thresholds.nobody: no such agent"),
        ({"thresholds": {"a": [1.5]}}, "alerts.thresholds.a[0]"),
        ({"webhooks": [{"url": "ftp://x", "secret_env": "HOOK"}]}, "alerts.webhooks[0].url"),
        ({"webhooks": [{"url": "https://x"}]}, "alerts.webhooks[0].secret_env: required"),
        ({"webhooks": [{"url": "https://x", "secret_env": "NOPE"}]}, "NOPE is not set"),
        ({"webhooks": [{"url": "https://x", "secret_env": "HOOK", "format": "teams"}]}, "format"),
        ({"webhooks": [{"url": "https://x", "secret_env": "HOOK", "retries": -1}]}, "retries"),
        ({"check_s": 0}, "alerts.check_s"),
        ({"colour": 1}, "alerts.colour: unknown field"),
    ]:
        with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
            config(bad)


def test_a_restart_posts_neither_the_stored_events_nor_a_threshold_crossed_before_it(gateway, receiver, tmp_path):
    """The event stream keeps the latest events across a restart (for Last-Event-ID replays); the webhooks were
    sent them already and get only events published after the start — and a threshold crossed before the
    restart is not crossed again by the next call."""
    r, url = receiver()
    spec = {
        "ledger": str(tmp_path / "restart.db"),
        "agents": {"alice": {"model": "claude-haiku-4-5", "daily_usd": 0.004, "monthly_usd": 50}},
        "alerts": {"thresholds": {"alice": [0.2, 0.4]}, "webhooks": [hook(url, events=["budget.threshold"])]},
    }
    first = gateway(**spec)
    ask(first)  # ~$0.001 of $0.004: past 0.2
    r.wait(1)
    time.sleep(0.3)
    assert [orjson.loads(p["body"])["threshold"] for p in r.got] == [0.2]
    first.srv.stop()
    second = gateway(**spec)
    assert any(b"budget.threshold" in f for _, f in second.gw.board.history)  # replayable on the stream
    ask(second)  # ~$0.002: past 0.4
    r.wait(2)
    time.sleep(0.5)
    assert [orjson.loads(p["body"])["threshold"] for p in r.got] == [0.2, 0.4]  # each threshold posted once
