"""An agent's batch on replicas, held whole before any of its jobs is accepted — in a few round trips, none of which
the event loop waits on (asyncpg's pool and redis-py asyncio, the loop's own):

    1. pending  every request's pending row, in one COPY: durable before anything is held (a replica that dies
                now leaves them to the reaper, booked at their worst case: over-counted, never under)
    2. hold     Redis scripts (HOLD_ALL) over chunks of CHUNK requests, one after the other: each checks that its
                chunk and every later one fit — spent + held + the rest of the batch ≤ cap on each of the agent's
                and the fleet's windows — and holds its chunk's total on each, with one record per request (its
                own worst case, its windows, the queue's owner `batch`), so each job settles alone exactly as a
                real-time call does; or holds nothing. The first chunk checks the whole batch: a batch that does
                not fit is refused (402 call_too_large) with nothing held; one that stops fitting midway (other
                calls took the budget meanwhile) has its earlier chunks released and is refused the same way.
    3. accept   the jobs written (COPY) and their pending rows handed to `batch`, one transaction (pg_queue.py)

The records belong to `batch` from the start (no handover in Redis): should this replica die before step 3, the
reaper books its pending rows as crashed calls at their worst case and the batch leader's sweep releases records
of `batch` whose pending rows are gone at the ledger's cost — over-counted until reconciled, never under.

Why chunks and not one script for the batch: a script holds Redis alone while it runs, ~15 µs per record — 150 ms for
10,000 requests, during which every replica's calls wait; a chunk of CHUNK takes a few milliseconds. Between chunks
the batch's partial hold is an in-flight reservation like any other (a real-time call that meets it waits or is
told to retry, never refused for it).

Each request's worst case is what a real-time call of it would hold (`Budget.unheld` prices it the same way); the
batch fits at every request's own max_tokens or not at all (no waiting, no fitting), as on one process. A rebuild
of the counters after step 1 holds the pending rows itself (the whole batch): a script then adds only the records
it does not find, and the chunks after it check nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CallTooLarge
from ..store.redis import EPOCH, REBUILD, RECORD_TTL_S, expiry_ms, owner_key, record_key, window_key
from ..store.shared import BATCH_OWNER, OUTAGES, StoreDown
from .queue import Job

if TYPE_CHECKING:
    from ..budget import Budget
    from ..store.shared import SharedStore

CHUNK = 256  # requests per script: a few milliseconds of Redis
PACE = 8  # requests read, or rows encoded for a COPY, between two turns of the event loop (under a millisecond)

# KEYS: epoch, owner set, window 1..nw, record 1..nr.
# ARGV: nw, then per window: cap (-1: none), expiry (ms); owner, record TTL (ms), the rest (nano-dollars of the
# batch's later chunks, checked but not held); then per record: id, worst.
# Returns {1 held | 0 refused | -1 rebuild, spent₁, held₁, …} (figures after the step).
HOLD_ALL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local nw = tonumber(ARGV[1])
local owner, ttl, rest, first = ARGV[2 * nw + 2], ARGV[2 * nw + 3], tonumber(ARGV[2 * nw + 4]), 2 * nw + 5
local nr = #KEYS - 2 - nw
local new, total = {}, 0
for j = 1, nr do
  if redis.call('EXISTS', KEYS[2 + nw + j]) == 0 then
    new[#new + 1] = j
    total = total + tonumber(ARGV[first + 2 * j - 1])
  end
end
local out = {1}
for i = 1, nw do
  local v = redis.call('HMGET', KEYS[2 + i], 'spent', 'held')
  local spent, held = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local cap = tonumber(ARGV[2 * i])
  if cap >= 0 and spent + held + total + rest > cap then out[1] = 0 end
  out[2 * i] = spent
  out[2 * i + 1] = held
end
if out[1] == 0 then return out end
local rec = {'worst', 0, 'owner', owner, 'n', nw}
for i = 1, nw do
  redis.call('HINCRBY', KEYS[2 + i], 'held', string.format('%d', total))
  redis.call('PEXPIREAT', KEYS[2 + i], ARGV[2 * i + 1])
  out[2 * i + 1] = out[2 * i + 1] + total
  rec[#rec + 1] = 'k' .. i
  rec[#rec + 1] = KEYS[2 + i]
  rec[#rec + 1] = 'e' .. i
  rec[#rec + 1] = ARGV[2 * i + 1]
end
for _, j in ipairs(new) do
  rec[2] = ARGV[first + 2 * j - 1]
  redis.call('HSET', KEYS[2 + nw + j], unpack(rec))
  redis.call('PEXPIRE', KEYS[2 + nw + j], ttl)
  redis.call('SADD', KEYS[2], ARGV[first + 2 * j - 2])
end
return out
"""


