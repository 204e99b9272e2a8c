"""Alerts: budget thresholds and burn-rate projections on the event stream, delivered to webhooks.

On the event stream (`GET /admin/events`):

    budget.threshold   spend crossed a fraction of a cap (`fleet.alert_thresholds`; an agent's own
                       `alerts.thresholds.<agent>` for its windows) — published by the budget on settlement
    budget.projected   at the window's average burn rate so far (burn.py), spend reaches the cap before the
                       window resets — checked every `alerts.check_s` seconds, once per window

Webhooks (`alerts.webhooks`) get every event whose type they list, as a POST of the event's JSON
(`format: json`) or of a Slack incoming-webhook message `{"text": …}` (`format: slack`), with:

    x-paymaster-event: <type>             x-paymaster-event-id: <the event stream's id>
    x-paymaster-timestamp: <unix seconds>
    x-paymaster-signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body with its secret, compares in
constant time, and refuses timestamps too far from its clock (replays). Delivery never blocks a call:
the blackboard hands events to a queue, each webhook has its own task and bounded backlog (the oldest
event is dropped, with a log line, past `MAX_BACKLOG`). A connection failure, timeout, 408, 429 or
5xx is retried `retries` times, `backoff_s` doubling each time up to 60 s; other answers are final.
Webhooks get the events published after the gateway started (the stored history was posted before a
restart); on replicas, each event is posted by one replica (store/shared_events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from .blackboard import Blackboard
from .budget import Budget
from .burn import project
from .config import Config, Provider, Webhook
from .pricing import usd_str
from .providers.transport import Target, Transport, UpstreamError, open_transport
from .store.shared import OUTAGES

log = logging.getLogger("paymaster")

MAX_BACKLOG = 1000
MAX_BACKOFF_S = 60.0
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
POST_CLAIM_S = 86400.0  # replicas: how long an event's "posted by one replica" claim is kept


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def slack_text(event: dict[str, Any]) -> str:
    """One line a person reads in a channel."""
    e = event.get
    kind, who = e("type", "event"), e("agent") or "the fleet"
    if kind == "budget.threshold":
        pct = round(float(e("threshold", 0)) * 100)
        return f":warning: {who} has spent {pct}% of its {e('window')} cap (${e('spent_usd')} of ${e('cap_usd')})"
    if kind == "budget.projected":
        return (
            f":chart_with_upwards_trend: {who} is projected to reach its {e('window')} cap (${e('cap_usd')}) "
            f"at {e('hits_cap_at')}, before it resets at {e('resets_at')}"
        )
    if kind == "agent.blocked":
        return f":no_entry: {who} is blocked until {e('until')}: {e('reason')}"
    if kind == "agent.degraded":
        return f":arrow_down: {who} runs one tier down: {e('reason')}"
    rest = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("type", "ts", "agent"))
    return f"{kind} ({who}){': ' + rest if rest else ''}"


class Delivery:
    """One webhook: a bounded queue of events and the task that posts them in order."""

    def __init__(self, hook: Webhook, clock: Callable[[], float] = time.time) -> None:
        self.hook = hook
        self.clock = clock
        u = urlsplit(hook.url)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue(MAX_BACKLOG)
        self.delivered = 0
        self.failed = 0
        self.waits: list[float] = []  # the backoff delays slept, in order (what the retry schedule did)
        self._transport: Transport | None = None

    def offer(self, seq: int, event: dict[str, Any]) -> None:
        if event.get("type") not in self.hook.events:
            return
        if self.queue.full():
            dropped = self.queue.get_nowait()
            log.warning("webhook %s: %d events behind; dropped event %d", self.hook.url, MAX_BACKLOG, dropped[0])
        self.queue.put_nowait((seq, event))

    def body(self, event: dict[str, Any]) -> bytes:
        if self.hook.format == "slack":
            return orjson.dumps({"text": slack_text(event)})
        return orjson.dumps(event)

    async def run(self) -> None:
        try:
            while True:
                seq, event = await self.queue.get()
                await self.deliver(seq, event)
        finally:
            if self._transport is not None:
                await self._transport.close()

    async def deliver(self, seq: int, event: dict[str, Any]) -> bool:
        body = self.body(event)
        delay = self.hook.backoff_s
        for attempt in range(self.hook.retries + 1):
            if attempt:
                self.waits.append(min(delay, MAX_BACKOFF_S))
                await asyncio.sleep(self.waits[-1])
                delay *= 2
            status = await self.post(seq, str(event.get("type", "")), body)
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                return True
            if status is not None and status not in RETRY_STATUS:
                break
        self.failed += 1
        log.warning("webhook %s: event %d (%s) not delivered", self.hook.url, seq, event.get("type"))
        return False

    async def post(self, seq: int, kind: str, body: bytes) -> int | None:
        """The receiver's status, or None when it could not be reached or did not answer in time."""
        ts = str(int(self.clock()))
        headers = {
            "content-type": "application/json",
            "user-agent": "paymaster-webhook",
            "x-paymaster-event": kind,
            "x-paymaster-event-id": str(seq),
            "x-paymaster-timestamp": ts,
            "x-paymaster-signature": sign(self.hook.secret, ts, body),
        }
        try:
            async with asyncio.timeout(self.hook.timeout_s):
                resp = await self.transport().send("POST", self.path, headers, body)
                await resp.read()
                return resp.status
        except (UpstreamError, TimeoutError, OSError) as e:
            log.info("webhook %s: %s", self.hook.url, e or type(e).__name__)
            return None

    def transport(self) -> Transport:
        """The gateway's own HTTP client (proxies from the environment, TLS from the system store)."""
        if self._transport is None:
            u = urlsplit(self.hook.url)
            origin = f"{u.scheme}://{u.netloc}"
            t = self.hook.timeout_s
            p = Provider(
                "webhook", "openai", origin, "", timeout_s=t, connect_timeout_s=min(10.0, t), max_connections=2
            )
            self._transport = open_transport(Target.of(p))
        return self._transport


