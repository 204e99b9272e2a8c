"""Agents' status across replicas: one record per agent in Redis, changed by one compare-and-set script.

Which replica sees an agent cross its cap (or its window reset, or a cap raised) is chance; what every replica
shows must not be. So a replica's blackboard does not decide a status alone: its change (active → blocked,
blocked → active, active → degraded …) is a compare-and-set on `pm:st:<agent>` (a hash: state, reason, window,
until, until_ts, since), and only the replica whose change took publishes the event — an orchestrator gets one
`agent.blocked` however many replicas refuse the agent's calls at once, and one `agent.unblocked` however many
see its window reset. The record is the truth; each replica's board is a copy, refreshed

- at start (every agent's record, one pipeline; an agent without one gets one: active since then), and likewise
  for an agent added at run time (a fleet change, on each replica as it learns of it),
- whenever an `agent.*` event arrives from the shared event stream (another replica changed it), and
- by every admin view (`/admin/agents`, `/admin/agents/<id>`, `/admin/overview`), in the same pipeline that
  reads the windows' current figures (`Budget.refresh`), so a view is Redis's state at that moment.

Why a record and not the status derived from the counters: the reason, the window, `until` and `since` are the
same on every replica only if one replica wrote them, and an event can be published once only where a change is
decided once. Redis emptied: the records go with the counters; the next refused call blocks the agent again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis

from ..blackboard import Blackboard, Status
from .redis import EPOCH, READ, window_key
from .shared import OUTAGES, SharedStore

if TYPE_CHECKING:
    from ..budget import Budget, WindowKey

log = logging.getLogger("paymaster")

STATUS_TTL_S = 40 * 86_400  # outlives any window a block can name
AGENT_EVENTS = frozenset({"agent.blocked", "agent.unblocked", "agent.degraded"})
FIELDS = ("state", "reason", "window", "until", "until_ts", "since")

# KEYS: the agent's record. ARGV: expected state ('' any non-active), new state, reason, window, until,
# until_ts, since, TTL (ms), latest until_ts an unblock may clear (-1: any).
# Returns {1 changed | 0 not, the record's fields after}.
CHANGE = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'reason', 'window', 'until', 'until_ts', 'since')
local state = cur[1] or 'active'
local new = ARGV[2]
local ok = true
if new == 'blocked' then
  ok = not (state == 'blocked' and cur[3] == ARGV[4] and cur[5] == ARGV[6])
elseif new == 'degraded' then
  ok = state == 'active'
else
  ok = state ~= 'active' and (ARGV[1] == '' or ARGV[1] == state)
  if ok and state == 'blocked' and tonumber(ARGV[9]) >= 0 then
    ok = tonumber(cur[5] or '0') > 0 and tonumber(cur[5]) <= tonumber(ARGV[9])
  end
end
if not ok then return {0, state, cur[2] or '', cur[3] or '', cur[4] or '', cur[5] or '0', cur[6] or '0'} end
redis.call('HSET', KEYS[1], 'state', new, 'reason', ARGV[3], 'window', ARGV[4], 'until', ARGV[5],
  'until_ts', ARGV[6], 'since', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return {1, new, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]}
"""

# KEYS: the agent's record. ARGV: since, TTL (ms). An agent with no record yet is active since now (the first
# replica to start), so every replica shows the same `since`.
INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'active', 'reason', '', 'window', '', 'until', '', 'until_ts', '0',
    'since', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def status_key(agent: str) -> str:
    return "pm:st:" + agent


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _status(fields: Sequence[Any]) -> Status:
    state, reason, window, until, until_ts, since = (_text(v) for v in fields)
    return Status(state, reason, window, until, float(until_ts), float(since))


