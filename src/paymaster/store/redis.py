"""Live budget counters in Redis, shared by every replica: one server-side script reserves, one settles.

Each cap window is a hash `{spent, held}` in nano-dollars, keyed by window in the fleet's timezone
(`pm:w:<period>:<date>:<agent>` for an agent — the agent last, so any name is safe — and
`pm:f:<period>:<date>` for the fleet), expiring a day after its window resets. A reservation is a hash
`pm:r:<id>` (its worst case, its owner replica and its window keys), listed in its owner's set
`pm:own:<replica>` so that another replica can release it if the owner dies.

    reserve(id, windows, worst)  one round trip: checks spent + held + worst <= cap on every window,
                                 and holds worst on all of them, or holds nothing. Returns each
                                 window's figures either way (the replica's view of the budget).
    settle(id, cost)             one round trip: held -= worst, spent += cost on the reservation's
                                 windows, exactly once (the reservation hash is the token; a second
                                 settle, or one for a reservation Redis never held, does nothing).

An epoch key `pm:epoch` is written last when the counters are built. Every script checks it first:
when Redis was emptied (FLUSHALL, a restart without persistence, an eviction) the script answers
`REBUILD` and the caller rebuilds the counters from the Postgres ledger and its pending reservations
(`SharedStore.rebuild`) before trying again, so a Redis restart never resets anyone's spend to zero.
A Redis that restarts from an old snapshot is caught by its changed `run_id` (checked at every
heartbeat), which drops the epoch and rebuilds likewise.

Key placement: the scripts touch an agent's windows and the fleet's in one step, so every key must
live on one node: run a single primary (with replicas or Sentinel for failover), not Redis Cluster.
Counters are exact integers in Lua's doubles up to 2^53 nano-dollars (USD 9,007,199) per window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

EPOCH = "pm:epoch"
REBUILD_LOCK = "pm:rebuilding"
GRACE_S = 86_400  # a window's counters outlive its reset by a day: late settlements still find them
RECORD_TTL_S = 40 * 86_400  # a reservation record outlives any window it can be in

REBUILD = -1  # script answer: the counters are gone, rebuild them

# KEYS: epoch, record, owner set, window 1..n.
# ARGV: worst, reservation id, then per window: cap (-1: none), expiry (ms); then owner, record TTL (ms)
RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local n = #KEYS - 3
local worst = tonumber(ARGV[1])
local held_already = redis.call('EXISTS', KEYS[2]) == 1
local add = worst
if held_already then add = 0 end
local out = {1}
for i = 1, n do
  local v = redis.call('HMGET', KEYS[3 + i], 'spent', 'held')
  local spent, held = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local cap = tonumber(ARGV[1 + 2 * i])
  if cap >= 0 and spent + held + add > cap then out[1] = 0 end
  out[2 * i] = spent
  out[2 * i + 1] = held
end
if out[1] == 0 then
  if held_already then
    for i = 1, n do
      redis.call('HINCRBY', KEYS[3 + i], 'held', -worst)
      out[2 * i + 1] = out[2 * i + 1] - worst
    end
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[3], ARGV[2])
  end
  return out
end
if not held_already then
  local rec = {'worst', worst, 'owner', ARGV[#ARGV - 1], 'n', n}
  for i = 1, n do
    redis.call('HINCRBY', KEYS[3 + i], 'held', worst)
    redis.call('PEXPIREAT', KEYS[3 + i], ARGV[2 + 2 * i])
    out[2 * i + 1] = out[2 * i + 1] + worst
    rec[#rec + 1] = 'k' .. i
    rec[#rec + 1] = KEYS[3 + i]
    rec[#rec + 1] = 'e' .. i
    rec[#rec + 1] = ARGV[2 + 2 * i]
  end
  redis.call('HSET', KEYS[2], unpack(rec))
  redis.call('PEXPIRE', KEYS[2], ARGV[#ARGV])
  redis.call('SADD', KEYS[3], ARGV[2])
end
return out
"""

# KEYS: epoch, record.  ARGV: cost, reservation id
SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local r = redis.call('HGETALL', KEYS[2])
if #r == 0 then return 0 end
local rec = {}
for i = 1, #r, 2 do rec[r[i]] = r[i + 1] end
local worst, cost = tonumber(rec['worst']), tonumber(ARGV[1])
for i = 1, tonumber(rec['n']) do
  local k = rec['k' .. i]
  redis.call('HINCRBY', k, 'held', -worst)
  redis.call('HINCRBY', k, 'spent', cost)
  redis.call('PEXPIREAT', k, rec['e' .. i])
