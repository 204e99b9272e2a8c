"""Denial-of-wallet limits (OWASP LLM10:2025, unbounded consumption): one looping or compromised agent
cannot take the gateway's capacity from the others. Per agent (`limits:` of the agent, else `defaults.limits`):

    requests_per_minute   a bucket of that many calls, refilled evenly over the minute (bursts up to it)
    tokens_per_minute     a bucket of tokens: a call is admitted while the bucket is not empty; its tokens
                          (input + output, as the provider reported them) are taken when it settles
    max_in_flight         calls of the agent open at once
    loop_calls            near-identical calls (same model, same last message once digits and white space are
                          dropped) arriving faster than loop_calls per loop_window_s: `agent.looping` event;
                          with loop_block the repeated call is refused for loop_window_s after each attempt

A refused call gets 429 (`RateLimited`, in the caller's error shape) with `retry-after`; nothing is spent, no
provider is contacted, nothing is booked (`paymaster_refusals{agent, reason}` counts it). Only the offender
is refused. The refusal is as early as each limit allows: the rates and calls in flight are known from the
key alone (`enter`, before the request's body is read or parsed); the loop detector needs the body (`check`).

A refused agent that does not wait out its retry-after cannot turn refusals into a flood on the gateway's
one core: its refusals are answered at most REFUSALS_PER_S a second (after a burst of REFUSAL_BURST), the
rest held up to MAX_HOLD_S before the 429 goes out (a timer, no CPU). An agent that honours retry-after is
never held. Events are per episode, never per call: `agent.limited` when an agent is first refused after
LIMITED_QUIET_S without a refusal, `agent.looping` once per loop.

The check is O(1) per call, allocates nothing for an agent without limits and one fingerprint for the loop
detector. The counters are in-process, or, with replicas (Redis configured), shared in Redis (limits_redis.py),
the loop detector's included; a replica then remembers when a rate refused an agent (the bucket cannot refill
sooner) and refuses it again without asking Redis until then. The other replicas learn it from the stored
`agent.limited` event (`limited`): they refuse the agent locally until its bucket can refill too (the event's
exact `wait_s`), and count their refusals in the same episode (one event for the fleet, not one per replica).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any
from zlib import crc32

import orjson

from .blackboard import Blackboard
from .call import Call
from .config import Agent, AgentLimits
from .errors import RateLimited
from .levers.base import LeverContext, Settlement
from .limits_redis import CODES, RedisLimits, SharedRefusal

LOOP_KEEP = 256  # fingerprints remembered per agent (the oldest are dropped past this)
_DROPPED = b"0123456789 \t\r\n"  # counters, timestamps and spacing do not make two calls different
REFUSALS_PER_S = 50.0  # an agent's refusals answered at once, per second (past the burst)
REFUSAL_BURST = 20  # refusals answered at once before the pace applies
MAX_HOLD_S = 1.0  # the longest a refusal is held (retry-after is at least 1 s)
LIMITED_QUIET_S = 60.0  # an `agent.limited` episode ends after this long without a refusal

RATES = (CODES[1], CODES[2])  # the limits whose refusal lasts until a bucket refills: requests, tokens per minute
_PACE = 1.0 / REFUSALS_PER_S
_SLACK = REFUSAL_BURST * _PACE


class Meter:
    """One agent's counters."""

    __slots__ = ("calls", "calls_at", "tokens", "tokens_at", "open", "loops", "paced", "refused_at", "until", "why",
                 "under")  # fmt: skip

    def __init__(self, now: float) -> None:
        self.calls = self.tokens = math.inf  # full buckets (the first refill caps them), also for a rate set later
        self.calls_at = self.tokens_at = now
        self.open = 0
        self.loops: dict[int, list[float]] = {}  # fingerprint -> [level, at, blocked_until]
        self.paced = 0.0  # when the next refusal may go out at once (less the burst's slack)
        self.refused_at = -math.inf  # the last refusal (episodes of `agent.limited`)
        self.until = 0.0  # replicas: refused by a shared rate until then (it cannot refill sooner)
        self.why = ""  # … by which
        self.under: AgentLimits | None = None  # … under these limits (a change at run time asks Redis again)


class Entry:
    """One admitted call: its agent's meter, its id among the shared open calls (replicas), whether it left."""

    __slots__ = ("meter", "member", "left")

    def __init__(self, meter: Meter, member: str | None) -> None:
        self.meter = meter
        self.member = member
        self.left = False


