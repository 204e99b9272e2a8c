"""The batch lever on replicas: `paymaster serve` processes sharing one Redis and one Postgres queue deferred calls
and agents' batches in Postgres. A job admitted on one replica is sent once, settled once and readable on every
replica; its worst case stays held in Redis while it is open, through the death of the replica that admitted it
(another takes over sending and polling once its lease runs out); and real-time calls on every replica beside open
batches never take an agent over its cap. Before, replicas answered every deferred call and batch with a 400.

Needs Redis and Postgres (tests/services.py): skipped without them, failed under CI. The provider simulator runs in
this process (the `sim` fixture), so a test can hold its batches open.
"""

from __future__ import annotations

import asyncio
import io
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import anthropic
import openai
import orjson
import pytest
import yaml
from anthropic.types import Message

from paymaster.batch.pg_queue import PgQueue
from paymaster.batch.queue import Job
from paymaster.config import hash_key
from paymaster.pricing import to_nanos
from paymaster.store.journal import Reservation
from paymaster.store.row import LedgerRow
from paymaster.store.shared import SharedStore
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_batch_api import wait
from tests.test_replicas import fleet_file, serve, stop

KEYS = {"olivia": "pm-olivia-batchrep", "mallory": "pm-mallory-batchrep"}
FAST = {"flush_age_s": 0.05, "poll_s": 0.1}
ASK = {"model": "claude-haiku-4-5", "max_tokens": 100}


def config(tmp: Path, sim: Any, shared: Shared, daily_usd: str = "5", lease: float = 10, wait_s: float = 10) -> Path:
    agents = {
        "olivia": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5", "gpt-4.1-mini"],
                   "daily_usd": daily_usd, "max_tokens": 1000, "key_sha256": hash_key(KEYS["olivia"])},
        "mallory": {"model": "claude-haiku-4-5", "daily_usd": "0.05", "key_sha256": hash_key(KEYS["mallory"])},
    }  # fmt: skip
    path = fleet_file(tmp, sim.url, shared, agents, lease)
    raw = yaml.safe_load(path.read_text())
    raw["providers"]["openai"] = {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"}
    raw["batch"] = FAST
    raw["defaults"]["admission_wait_s"] = wait_s
    path.write_text(yaml.safe_dump(raw))
    return path


def anth(port: int, agent: str = "olivia") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=KEYS[agent], max_retries=0)


def oai(port: int, agent: str = "olivia") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEYS[agent], max_retries=0)


def defer(c: anthropic.Anthropic, text: str = "summarise this", tokens: int = 100) -> str:
    raw = c.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=tokens,
        messages=[{"role": "user", "content": f"{text} [sim:tokens={tokens}]"}],
        extra_headers={"x-paymaster-defer": "true"},
    )  # fmt: skip
    assert raw.status_code == 202, raw.http_response.text  # before: 400, no batch queue on replicas
    return raw.headers["x-paymaster-job-id"]


def job(c: anthropic.Anthropic, job_id: str) -> dict[str, Any]:
    out: dict[str, Any] = c.get(f"/v1/paymaster/jobs/{job_id}", cast_to=object)
    return out


def wait_for(what: Any, ok: Any, timeout: float = 20.0) -> Any:
    return wait(what, ok, timeout)


def sent_ids(sim: Any) -> list[str]:
    """Every custom_id the provider's batch APIs received (one entry per time it was sent)."""
    anth_ids = [r["custom_id"] for b in sim.anthropic_batches.batches.values() for r in b.requests]
    return anth_ids + [ln["custom_id"] for b in sim.openai_batches.batches.values() for ln in b.lines]


def uncapped(day: str, month: str) -> list[tuple[str | None, str, str, int | None]]:
    """olivia's windows and the fleet's, no caps (the Redis script's window spec)."""
    return [("olivia", "day", day, None), ("olivia", "month", month, None), (None, "day", day, None),
            (None, "month", month, None)]  # fmt: skip


def queued_job(job_id: str, day: str, month: str) -> Job:
    """A queued job of olivia's worth 1,000 nano-dollars at worst (the store-level tests' job)."""
    return Job(id=job_id, agent="olivia", api="anthropic", target_api="anthropic", provider="anthropic",
               model="claude-haiku-4-5", model_requested="claude-haiku-4-5", body=b"{}", status="queued",
               worst_nanos=1000, max_tokens=10, day=day, month=month, created=time.time())  # fmt: skip


