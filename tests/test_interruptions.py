"""Every admitted call settles exactly once: timeouts, cut streams, agents that hang up, crashes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
import yaml

from paymaster.app import Gateway
from paymaster.call import Usage
from paymaster.config import parse
from paymaster.pricing import PriceTable, to_nanos
from paymaster.server import free_port, wait_port
from paymaster.store import journal
from tests.conftest import ADMIN_KEY, PROVIDER_KEY, fleet


def no_open_calls(gw) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if gw.admin("/healthz").json() == {"status": "ok", "open_calls": 0, "journal_open": 0}:
            return
        time.sleep(0.02)
    raise AssertionError(gw.admin("/healthz").json())


def test_upstream_timeout_is_booked_at_worst_case_and_flagged(gateway, sim):
    gw = gateway(
        providers={
            "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 0.3},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 0.3},
        }
    )
    sim.inject("timeout")
    with pytest.raises(anthropic.APIStatusError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 504 and e.value.body["error"]["type"] == "api_error"
    row = gw.ledger("alice")[-1]
    assert row["status"] == "timeout" and row["reconcile"] == 1
    assert row["cost_nanos"] == row["worst_nanos"] > 0
    no_open_calls(gw)

    # the operator learns the provider's bill and reconciles: the row and the agent's spend follow
    def daily_spent() -> Decimal:
        windows = gw.admin("/admin/agents/alice").json()["windows"]
        return Decimal(next(w["spent_usd"] for w in windows if w["window"] == "agent daily"))

    assert daily_spent() == Decimal(row["cost_usd"]).quantize(Decimal("0.000001"), rounding="ROUND_CEILING")
    url = f"{gw.url}/admin/ledger/{row['id']}/reconcile"
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx2.post(url, json={"usage": {"input_tokens": -1}}, headers=auth).status_code == 400
    assert httpx2.post(url, json={}, headers=auth).status_code == 400
    r = httpx2.post(url, json={"usage": {"input_tokens": 12, "output_tokens": 30}}, headers=auth)
    assert r.status_code == 200, r.text
    fixed = r.json()
    expected = PriceTable().rates("claude-haiku-4-5", "anthropic").cost(Usage(12, 30))
    assert Decimal(fixed["cost_usd"]) == expected and fixed["reconcile"] == 0 and fixed["reconciled_at"]
    assert daily_spent() == expected.quantize(Decimal("0.000001"), rounding="ROUND_CEILING")
    assert httpx2.post(url, json={"cost_usd": "0.1"}, headers=auth).status_code == 400  # not flagged any more
    assert gw.admin("/admin/ledger", reconcile="true").json()["data"] == []


def test_cut_stream_books_reported_input_and_all_allowed_output(gateway, sim):
    gw = gateway()
    sim.inject("cut")
    with pytest.raises(anthropic.APIError):
        with gw.anthropic().messages.stream(
            model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "x [sim:tokens=200]"}]
        ) as s:
            for _ in s:
                pass
    row = gw.ledger("alice")[-1]
    assert row["status"] == "cut" and row["reconcile"] == 1
    assert row["input_tokens"] > 0 and row["output_tokens"] == 300
    rates = PriceTable().rates("claude-haiku-4-5", "anthropic")
    assert row["cost_nanos"] <= row["worst_nanos"]
    assert Decimal(row["cost_usd"]) == rates.cost(Usage(row["input_tokens"], 300))
    no_open_calls(gw)


def test_openai_cut_stream_without_usage_is_booked_at_worst_case(gateway, sim):
    gw = gateway()
    sim.inject("cut")
    with pytest.raises(openai.APIError):
        for _ in gw.openai().chat.completions.create(
            model="gpt-4.1-mini", stream=True, messages=[{"role": "user", "content": "x [sim:tokens=200]"}]
        ):
            pass
    row = gw.ledger("olivia")[-1]
    assert row["status"] == "cut" and row["cost_nanos"] == row["worst_nanos"]
    no_open_calls(gw)


def test_agent_hanging_up_mid_stream_settles_once(gateway, sim):
    sim.token_delay = 0.01
    try:
        gw = gateway()
        with gw.anthropic().messages.stream(
            model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "x [sim:tokens=400]"}]
        ) as s:
            for i, _ in enumerate(s):
                if i == 5:
                    break  # leaving the block closes the connection
        no_open_calls(gw)
        rows = gw.ledger("alice")
        assert len(rows) == 1 and rows[0]["status"] == "disconnected" and rows[0]["reconcile"] == 1
        assert rows[0]["output_tokens"] == 500
    finally:
        sim.token_delay = 0.0


def test_unreachable_provider_costs_nothing(gateway, sim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    gw = gateway(
        providers={
            "anthropic": {"kind": "anthropic", "base_url": dead, "api_key_env": "SIM_KEY"},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
        }
    )
    with pytest.raises(anthropic.APIStatusError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 502
    row = gw.ledger("alice")[-1]
    assert row["status"] == "unreachable" and row["cost_nanos"] == 0


def test_gateway_killed_between_reserve_and_settle_loses_no_spend(sim, tmp_path: Path):
    keys = {n: f"pm-{n}" for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path)
    port = free_port()
    raw["listen"] = {"host": "127.0.0.1", "port": port}
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "SIM_KEY": PROVIDER_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "paymaster.cli", "serve", "--config", str(tmp_path / "fleet.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        sim.inject("timeout")  # the provider holds the call: the gateway sits between reserve and settle
        client = anthropic.Anthropic(
            base_url=f"http://127.0.0.1:{port}", api_key=keys["alice"], max_retries=0, timeout=30
        )
        import threading

        t = threading.Thread(
            target=lambda: _swallow(
                lambda: client.messages.create(
                    model="claude-haiku-4-5", max_tokens=1000, messages=[{"role": "user", "content": "held"}]
                )
            ),
            daemon=True,
        )
        t.start()
        db = tmp_path / "ledger.db"
        worst = _wait_reservation(db)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    sim.reset()

    gw = Gateway(parse(raw, env={"SIM_KEY": PROVIDER_KEY}))
    try:
        assert [r.status for r in gw.recovered] == ["crashed"]
        rows = gw.store.ledger(agent="alice")
        assert len(rows) == 1 and rows[0]["reconcile"] == 1 and rows[0]["cost_nanos"] == worst > 0
        day = [w for w in gw.budget.view("alice") if w["window"] == "agent daily"][0]
        assert to_nanos(Decimal(day["spent_usd"])) == worst
        assert gw.store.open_reservations() == 0
    finally:
        gw.store.close()


def _swallow(fn) -> None:
    try:
        fn()
    except Exception:
        pass


def _wait_reservation(db: Path) -> int:
    """The worst case of the one reservation the gateway journaled (it is durable before the call goes out)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for seg in db.parent.glob(db.name + ".reservations.*"):
            lines = [ln for ln in seg.read_bytes().split(b"\n") if ln]
            if lines:
                held = journal.parse(lines[0])
                assert isinstance(held, journal.Reservation), lines[0]
                return held.worst_nanos
        time.sleep(0.02)
    raise AssertionError("no reservation was journaled")


def test_power_durability_serves_and_books(gateway):
    gw = gateway(durability="power")
    msg = gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.usage.output_tokens > 0
    assert gw.gw.store.journal.fsync is True
    assert gw.ledger("alice")[-1]["status"] == "ok"
