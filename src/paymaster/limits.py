"""Denial-of-wallet limits (OWASP LLM10:2025, unbounded consumption): one looping or compromised agent
cannot take the gateway's capacity from the others. Per agent (`limits:` of the agent, else `defaults.limits`):

    requests_per_minute   a bucket of that many calls, refilled evenly over the minute (bursts up to it)
    tokens_per_minute     a bucket of tokens: a call is admitted while the bucket is not empty; its tokens
                          (input + output, as the provider reported them) are taken when it settles
    max_in_flight         calls of the agent open at once
    loop_calls            near-identical calls (same model, same last message once digits and white space are
                          dropped) arriving faster than loop_calls per loop_window_s: `agent.looping` event;
                          with loop_block the repeated call is refused for loop_window_s after each attempt

A refused call gets 429 (`RateLimited`, in the caller's error shape) with `retry-after`, before it is decoded,
priced or reserved: nothing is spent and no provider is contacted. Only the offender is refused.

The check is O(1) per call and allocates nothing for an agent without limits. The counters are in-process,
or, with replicas (Redis configured), shared in Redis (limits_redis.py) but for the loop detector's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from .blackboard import Blackboard
from .call import Call
from .config import Agent, AgentLimits
from .errors import RateLimited
from .levers.base import LeverContext, Settlement
from .limits_redis import RedisLimits

LOOP_KEEP = 256  # fingerprints remembered per agent (the oldest are dropped past this)
_DROPPED = b"0123456789 \t\r\n"  # counters, timestamps and spacing do not make two calls different


class Meter:
    """One agent's counters."""

    __slots__ = ("calls", "calls_at", "tokens", "tokens_at", "open", "loops")

    def __init__(self, lim: AgentLimits, now: float) -> None:
        self.calls = float(lim.requests_per_minute or 0)
        self.tokens = float(lim.tokens_per_minute or 0)
        self.calls_at = self.tokens_at = now
        self.open = 0
        self.loops: dict[int, list[float]] = {}  # fingerprint -> [level, at, blocked_until]


class Limits:
    def __init__(self, board: Blackboard, clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.clock = clock
        self.meters: dict[str, Meter] = {}
        self.shared: RedisLimits | None = None  # replicas: rates and calls in flight counted in Redis

    def enter(self, agent: Agent, body: dict[str, Any]) -> Meter | None:
        """Admit one call of `agent` or raise RateLimited. The caller must `leave(meter)` when the call ends."""
        lim = agent.limits
        if not lim.on:
            return None
        now = self.clock()
        m = self.meters.get(agent.name)
        if m is None:
            m = self.meters[agent.name] = Meter(lim, now)
        rpm = lim.requests_per_minute if self.shared is None else None
        if rpm is not None:
            rate = rpm / 60.0
            m.calls = min(float(rpm), m.calls + (now - m.calls_at) * rate)
            m.calls_at = now
            if m.calls < 1.0:
                raise RateLimited(
                    f"agent {agent.name!r} is over its limit of {rpm} requests per minute",
                    code="requests_per_minute", retry_after=math.ceil((1.0 - m.calls) / rate),
                )  # fmt: skip
        tpm = lim.tokens_per_minute if self.shared is None else None
        if tpm is not None:
            rate = tpm / 60.0
            m.tokens = min(float(tpm), m.tokens + (now - m.tokens_at) * rate)
            m.tokens_at = now
            if m.tokens <= 0.0:
                raise RateLimited(
                    f"agent {agent.name!r} is over its limit of {tpm} tokens per minute",
                    code="tokens_per_minute", retry_after=max(1, math.ceil(-m.tokens / rate)),
                )  # fmt: skip
        if lim.max_in_flight is not None and self.shared is None and m.open >= lim.max_in_flight:
            raise RateLimited(
                f"agent {agent.name!r} has {m.open} calls open, its limit (max_in_flight)",
                code="max_in_flight", retry_after=1,
            )  # fmt: skip
        if lim.loop_calls is not None:
            self._loop(agent, lim, m, body, now)
        if rpm is not None:
            m.calls -= 1.0
        m.open += 1
        return m

    async def enter_shared(self, agent: Agent) -> str | None:
        """With replicas: the shared counters' admission (after `enter`); what `leave` releases."""
        assert self.shared is not None
        return await self.shared.enter(agent)

    def leave(self, m: Meter, agent: str, member: str | None) -> None:
        m.open -= 1
        if member is not None and self.shared is not None:
            self.shared.leave(agent, member)

    name = "limits"  # a `settled` hook of the settlement, after the levers' (settle.py)

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

    def _loop(self, agent: Agent, lim: AgentLimits, m: Meter, body: dict[str, Any], now: float) -> None:
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
            self.board.publish(
                "agent.looping", agent=agent.name, model=str(body.get("model")), calls=n, window_s=window,
                blocked=lim.loop_block,
            )  # fmt: skip
        seen[2] = now + window
        if lim.loop_block:
            raise RateLimited(
                f"agent {agent.name!r} is sending the same call in a loop ({n} near-identical calls within "
                f"{window:g}s); this call is refused until it stops for {window:g}s",
                code="loop_detected", retry_after=math.ceil(window),
            )  # fmt: skip


def fingerprint(body: dict[str, Any]) -> int:
    """Near-identical calls share this: the model and the last message (or input), digits and white space
    dropped, so a retry counter or timestamp in the text does not hide a loop."""
    msgs = body.get("messages")
    last = msgs[-1] if isinstance(msgs, list) and msgs else body.get("input")
    try:
        text = orjson.dumps(last)
    except TypeError:
        text = repr(last).encode()
    return hash((body.get("model"), text.translate(None, _DROPPED)))