def settled_clean(shared: Shared) -> None:
    """Nothing pending in Postgres and nothing held in Redis."""
    wait_for(lambda: (shared.pg("SELECT count(*) FROM pending")[0][0], shared.held()), lambda x: x == (0, 0), 5)
    assert shared.pg("SELECT id, owner FROM pending") == []
    assert shared.held() == 0


def test_a_deferred_call_admitted_on_one_replica_is_sent_once_settled_once_and_readable_on_another(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    procs, (a, b) = serve(config(tmp_path, sim, shared), 2)
    try:
        job_id = defer(anth(a))
        assert shared.held() > 0  # its worst case at batch prices is in the shared budget
        done = wait_for(lambda: job(anth(b), job_id), lambda j: j["status"] not in ("queued", "submitted"))
        assert done["status"] == "succeeded", done
        msg = anth(b).get(f"/v1/paymaster/jobs/{job_id}/result", cast_to=Message)
        assert isinstance(msg, Message) and msg.content[0].type == "text"
        assert sent_ids(sim).count(job_id) == 1
        rows = shared.pg("SELECT status, route, cost_nanos, worst_nanos FROM ledger WHERE id = $1", job_id)
        assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["route"] == "batch"
        assert 0 < rows[0]["cost_nanos"] <= rows[0]["worst_nanos"]
        assert str(rows[0]["cost_nanos"]) == str(to_nanos(Decimal(done["cost_usd"])))
        settled_clean(shared)
        listed = anth(a).get("/v1/paymaster/jobs", cast_to=object)
        assert [j["id"] for j in listed["data"]] == [job_id]  # type: ignore[index]
        with pytest.raises(anthropic.NotFoundError):  # another agent, on either replica
            job(anth(b, "mallory"), job_id)
    finally:
        stop(procs)


def test_batches_made_through_one_replicas_batch_apis_complete_and_read_back_on_the_other(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    procs, (a, b) = serve(config(tmp_path, sim, shared), 2)
    try:
        big = {"model": "claude-haiku-4-5", "max_tokens": 4000, "messages": [{"role": "user", "content": "go"}]}
        with pytest.raises(anthropic.APIStatusError) as refused:  # 40 × 4,000 tokens at batch prices > $0.05: whole
            anth(b, "mallory").messages.batches.create(
                requests=[{"custom_id": f"r{i}", "params": big} for i in range(40)]
            )  # type: ignore[misc]
        assert refused.value.status_code == 402
        settled_clean(shared)  # the requests admitted before the one that did not fit: let go again
        assert shared.pg("SELECT count(*) FROM batch_groups")[0][0] == 0 and sent_ids(sim) == []
        reqs = [{"custom_id": f"doc-{i}", "params": {**ASK, "messages": [{"role": "user", "content": f"doc {i}"}]}}
                for i in range(3)]  # fmt: skip
        mb = anth(b).messages.batches.create(requests=reqs)  # type: ignore[arg-type]
        mb = wait_for(lambda: anth(a).messages.batches.retrieve(mb.id), lambda x: x.processing_status == "ended")
        assert mb.request_counts.succeeded == 3
        results = {r.custom_id: r.result.type for r in anth(a).messages.batches.results(mb.id)}
        assert results == {f"doc-{i}": "succeeded" for i in range(3)}
        assert [x.id for x in anth(b).messages.batches.list()] == [mb.id]

        ask = {"model": "gpt-4.1-mini", "max_tokens": 50}
        lines = [{"custom_id": f"q-{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {**ask, "messages": [{"role": "user", "content": f"q {i}"}]}} for i in range(2)]  # fmt: skip
        data = b"\n".join(orjson.dumps(x) for x in lines)
        f = oai(a).files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        ob = oai(b).batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        ob = wait_for(lambda: oai(a).batches.retrieve(ob.id), lambda x: x.status == "completed")
        assert ob.status == "completed" and ob.request_counts is not None and ob.request_counts.completed == 2
        assert ob.output_file_id is not None
        out = [orjson.loads(x) for x in oai(b).files.content(ob.output_file_id).read().splitlines()]
        assert sorted(x["custom_id"] for x in out) == ["q-0", "q-1"]
        assert all(x["response"]["status_code"] == 200 for x in out)
        with pytest.raises(openai.NotFoundError):
            oai(a, "mallory").batches.retrieve(ob.id)

        booked = shared.pg("SELECT count(*), count(DISTINCT id) FROM ledger WHERE route = 'batch'")[0]
        assert tuple(booked) == (5, 5)  # each request booked once
        assert sorted(sent_ids(sim)) == sorted(set(sent_ids(sim))) and len(sent_ids(sim)) == 5  # each sent once
        settled_clean(shared)
    finally:
        stop(procs)


def test_a_replica_killed_with_a_job_open_leaves_the_hold_in_place_and_another_takes_over_and_settles_it(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    sim.anthropic_batches.faults.hold = True  # the provider's batch stays open until released
    path = config(tmp_path, sim, shared, lease=1.5)
    (pa,), (a,) = serve(path, 1)
    procs = [pa]
    try:
        job_id = defer(anth(a))
        sub = wait_for(lambda: shared.pg("SELECT submission FROM batch_jobs")[0][0], lambda s: s.startswith("sub_"))
        assert sub.startswith("sub_")  # in the provider's hands (not only claimed for sending)
        got = job(anth(a), job_id)
        worst = to_nanos(Decimal(got["reserved_usd"]))
        held = shared.held()
        assert held == 4 * worst  # agent day and month, fleet day and month
        pa.send_signal(signal.SIGKILL)
        pa.wait(10)
        pb, (b,) = serve(path, 1)
        procs.append(pb[0])
        time.sleep(4)  # a's lease ran out: b reaped it and took over the queue
        assert shared.pg("SELECT count(*) FROM replicas")[0][0] == 1
        assert shared.held() == held  # the job's hold survived its replica (not booked as a crashed call)
        assert shared.pg("SELECT owner FROM pending WHERE id = $1", job_id)[0][0] == "batch"
        assert shared.pg("SELECT count(*) FROM ledger")[0][0] == 0
        sim.anthropic_batches.faults.hold = False
        done = wait_for(lambda: job(anth(b), job_id), lambda j: j["status"] not in ("queued", "submitted"))
        assert done["status"] == "succeeded", done
        assert sent_ids(sim).count(job_id) == 1  # polled by b, never sent again
        rows = shared.pg("SELECT status FROM ledger WHERE id = $1", job_id)
        assert [r[0] for r in rows] == ["ok"]
        settled_clean(shared)
    finally:
        sim.anthropic_batches.faults.hold = False
        stop(procs)


def test_real_time_calls_on_both_replicas_beside_open_batches_never_take_the_agent_over_its_cap(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    """Seeded random attack: deferred jobs (held open at the provider) and real-time calls, each answering its
    full max_tokens, fired at both replicas at once; the jobs then end. Were a job's hold not counted by the
    other replica, the real-time calls admitted beside it would take the ledger over the cap."""
    rng = random.Random(20261202)
    cap = "0.02"
    sim.anthropic_batches.faults.hold = True
    procs, ports = serve(config(tmp_path, sim, shared, daily_usd=cap, wait_s=0.5), 2)
    headers = {"x-api-key": KEYS["olivia"], "anthropic-version": "2023-06-01"}

    async def one(session: aiohttp.ClientSession, i: int) -> int:
        deferred = rng.random() < 0.4
        tokens = rng.choice((200, 400, 800))
        body = {"model": "claude-haiku-4-5", "max_tokens": tokens,
                "messages": [{"role": "user", "content": f"call {i} [sim:tokens={tokens}]"}]}  # fmt: skip
        h = {**headers, **({"x-paymaster-defer": "true"} if deferred else {})}
        async with session.post(f"http://127.0.0.1:{ports[i % 2]}/v1/messages", json=body, headers=h) as r:
            await r.read()
            return r.status

    async def attack() -> list[int]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(one(session, i) for i in range(80))))

    try:
        statuses = asyncio.run(attack())
        assert 202 in statuses and 200 in statuses and {402, 429} & set(statuses), statuses
        assert set(statuses) <= {200, 202, 402, 429}, statuses
        jobs = shared.pg("SELECT id, worst_nanos FROM batch_jobs")
        assert len(jobs) == statuses.count(202)
        spent, held = 0, 0
        for k in shared.redis.scan_iter("pm:w:day:*:olivia"):
            spent, held = int(shared.redis.hget(k, "spent") or 0), int(shared.redis.hget(k, "held") or 0)
        assert held >= sum(j["worst_nanos"] for j in jobs)  # every open job still held
        assert spent + held <= to_nanos(Decimal(cap))
        sim.anthropic_batches.faults.hold = False
        wait_for(lambda: shared.pg("SELECT count(*) FROM batch_jobs WHERE status IN ('queued', 'submitted')")[0][0],
                 lambda n: n == 0, 30)  # fmt: skip
        settled_clean(shared)
        total = shared.pg("SELECT COALESCE(SUM(cost_nanos), 0) FROM ledger WHERE agent = 'olivia'")[0][0]
        assert 0 < total <= to_nanos(Decimal(cap))
        ids = shared.pg("SELECT id FROM ledger WHERE route = 'batch'")
        assert sorted(r[0] for r in ids) == sorted(j["id"] for j in jobs)  # every job booked once
    finally:
        sim.anthropic_batches.faults.hold = False
        stop(procs)


def test_a_replica_stopped_cleanly_hands_over_its_open_jobs(sim: Any, tmp_path: Path, shared: Shared) -> None:
    """A restart (SIGTERM, then a new process): the job queued on the old one is settled by the new one."""
    sim.anthropic_batches.faults.hold = True
    path = config(tmp_path, sim, shared, lease=1.5)
    procs, (a,) = serve(path, 1)
    try:
        job_id = defer(anth(a))
        wait_for(lambda: job(anth(a), job_id), lambda j: j["status"] == "submitted")
        stop(procs)
        held = shared.held()
        assert held > 0
        procs, (b,) = serve(path, 1)
        sim.anthropic_batches.faults.hold = False
        done = wait_for(lambda: job(anth(b), job_id), lambda j: j["status"] not in ("queued", "submitted"))
        assert done["status"] == "succeeded", done
        assert [r[0] for r in shared.pg("SELECT status FROM ledger WHERE id = $1", job_id)] == ["ok"]
        settled_clean(shared)
    finally:
        sim.anthropic_batches.faults.hold = False
        stop(procs)


def test_a_job_whose_sender_died_before_the_provider_answered_is_booked_at_its_worst_case_never_sent_again(
    sim: Any, tmp_path: Path, shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider got the batch but the replica sending it died before recording its id: nobody can read its
    results, so the job is booked at its worst case, flagged for reconciliation — not zero, not sent twice."""
    arrived, made = threading.Event(), threading.Event()
    create = sim.anthropic_batches.create

    def slow(raw: bytes, base: str) -> Any:
        arrived.set()
        time.sleep(3)  # the sender is killed meanwhile; the provider still makes the batch
        try:
            return create(raw, base)
        finally:
            made.set()

    monkeypatch.setattr(sim.anthropic_batches, "create", slow)
    path = config(tmp_path, sim, shared, lease=1.5)
    procs, (a,) = serve(path, 1)
    try:
        job_id = defer(anth(a))
        assert arrived.wait(10)
        worst = int(shared.pg("SELECT worst_nanos FROM batch_jobs WHERE id = $1", job_id)[0][0])
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        more, (b,) = serve(path, 1)
        procs += more
        done = wait_for(lambda: job(anth(b), job_id), lambda j: j["status"] not in ("queued", "submitted"))
        assert done["status"] == "errored" and "worst case" in str(done["error"]), done
        rows = shared.pg("SELECT status, cost_nanos, reconcile FROM ledger WHERE id = $1", job_id)
        assert [tuple(r) for r in rows] == [("crashed", worst, 1)]
        settled_clean(shared)
        assert made.wait(10)
        time.sleep(1)  # b's ticks meanwhile: it never sends the job again
        assert sent_ids(sim).count(job_id) == 1
    finally:
        stop(procs)


def test_a_replica_dying_between_writing_a_job_and_handing_its_redis_hold_over_leaves_the_hold_to_the_queue(
    shared: Shared,
) -> None:
    """The reaper of a gone replica releases the Redis holds it owned — except those whose pending rows passed to
    the queue in the meantime: those it hands to the queue's owner, held until the job settles."""
    day, month = time.strftime("%Y-%m-%d", time.gmtime()), time.strftime("%Y-%m", time.gmtime())
    spec = uncapped(day, month)

    async def run() -> None:
        a, b = (SharedStore(shared.redis_url, shared.postgres_url, ZoneInfo("UTC"), lease_s=0.5) for _ in range(2))
        await a.open()
        await b.open()
        await a.hold(Reservation("pm_job", "olivia", time.time(), "claude-haiku-4-5", "anthropic", day, month, 1000))
        assert (await a.take("pm_job", spec, 1000))[0] == 1
        j = queued_job("pm_job", day, month)
        q = PgQueue(shared.postgres_url, a.replica, 0.5)
        await asyncio.to_thread(q.add, [j])  # Postgres's half of the hand-over; a dies before Redis's
        q.close()
        for t in a._tasks:
            t.cancel()
        await asyncio.sleep(1.2)
        await b.reap()
        await b.aclose()
        await a.pg.close()
        await a.counters.close()
        a.reader.close()

    asyncio.run(run())
    assert shared.held() == 4 * 1000  # still held: not released as a call that was never sent
    assert shared.redis.hget("pm:r:pm_job", "owner") == b"batch"
    assert [tuple(r) for r in shared.pg("SELECT owner FROM pending")] == [("batch",)]
    assert shared.pg("SELECT count(*) FROM ledger")[0][0] == 0
    assert shared.pg("SELECT count(*) FROM replicas WHERE id = $1", "batch")[0][0] == 0


def test_two_replicas_settling_the_same_jobs_book_each_once_and_a_release_a_crash_skipped_is_swept(
    shared: Shared,
) -> None:
    """Two replicas settle the same three jobs at once (each from its own connection): each job is booked by exactly
    one of them, once. Both then 'crash' before releasing Redis: the holds stay (over-counted, never under) until
    the leaseholder's sweep releases them at the ledger's cost."""
    day, month = time.strftime("%Y-%m-%d", time.gmtime()), time.strftime("%Y-%m", time.gmtime())
    spec = uncapped(day, month)
    ids = [f"pm_job{i}" for i in range(3)]
    jobs = [queued_job(i, day, month) for i in ids]

    def store() -> SharedStore:
        return SharedStore(shared.redis_url, shared.postgres_url, ZoneInfo("UTC"))

    async def admit() -> None:
        s = store()
        await s.open()
        for i in ids:
            await s.hold(Reservation(i, "olivia", time.time(), "claude-haiku-4-5", "anthropic", day, month, 1000))
            assert (await s.take(i, spec, 1000))[0] == 1
        q = PgQueue(shared.postgres_url, s.replica, 10)
        await asyncio.to_thread(q.add, jobs)
        q.close()
        await s.counters.adopt(ids, "batch")
        await s.aclose()

    asyncio.run(admit())
    assert shared.held() == 3 * 4 * 1000

    def settlements() -> list[Any]:
        out = []
        for j in jobs:
            row = LedgerRow(id=j.id, ts=j.created, agent="olivia", api="anthropic", provider="anthropic",
                            model_requested=j.model, model=j.model, status="ok", cost_usd="0.0000004",
                            cost_nanos=400, day=day, month=month, worst_nanos=1000, route="batch")  # fmt: skip
            out.append((replace(j, status="succeeded", cost_nanos=400), row, "queued", ""))
        return out

    qa, qb = PgQueue(shared.postgres_url, "r_a", 10), PgQueue(shared.postgres_url, "r_b", 10)
    with ThreadPoolExecutor(2) as pool:
        fa, fb = pool.submit(qa.settle, settlements()), pool.submit(qb.settle, settlements())
        booked_a, booked_b = fa.result(), fb.result()
    qa.close()
    qb.close()
    assert not set(booked_a) & set(booked_b) and set(booked_a) | set(booked_b) == set(ids)
    assert tuple(shared.pg("SELECT count(*), count(DISTINCT id), SUM(cost_nanos) FROM ledger")[0]) == (3, 3, 1200)
    assert shared.pg("SELECT count(*) FROM pending")[0][0] == 0
    assert {r[0] for r in shared.pg("SELECT status FROM batch_jobs")} == {"succeeded"}
    assert shared.held() == 3 * 4 * 1000  # neither released Redis: still counted at the worst case

    async def sweep() -> None:
        s = store()
        await s.open()
        await s.sweep("batch")
        await s.aclose()

    asyncio.run(sweep())
    assert shared.held() == 0
    assert int(shared.redis.hget(f"pm:w:day:{day}:olivia", "spent") or 0) == 1200


def test_a_batch_made_on_one_replica_is_canceled_through_the_other_and_its_holds_released(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    sim.anthropic_batches.faults.hold = True  # in the provider's hands until canceled
    procs, (a, b) = serve(config(tmp_path, sim, shared), 2)
    try:
        reqs = [{"custom_id": f"doc-{i}", "params": {**ASK, "messages": [{"role": "user", "content": f"doc {i}"}]}}
                for i in range(3)]  # fmt: skip
        mb = anth(a).messages.batches.create(requests=reqs)  # type: ignore[arg-type]
        wait_for(
            lambda: shared.pg("SELECT count(*) FROM batch_jobs WHERE submission LIKE 'sub_%'")[0][0], lambda n: n == 3
        )
        assert shared.held() > 0
        assert anth(b).messages.batches.cancel(mb.id).processing_status == "canceling"
        mb = wait_for(lambda: anth(a).messages.batches.retrieve(mb.id), lambda x: x.processing_status == "ended")
        assert mb.request_counts.canceled == 3
        assert {r.result.type for r in anth(b).messages.batches.results(mb.id)} == {"canceled"}
        rows = shared.pg("SELECT status, cost_nanos FROM ledger")
        assert sorted(tuple(r) for r in rows) == [("canceled", 0)] * 3  # each booked once, at zero
        settled_clean(shared)
    finally:
        sim.anthropic_batches.faults.hold = False
        stop(procs)


def test_one_process_restarted_mid_submission_books_the_claimed_job_at_its_worst_case_and_never_resends_it(
    gateway: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule on the SQLite queue: a job claimed for sending when the process stopped may be at the provider,
    so the next start books it at its worst case, flagged, instead of sending it again (before: sent again)."""
    from conftest import Running

    from paymaster.app import Gateway
    from paymaster.server import ServerThread

    arrived, made = threading.Event(), threading.Event()
    create = sim.anthropic_batches.create

    def slow(raw: bytes, base: str) -> Any:
        arrived.set()
        time.sleep(2)  # the gateway stops meanwhile; the provider still makes the batch
        try:
            return create(raw, base)
        finally:
            made.set()

    monkeypatch.setattr(sim.anthropic_batches, "create", slow)
    gw = gateway(batch=FAST)
    job_id = defer(gw.anthropic())
    assert arrived.wait(10)
    worst = to_nanos(Decimal(job(gw.anthropic(), job_id)["reserved_usd"]))
    gw.srv.stop()
    g2 = Gateway(gw.config)
    with ServerThread(g2) as srv:
        gw2 = Running(srv.url, g2, gw.keys, gw.config, srv)
        done = wait_for(lambda: job(gw2.anthropic(), job_id), lambda j: j["status"] not in ("queued", "submitted"))
        assert done["status"] == "errored" and "worst case" in str(done["error"]), done
        rows = [r for r in gw2.ledger("alice") if r["id"] == job_id]
        assert [(r["status"], r["cost_nanos"], r["reconcile"]) for r in rows] == [("crashed", worst, 1)]
        agents = {a["name"]: a for a in gw2.admin("/admin/agents").json()["agents"]}
        assert all(w["reserved_usd"] == "0.000000" for w in agents["alice"]["windows"])
        assert made.wait(10)
        time.sleep(1)  # the new process's ticks meanwhile: it never sends the job again
        assert sent_ids(sim).count(job_id) == 1


def test_a_cancel_while_the_batch_is_being_sent_never_books_a_request_the_provider_runs_at_zero(
    gateway: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a cancel arriving while the gateway was sending the batch found its requests still `queued` and
    booked them canceled at zero, though the provider went on to run (and bill) them. Now they are claimed first:
    the sender cancels the provider's batch once it has its id, and each request is booked as the provider's
    result says (canceled at zero only when the provider canceled it)."""
    arrived = threading.Event()
    create = sim.anthropic_batches.create

    def slow(raw: bytes, base: str) -> Any:
        arrived.set()
        time.sleep(1)  # the agent cancels meanwhile
        return create(raw, base)

    monkeypatch.setattr(sim.anthropic_batches, "create", slow)
    gw = gateway(batch=FAST)
    c = gw.anthropic()
    reqs = [{"custom_id": f"doc-{i}", "params": {**ASK, "messages": [{"role": "user", "content": f"doc {i}"}]}}
            for i in range(2)]  # fmt: skip
    mb = c.messages.batches.create(requests=reqs)  # type: ignore[arg-type]
    assert arrived.wait(10)
    c.messages.batches.cancel(mb.id)
    mb = wait_for(lambda: c.messages.batches.retrieve(mb.id), lambda x: x.processing_status == "ended")
    provider = {r["custom_id"]: r["result"]["type"] for b in sim.anthropic_batches.batches.values() for r in b.results}
    rows = {r["id"]: r for r in gw.ledger("alice")}
    assert len(provider) == 2 and set(rows) == set(provider)  # the provider had both; each booked once
    for job_id, outcome in provider.items():
        assert rows[job_id]["status"] == {"succeeded": "ok"}.get(outcome, outcome)
        assert (rows[job_id]["cost_nanos"] > 0) == (outcome == "succeeded")
    assert mb.request_counts.canceled + mb.request_counts.succeeded == 2
