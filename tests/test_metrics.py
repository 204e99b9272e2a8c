"""/metrics: Prometheus text parsed by prometheus-client's own parser, its figures checked against the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import ADMIN_KEY
from prometheus_client.parser import text_string_to_metric_families


def scrape(gw: Any, key: str = ADMIN_KEY) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    r = httpx2.get(gw.url + "/metrics", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(m: dict[str, Any], name: str, **match: str) -> float:
    return sum(v for labels, v in m.get(name, {}).items() if all((k, x) in labels for k, x in match.items()))


def usd(v: float) -> Decimal:
    return Decimal(repr(v)).quantize(Decimal("1e-9"))


def test_metrics_match_the_ledger(gateway: Any) -> None:
    gw = gateway()
    claude = gw.anthropic("alice")
    for i in range(3):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": f"hi {i}"}]
        )
    gw.openai("olivia").chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hello"}])
    m = scrape(gw)
    rows = gw.ledger()
    assert len(rows) == 4
    for agent, model in (("alice", "claude-haiku-4-5"), ("olivia", "gpt-4.1-mini")):
        mine = [r for r in rows if r["agent"] == agent]
        spent = sum(Decimal(r["cost_usd"]) for r in mine)
        assert spent > 0
        assert usd(total(m, "paymaster_spend_usd_total", agent=agent, model=model)) == spent
        assert total(m, "paymaster_calls_total", agent=agent, model=model, status="ok") == len(mine)
        assert total(m, "paymaster_tokens_total", agent=agent, kind="input") == sum(r["input_tokens"] for r in mine)
        assert total(m, "paymaster_tokens_total", agent=agent, kind="output") == sum(r["output_tokens"] for r in mine)
        assert total(m, "paymaster_upstream_seconds_count", model=model) == len(mine)
        assert total(m, "paymaster_overhead_seconds_count", model=model) == len(mine)
        assert total(m, "paymaster_cache_hit_ratio", agent=agent, model=model) == 0
    # the buckets are cumulative and end at the count
    inf = total(m, "paymaster_overhead_seconds_bucket", model="claude-haiku-4-5", le="+Inf")
    assert inf == 3
    assert total(m, "paymaster_reservations_outstanding", agent="alice") == 0
    assert total(m, "paymaster_reserved_usd", agent="alice") == 0


def test_refusals_are_counted_per_agent_and_reason(gateway: Any) -> None:
    gw = gateway(agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": 0, "max_tokens": 100}})
    for _ in range(2):
        with pytest.raises(anthropic.APIStatusError) as e:
            gw.anthropic("bob").messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
        assert e.value.status_code == 402
    m = scrape(gw)
    assert total(m, "paymaster_refusals_total", agent="bob", reason="budget_exceeded") == 2
    assert total(m, "paymaster_calls_total", agent="bob") == 0  # a refused call is never booked


def test_metrics_need_the_admin_key(gateway: Any) -> None:
    gw = gateway()
    assert httpx2.get(gw.url + "/metrics").status_code == 401
    r = httpx2.get(gw.url + "/metrics", headers={"authorization": f"Bearer {gw.keys['alice']}"})
    assert r.status_code == 401
    assert "paymaster_spend" not in r.text


def test_label_cardinality_is_bounded(gateway: Any) -> None:
    gw = gateway(observability={"metrics_max_series": 1, "access_log": "off"})
    gw.anthropic("alice").messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "a"}]
    )
    gw.anthropic("alice").messages.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "b"}]
    )
    gw.anthropic("bob").messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "c"}]
    )
    m = scrape(gw)
    pairs = {(dict(k)["agent"], dict(k)["model"]) for k in m["paymaster_spend_usd_total"]}
    assert pairs == {("alice", "claude-haiku-4-5"), ("_other", "_other")}
    spent = sum(Decimal(r["cost_usd"]) for r in gw.ledger())
    assert usd(total(m, "paymaster_spend_usd_total")) == spent  # folded, never dropped
    assert total(m, "paymaster_calls_total") == 3


def test_reservations_outstanding_while_a_call_is_in_flight(gateway: Any, sim: Any) -> None:
    import threading
    import time

    gw = gateway()
    sim.inject("timeout")  # the provider holds the call: it sits between reserve and settle
    done = threading.Event()

    def held() -> None:
        try:
            gw.anthropic("alice").messages.create(
                model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "held"}]
            )
        except anthropic.APIError:
            pass
        done.set()

    threading.Thread(target=held, daemon=True).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not gw.gw.budget.open:
        time.sleep(0.02)
    m = scrape(gw)
    day = next(w for w in gw.admin("/admin/agents/alice").json()["windows"] if w["window"] == "agent daily")
    assert Decimal(day["reserved_usd"]) > 0
    assert total(m, "paymaster_reservations_outstanding", agent="alice") == 1
    (ticket,) = gw.gw.budget.open.values()
    assert usd(total(m, "paymaster_reserved_usd", agent="alice")) == Decimal(ticket.worst) / 10**9
    assert total(m, "paymaster_reservations_outstanding", agent="bob") == 0
    sim.reset()  # releases the held request
    assert done.wait(15)
    assert total(scrape(gw), "paymaster_reservations_outstanding", agent="alice") == 0


def test_concurrent_streams_and_errors_match_the_ledger_row_for_row(gateway: Any, sim: Any) -> None:
    import asyncio
    from collections import Counter

    gw = gateway()
    sim.inject("500", count=2)

    async def one(i: int) -> None:
        try:
            if i % 2:
                s = await gw.async_openai("olivia").chat.completions.create(
                    model="gpt-4.1-mini", stream=True, messages=[{"role": "user", "content": f"s {i}"}]
                )
                async for _ in s:
                    pass
            else:
                await gw.async_anthropic("alice").messages.create(
                    model="claude-haiku-4-5", max_tokens=30, messages=[{"role": "user", "content": f"m {i}"}]
                )
        except (anthropic.APIStatusError, openai.APIStatusError):
            pass

    async def all_of() -> None:
        await asyncio.gather(*(one(i) for i in range(16)))

    asyncio.run(all_of())
    m = scrape(gw)
    rows = gw.ledger()
    assert len(rows) == 16
    by = Counter((r["agent"], r["model"], r["status"]) for r in rows)
    assert by[("alice", "claude-haiku-4-5", "upstream_error")] + by[("olivia", "gpt-4.1-mini", "upstream_error")] == 2
    for (agent, model, status), n in by.items():
        assert total(m, "paymaster_calls_total", agent=agent, model=model, status=status) == n
    assert total(m, "paymaster_calls_total") == 16
    assert usd(total(m, "paymaster_spend_usd_total")) == sum(Decimal(r["cost_usd"]) for r in rows)
    assert total(m, "paymaster_tokens_total", kind="output") == sum(r["output_tokens"] for r in rows)
