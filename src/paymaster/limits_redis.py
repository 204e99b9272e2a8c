"""The denial-of-wallet limits shared by replicas (limits.py holds the rules): requests and tokens per minute,
calls in flight and the loop detector counted in Redis, so an agent spreading its calls over replicas meets the
same limits.

    pm:l:<agent>        hash: calls, calls_at, tokens, tokens_at — the two buckets, refilled by the scripts
                        (Redis's own clock: replicas need not agree on the time); expires after 2 idle minutes
                        (by then both buckets are full anyway)
    pm:lo:<agent>       sorted set: the agent's open calls, each scored by when it stops counting (OPEN_TTL_S
                        after it started, so a replica that dies with calls open frees them then)
    pm:lp:<agent>:<fp>  hash: level, at, until — one call's fingerprint (limits.fingerprint) in the loop
                        detector, a bucket leaking loop_calls per loop_window_s; expires a second after the
                        window (by then it has leaked empty), so an agent's keys are bounded by its rate

One script admits a call (all checks, then all takes, or nothing) and says, when a rate refuses, how long it
cannot refill (the replica refuses the agent locally until then), one counts a fingerprint (and gives a
blocked loop's rate back), one charges settled tokens, and a ZREM ends a call. If Redis cannot be reached
the limits are not enforced for that call (logged): the caps, not these limits, are what hold the money.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from .config import Agent
from .errors import RateLimited

log = logging.getLogger("paymaster")

OPEN_TTL_S = 900  # an open call stops counting after this long (a crashed replica's calls are freed)
IDLE_MS = 120_000

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"
ENTER = (
    _NOW
    + """
local rpm, tpm, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'calls', 'calls_at', 'tokens', 'tokens_at')
local calls, tokens
if rpm >= 0 then
  calls = math.min(rpm, (tonumber(h[1]) or rpm) + (now - (tonumber(h[2]) or now)) * rpm / 60)
  if calls < 1 then local w = (1 - calls) * 60 / rpm; return {1, math.ceil(w), tostring(w)} end
end
if tpm >= 0 then
  tokens = math.min(tpm, (tonumber(h[3]) or tpm) + (now - (tonumber(h[4]) or now)) * tpm / 60)
  if tokens <= 0 then local w = -tokens * 60 / tpm; return {2, math.max(1, math.ceil(w)), tostring(w)} end
end
if cap >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= cap then return {3, 1, '0'} end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
if rpm >= 0 then redis.call('HSET', KEYS[1], 'calls', tostring(calls - 1), 'calls_at', tostring(now)) end
if tpm >= 0 then redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tokens_at', tostring(now)) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return {0, 0, '0'}
"""
)
CHARGE = (
    _NOW
    + """
local tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'tokens_at')
local tokens = math.min(tpm, (tonumber(h[1]) or tpm) + (now - (tonumber(h[2]) or now)) * tpm / 60) - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tokens_at', tostring(now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 0
"""
)
LOOP = (
    _NOW
    + """
local n, window, rpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'level', 'at', 'until')
local level, at, blocked = tonumber(h[1]) or 0, tonumber(h[2]) or now, tonumber(h[3]) or 0
if blocked > 0 and now >= blocked then level, at, blocked = 0, now, 0 end
level = math.max(0, level - (now - at) * n / window) + 1
local started, refused = 0, 0
if level > n - 1 then
  if blocked == 0 then started = 1 end
  blocked = now + window
  if ARGV[3] == '1' then refused = 1 end
end
redis.call('HSET', KEYS[1], 'level', tostring(math.min(level, n)), 'at', tostring(now), 'until', tostring(blocked))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
if refused == 1 and rpm >= 0 then
  local calls = tonumber(redis.call('HGET', KEYS[2], 'calls'))
  if calls then redis.call('HSET', KEYS[2], 'calls', tostring(math.min(rpm, calls + 1))) end
end
return {started, refused}
"""
)
CODES = {1: "requests_per_minute", 2: "tokens_per_minute", 3: "max_in_flight"}


def bucket_key(agent: str) -> str:
    return f"pm:l:{agent}"


def open_key(agent: str) -> str:
    return f"pm:lo:{agent}"


def loop_key(agent: str, fp: int) -> str:
    return f"pm:lp:{agent}:{fp:x}"


class SharedRefusal(RateLimited):
    """A refusal by the shared counters; `wait`: seconds before the refusing rate can admit a call (0: unknown)."""

    def __init__(self, message: str, *, code: str, retry_after: int, wait: float) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.wait = wait


class RedisLimits:
    def __init__(self, redis: Any, replica: str) -> None:
        self.redis = redis
        self.replica = replica
        self._enter = redis.register_script(ENTER)
        self._charge = redis.register_script(CHARGE)
        self._loop = redis.register_script(LOOP)
        self._ids = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def enter(self, agent: Agent) -> str | None:
        """Admit one call of `agent` on the shared counters (raises RateLimited); the id its end releases."""
        lim = agent.limits
        if lim.requests_per_minute is None and lim.tokens_per_minute is None and lim.max_in_flight is None:
            return None
        member = f"{self.replica}:{next(self._ids)}"
        args = [_or(lim.requests_per_minute), _or(lim.tokens_per_minute), _or(lim.max_in_flight), member,
                OPEN_TTL_S, IDLE_MS]  # fmt: skip
        try:
            code, retry, wait = await self._enter(keys=[bucket_key(agent.name), open_key(agent.name)], args=args)
        except Exception as e:  # noqa: BLE001 — an outage: the limits are not what holds the money
            log.warning("the shared limits could not be checked (%s): call of %s admitted unlimited", e, agent.name)
            return None
        if code:
            what = CODES[int(code)]
            raise SharedRefusal(
                f"agent {agent.name!r} is over its limit ({what})", code=what, retry_after=int(retry), wait=float(wait)
            )
        return member if lim.max_in_flight is not None else None

    async def loop(self, agent: Agent, fp: int) -> tuple[bool, bool]:
        """Count one call with fingerprint `fp` in `agent`'s loop detector: (this call started a loop, it is
        refused). A refused call's requests-per-minute take is given back."""
        lim = agent.limits
        args = [lim.loop_calls, lim.loop_window_s, int(lim.loop_block), _or(lim.requests_per_minute)]
        try:
            started, refused = await self._loop(keys=[loop_key(agent.name, fp), bucket_key(agent.name)], args=args)
        except Exception as e:  # noqa: BLE001 — an outage: the limits are not what holds the money
            log.warning("the shared loop detector could not be checked (%s): call of %s admitted", e, agent.name)
            return False, False
        return bool(started), bool(refused)

    def leave(self, agent: str, member: str) -> None:
        self._spawn(self.redis.zrem(open_key(agent), member))

    def charge(self, agent: str, tokens: int, tpm: int) -> None:
        self._spawn(self._charge(keys=[bucket_key(agent)], args=[tpm, tokens, IDLE_MS]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(_quietly(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except Exception as e:  # noqa: BLE001
        log.warning("the shared limits could not be updated: %s", e)


def _or(v: int | None) -> int:
    return -1 if v is None else v
