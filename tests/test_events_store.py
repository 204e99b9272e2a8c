"""Events are stored with the ledger (issue 11, issue 15): ids survive a restart and `Last-Event-ID`
replays from the store; across replicas an orchestrator on any replica sees every replica's events,
with the same global ids."""

from __future__ import annotations

import threading

import anthropic
import pytest

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.server import ServerThread
from tests.conftest import PROVIDER_KEY, Running, fleet
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_admin import read_events

TINY = {"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.0016", "max_tokens": 100}}
CALL = dict(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "q [sim:tokens=100]"}])


def run_out(run: Running) -> None:
    """Three calls of ~$0.0005, then one that cannot fit: a threshold event and `agent.blocked`."""
    c = run.anthropic()
    for _ in range(3):
        c.messages.create(**CALL)
    with pytest.raises(anthropic.APIStatusError):
        c.messages.create(**CALL)


def test_event_ids_survive_a_restart_and_replay_from_the_sqlite_ledger(gateway, tmp_path):
    ledger = str(tmp_path / "events.db")
    first = gateway(agents=TINY, ledger=ledger)
    run_out(first)
    before: list = []
    read_events(first.url, 10, before, threading.Event(), until="agent.blocked")
    first.srv.stop()
    first.gw.store.close()

    again = gateway(agents=TINY, ledger=ledger)  # a new process on the same ledger
    replay: list = []
    read_events(again.url, len(before) - 1, replay, threading.Event(), last_id=before[0]["id"])
    assert [(e["id"], e["data"]) for e in replay] == [(e["id"], e["data"]) for e in before[1:]]
    again.gw.board.publish("agent.unblocked", agent="alice", reason="test")
    latest: list = []
    read_events(again.url, 1, latest, threading.Event(), last_id=before[-1]["id"])
    assert int(latest[0]["id"]) > max(int(e["id"]) for e in before)  # ids go on, never reused


def test_every_replica_streams_every_replicas_events_with_global_ids(sim, tmp_path, shared):
    servers = []
    try:
        runs = []
        keys = {n: f"pm-{n}-key" for n in ("alice", "olivia", "bob")}
        for _ in range(2):
            raw = fleet(sim.url, keys, tmp_path, agents=TINY)
            raw.update(reservations=shared.redis_url, ledger=shared.postgres_url)
            config = parse(raw, env={"SIM_KEY": PROVIDER_KEY})
            gw = Gateway(config)
            srv = ServerThread(gw).start()
            servers.append(srv)
            runs.append(Running(srv.url, gw, keys, config, srv, raw))
        a, b = runs
        seen: list = []
        ready = threading.Event()
        watcher = threading.Thread(target=read_events, args=(b.url, 10, seen, ready, None, "agent.blocked"))
        watcher.start()
        assert ready.wait(5)
        run_out(a)  # the calls and the refusal happen on replica A
        watcher.join(10)
        kinds = [e["data"]["type"] for e in seen]
        assert "agent.blocked" in kinds and "budget.threshold" in kinds, kinds  # seen on replica B
        on_a: list = []
        read_events(a.url, len(seen), on_a, threading.Event(), last_id=str(int(seen[0]["id"]) - 1))
        assert [(e["id"], e["data"]) for e in on_a] == [(e["id"], e["data"]) for e in seen]  # the same ids on both
        stored = shared.pg("SELECT id, kind FROM events ORDER BY id")
        assert [str(r["id"]) for r in stored if r["kind"] == "agent.blocked"] == [
            e["id"] for e in seen if e["data"]["type"] == "agent.blocked"
        ]
    finally:
        for srv in servers:
            srv.stop()


def test_an_event_committed_after_a_later_id_still_reaches_every_replica(sim, tmp_path, shared):
    """Ids are taken at insert, so event N+1 can commit before N (two replicas, or two stores of one replica, at
    once). Before the fix a replica that read N+1 first moved past N and never delivered it: an orchestrator on it
    missed a budget threshold (seen once in a full run, the 0.8 and 0.95 thresholds published together)."""
    import asyncio

    import asyncpg

    keys = {n: f"pm-{n}-key" for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path, agents=TINY)
    raw.update(reservations=shared.redis_url, ledger=shared.postgres_url)
    gw = Gateway(parse(raw, env={"SIM_KEY": PROVIDER_KEY}))
    srv = ServerThread(gw).start()
    try:
        data = '{"type": "ledger.writable", "ts": 1.0}'
        insert = "INSERT INTO events (ts, kind, data) VALUES (1.0, 'ledger.writable', $1) RETURNING id"

        async def race() -> tuple[int, int]:
            slow, fast = await asyncpg.connect(shared.postgres_url), await asyncpg.connect(shared.postgres_url)
            try:
                tr = slow.transaction()
                await tr.start()
                first = await slow.fetchval(insert, data)  # id N, not yet committed
                second = await fast.fetchval(insert, data)  # id N+1, committed and announced first
                await fast.execute("SELECT pg_notify('paymaster_events', $1)", str(second))
                await asyncio.sleep(0.3)  # the replica reads N+1 while N is still open
                await slow.execute("SELECT pg_notify('paymaster_events', $1)", str(first))
                await tr.commit()
                return first, second
            finally:
                await slow.close()
                await fast.close()

        first, second = asyncio.run(race())
        got: list = []
        read_events(srv.url, 2, got, threading.Event(), last_id=str(first - 1))
        assert [int(e["id"]) for e in got] == [first, second]
    finally:
        srv.stop()