class Limits:
    def __init__(
        self,
        board: Blackboard,
        clock: Callable[[], float] = time.monotonic,
        limits_of: Callable[[str], AgentLimits | None] = lambda _: None,
    ) -> None:
        self.board = board
        self.clock = clock
        self.limits_of = limits_of  # an agent's limits in the running config (None: no such agent)
        self.meters: dict[str, Meter] = {}
        self.shared: RedisLimits | None = None  # replicas: the counters in Redis
        board.on("agent.limited", self.limited)

    # -- one call: enter (before the body), check (the body), leave ---------------------------------

    async def enter(self, agent: Agent) -> Entry:
        """Admit one call of `agent` before its body is read, or raise RateLimited (after its hold). The
        caller must `leave` what this returns when the call ends."""
        m = self.meter(agent.name)
        try:
            if self.shared is None:
                self.admit(agent, m)
                return Entry(m, None)
            return Entry(m, await self._enter_shared(agent, m))
        except RateLimited as e:
            await self.refused(agent, m, e)
            raise

    async def check(self, agent: Agent, entry: Entry, body: dict[str, Any]) -> None:
        """The loop detector, once the body is read (nothing to do unless `loop_calls` is set). A refused call
        leaves before its hold: it does not count as in flight while it waits."""
        lim = agent.limits
        if lim.loop_calls is None:
            return
        m = entry.meter
        try:
            if self.shared is None:
                self.loop(agent, m, body)
                return
            started, blocked = await self.shared.loop(agent, fingerprint(body))
            if started:
                self._looping(agent, lim, body)
            if blocked:
                raise loop_refusal(agent, lim)
        except RateLimited as e:
            self.leave(agent.name, entry)
            await self.refused(agent, m, e)
            raise

    def leave(self, agent: str, entry: Entry) -> None:
        """The call ends (a second time does nothing)."""
        if entry.left:
            return
        entry.left = True
        entry.meter.open -= 1
        if entry.member is not None and self.shared is not None:
            self.shared.leave(agent, entry.member)

    # -- the in-process counters --------------------------------------------------------------------

    def meter(self, agent: str) -> Meter:
        m = self.meters.get(agent)
        if m is None:
            m = self.meters[agent] = Meter(self.clock())
        return m

    def admit(self, agent: Agent, m: Meter) -> None:
        """The rates and calls in flight: one more call of `agent` open, or RateLimited (nothing taken)."""
        lim = agent.limits
        now = self.clock()
        rpm = lim.requests_per_minute
        if rpm is not None:
            rate = rpm / 60.0
            m.calls = min(float(rpm), m.calls + (now - m.calls_at) * rate)
            m.calls_at = now
            if m.calls < 1.0:
                raise RateLimited(
                    f"agent {agent.name!r} is over its limit of {rpm} requests per minute",
                    code="requests_per_minute", retry_after=math.ceil((1.0 - m.calls) / rate),
                )  # fmt: skip
        tpm = lim.tokens_per_minute
        if tpm is not None:
            rate = tpm / 60.0
            m.tokens = min(float(tpm), m.tokens + (now - m.tokens_at) * rate)
            m.tokens_at = now
            if m.tokens <= 0.0:
                raise RateLimited(
                    f"agent {agent.name!r} is over its limit of {tpm} tokens per minute",
                    code="tokens_per_minute", retry_after=max(1, math.ceil(-m.tokens / rate)),
                )  # fmt: skip
        if lim.max_in_flight is not None and m.open >= lim.max_in_flight:
            raise RateLimited(
                f"agent {agent.name!r} has {m.open} calls open, its limit (max_in_flight)",
                code="max_in_flight", retry_after=1,
            )  # fmt: skip
        if rpm is not None:
            m.calls -= 1.0
        m.open += 1

    async def _enter_shared(self, agent: Agent, m: Meter) -> str | None:
        assert self.shared is not None
        now = self.clock()
        if now < m.until and m.under is agent.limits:  # a shared rate refused it and cannot have refilled yet
            raise RateLimited(
                f"agent {agent.name!r} is over its limit ({m.why})", code=m.why, retry_after=math.ceil(m.until - now)
            )
        m.open += 1  # here too, so that `leave` is the same in both modes
        try:
            return await self.shared.enter(agent)
        except BaseException as e:
            m.open -= 1
            if isinstance(e, SharedRefusal) and e.wait > 0:
                m.until, m.why, m.under = self.clock() + e.wait, e.code or "", agent.limits
            raise

    def loop(self, agent: Agent, m: Meter, body: dict[str, Any]) -> None:
        """The loop detector: count this call's fingerprint; RateLimited if it is a loop and loops are blocked."""
        lim = agent.limits
        now = self.clock()
        fp = fingerprint(body)
        n = lim.loop_calls
        assert n is not None
        window = lim.loop_window_s
        seen = m.loops.get(fp)
        if seen is None:
            if len(m.loops) >= LOOP_KEEP:
                del m.loops[next(iter(m.loops))]
            seen = m.loops[fp] = [0.0, now, 0.0]
        elif seen[2] and now >= seen[2]:  # a block that lapsed: the loop starts over
            seen[:] = [0.0, now, 0.0]
        level = max(0.0, seen[0] - (now - seen[1]) * n / window) + 1.0  # leaks at loop_calls per window
        seen[0], seen[1] = min(level, float(n)), now
        if level <= n - 1:  # the n-th call within about a window is a loop
            return
        if not seen[2]:  # the first call of this loop: say so once
            self._looping(agent, lim, body)
        seen[2] = now + window
        if lim.loop_block:
            if lim.requests_per_minute is not None:  # a refused call takes nothing from the rate
                m.calls = min(float(lim.requests_per_minute), m.calls + 1.0)
            raise loop_refusal(agent, lim)

    def _looping(self, agent: Agent, lim: AgentLimits, body: dict[str, Any]) -> None:
        self.board.publish(
            "agent.looping", agent=agent.name, model=str(body.get("model")), calls=lim.loop_calls,
            window_s=lim.loop_window_s, blocked=lim.loop_block,
        )  # fmt: skip

    # -- refusals: one event per episode, a bounded pace -------------------------------------------

    async def refused(self, agent: Agent, m: Meter, e: RateLimited) -> None:
        """`agent` is refused (`e`): say so once per episode, and hold the answer if it comes too often."""
        now = self.clock()
        if now - m.refused_at > LIMITED_QUIET_S:
            exact: dict[str, Any] = {}
            if self.shared is not None and e.code in RATES and m.until > now:  # a shared rate: its exact wait
                exact["wait_s"] = math.floor((m.until - now) * 1000) / 1000  # (retry_after_s is rounded up)
            self.board.publish("agent.limited", agent=agent.name, limit=e.code, retry_after_s=e.retry_after, **exact)
        m.refused_at = now
        hold = self.hold(m, now)
        if hold > 0.0:
            await asyncio.sleep(hold)

    def limited(self, event: dict[str, Any]) -> None:
        """An `agent.limited` event delivered here, this replica's or another's (or a stored one, at start): the
        agent's refusals from then on are the same episode, and with replicas a rate that refused it cannot
        refill before the event's `wait_s` (its exact wait; `retry_after_s`, rounded up to whole seconds, only for
        an event without it), so it is refused here until then without asking Redis. A replica that knows of a
        refusal still in force at that moment (the publisher's own, exact) keeps its own."""
        agent, ts = event.get("agent"), event.get("ts")
        lim = self.limits_of(agent) if isinstance(agent, str) else None
        if lim is None or not isinstance(ts, float | int):
            return
        assert isinstance(agent, str)
        now = self.clock()
        at = now - max(0.0, time.time() - ts)  # the refusal on this clock (a publisher's clock ahead: now)
        m = self.meter(agent)
        m.refused_at = max(m.refused_at, at)
        wait, code = event.get("wait_s", event.get("retry_after_s")), event.get("limit")
        if self.shared is not None and code in RATES and isinstance(wait, float | int) and m.until <= at:
            m.until, m.why, m.under = at + wait, str(code), lim

    @staticmethod
    def hold(m: Meter, now: float) -> float:
        """How long this refusal waits: none while the agent's refusals come at most REFUSALS_PER_S a second
        (after a burst of REFUSAL_BURST), else until its turn, at most MAX_HOLD_S (a virtual-time pace)."""
        due = max(m.paced, now) + _PACE
        hold = due - now - _SLACK
        if hold > MAX_HOLD_S:  # more callers than the pace serves in MAX_HOLD_S: each waits that long
            hold, due = MAX_HOLD_S, now + _SLACK + MAX_HOLD_S
        m.paced = due
        return hold if hold > 0.0 else 0.0

    # -- tokens, as calls settle (a `settled` hook of the settlement, after the levers': settle.py) ------

    name = "limits"

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        tpm = ctx.agent.limits.tokens_per_minute
        if tpm is not None:
            tokens = outcome.usage.input_tokens + outcome.usage.output_tokens
            if self.shared is not None:
                self.shared.charge(call.agent, tokens, tpm)
            else:
                self.charge(call.agent, tokens)

    def charge(self, agent: str, tokens: int) -> None:
        """A call of `agent` settled with `tokens` (input + output): taken from its tokens-per-minute bucket."""
        m = self.meters.get(agent)
        if m is not None:
            m.tokens -= tokens


def loop_refusal(agent: Agent, lim: AgentLimits) -> RateLimited:
    window = lim.loop_window_s
    return RateLimited(
        f"agent {agent.name!r} is sending the same call in a loop ({lim.loop_calls} near-identical calls within "
        f"{window:g}s); this call is refused until it stops for {window:g}s",
        code="loop_detected", retry_after=max(1, math.ceil(window)),
    )  # fmt: skip


def fingerprint(body: dict[str, Any]) -> int:
    """Near-identical calls share this: the model and the last message (or input), digits and white space
    dropped, so a retry counter or timestamp in the text does not hide a loop. The same in every process:
    replicas compare it in Redis."""
    msgs = body.get("messages")
    last = msgs[-1] if isinstance(msgs, list) and msgs else body.get("input")
    try:
        text = orjson.dumps(last)
    except TypeError:
        text = repr(last).encode()
    model = body.get("model")
    name = model.encode() if isinstance(model, str) else repr(model).encode()
    data = b"%b\0%b" % (name, text.translate(None, _DROPPED))
    return crc32(data) << 32 | len(data) & 0xFFFFFFFF  # stable across processes (a collision only joins two loops)
