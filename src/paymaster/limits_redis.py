"""The denial-of-wallet limits shared by replicas (limits.py holds the rules): requests and tokens per minute
and calls in flight counted in Redis, so an agent spreading its calls over replicas meets the same limits.

    pm:l:<agent>    hash: calls, calls_at, tokens, tokens_at — the two buckets, refilled by the scripts
                    (Redis's own clock: replicas need not agree on the time); expires after 2 idle minutes
                    (by then both buckets are full anyway)
    pm:lo:<agent>   sorted set: the agent's open calls, each scored by when it stops counting (OPEN_TTL_S
                    after it started, so a replica that dies with calls open frees them then)

One script admits a call (all checks, then all takes, or nothing), one charges settled tokens, and a
ZREM ends a call. The loop detector stays per replica (limits.py). If Redis cannot be reached the limits
are not enforced for that call (logged): the caps, not these limits, are what hold the money.
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
  if calls < 1 then return {1, math.ceil((1 - calls) * 60 / rpm)} end
end
if tpm >= 0 then
  tokens = math.min(tpm, (tonumber(h[3]) or tpm) + (now - (tonumber(h[4]) or now)) * tpm / 60)
  if tokens <= 0 then return {2, math.max(1, math.ceil(-tokens * 60 / tpm))} end
end
if cap >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= cap then return {3, 1} end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
if rpm >= 0 then redis.call('HSET', KEYS[1], 'calls', tostring(calls - 1), 'calls_at', tostring(now)) end
if tpm >= 0 then redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tokens_at', tostring(now)) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
return {0, 0}
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
CODES = {1: "requests_per_minute", 2: "tokens_per_minute", 3: "max_in_flight"}


def bucket_key(agent: str) -> str:
    return f"pm:l:{agent}"


def open_key(agent: str) -> str:
    return f"pm:lo:{agent}"


class RedisLimits:
    def __init__(self, redis: Any, replica: str) -> None:
        self.redis = redis
        self.replica = replica
        self._enter = redis.register_script(ENTER)
        self._charge = redis.register_script(CHARGE)
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
            code, retry = await self._enter(keys=[bucket_key(agent.name), open_key(agent.name)], args=args)
        except Exception as e:  # noqa: BLE001 — an outage: the limits are not what holds the money
            log.warning("the shared limits could not be checked (%s): call of %s admitted unlimited", e, agent.name)
            return None
        if code:
            what = CODES[int(code)]
            raise RateLimited(f"agent {agent.name!r} is over its limit ({what})", code=what, retry_after=int(retry))
        return member if lim.max_in_flight is not None else None

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
