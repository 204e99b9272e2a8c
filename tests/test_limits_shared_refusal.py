"""A rate refusal told to the other replicas through the stored `agent.limited` event (limits.py `limited`): they
refuse the agent locally only while the shared bucket cannot have refilled, never longer. Two `Limits` on one real
Redis, each with its own board; every event either publishes reaches both boards, as the shared event stream
delivers it to every replica."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
import redis.asyncio as aioredis

from paymaster.blackboard import Blackboard
from paymaster.config import Agent, AgentLimits
from paymaster.errors import RateLimited
from paymaster.limits import Limits
from paymaster.limits_redis import RedisLimits, SharedRefusal
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)


def agent(name: str, lim: AgentLimits) -> Agent:
    return Agent(name=name, key_hash="", model="m", models=("m",), daily_usd=None, monthly_usd=None,
                 max_tokens=16, limits=lim)  # fmt: skip


def replicas(r: Any, a: Agent) -> tuple[Limits, Limits]:
    boards = [Blackboard([a.name]), Blackboard([a.name])]
    seq = [0]

    def stream(ts: float, kind: str, payload: bytes, once: str | None) -> None:
        seq[0] += 1
        for board in boards:
            board.deliver(seq[0], kind, payload)

    out = []
    for i, board in enumerate(boards):
        board.sink = stream
        lim = Limits(board, limits_of=lambda name: a.limits if name == a.name else None)
        lim.shared = RedisLimits(r, f"replica{i}")
        out.append(lim)
    return out[0], out[1]


def test_a_replica_told_of_a_rate_refusal_admits_the_agent_once_the_bucket_has_refilled(shared: Shared) -> None:  # noqa: F811
    """600 requests a minute refill one call every 0.1 s, so a refusal's exact wait is under 0.1 s while its
    retry-after header rounds up to 1 s. Before, the other replicas took the rounded `retry_after_s` of the event
    and refused the agent for that whole second, while the shared bucket admitted calls again after 0.1 s."""

    async def go() -> None:
        r = aioredis.from_url(shared.redis_url)
        a = agent("ann-" + secrets.token_hex(3), AgentLimits(requests_per_minute=600))
        first, second = replicas(r, a)
        try:
            refusal: SharedRefusal | None = None
            for _ in range(5000):  # drain the shared bucket through the first replica
                try:
                    entry = await first.enter(a)
                except SharedRefusal as e:
                    refusal = e
                    break
                first.leave(a.name, entry)
            assert refusal is not None and refusal.wait <= 0.1 and refusal.retry_after == 1
            assert len([h for h in second.board.history if b"agent.limited" in h[1]]) == 1  # the second was told
            await asyncio.sleep(0.3)  # three times the longest the bucket needs to admit one call again
            entry = await second.enter(a)  # the shared bucket admits it: so does the replica
            second.leave(a.name, entry)
        finally:
            await r.aclose()

    asyncio.run(go())


def test_a_replica_told_of_a_rate_refusal_refuses_the_agent_while_the_bucket_cannot_refill(shared: Shared) -> None:  # noqa: F811
    """The other half: two requests a minute refill one call every 30 s; told of the refusal, the second replica
    refuses the agent locally (without asking Redis) in the same episode, publishing nothing of its own."""

    async def go() -> None:
        r = aioredis.from_url(shared.redis_url)
        a = agent("bob-" + secrets.token_hex(3), AgentLimits(requests_per_minute=2))
        first, second = replicas(r, a)
        try:
            for _ in range(2):
                first.leave(a.name, await first.enter(a))
            with pytest.raises(SharedRefusal):
                await first.enter(a)
            second.shared = RedisLimits(aioredis.from_url("redis://127.0.0.1:1/0"), "unreachable")
            with pytest.raises(RateLimited) as e:
                await second.enter(a)
            assert not isinstance(e.value, SharedRefusal) and 1 <= e.value.retry_after <= 30
            assert len([h for h in second.board.history if b"agent.limited" in h[1]]) == 1  # one episode
        finally:
            await r.aclose()

    asyncio.run(go())
