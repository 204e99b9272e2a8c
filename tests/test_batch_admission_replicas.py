"""An agent's batch admitted on a replica in bulk (batch/holds.py): its pending rows in one COPY, its holds in one Redis
script per chunk of requests, its jobs in one transaction — not two round trips per request, each waited for in
turn (counted here as the Postgres transactions of the test's own database) — and held whole: a batch worth exactly
what the agent has left is accepted, one request more is refused with nothing held, and the other replica's view
shows the batch's hold at once. Needs Redis and Postgres (tests/services.py): skipped without them, failed under CI."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from paymaster.batch.holds import CHUNK, HOLD_ALL
from paymaster.pricing import usd_str
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_batch_api import wait
from tests.test_batch_replicas import ASK, anth, config, settled_clean
from tests.test_fleet_replicas import admin
from tests.test_replicas import serve, stop

N = 2 * CHUNK + 88  # three chunks


def transactions(shared: Shared) -> int:
    """Transactions committed so far in the test's database."""
    db = shared.postgres_url.rsplit("/", 1)[1]
    return int(shared.pg("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db)[0][0])


def batch(port: int, n: int, tag: str) -> Any:
    reqs = [{"custom_id": f"{tag}-{i}", "params": {**ASK, "messages": [{"role": "user", "content": "doc"}]}}
            for i in range(n)]  # fmt: skip
    return anth(port).messages.batches.create(requests=reqs)  # type: ignore[arg-type]


def daily(port: int) -> dict[str, Any]:
    """olivia's agent daily window as a replica's admin view shows it."""
    out: dict[str, Any] = {w["window"]: w for w in admin(port, "GET", "/admin/agents/olivia")["windows"]}["agent daily"]
    return out


def held(shared: Shared) -> int:
    return int(shared.pg("SELECT COALESCE(SUM(worst_nanos), 0) FROM pending")[0][0])


def test_a_batch_is_held_whole_in_a_few_round_trips_exactly_up_to_the_cap(
    sim: Any, tmp_path: Path, shared: Shared
) -> None:
    sim.anthropic_batches.faults.hold = True  # the provider's batches stay open: nothing settles meanwhile
    path = config(tmp_path, sim, shared, daily_usd="1000")
    raw = yaml.safe_load(path.read_text())
    raw["batch"] = {"flush_age_s": 2, "poll_s": 0.5}  # the sender's ticks: a few transactions a second
    path.write_text(yaml.safe_dump(raw))
    procs, (a, b) = serve(path, 2)
    try:
        first = batch(a, 1, "first")
        worst = held(shared)  # one request's worst case at batch prices (all requests here are alike)
        assert worst > 0
        cap = Decimal(worst * (1 + N)) / 10**9  # room for exactly N more requests
        admin(a, "PATCH", "/admin/agents/olivia", {"daily_usd": str(cap)})
        for port in (a, b):  # b has the new cap too (from its next poll)
            wait(lambda p=port: daily(p)["cap_usd"], lambda c: c == usd_str(worst * (1 + N)), 5)

        xacts = transactions(shared)
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:  # what Redis holds, over and over while the batch is admitted
            while not done.is_set():
                seen.append(shared.held())

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with pytest.raises(anthropic.APIStatusError) as e:
                batch(b, N + 1, "over")  # one request more than fits: refused whole
        finally:
            done.set()
            watcher.join()
        assert len(seen) > 5 and max(seen) == worst * 4, (len(seen), max(seen))  # never held, not even in part
        assert e.value.status_code == 402 and e.value.body["error"]["type"] == "call_too_large", e.value.body
        assert "batch too large" in e.value.body["error"]["message"]
        committed = transactions(shared) - xacts  # the replicas' own heartbeats and ticks included
        assert committed < N // 3, committed  # before: a pending row written, held in Redis and deleted, per request
        assert held(shared) == worst and shared.held() == worst * 4  # the first batch's, on four windows

        xacts = transactions(shared)
        mb = batch(b, N, "fits")  # exactly what is left
        assert mb.request_counts.processing == N
        committed = transactions(shared) - xacts
        assert committed < N // 3, committed  # before: a pending row per request, and one Redis script each
        assert held(shared) == worst * (1 + N) and shared.held() == 4 * worst * (1 + N)
        owners = shared.pg("SELECT owner, count(*) AS n FROM pending GROUP BY owner")
        assert [(r["owner"], r["n"]) for r in owners] == [("batch", 1 + N)]
        assert shared.redis.scard("pm:own:batch") == 1 + N
        view = daily(a)
        assert view["reserved_usd"] == usd_str(worst * (1 + N)) and view["remaining_usd"] == usd_str(0), view

        with pytest.raises(anthropic.APIStatusError) as e:
            batch(a, 1, "full")
        assert e.value.status_code == 402

        sim.anthropic_batches.faults.hold = False
        for made in (first, mb):
            wait(lambda m=made: anth(b).messages.batches.retrieve(m.id), lambda x: x.processing_status == "ended")
        settled_clean(shared)
    finally:
        sim.anthropic_batches.faults.hold = False
        stop(procs)


def test_each_chunk_holds_itself_only_when_the_rest_of_the_batch_fits_too_and_never_twice(shared: Shared) -> None:
    """HOLD_ALL on a real Redis: a chunk is held only if it and the batch's later chunks (`rest`) fit under every
    cap, then its total on every window and one record per request; a record already there (a rebuild held it from
    its pending row) is not held again."""
    r = shared.redis
    r.set("pm:epoch", "e")
    script = r.register_script(HOLD_ALL)
    windows = ["pm:w:day:2026-12-02:olivia", "pm:w:month:2026-12:olivia", "pm:f:day:2026-12-02", "pm:f:month:2026-12"]
    keys = ["pm:epoch", "pm:own:batch", *windows, "pm:r:j1", "pm:r:j2", "pm:r:j3"]

    def run(rest: int) -> list[int]:
        spec = [4, 10_000, 2**45, -1, 2**45, -1, 2**45, -1, 2**45, "batch", 60_000, rest]
        return [int(v) for v in script(keys=keys, args=[*spec, "j1", 3000, "j2", 3000, "j3", 3000])]

    assert run(rest=1001) == [0, 0, 0, 0, 0, 0, 0, 0, 0]  # 9,000 + 1,001 > 10,000 on the capped window
    assert r.exists("pm:r:j1", "pm:r:j2", "pm:r:j3") == 0 and r.scard("pm:own:batch") == 0
    assert run(rest=1000) == [1, 0, 9000, 0, 9000, 0, 9000, 0, 9000]  # exactly fits
    assert {r.hget(k, "worst") for k in ("pm:r:j1", "pm:r:j2", "pm:r:j3")} == {b"3000"}
    assert r.hget("pm:r:j2", "owner") == b"batch" and r.scard("pm:own:batch") == 3
    assert r.hget("pm:r:j3", "k4") == windows[3].encode()
    assert run(rest=0)[:3] == [1, 0, 9000]  # held already: nothing added
    r.delete("pm:epoch")
    assert run(rest=0) == [-1]  # the counters are gone: rebuild first