end
redis.call('DEL', KEYS[2])
redis.call('SREM', 'pm:own:' .. rec['owner'], ARGV[2])
return 1
"""

# KEYS: record, the new owner's set.  ARGV: reservation id, new owner. The hold itself is untouched.
ADOPT = """
local old = redis.call('HGET', KEYS[1], 'owner')
if not old then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('SREM', 'pm:own:' .. old, ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: epoch, window 1..n: the windows' figures, unchanged
READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local out = {1}
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'spent', 'held')
  out[#out + 1] = tonumber(v[1] or '0')
  out[#out + 1] = tonumber(v[2] or '0')
end
return out
"""


def window_key(agent: str | None, period: str, value: str) -> str:
    """The Redis key of a window: its period and date first, the agent's name (any text) last."""
    return f"pm:f:{period}:{value}" if agent is None else f"pm:w:{period}:{value}:{agent}"


def record_key(reservation_id: str) -> str:
    return f"pm:r:{reservation_id}"


def owner_key(replica: str) -> str:
    return f"pm:own:{replica}"


def expiry_ms(period: str, value: str, tz: ZoneInfo) -> int:
    """When a window's counters may go: a day after the window resets (local midnight / the 1st)."""
    y, m = int(value[:4]), int(value[5:7])
    if period == "day":
        nxt = date.fromisoformat(value) + timedelta(days=1)
    else:
        nxt = date(y + (m == 12), m % 12 + 1, 1)
    resets = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()
    return int((resets + GRACE_S) * 1000)


Window = tuple[str | None, str, str, int | None]  # agent (None: fleet), period, date, cap in nano-dollars


class RedisCounters:
    """The scripts, loaded once; every call is one round trip. Raises redis errors as they come (the
    shared store turns them into 503s)."""

    def __init__(self, url: str, owner: str, tz: ZoneInfo) -> None:
        self.redis = aioredis.from_url(url, max_connections=256, socket_timeout=5, socket_connect_timeout=5)
        self.owner = owner
        self.tz = tz
        self._reserve = self.redis.register_script(RESERVE)
        self._settle = self.redis.register_script(SETTLE)
        self._read = self.redis.register_script(READ)
        self._adopt = self.redis.register_script(ADOPT)
        self.run_id: str | None = None

    async def close(self) -> None:
        await self.redis.aclose()

    def _reserve_call(self, reservation_id: str, windows: Sequence[Window], worst: int) -> tuple[list[str], list[Any]]:
        keys = [EPOCH, record_key(reservation_id), owner_key(self.owner)]
        args: list[Any] = [worst, reservation_id]
        for agent, period, value, cap in windows:
            keys.append(window_key(agent, period, value))
            args += [-1 if cap is None else cap, expiry_ms(period, value, self.tz)]
        args += [self.owner, RECORD_TTL_S * 1000]
        return keys, args

    async def reserve(self, reservation_id: str, windows: Sequence[Window], worst: int) -> list[int]:
        """[1 held | 0 refused | -1 rebuild, spent₁, held₁, spent₂, held₂, …] (figures after the step)."""
        keys, args = self._reserve_call(reservation_id, windows, worst)
        return [int(v) for v in await self._reserve(keys=keys, args=args)]

    async def reserve_many(self, calls: Sequence[tuple[str, Sequence[Window], int]]) -> list[list[int]]:
        """`reserve` for many reservations in one pipeline (one round trip; each script atomic on its own)."""
        if len(calls) == 1:
            return [await self.reserve(*calls[0])]
        async with self.redis.pipeline(transaction=False) as p:
            for rid, windows, worst in calls:
                keys, args = self._reserve_call(rid, windows, worst)
                await self._reserve(keys=keys, args=args, client=p)
            return [[int(v) for v in out] for out in await p.execute()]

    async def settle(self, reservation_id: str, cost: int) -> int:
        """1 settled now, 0 nothing held (settled before, or counted from the ledger by a rebuild), -1 rebuild."""
        return int(await self._settle(keys=[EPOCH, record_key(reservation_id)], args=[cost, reservation_id]))

    async def settle_many(self, costs: Sequence[tuple[str, int]]) -> list[int]:
        """`settle` for many reservations ((id, cost) each) in one pipeline: one round trip."""
        async with self.redis.pipeline(transaction=False) as p:
            for rid, cost in costs:
                await self._settle(keys=[EPOCH, record_key(rid)], args=[cost, rid], client=p)
            return [int(v) for v in await p.execute()]

    async def read(self, windows: Sequence[tuple[str | None, str, str]]) -> list[int]:
        """[1 | -1 rebuild, spent₁, held₁, …] for the windows, without changing them."""
        return [int(v) for v in await self._read(keys=[EPOCH, *(window_key(*w) for w in windows)])]

    async def owned(self, replica: str) -> list[str]:
        """The reservations Redis holds for a replica (to release them when it is gone)."""
        return [m.decode() if isinstance(m, bytes) else str(m) for m in await self.redis.smembers(owner_key(replica))]

    async def adopt(self, reservation_ids: Sequence[str], owner: str) -> None:
        """Move reservations to another owner (one that outlives replicas: the batch queue), holds unchanged;
        a reservation Redis no longer has is left alone."""
        async with self.redis.pipeline(transaction=False) as p:
            for rid in reservation_ids:
                await self._adopt(keys=[record_key(rid), owner_key(owner)], args=[rid, owner], client=p)
            await p.execute()

    async def forget_owner(self, replica: str) -> None:
        await self.redis.delete(owner_key(replica))

    async def restarted(self) -> bool:
        """Whether the Redis server is a different process than at the last check (a restart, maybe from an
        old snapshot): then its counters cannot be trusted and must be rebuilt."""
        info = await self.redis.info("server")
        run_id = str(info.get("run_id", ""))
        changed = self.run_id is not None and run_id != self.run_id
        self.run_id = run_id
        return changed

    async def drop_epoch(self) -> None:
        await self.redis.delete(EPOCH)

    async def epoch(self) -> bytes | str | None:
        v: bytes | str | None = await self.redis.get(EPOCH)
        return v

    async def claim(self, name: str, ttl_s: float) -> bool:
        """True for the first replica to claim `name` within `ttl_s` seconds, False for every later one."""
        return bool(await self.redis.set("pm:once:" + name, self.owner, nx=True, px=int(ttl_s * 1000)))

    async def try_rebuild_lock(self, token: str, ttl_s: float) -> bool:
        return bool(await self.redis.set(REBUILD_LOCK, token, nx=True, px=int(ttl_s * 1000)))

    async def unlock(self, token: str) -> None:
        """Let go of the rebuild lock, if it is still ours."""
        await self.redis.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end", 1, REBUILD_LOCK, token
        )

    async def install(
        self,
        spent: dict[tuple[str | None, str, str], int],
        pending: Sequence[tuple[str, str, str, str, str, int]],
        token: str,
    ) -> bool:
        """Write rebuilt counters in one MULTI, the epoch last: spent per window from the ledger, and every
        pending reservation (id, owner, agent, day, month, worst) held again on its windows, with its record.
        Only while the epoch is still missing (WATCH): counters another replica built and calls have
        changed since are never overwritten by an older snapshot. False when it was not written."""
        held: dict[tuple[str | None, str, str], int] = {}
        records = []
        for rid, owner, agent, day, month, worst in pending:
            ws = [(agent, "day", day), (agent, "month", month), (None, "day", day), (None, "month", month)]
            for w in ws:
                held[w] = held.get(w, 0) + worst
            records.append((rid, owner, ws, worst))
        async with self.redis.pipeline(transaction=True) as p:
            await p.watch(EPOCH)
            if await p.exists(EPOCH):
                await p.reset()  # type: ignore[no-untyped-call]
                return False
            p.multi()  # type: ignore[no-untyped-call]
            for w in spent.keys() | held.keys():
                k = window_key(*w)
                p.delete(k)
                figures: dict[FieldT, EncodableT] = {"spent": spent.get(w, 0), "held": held.get(w, 0)}
                p.hset(k, mapping=figures)
                p.pexpireat(k, expiry_ms(w[1], w[2], self.tz))
            for rid, owner, ws, worst in records:
                rec: dict[FieldT, EncodableT] = {"worst": worst, "owner": owner, "n": len(ws)}
                for i, w in enumerate(ws, 1):
                    rec[f"k{i}"] = window_key(*w)
                    rec[f"e{i}"] = expiry_ms(w[1], w[2], self.tz)
                p.delete(record_key(rid))
                p.hset(record_key(rid), mapping=rec)
                p.pexpire(record_key(rid), RECORD_TTL_S * 1000)
                p.sadd(owner_key(owner), rid)
            p.set(EPOCH, token)
            p.delete(REBUILD_LOCK)
            try:
                await p.execute()
            except aioredis.WatchError:
                return False
        return True


FLIGHT_TTL_S = 3600  # a count left by a replica that died mid-call lapses (its conversation: bounded by the window)
_JOIN = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
if n > 1 then redis.call('SET', KEYS[2], '1', 'EX', ARGV[1]) end
return n
"""
_LEAVE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return n
"""


class ConversationFlights:
    """Responses calls in flight per conversation, counted across replicas (response_book.py): a call joins
    before the conversation's size is read and leaves once its growth is written, so a replica knows when
    another call — on any replica — may be growing the conversation. `overlapped`: two were in flight at once
    since the count was last zero. One script per step (atomic), so a leave never wipes a join."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)

    @staticmethod
    def _keys(conv: str) -> list[str]:
        return [f"pm:conv:{conv}", f"pm:conv:{conv}:overlap"]

    async def join(self, conv: str) -> int:
        """Count a call in; how many are in flight on `conv` now, this one included."""
        return int(await self._join(keys=self._keys(conv), args=[FLIGHT_TTL_S]))

    async def overlapped(self, conv: str) -> bool:
        return bool(await self.redis.exists(self._keys(conv)[1]))

    async def leave(self, conv: str) -> None:
        await self._leave(keys=self._keys(conv))
