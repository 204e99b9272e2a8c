"""The cap holds: under concurrency, across window resets (timezone-aware), with fitted max_tokens."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import anthropic
import openai
import orjson
import pytest

from paymaster.blackboard import Blackboard
from paymaster.budget import Budget, Calendar
from paymaster.config import hash_key, parse
from paymaster.pricing import to_nanos
from tests.conftest import Clock


def test_cap_holds_under_concurrency_and_only_the_offender_stops(gateway):
    # one call of ~35 input + 100 output tokens on haiku costs ~$0.000535; the cap is worth ~20 such calls
    cap = Decimal("0.0107")
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": str(cap), "max_tokens": 400}})

    async def fire(client, n: int, concurrency: int) -> tuple[int, int]:
        sem = asyncio.Semaphore(concurrency)
        ok = refused = 0

        async def one(i: int) -> None:
            nonlocal ok, refused
            async with sem:
                try:
                    await client.messages.create(
                        model="claude-haiku-4-5",
                        max_tokens=400,
                        messages=[{"role": "user", "content": f"call {i} [sim:tokens=100]"}],
                    )
                    ok += 1
                except anthropic.APIStatusError as e:
                    assert e.status_code == 402, e
                    assert e.body["error"]["type"] == "budget_exceeded"
                    refused += 1

        await asyncio.gather(*(one(i) for i in range(n)))
        return ok, refused

    async def main() -> tuple[tuple[int, int], tuple[int, int]]:
        alice = gw.async_anthropic("alice")
        bob = gw.async_anthropic("bob")
        res = await asyncio.gather(fire(alice, 300, 50), fire(bob, 40, 10))
        await alice.close()
        await bob.close()
        return res

    (ok, refused), (bob_ok, bob_refused) = asyncio.run(main())
    assert ok + refused == 300
    assert refused > 0 and ok >= 10
    assert (bob_ok, bob_refused) == (40, 0), "another agent's calls all succeed"

    rows = gw.ledger("alice")
    assert len(rows) == ok
    spent = sum(Decimal(r["cost_usd"]) for r in rows)
    assert spent <= cap, f"spent {spent} over cap {cap}"
    # calls held back only by reservations in flight wait for them instead of a false 402
    assert spent >= cap * Decimal("0.8"), f"only {spent} of {cap} used: refusals while budget was left"
    assert sum(r["cost_nanos"] for r in rows) <= to_nanos(cap)
    # no reservation left over: in memory, in the journal, in every window's counter
    assert not gw.gw.budget.open
    assert gw.admin("/healthz").json() == {"status": "ok", "open_calls": 0, "journal_open": 0}
    assert all(held == 0 for _, held in gw.gw.budget.counters.values())
    status = gw.admin("/admin/agents/alice").json()["status"]
    assert status["state"] == "blocked" and status["window"] == "agent daily"
    assert gw.admin("/admin/agents/bob").json()["status"]["state"] == "active"


def test_refusal_names_window_spent_cap_and_reset_in_both_shapes(gateway):
    clock = Clock(datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("UTC")).timestamp())
    gw = gateway(
        clock=clock,
        agents={
            "alice": {"model": "claude-haiku-4-5", "daily_usd": "0", "monthly_usd": 10},
            "olivia": {"model": "gpt-4.1-mini", "daily_usd": 10, "monthly_usd": "0"},
        },
    )
    with pytest.raises(anthropic.APIStatusError) as a:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert a.value.status_code == 402
    err = a.value.body["error"]
    assert err["type"] == "budget_exceeded" and err["window"] == "agent daily"
    assert err["cap_usd"] == "0.000000" and err["resets_at"] == "2026-03-11T00:00:00+00:00"
    assert a.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.APIStatusError) as o:
        gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    err = o.value.body
    assert o.value.status_code == 402 and err["code"] == "budget_exceeded" and err["window"] == "agent monthly"
    assert err["resets_at"] == "2026-04-01T00:00:00+00:00"
    assert gw.ledger() == []  # refused calls never reach a provider nor the ledger


def test_window_resets_at_local_midnight_across_dst(gateway):
    tz = ZoneInfo("America/New_York")
    # 2026-03-08 is the spring-forward day in New York: the day is 23 hours long
    clock = Clock(datetime(2026, 3, 8, 23, 30, tzinfo=tz).timestamp())
    gw = gateway(
        clock=clock,
        timezone="America/New_York",
        agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.0013", "max_tokens": 100}},
    )
    c = gw.anthropic()
    call = dict(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "q [sim:tokens=100]"}])
    c.messages.create(**call)
    c.messages.create(**call)
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(**call)
    assert e.value.body["error"]["resets_at"] == "2026-03-09T00:00:00-04:00"
    clock.t = datetime(2026, 3, 8, 23, 59, 59, tzinfo=tz).timestamp()
    with pytest.raises(anthropic.APIStatusError):
        c.messages.create(**call)
    clock.t = datetime(2026, 3, 9, 0, 0, 1, tzinfo=tz).timestamp()
    c.messages.create(**call)  # a new day in New York (still 2026-03-09 04:00 UTC)
    days = [r["day"] for r in gw.ledger("alice")]
    assert days == ["2026-03-08", "2026-03-08", "2026-03-09"]
    gw.gw.board.expire(clock.t)
    assert gw.admin("/admin/agents/alice").json()["status"]["state"] == "active"


def test_calendar_periods_in_a_timezone():
    cal = Calendar(ZoneInfo("Europe/Berlin"))
    # 2026-10-25 is 25 hours long in Berlin (clocks go back)
    p = cal.periods(datetime(2026, 10, 25, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp())
    assert (p.day, p.month) == ("2026-10-25", "2026-10")
    assert p.day_resets - datetime(2026, 10, 25, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp() == 25 * 3600
    assert cal.iso(p.month_resets) == "2026-11-01T00:00:00+01:00"
    dec = cal.periods(datetime(2026, 12, 31, 23, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp())
    assert dec.month == "2026-12" and cal.iso(dec.month_resets) == "2027-01-01T00:00:00+01:00"


def test_max_tokens_is_fitted_to_the_remaining_budget(gateway, sim):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.003", "max_tokens": 4000}})
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=4000, messages=[{"role": "user", "content": "long one [sim:tokens=5000]"}]
    )
    fitted = int(raw.headers["x-paymaster-max-tokens"].split(";")[0])
    assert 64 <= fitted < 4000 and raw.headers["x-paymaster-max-tokens"].endswith("fitted to budget")
    assert sim.requests[-1]["body"]["max_tokens"] == fitted
    msg = raw.parse()
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == fitted
    assert Decimal(gw.ledger("alice")[-1]["cost_usd"]) <= Decimal("0.003")


def test_fleet_cap_applies_across_agents(gateway):
    gw = gateway(fleet={"daily_usd": "0.0013"})
    call = dict(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "q [sim:tokens=100]"}])
    gw.anthropic("alice").messages.create(**call)
    gw.anthropic("bob").messages.create(**call)
    with pytest.raises(anthropic.APIStatusError) as e:
        gw.anthropic("bob").messages.create(**call)
    assert e.value.body["error"]["window"] == "fleet daily"
    assert sum(Decimal(r["cost_usd"]) for r in gw.ledger()) <= Decimal("0.0013")


def test_a_spent_agent_is_blocked_once_naming_the_window_a_refusal_names():
    """A settlement above its bound (block_if_spent) and a refused call block in the same window: one
    agent.blocked, not a second naming another spent window."""
    raw = {
        "ledger": ":memory:",
        "providers": {"anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:9", "api_key_env": "K"}},
        "agents": {"a": {"model": "claude-haiku-4-5", "daily_usd": 1, "monthly_usd": 2, "key_sha256": hash_key("x")}},
    }
    b = Budget(parse(raw, env={"K": "sk"}), None, Blackboard(["a"]), lambda: 1_764_633_600.0)  # type: ignore[arg-type]
    ws = b.windows("a", b.clock())
    day, month = ws[0], ws[1]
    assert day.cap is not None and month.cap is not None
    b.counters[day.key] = [day.cap - 1, 0]  # no room for a minimal call
    b.counters[month.key] = [month.cap + 10**9, 0]  # overspent
    for w in ws[2:]:
        b.counters[w.key] = [0, 0]
    b._refuse("a", ws, 10**9)
    b.block_if_spent("a")
    blocked = [orjson.loads(f.split(b"data: ")[1]) for _, f in b.board.history if b"event: agent.blocked" in f]
    assert [e["window"] for e in blocked] == ["agent daily"]