async def hold_batch(shared: SharedStore, budget: Budget, agent: str, jobs: Sequence[Job]) -> None:
    """Steps 1 and 2 for the queued jobs of one agent's batch (same day, same month): held on return, or
    `CallTooLarge` with nothing held, or `StoreDown` (nothing held once the stores answer again)."""
    if not jobs:
        return
    pool = shared.pg.db
    ids = [j.id for j in jobs]
    ws = budget.windows(agent, jobs[0].created)
    for j in jobs:  # read across a midnight: the whole batch is held in (and will settle in) the first one's windows
        j.day, j.month = jobs[0].day, jobs[0].month
    rows = [(j.id, shared.replica, agent, j.created, j.model, j.api, j.day, j.month, j.worst_nanos) for j in jobs]
    try:
        await pool.copy_records_to_table("pending", records=paced(rows))
    except OUTAGES as e:
        shared.drop_many(ids)  # a COPY whose answer was lost may have been written
        raise StoreDown(f"the reservation journal (Postgres) cannot be written: {e}") from e
    head = [EPOCH, owner_key(BATCH_OWNER), *(window_key(*w.key) for w in ws)]
    spec: list[Any] = [len(ws)]
    for w in ws:
        spec += [-1 if w.cap is None else w.cap, expiry_ms(w.key.period, w.key.value, shared.tz)]
    spec += [BATCH_OWNER, RECORD_TTL_S * 1000]
    script = shared.counters.redis.register_script(HOLD_ALL)
    rest = sum(j.worst_nanos for j in jobs)
    out: list[int] = [1]
    try:
        for at in range(0, len(jobs), CHUNK):
            chunk = jobs[at : at + CHUNK]
            rest = max(0, rest - sum(j.worst_nanos for j in chunk))
            out = await _hold_chunk(shared, script, head, spec, chunk, rest)
            if out[0] == REBUILD:  # rebuilt from `pending`: the whole batch is held now, nothing more to check
                rest = 0
                out = await _hold_chunk(shared, script, head, spec, chunk, 0)
                if out[0] == REBUILD:
                    raise StoreDown("the budget counters keep disappearing (Redis emptied again during a rebuild)")
            if out[0] != 1:
                break
    except (*OUTAGES, StoreDown) as e:
        shared.drop_many(ids)
        raise e if isinstance(e, StoreDown) else StoreDown(f"the budget counters (Redis) cannot be reached: {e}") from e
    budget.seen([w.key for w in ws], out[1:])
    if out[0] == 1:
        if budget.board.status[agent].state == "blocked":
            budget.board.unblock(agent, "a call was admitted")
        return
    shared.drop_many(ids)
    budget.refused[agent] = budget.refused.get(agent, 0) + 1
    budget.block_if_spent(agent)  # not even a minimal call fits: blocked, as a refused call would be
    raise CallTooLarge(
        f"batch too large: its worst case at batch prices does not fit what agent {agent!r} has left "
        "(the whole batch is refused; nothing was sent): send fewer requests, lower max_tokens, or wait"
    )


async def paced(rows: Sequence[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    """A COPY's rows, letting the event loop serve other calls every PACE rows while they are encoded."""
    for n, row in enumerate(rows, 1):
        yield row
        if n % PACE == 0:
            await asyncio.sleep(0)


async def _hold_chunk(
    shared: SharedStore, script: Any, head: list[str], spec: list[Any], chunk: Sequence[Job], rest: int
) -> list[int]:
    """One HOLD_ALL script; [-1] only once a rebuild it asked for has been made."""
    args = [*spec, rest]
    for j in chunk:
        args += [j.id, j.worst_nanos]
    out = [int(v) for v in await script(keys=[*head, *(record_key(j.id) for j in chunk)], args=args)]
    if out[0] == REBUILD:
        await shared.rebuild()
    return out
