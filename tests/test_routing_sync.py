"""The shared routing state (levers/routing_sync.py) attacked in one process: two replicas' bandits on one real
Postgres, their calls, ratings and syncs interleaved by hypothesis, the ratings' transactions truly concurrent.
Whatever the order, both end with the same counts: every routed call counted once, every rated call counted once
at its latest score, nothing lost to a last writer. Needs Postgres (tests/services.py)."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.levers.routing_bandit import Bandit
from paymaster.levers.routing_share import ShareKeeper
from paymaster.levers.routing_state import Mirror
from paymaster.levers.routing_sync import RoutingSync, merge_windows
from paymaster.store.postgres import PostgresLedger
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)

TIERS = ["light", "standard", "heavy"]


class Replica:
    def __init__(self) -> None:
        self.mirror = Mirror()
        self.bandit = Bandit(self.mirror, 0.8, 0.3, random.Random(7))
        self.shares = ShareKeeper(self.mirror, window=100, warmup=10)
        self.sync = RoutingSync(self.bandit, self.shares, self.mirror)
        self.pool: Any = None

    async def start(self, url: str, name: str) -> None:
        self.pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        await self.sync.start(self.pool, name, 3600)  # no background sync: the test says when


async def replicas(url: str) -> list[Replica]:
    ledger = PostgresLedger(url, "r_migrate")
    await ledger.open()  # the migrations, 004_routing among them
    await ledger.close()
    out = [Replica(), Replica()]
    for i, r in enumerate(out):
        await r.start(url, f"r_{i}")
    return out


async def shut(*rs: Replica) -> None:
    for r in rs:
        await r.sync.stop()
        await r.pool.close()


async def play(rs: list[Replica], ops: list[tuple[int, str, int, float]]) -> None:
    key = "a/" + secrets.token_hex(4)  # each example its own key: the tables are shared by the examples
    prefix = key + ":"

    async def one(replica: int, op: str, call: int, score: float) -> None:
        r = rs[replica]
        if op == "choose":
            r.bandit.choose(key, TIERS)
        elif op == "rate":
            await r.sync.rate(prefix + str(call), time.time(), key, TIERS[call % 3], score)
        else:
            await r.sync.refresh()

    await asyncio.gather(*(one(*op) for op in ops))
    for r in rs + rs:  # each pushes, then each pulls what the other pushed
        await r.sync.refresh()
    views = [r.bandit.view(TIERS).get(key) for r in rs]
    assert views[0] == views[1]
    calls = sum(op == "choose" for _, op, _, _ in ops)
    if views[0] is None:
        assert calls == 0 and not any(op == "rate" for _, op, _, _ in ops)
        return
    assert views[0]["calls"] == calls
    stored = await rs[0].pool.fetch(
        "SELECT call_id, score FROM routing_feedback WHERE starts_with(call_id, $1)", prefix
    )  # each rated call's latest score, as the transactions committed them
    arms = {t: rs[0].bandit._get(key).arms.get(t) for t in TIERS}
    for i, t in enumerate(TIERS):
        scores = [s["score"] for s in stored if int(s["call_id"].removeprefix(prefix)) % 3 == i]
        arm = arms[t]
        success, failure = (arm.success, arm.failure) if arm is not None else (0.0, 0.0)
        assert abs(success - sum(scores)) < 1e-9 and abs(failure - sum(1 - s for s in scores)) < 1e-9, (t, scores)
    picks = sum(a.picks for a in arms.values() if a is not None)
    assert picks == calls


def test_two_replicas_counting_and_rating_at_once_end_with_the_same_exact_counts(shared: Shared) -> None:
    loop = asyncio.new_event_loop()
    rs = loop.run_until_complete(replicas(shared.postgres_url))
    op = st.tuples(
        st.integers(0, 1),
        st.sampled_from(["choose", "choose", "rate", "rate", "sync"]),
        st.integers(0, 5),  # six calls: rated, re-rated on either replica
        st.sampled_from([0.0, 0.25, 1.0]),
    )

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(op, max_size=40))
    def run(ops: list[tuple[int, str, int, float]]) -> None:
        loop.run_until_complete(play(rs, ops))

    try:
        run()
    finally:
        loop.run_until_complete(shut(*rs))
        loop.close()


def test_one_call_rated_on_two_replicas_at_the_same_moment_counts_once(shared: Shared) -> None:
    async def go() -> None:
        a, b = await replicas(shared.postgres_url)
        for i in range(20):  # each call's first two ratings race: one of them must see the other's and take it back
            call = f"c{i}"
            now = time.time()
            await asyncio.gather(
                a.sync.rate(call, now, "a/t", "light", 1.0), b.sync.rate(call, now, "a/t", "light", 0.0)
            )
        for r in (a, b):
            await r.sync.refresh()
        for r in (a, b):
            light = r.bandit.view(TIERS)["a/t"]["tiers"]["light"]
            assert light["rated"] == 20, light
        await shut(a, b)

    asyncio.run(go())


def test_a_failed_push_keeps_its_counts_for_the_next(shared: Shared) -> None:
    async def go() -> None:
        a, b = await replicas(shared.postgres_url)
        for _ in range(5):
            a.bandit.choose("a/t", TIERS)
        good, a.sync.pool = a.pool, await asyncpg.create_pool(shared.postgres_url, min_size=1, max_size=1)
        await a.sync.pool.close()  # a pool that fails every acquire
        with pytest.raises(asyncpg.InterfaceError):
            await a.sync.refresh()
        a.sync.pool = good
        await a.sync.refresh()
        await b.sync.refresh()
        assert b.bandit.view(TIERS)["a/t"]["calls"] == 5 == a.bandit.view(TIERS)["a/t"]["calls"]
        await shut(a, b)

    asyncio.run(go())


def test_a_starting_replica_loads_the_merge_of_the_stored_windows(shared: Shared) -> None:
    async def go() -> None:
        a, b = await replicas(shared.postgres_url)
        for i in range(60):
            a.shares.observe("a/", i / 1000)
            b.shares.observe("a/", 0.5 + i / 1000)
        await a.sync.stop()
        await b.sync.stop()
        c = Replica()
        await c.start(shared.postgres_url, "r_c")
        loaded = c.mirror.get("share", "a/")
        assert len(loaded) == 100  # bounded to the window, half from each replica's traffic
        assert sum(x < 0.5 for x in loaded) == 50
        await shut(a, b, c)

    asyncio.run(go())


def test_merge_windows_keeps_each_replicas_share_of_the_traffic() -> None:
    assert merge_windows([[1.0, 2.0], [3.0]], 10) == [1.0, 2.0, 3.0]
    merged = merge_windows([[0.0] * 300, [1.0] * 100], 100)
    assert len(merged) == 100 and merged.count(1.0) == 25
    assert merge_windows([], 5) == []


def test_the_ratings_of_calls_past_the_keep_window_are_deleted(shared: Shared) -> None:  # noqa: F811
    """routing_feedback keeps a row per rated call: without pruning it grows with every rating ever given. A rating
    is deleted once its call is older than `routing.feedback_keep_days` (the endpoint refuses to rate such calls,
    so a deleted rating is never needed to take an old score back)."""

    async def go() -> None:
        a, b = await replicas(shared.postgres_url)
        now = time.time()
        await a.sync.rate("old", now - 10 * 86_400, "a/t", "light", 1.0)
        await b.sync.rate("recent", now - 86_400, "a/t", "light", 0.0)
        await b.sync.prune(now - 5 * 86_400)
        assert {r["call_id"] for r in await a.pool.fetch("SELECT call_id FROM routing_feedback")} == {"recent"}
        assert await a.sync.rate("recent", now - 86_400, "a/t", "light", 1.0) == 0.0  # kept: taken back
        await shut(a, b)

    asyncio.run(go())