class SharedStatus:
    """The board's changes, decided in Redis; the board refreshed from it (see the module's docstring)."""

    def __init__(self, store: SharedStore, board: Blackboard) -> None:
        self.store, self.board = store, board
        self.redis: aioredis.Redis = store.counters.redis
        self._change = self.redis.register_script(CHANGE)
        self._read = self.redis.register_script(READ)
        self._init = self.redis.register_script(INIT)

    async def start(self, agents: Sequence[str]) -> None:
        """At start: a record for every agent that has none (active since now), then the board copies them."""
        async with self.redis.pipeline(transaction=False) as p:
            for a in agents:
                await self._init(keys=[status_key(a)], args=[repr(time.time()), STATUS_TTL_S * 1000], client=p)
            await p.execute()
        await self.refresh(agents)

    def added(self, agents: list[str]) -> None:
        """Agents added at run time: their records made as at start (the board shows them active meanwhile)."""
        self.store._spawn(self._start_quietly(agents))

    async def _start_quietly(self, agents: list[str]) -> None:
        with contextlib.suppress(*OUTAGES):  # the next view or event refreshes them
            await self.start(agents)

    def change(self, agent: str, was: str, new: Status, kind: str, data: dict[str, Any], until_le: float) -> None:
        """The board changed `agent` from state `was` to `new` (already shown locally): make it the fleet's."""
        self.store._spawn(self._apply(agent, was, new, kind, data, until_le))

    async def _apply(self, agent: str, was: str, new: Status, kind: str, data: dict[str, Any], until_le: float) -> None:
        args: list[str | int] = [was if new.state == "active" else "", new.state, new.reason, new.window, new.until,
                repr(new.until_ts), repr(new.since), STATUS_TTL_S * 1000, repr(until_le)]  # fmt: skip
        try:
            out = await self._change(keys=[status_key(agent)], args=args)
        except OUTAGES as e:  # Redis down: published anyway (a duplicate, never a lost change)
            log.warning("agent %s's status could not be shared (%s): published from this replica", agent, e)
            self.board.publish(kind, agent=agent, **data)
            return
        self.board.status[agent] = _status(out[1:])
        if int(out[0]) == 1:
            self.board.publish(kind, agent=agent, **data)

    async def refresh(self, agents: Sequence[str], windows: Sequence[WindowKey] = ()) -> list[int] | None:
        """Copy the agents' records into the board and read the windows' current figures, in one pipeline; an
        agent with no record is active. The figures: [spent₁, held₁, …], None when Redis lost the counters."""
        if not agents and not windows:
            return None
        async with self.redis.pipeline(transaction=False) as p:
            if windows:
                await self._read(keys=[EPOCH, *(window_key(*w) for w in windows)], client=p)
            for a in agents:
                p.hmget(status_key(a), *FIELDS)
            got = await p.execute()
        figures = [int(v) for v in got.pop(0)] if windows else [-1]
        for a, fields in zip(agents, got, strict=True):
            if a not in self.board.status:
                continue
            if fields[0] is None:
                if self.board.status[a].state != "active":
                    self.board.status[a] = Status()
            else:
                self.board.status[a] = _status(fields)
        return figures[1:] if figures[0] == 1 else None

    def announced(self, kind: str, data: str) -> None:
        """An event arrived from the shared stream: an agent's status changed on some replica, copy it."""
        if kind not in AGENT_EVENTS:
            return
        agent = orjson.loads(data).get("agent")
        if isinstance(agent, str):
            self.store._spawn(self._refresh_quietly(agent))

    async def _refresh_quietly(self, agent: str) -> None:
        with contextlib.suppress(*OUTAGES):  # the next view or event refreshes it
            await self.refresh([agent])


async def fresh_view(status: SharedStatus, budget: Budget, agents: Sequence[str]) -> None:
    """Before an admin view: the agents' status and their windows as Redis has them now (one pipeline), so every
    replica shows the same. Redis unreachable: the view shows this replica's last figures."""
    keys = budget.view_keys(agents)
    try:
        figures = await status.refresh(agents, keys)
    except OUTAGES as e:
        log.warning("the view shows this replica's last figures: Redis cannot be read (%s)", e)
        return
    if figures is not None:
        budget.seen(keys, figures)
