"""The status record's compare-and-set (store/shared_status.py) on a real Redis: two replicas' boards on one
record. Each change is published by exactly one of them however both decide it; a stale decision (a window reset
the record has moved past, a degrade over a block, an unblock from a state the record is not in) changes nothing;
every board ends as the record. Needs Redis (tests/services.py): skipped without it, failed under CI."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import orjson

from paymaster.blackboard import Blackboard
from paymaster.store.shared import SharedStore
from paymaster.store.shared_status import SharedStatus
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)


def replica(shared: Shared) -> tuple[SharedStore, Blackboard, list[tuple[str, dict[str, object]]]]:
    store = SharedStore(shared.redis_url, shared.postgres_url, ZoneInfo("UTC"))
    board = Blackboard(["alice"])
    published: list[tuple[str, dict[str, object]]] = []
    board.sink = lambda ts, kind, payload, once: published.append((kind, orjson.loads(payload)))
    board.shared = SharedStatus(store, board)
    return store, board, published


async def settled(*stores: SharedStore) -> None:
    for _ in range(3):
        await asyncio.gather(*(t for s in stores for t in list(s.settling)))
        await asyncio.sleep(0)


def test_each_change_is_published_once_and_every_board_ends_as_the_record(shared: Shared) -> None:
    async def run() -> None:
        (sa, a, pa), (sb, b, pb) = replica(shared), replica(shared)
        try:
            a.block("alice", "cap reached", "agent daily", "2026-12-03T00:00:00+00:00", 1000.0)
            b.block("alice", "cap reached", "agent daily", "2026-12-03T00:00:00+00:00", 1000.0)  # at once
            await settled(sa, sb)
            assert [k for k, _ in pa + pb] == ["agent.blocked"]
            await a.shared.refresh(["alice"])  # type: ignore[union-attr]
            await b.shared.refresh(["alice"])  # type: ignore[union-attr]
            assert a.status["alice"] == b.status["alice"] and a.status["alice"].state == "blocked"

            b.degrade("alice", "past the degrade threshold")  # b's view is stale: a block is not degraded
            await settled(sb)
            assert b.status["alice"].state == "blocked" and [k for k, _ in pa + pb] == ["agent.blocked"]

            a.expire(999.0)  # not yet
            a.block("alice", "monthly cap reached", "agent monthly", "2027-01-01T00:00:00+00:00", 2000.0)
            await settled(sa)
            b.expire(1500.0)  # b still holds the daily block: its reset must not lift the monthly one
            await settled(sb)
            assert b.status["alice"].window == "agent monthly" and b.status["alice"].state == "blocked"
            a.expire(2000.0)
            b.expire(2000.0)
            await settled(sa, sb)
            kinds = [k for k, _ in pa + pb]
            assert kinds.count("agent.blocked") == 2 and kinds.count("agent.unblocked") == 1, kinds
            assert a.status["alice"].state == b.status["alice"].state == "active"
            assert a.status["alice"].since == b.status["alice"].since
        finally:
            await sa.counters.close()
            await sb.counters.close()

    asyncio.run(run())
