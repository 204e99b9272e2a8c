"""The ledger keeps every dollar: one writer per ledger, all-or-nothing journal appends, no silently skipped
line, failing commits refuse calls, a crash books finished calls at their cost, any agent name is a safe key,
and bad admin input or an unusable ledger gets a clear error (never a 500, never a traceback)."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
import yaml

from paymaster.app import Gateway
from paymaster.call import Usage
from paymaster.config import ConfigError, hash_key, parse
from paymaster.pricing import PriceTable, to_nanos
from paymaster.server import free_port, wait_port
from paymaster.store import journal
from paymaster.store import sqlite as sqlite_store
from paymaster.store.errors import LedgerLocked, LedgerUnavailable
from paymaster.store.journal import RESERVATION_FIELDS
from tests.conftest import ADMIN_KEY, PROVIDER_KEY, fleet
from tests.test_interruptions import no_open_calls

HAIKU = PriceTable().rates("claude-haiku-4-5", "anthropic")
ASK = dict(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello [sim:tokens=20]"}])


def write_fleet(sim: Any, tmp: Path, **over: Any) -> tuple[dict[str, Any], Path, dict[str, str]]:
    keys = {n: f"pm-{n}-key" for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp, **over)
    raw["listen"] = {"host": "127.0.0.1", "port": free_port()}
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    return raw, path, keys


def paymaster(
    *args: str, wait: bool = True, timeout: float = 60
) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "paymaster.cli", *args]
    env = {**os.environ, "SIM_KEY": PROVIDER_KEY}
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def segments(db: Path) -> list[Path]:
    return sorted(db.parent.glob(db.name + ".reservations.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))


def journal_lines(db: Path, live: bool = False) -> list[dict[str, Any]]:
    """Every line of the journal; `live`: a gateway may be writing, so a last line may be half there."""
    out = []
    for seg in segments(db):
        data = seg.read_bytes()
        if live:
            data = data[: data.rfind(b"\n") + 1]
        assert data == b"" or data.endswith(b"\n"), f"{seg} ends in a torn line: {data[-80:]!r}"
        out.extend(orjson.loads(line) for line in data.split(b"\n") if line)
    # a reservation line is positional ({"reserved": [values]}): named here, as the fields they are
    return [dict(zip(RESERVATION_FIELDS, ln["reserved"], strict=True)) if "reserved" in ln else ln for ln in out]


def reservation(rid: str, worst: int, agent: str = "alice") -> dict[str, Any]:
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return {
        "id": rid,
        "agent": agent,
        "created": time.time(),
        "model": "claude-haiku-4-5",
        "api": "anthropic",
        "day": day,
        "month": day[:7],
        "worst_nanos": worst,
    }


def events(gw: Any) -> list[str]:
    return [frame.split(b"\n")[1].removeprefix(b"event: ").decode() for _, frame in gw.gw.board.history]


# -- finding 5: one writer per ledger ----------------------------------------------------------------


def test_a_second_serve_on_the_same_ledger_refuses_to_start_naming_the_holder(sim, tmp_path):
    raw, path, keys = write_fleet(sim, tmp_path)
    first = paymaster("serve", "--config", str(path), wait=False)
    try:
        wait_port(raw["listen"]["port"])
        second = paymaster("serve", "--config", str(path), "--port", str(free_port()), timeout=30)
        assert second.returncode != 0
        line = one_line(second.stderr)
        assert f"pid {first.pid}" in line and "in use by another gateway" in line and "ledger.db" in line, line
        checked = paymaster("ledger", "check", "--config", str(path))  # nor may a check touch a live journal
        assert checked.returncode == 2 and f"pid {first.pid}" in one_line(checked.stderr)
        # the first gateway is untouched: it serves, books, and its journal is its own
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{raw['listen']['port']}", api_key=keys["alice"])
        assert client.messages.create(**ASK).usage.output_tokens == 20
        r = httpx2.get(
            f"http://127.0.0.1:{raw['listen']['port']}/admin/ledger", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert [row["status"] for row in r.json()["data"]] == ["ok"]
    finally:
        first.kill()
        first.wait(10)


def test_a_second_gateway_in_one_process_is_refused_until_the_first_stops(gateway):
    gw = gateway()
    with pytest.raises(LedgerLocked, match=f"pid {os.getpid()}"):
        Gateway(gw.config)
    assert gw.anthropic().messages.create(**ASK).usage.output_tokens == 20
    assert [r["status"] for r in gw.ledger()] == ["ok"]
    gw.srv.stop()  # the lock goes with the gateway
    again = Gateway(gw.config)
    try:
        assert len(again.store.ledger()) == 1 and again.recovered == []
    finally:
        again.store.close()


# -- finding 6: all-or-nothing journal appends; nothing skipped silently ------------------------------


class FullDisk:
    """`os` for the journal, with its `n`-th writes (counted from 1) failing as a full disk does: part of
    the line lands, then `write` raises ENOSPC ("raises") or reports the short count ("short")."""

    def __init__(self, how: str, fail: set[int]) -> None:
        self.how, self.fail, self.n = how, fail, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        self.n += 1
        if self.n not in self.fail:
            return os.write(fd, data)
        written = os.write(fd, data[: len(data) // 2])
        if self.how == "raises":
            raise OSError(errno.ENOSPC, "No space left on device")
        return written


@pytest.mark.parametrize("how", ["raises", "short"])
def test_a_failed_reservation_append_is_cut_away_and_the_call_refused_in_its_own_shape(gateway, sim, monkeypatch, how):
    gw = gateway()
    gw.anthropic().messages.create(**ASK)
    no_open_calls(gw)
    spend, sent = gw.spend(), len(sim.requests)
    disk = FullDisk(how, {1, 2})
    monkeypatch.setattr(journal, "os", disk)

    with pytest.raises(anthropic.APIStatusError) as a:
        gw.anthropic().messages.create(**ASK)
    body = a.value.response.json()
    assert a.value.status_code == 503 and body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "reservation" in body["error"]["message"]
    with pytest.raises(openai.APIStatusError) as o:
        gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    assert o.value.status_code == 503 and set(o.value.response.json()["error"]) >= {"message", "type", "code"}
    assert len(sim.requests) == sent  # nothing went upstream
    assert gw.spend() == spend  # and nobody's spend moved

    for _ in range(3):  # the disk has room again: the next lines are whole, none glued onto a torn one
        gw.anthropic().messages.create(**ASK)
    no_open_calls(gw)
    lines = journal_lines(Path(gw.config.ledger))
    assert len([ln for ln in lines if "worst_nanos" in ln]) == 4 and len([ln for ln in lines if "settled" in ln]) == 4
    assert len(gw.ledger()) == 4


def test_a_failed_settlement_append_is_cut_away_and_the_call_still_booked(gateway, sim, monkeypatch):
    gw = gateway()
    monkeypatch.setattr(journal, "os", FullDisk("short", {2}))  # the 1st call's settlement line
    assert gw.anthropic().messages.create(**ASK).usage.output_tokens == 20
    gw.anthropic().messages.create(**ASK)
    no_open_calls(gw)
    lines = journal_lines(Path(gw.config.ledger))
    assert len([ln for ln in lines if "worst_nanos" in ln]) == 2 and len([ln for ln in lines if "settled" in ln]) == 1
    assert [r["status"] for r in gw.ledger()] == ["ok", "ok"]


def test_an_unreadable_journal_line_stops_start_up_and_ledger_check_repairs_it(sim, tmp_path):
    raw, path, _ = write_fleet(sim, tmp_path)
    db = tmp_path / "ledger.db"
    a, b = reservation("pm_a", 1_000_000), reservation("pm_b", 2_000_000)
    torn = orjson.dumps(reservation("pm_torn", 9))[:40]
    glued = orjson.dumps(reservation("pm_x", 7))[:30] + orjson.dumps(b)  # an old journal: torn line, next glued on
    (tmp_path / "ledger.db.reservations.0").write_bytes(
        orjson.dumps(a) + b"\n" + glued + b"\n" + b"\x00\x00garbage\n" + torn
    )

    started = paymaster("serve", "--config", str(path))
    assert started.returncode != 0
    line = one_line(started.stderr)
    assert "ledger.db.reservations.0 line 2" in line and "ledger check" in line, line

    checked = paymaster("ledger", "check", "--config", str(path))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "PROBLEM" in checked.stdout and "reservations.0 line 2" in checked.stdout
    assert "reservations.0 line 3" in checked.stdout and "line 4: torn last line" in checked.stdout

    repaired = paymaster("ledger", "check", "--config", str(path), "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    aside = [orjson.loads(ln) for ln in (tmp_path / "ledger.db.journal-rejected").read_bytes().splitlines()]
    assert sorted(x["line"] for x in aside) == [2, 3, 4]  # kept, with where and why: nothing silently dropped
    assert "garbage" in next(x["text"] for x in aside if x["line"] == 3)
    assert paymaster("ledger", "check", "--config", str(path)).returncode == 0

    gw = Gateway(parse(raw, env={"SIM_KEY": PROVIDER_KEY}))
    try:  # both whole reservations are booked at their worst case: the glued one is not lost
        assert sorted((r.id, r.cost_nanos, r.status) for r in gw.recovered) == [
            ("pm_a", 1_000_000, "crashed"),
            ("pm_b", 2_000_000, "crashed"),
        ]
        assert gw.store.spend("alice", "day", a["day"]) == 3_000_000
    finally:
        gw.store.close()
    assert db.exists()


def test_a_torn_last_line_is_dropped_at_start_with_a_note(sim, tmp_path, caplog):
    raw, _, _ = write_fleet(sim, tmp_path)
    torn = orjson.dumps(reservation("pm_torn", 5_000_000))[:-3]  # died mid-write: never acknowledged, never sent
    (tmp_path / "ledger.db.reservations.0").write_bytes(orjson.dumps(reservation("pm_a", 1_000)) + b"\n" + torn)
    gw = Gateway(parse(raw, env={"SIM_KEY": PROVIDER_KEY}))
    try:
        assert [(r.id, r.cost_nanos) for r in gw.recovered] == [("pm_a", 1_000)]
    finally:
        gw.store.close()
    assert "line 2: torn last line" in caplog.text
    aside = orjson.loads((tmp_path / "ledger.db.journal-rejected").read_bytes())
    assert aside["line"] == 2 and aside["text"] == torn.decode()


# -- a failing ledger commit ------------------------------------------------------------------------


def test_a_failing_ledger_commit_makes_health_503_refuses_calls_and_recovers(gateway, sim):
    gw = gateway()
    gw.anthropic().messages.create(**ASK)
    assert gw.admin("/healthz").status_code == 200
    store = gw.gw.store
    store.conn.execute("PRAGMA query_only=1")  # the database refuses writes, as a read-only or broken file does
    served = gw.anthropic().messages.with_raw_response.create(**ASK)  # admitted before anything failed
    call_id = served.headers["x-paymaster-call-id"]

    deadline = time.monotonic() + 10
    while (h := gw.admin("/healthz")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert h.status_code == 503 and h.json()["status"] == "failing" and "readonly" in h.json()["reason"], h.text
    assert "ledger.failing" in events(gw)

    sent = len(sim.requests)
    with pytest.raises(anthropic.APIStatusError) as a:
        gw.anthropic().messages.create(**ASK)
    assert a.value.status_code == 503 and a.value.response.json()["error"]["type"] == "api_error"
    assert "ledger" in a.value.response.json()["error"]["message"]
    with pytest.raises(openai.APIStatusError) as o:
        gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    assert o.value.status_code == 503 and "ledger" in o.value.response.json()["error"]["message"]
    assert len(sim.requests) == sent

    store.conn.execute("PRAGMA query_only=0")  # writable again: the kept row is committed on the next retry
    deadline = time.monotonic() + 10
    while (h := gw.admin("/healthz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.json() == {"status": "ok", "open_calls": 0, "journal_open": 0}
    assert events(gw).count("ledger.failing") == 1 and "ledger.writable" in events(gw)
    assert [r["id"] for r in gw.ledger()][-1] == call_id
    assert gw.anthropic().messages.create(**ASK).usage.output_tokens == 20


# -- finding 7: any agent name is a safe key ----------------------------------------------------------


def test_an_agent_named_with_colons_keeps_its_spend_across_a_restart(gateway):
    agent = {"model": "claude-haiku-4-5", "daily_usd": 5, "monthly_usd": 50, "max_tokens": 100}
    gw = gateway(agents={"team:a": agent, "team:a:day:x": dict(agent)})
    gw.anthropic("team:a").messages.create(**ASK)
    gw.anthropic("team:a:day:x").messages.create(**ASK)
    view = gw.admin("/admin/agents/team:a").json()
    spent = {w["window"]: w["spent_usd"] for w in view["windows"]}
    assert Decimal(spent["agent daily"]) > 0
    gw.srv.stop()
    again = Gateway(gw.config)
    try:
        for name in ("team:a", "team:a:day:x"):
            assert {w["window"]: w["spent_usd"] for w in again.budget.view(name)} == spent
    finally:
        again.store.close()


def minimal_fleet(agent: Any) -> dict[str, Any]:
    return {
        "ledger": ":memory:",
        "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
        "agents": {agent: {"model": "claude-haiku-4-5", "key_sha256": hash_key(f"k-{agent}")}},
    }


@pytest.mark.parametrize("name", ["team a", "a/b", "", "-lead", ".x", "é", "x" * 65, 7, "a\nb", "a%2Fb", True])
def test_agent_names_outside_the_documented_set_are_config_errors(name):
    with pytest.raises(ConfigError, match="agent names are 1 to 64 characters"):
        parse(minimal_fleet(name), env={"K": "x"})


@pytest.mark.parametrize("name", ["team:a", "a.b_c-d", "X" * 64, "7", "Writer2"])
def test_agent_names_inside_the_documented_set_are_accepted(name):
    assert list(parse(minimal_fleet(name), env={"K": "x"}).agents) == [name]


# -- finding 9: bad admin input, unusable ledgers ------------------------------------------------------


@pytest.mark.parametrize(
    "param, value",
    [
        ("after", str(10**30)),
        ("after", "-1"),
        ("after", "1.5"),
        ("since", "nan"),
        ("since", "1e400"),
        ("until", "inf"),
        ("until", "-5"),
        ("limit", "0"),
        ("limit", "100000000000000000000000"),
    ],
)
def test_bad_ledger_query_params_are_400s_in_the_admin_shape(gateway, param, value):
    gw = gateway()
    r = gw.admin("/admin/ledger", **{param: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and param in err["message"]


def test_reconcile_with_an_absurd_cost_is_a_400_and_changes_nothing(gateway, sim):
    timeout = {"api_key_env": "SIM_KEY", "timeout_s": 0.3}
    gw = gateway(
        providers={
            "anthropic": {"kind": "anthropic", "base_url": sim.url, **timeout},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", **timeout},
        }
    )
    sim.inject("timeout")
    with pytest.raises(anthropic.APIStatusError):
        gw.anthropic().messages.create(**ASK)
    row = gw.ledger("alice")[-1]
    assert row["reconcile"] == 1
    url, auth = f"{gw.url}/admin/ledger/{row['id']}/reconcile", {"authorization": f"Bearer {ADMIN_KEY}"}
    before = gw.spend()
    for body in (
        {"cost_usd": "1e30"},
        {"cost_usd": 1e30},
        {"cost_usd": "-0.01"},
        {"cost_usd": "NaN"},
        {"cost_usd": "Infinity"},
        {"cost_usd": True},
        {"cost_usd": [1]},
        {"cost_usd": {"usd": 1}},
        {"usage": {"input_tokens": 2**63 - 1}},
        {"usage": {"output_tokens": 10**15}},
    ):
        r = httpx2.post(url, json=body, headers=auth)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["error"]["param"] in ("cost_usd", "usage"), r.text
    assert gw.spend() == before and gw.ledger("alice")[-1]["reconcile"] == 1
    assert httpx2.post(url, json={"cost_usd": "0.0001"}, headers=auth).status_code == 200


def test_serve_on_a_ledger_folder_it_cannot_write_says_so_in_one_line(sim, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        folder = Path("/sys/fs")
    _, path, _ = write_fleet(sim, tmp_path, ledger=str(folder / "ledger.db"))
    r = paymaster("serve", "--config", str(path))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert line.startswith("paymaster: ledger ") and "cannot be opened for writing" in line and str(folder) in line


def test_a_ledger_file_it_cannot_write_stops_start_up(gateway, monkeypatch):
    gw = gateway()
    gw.anthropic().messages.create(**ASK)
    gw.srv.stop()
    real = sqlite3.connect

    def read_only(path: str, **kw: Any) -> sqlite3.Connection:  # what SQLite opens when the file is not writable
        return real(f"file:{path}?mode=ro", uri=True, **kw)

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", read_only)
    with pytest.raises(LedgerUnavailable, match="cannot be opened for writing .*readonly"):
        Gateway(gw.config)


def test_serve_with_a_ledger_in_a_missing_folder_is_a_config_error(sim, tmp_path):
    _, path, _ = write_fleet(sim, tmp_path, ledger=str(tmp_path / "nowhere" / "ledger.db"))
    r = paymaster("serve", "--config", str(path))
    assert r.returncode == 2
    assert "bad config: ledger: the folder" in one_line(r.stderr) and "does not exist" in r.stderr


# -- finding 10: a crash books finished calls at their cost -------------------------------------------


def test_kill_9_books_finished_calls_at_their_cost_and_only_calls_in_flight_at_worst(sim, tmp_path):
    raw, path, keys = write_fleet(
        sim,
        tmp_path,
        providers={
            "anthropic": {"kind": "anthropic", "base_url": sim.url, "api_key_env": "SIM_KEY", "timeout_s": 60},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 60},
        },
    )
    port, db = raw["listen"]["port"], tmp_path / "ledger.db"
    proc = paymaster("serve", "--config", str(path), wait=False)
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=keys["alice"], max_retries=0, timeout=30)
    held = 3
    try:
        wait_port(port)
        sim.inject("timeout", count=held)  # the provider holds these: truly in flight when the gateway dies
        for i in range(held):
            ask = dict(ASK, max_tokens=1000, messages=[{"role": "user", "content": f"held {i}"}])
            threading.Thread(target=_swallow, args=(client.messages.create,), kwargs=ask, daemon=True).start()
        deadline = time.monotonic() + 10
        while len(sim.requests) < held:  # the provider holds all three (no later call meets a held fault)
            assert time.monotonic() < deadline, len(sim.requests)
            time.sleep(0.02)
        reserved = [ln for ln in journal_lines(db, live=True) if "worst_nanos" in ln]
        assert len(reserved) == held
        in_flight = sum(r["worst_nanos"] for r in reserved)

        # another process holds SQLite's write lock: the calls that finish now cannot be group-committed
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _swallow(client.messages.create, **ASK), range(8)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        blocker.execute("ROLLBACK")
        blocker.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        sim.reset()

    served = [m for m in answers if isinstance(m, anthropic.types.Message)]
    refused = [e for e in answers if isinstance(e, anthropic.APIStatusError)]
    assert served and len(served) + len(refused) == 8, answers
    assert all(e.status_code == 503 for e in refused)  # refused while the ledger could not be written
    assert all(not m.usage.cache_read_input_tokens and not m.usage.cache_creation_input_tokens for m in served)
    cost = sum(to_nanos(HAIKU.cost(Usage(m.usage.input_tokens, m.usage.output_tokens))) for m in served)

    gw = Gateway(parse(raw, env={"SIM_KEY": PROVIDER_KEY}))
    try:
        assert sorted(r.status for r in gw.recovered) == ["crashed"] * held + ["ok"] * len(served)
        day = reserved[0]["day"]
        assert gw.store.spend("alice", "day", day) == cost + in_flight
    finally:
        gw.store.close()


def _swallow(fn: Any, **kw: Any) -> Any:
    try:
        return fn(**kw)
    except Exception as e:
        return e