class Alerts:
    """The projection check and webhook delivery, as background tasks of a running gateway."""

    def __init__(self, config: Config, board: Blackboard, budget: Budget, clock: Callable[[], float]) -> None:
        self.config, self.board, self.budget, self.clock = config, board, budget, clock
        self.deliveries = [Delivery(h, clock) for h in config.alerts.webhooks]
        self._projected: set[Any] = set()
        # replicas: True for the first replica to claim a name (Redis); each event is posted by one replica
        self.claim: Callable[[str, float], Awaitable[bool]] | None = None

    def tasks(self) -> list[asyncio.Task[None]]:
        out = [asyncio.create_task(d.run()) for d in self.deliveries]
        if self.deliveries:
            out.append(asyncio.create_task(self._forward()))
        if self.config.alerts.projected:
            out.append(asyncio.create_task(self._check_every()))
        return out

    async def _forward(self) -> None:
        q = self.board.subscribe(self.board.last_id)  # not the stored history: it was posted before a restart
        try:
            while True:
                seq, frame = await q.get()
                if self.claim is not None:
                    try:
                        if not await self.claim(f"post:{seq}", POST_CLAIM_S):
                            continue  # another replica posts it
                    except OUTAGES:
                        pass  # Redis down: posted here too (a duplicate, never a lost alert)
                with contextlib.suppress(ValueError, IndexError):
                    event = orjson.loads(frame.split(b"\ndata: ", 1)[1])
                    for d in self.deliveries:
                        d.offer(seq, event)
        finally:
            self.board.unsubscribe(q)

    def _projected_before(self) -> None:
        """Windows still open whose projection is in the stored history (published before a restart)."""
        seen = set()
        for _, frame in self.board.history:
            if b"\nevent: budget.projected\n" in frame:
                with contextlib.suppress(ValueError, IndexError):
                    e = orjson.loads(frame.split(b"\ndata: ", 1)[1])
                    seen.add((e.get("agent"), e.get("window"), e.get("resets_at")))
        if not seen:
            return
        now = self.clock()
        for agent in self.config.agents:
            for w in self.budget.windows(agent, now):
                if (agent if w.scope == "agent" else None, w.label, self.budget.calendar.iso(w.resets)) in seen:
                    self._projected.add(w.key)

    async def _check_every(self) -> None:
        self._projected_before()
        while True:
            await asyncio.sleep(self.config.alerts.check_s)
            self.check()

    def check(self) -> None:
        """Publish `budget.projected` for each capped window (agent or fleet) whose burn rate reaches its cap
        before the window resets; once per window."""
        now = self.clock()
        tz = self.config.timezone
        seen = set()
        for agent in self.config.agents:
            for w in self.budget.windows(agent, now):
                if w.cap is None or w.cap == 0 or w.key in seen or w.key in self._projected:
                    continue
                seen.add(w.key)
                c = self.budget.counters.get(w.key)
                spent = c[0] if c is not None else 0
                p = project(tz, now, w.key.period, spent, w.cap)
                at = p.hits_cap_at
                if at is None or spent >= w.cap:
                    continue
                self._projected.add(w.key)
                self.board.publish(
                    "budget.projected",
                    once=f"budget.projected:{w.key.period}:{w.key.value}:{w.key.agent or ''}",
                    agent=agent if w.scope == "agent" else None,
                    window=w.label,
                    spent_usd=usd_str(spent),
                    cap_usd=usd_str(w.cap),
                    projected_usd=usd_str(p.projected_nanos),
                    hits_cap_at=self.budget.calendar.iso(at),
                    resets_at=self.budget.calendar.iso(w.resets),
                )
