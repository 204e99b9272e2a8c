"""An agent's status is the fleet's: two `paymaster serve` processes on one Redis and Postgres. An agent blocked
through one replica shows blocked — same reason, window, until and since — on the other's `/admin/agents`; a cap
raised at run time unblocks it on both; each change is one event however many replicas refuse or see the raise;
and the windows a view shows are Redis's figures now, not as of the replica's last reservation. Needs Redis and
Postgres (tests/services.py): skipped without them, failed under CI."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from paymaster.config import hash_key
from paymaster.pricing import usd_str
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_fleet_replicas import admin, ask
from tests.test_replicas import fleet_file, serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)

KEYS = {"carol": "pm-carol-status", "bob": "pm-bob-status"}


def until(check: Callable[[], Any], within: float = 5.0) -> Any:
    """`check()`'s first true answer, asked every 50 ms for `within` seconds (the last answer if none)."""
    deadline = time.monotonic() + within
    while not (got := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def status(port: int, agent: str) -> dict[str, Any]:
    out: dict[str, Any] = admin(port, "GET", f"/admin/agents/{agent}")["status"]
    return out


def events(shared: Shared, kind: str, agent: str) -> list[dict[str, Any]]:
    rows = shared.pg("SELECT data FROM events WHERE kind = $1 ORDER BY id", kind)
    return [e for e in (orjson.loads(r["data"]) for r in rows) if e["agent"] == agent]


def test_blocked_on_one_replica_is_blocked_on_every_replica_and_announced_once(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    agents = {
        "carol": {"model": "claude-haiku-4-5", "daily_usd": "0.0000001", "key_sha256": hash_key(KEYS["carol"])},
        "bob": {"model": "claude-haiku-4-5", "daily_usd": "5", "key_sha256": hash_key(KEYS["bob"])},
    }
    procs, (a, b) = serve(fleet_file(tmp_path, sim_process, shared, agents), 2)
    try:
        assert status(b, "carol")["state"] == "active"
        with pytest.raises(anthropic.APIStatusError) as e:
            ask(a, KEYS["carol"])  # not even a minimal call fits: blocked, decided on replica a
        assert e.value.status_code == 402
        on_a = status(a, "carol")
        assert on_a["state"] == "blocked" and on_a["window"] == "agent daily"
        assert until(lambda: status(b, "carol") == on_a), (status(b, "carol"), on_a)  # the same record
        with pytest.raises(anthropic.APIStatusError):
            ask(b, KEYS["carol"])  # refused on b too: no second block
        listed = {x["name"]: x["status"] for x in admin(b, "GET", "/admin/agents")["agents"]}
        assert listed["carol"] == on_a and listed["bob"]["state"] == "active"
        assert listed["bob"] == status(a, "bob")  # never changed: active since the same moment on both
        assert until(lambda: events(shared, "agent.blocked", "carol"))
        time.sleep(0.5)  # a second event, were there one, is stored by now
        assert len(events(shared, "agent.blocked", "carol")) == 1

        admin(b, "PATCH", "/admin/agents/carol", {"daily_usd": "5"})  # raised on b: each replica sees it
        for port in (a, b):
            assert until(lambda p=port: status(p, "carol")["state"] == "active"), status(port, "carol")  # type: ignore[misc]
        assert status(a, "carol")["since"] == status(b, "carol")["since"]
        assert until(lambda: admin(a, "GET", "/admin/agents/carol")["windows"][0]["cap_usd"] == usd_str(5 * 10**9))
        ask(a, KEYS["carol"])  # once a has the raised cap too (its next poll)
        time.sleep(0.5)
        unblocked = events(shared, "agent.unblocked", "carol")
        assert len(unblocked) == 1 and unblocked[0]["reason"] == "a cap was raised", unblocked
    finally:
        stop(procs)


def test_the_windows_a_view_shows_are_the_shared_counters_now(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    agents = {"bob": {"model": "claude-haiku-4-5", "daily_usd": "5", "key_sha256": hash_key(KEYS["bob"])}}
    procs, (a, b) = serve(fleet_file(tmp_path, sim_process, shared, agents), 2)
    try:
        ask(b, KEYS["bob"])  # b has a view of bob's windows (its reservation's figures)
        for _ in range(3):
            ask(a, KEYS["bob"])
        time.sleep(0.5)  # the settlements reached Redis
        windows = {
            port: {
                w["window"]: (w["spent_usd"], w["reserved_usd"])
                for w in admin(port, "GET", "/admin/agents/bob")["windows"]
            }
            for port in (a, b)
        }
        assert windows[a] == windows[b], windows
        booked = int(shared.pg("SELECT SUM(cost_nanos) AS n FROM ledger WHERE agent = 'bob'")[0]["n"])
        assert windows[b]["agent daily"] == (usd_str(booked), usd_str(0)), (windows[b], usd_str(booked))  # all 4 calls
        listed = {x["name"]: x["windows"] for x in admin(b, "GET", "/admin/agents")["agents"]}
        assert [(w["spent_usd"], w["reserved_usd"]) for w in listed["bob"]] == list(windows[a].values())
    finally:
        stop(procs)
