"""The blackboard: each agent's status (active / blocked, why, until when) and an event stream.

Orchestrators read `GET /admin/agents` for the state and follow `GET /admin/events` (Server-Sent
Events) to reroute or shut down a blocked agent's task. Events:

    agent.blocked / agent.degraded / agent.unblocked   an agent's state changed
    budget.threshold    an agent's or the fleet's spend crossed an alert fraction of a cap
    agent.limited / agent.looping   a denial-of-wallet limit refused an agent / it repeats a call (limits.py;
                        once per episode, not per refused call)
    ledger.recovered    at start: a call a stopped gateway left uncommitted, booked (agent, call_id, cost_usd)
    ledger.reconciled   an operator replaced a flagged row's cost by the provider's bill
    ledger.failing      ledger commits fail (reason): calls are refused (503) until one succeeds
    ledger.writable     commits succeed again: calls are admitted again
    store.rebuilt       the shared counters were rebuilt from the ledger (Redis was emptied or restarted)

Every event is stored with the ledger (SQLite: `stored_events`; Postgres: `store/shared_events.py`): its
id survives restarts, and a restarted gateway replays its latest events after `Last-Event-ID`.
Across replicas (Redis + Postgres), every event is stored in Postgres and announced to every replica
(`store/shared_events.py`): its id is the stored row's, global and surviving restarts, so an
orchestrator on any replica sees every replica's events and can resume with `Last-Event-ID`. An agent's
status is one record in Redis that every replica copies, changed by compare-and-set, and each change is
published by the one replica whose change took (`store/shared_status.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(slots=True)
class Status:
    state: str = "active"  # active | degraded | blocked
    reason: str = ""
    window: str = ""
    until: str = ""  # ISO time the blocking window resets
    until_ts: float = 0.0
    since: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "since": self.since}
        if self.state != "active":
            out.update(reason=self.reason, window=self.window, until=self.until)
        return out


class Blackboard:
    def __init__(self, agents: list[str], history: int = 1000) -> None:
        self.status = {a: Status() for a in agents}
        self._seq = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[tuple[int, bytes]]] = set()
        # a shared event store (ids come back from it): sink(ts, kind, payload, once)
        self.sink: Callable[[float, str, bytes, str | None], None] | None = None
        # replicas: status changes decided in one shared place (store/shared_status.py), which publishes each once
        self.shared: SharedChanges | None = None
        self._readers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    def on(self, kind: str, reader: Callable[[dict[str, Any]], None]) -> None:
        """Call `reader` with the data of each `kind` event delivered here: with replicas, every replica's
        events, and at start the stored history (a reader judges an event's age by its `ts`)."""
        self._readers.setdefault(kind, []).append(reader)

    @property
    def last_id(self) -> int:
        """The id of the latest event delivered (0: none yet)."""
        return self._seq

    def publish(self, kind: str, /, *, once: str | None = None, **data: Any) -> None:
        """Publish an event. `once` names an event that must go out once however many replicas decide it (a
        threshold crossed, a projection): a shared store keeps the first and drops the others."""
        ts = time.time()
        payload = orjson.dumps({"type": kind, "ts": ts, **data})
        if self.sink is not None:  # stored first; `deliver` runs when the store announces it, with its global id
            self.sink(ts, kind, payload, once)
            return
        self.deliver(self._seq + 1, kind, payload)

    def deliver(self, seq: int, kind: str, payload: bytes) -> None:
        """Send an event (id `seq`) to every subscriber and keep it for `Last-Event-ID` replays."""
        self._seq = max(self._seq, seq)
        frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), payload)
        self.history.append((seq, frame))
        for q in self._subscribers:
            q.put_nowait((seq, frame))
        readers = self._readers.get(kind)
        if readers:
            data = orjson.loads(payload)
            for reader in readers:
                reader(data)

    def add(self, agents: list[str]) -> None:
        """Agents added at run time (a fleet change): active from now; with replicas, their shared records made
        now (the first replica's `since`), not at their first change, so every replica shows them alike."""
        new = [a for a in agents if a not in self.status]
        for a in new:
            self.status[a] = Status()
        if new and self.shared is not None:
            self.shared.added(new)

    def block(self, agent: str, reason: str, window: str, until: str, until_ts: float) -> None:
        st = self.status[agent]
        if st.state == "blocked" and st.window == window and st.until_ts == until_ts:
            return
        self._change(agent, Status("blocked", reason, window, until, until_ts), "agent.blocked",
                     {"reason": reason, "window": window, "until": until})  # fmt: skip

    def degrade(self, agent: str, reason: str) -> None:
        """Past the degrade threshold of a cap: calls run one tier down (still served)."""
        self._change(agent, Status("degraded", reason), "agent.degraded", {"reason": reason})

    def unblock(self, agent: str, why: str, until_le: float = -1) -> None:
        """Back to active. `until_le` (a window reset): only a block whose window resets by then is lifted."""
        if self.status[agent].state == "active":
            return
        self._change(agent, Status(), "agent.unblocked", {"reason": why}, until_le)

    def _change(self, agent: str, new: Status, kind: str, data: dict[str, Any], until_le: float = -1) -> None:
        was = self.status[agent].state
        self.status[agent] = new
        if self.shared is None:
            self.publish(kind, agent=agent, **data)
        else:  # replicas: the change is the fleet's only if it takes in the shared record, and published once
            self.shared.change(agent, was, new, kind, data, until_le)

    def expire(self, now: float) -> None:
        """Unblock agents whose blocking window has reset."""
        for agent, st in list(self.status.items()):
            if st.state == "blocked" and st.until_ts and now >= st.until_ts:
                self.unblock(agent, f"{st.window} window reset", now)

    def subscribe(self, last_id: int = 0) -> asyncio.Queue[tuple[int, bytes]]:
        """A queue of SSE frames, starting with the history after `last_id` (Last-Event-ID)."""
        q: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        for seq, frame in self.history:
            if seq > last_id:
                q.put_nowait((seq, frame))
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[int, bytes]]) -> None:
        self._subscribers.discard(q)


class SharedChanges(Protocol):
    def change(self, agent: str, was: str, new: Status, kind: str, data: dict[str, Any], until_le: float) -> None: ...
    def added(self, agents: list[str]) -> None: ...


class EventStore(Protocol):
    def add_event(self, ts: float, kind: str, data: bytes) -> int: ...
    def events_after(self, after: int, limit: int = 1000) -> list[tuple[int, str, str]]: ...


def stored_events(store: EventStore, board: Blackboard) -> None:
    """Keep the board's events in `store` (ids from the store) and load the latest ones into its history."""
    for seq, kind, data in store.events_after(0, board.history.maxlen or 1000):
        board.deliver(seq, kind, data.encode())

    def sink(ts: float, kind: str, payload: bytes, _once: str | None) -> None:  # one process decides each once
        try:
            seq = store.add_event(ts, kind, payload)
        except Exception:  # a ledger that cannot be written (it says so itself): the event still goes out
            seq = board._seq + 1
        board.deliver(seq, kind, payload)

    board.sink = sink
