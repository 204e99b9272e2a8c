"""A shared store that cannot be reached: calls are refused with 503 in the caller's own error shape,
nothing sent, nobody's spend changed — unless the operator chose `on_store_outage: admit_unmetered`,
and then the call is answered, flagged, booked when Postgres is back and counted in Redis. The admin
views read the Postgres ledger. Outages are real: the gateway reaches Redis and Postgres through a TCP
relay that the test cuts."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.server import ServerThread
from tests.conftest import ADMIN_KEY, PROVIDER_KEY, Running, fleet
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)

ASK = dict(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello [sim:tokens=20]"}])
CHAT = dict(model="gpt-4.1-mini", max_tokens=50, messages=[{"role": "user", "content": "hello"}])


class Relay:
    """A TCP relay to `port` on loopback that can be cut (every connection closed, new ones refused)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            u = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def resume(self) -> None:
        self.up = True


@pytest.fixture
def relayed(shared: Shared, sim: Any, tmp_path: Any) -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(**over: Any) -> tuple[Running, Relay, Relay]:
        redis_relay = Relay(int(shared.redis_url.split(":")[2].split("/")[0]))
        pg_relay = Relay(int(shared.postgres_url.split("@")[1].split("/")[0].split(":")[1]))
        keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
        raw = fleet(sim.url, keys, tmp_path, **over)
        raw["reservations"] = shared.redis_url.replace(f":{redis_relay.target}/", f":{redis_relay.port}/")
        raw["ledger"] = shared.postgres_url.replace(f":{pg_relay.target}/", f":{pg_relay.port}/")
        config = parse(raw, env={"SIM_KEY": PROVIDER_KEY})
        gw = Gateway(config)
        srv = ServerThread(gw).start()
        started.append(srv)
        return Running(srv.url, gw, keys, config, srv, raw), redis_relay, pg_relay

    yield start
    for srv in started:
        srv.stop()


def _pending(shared: Shared) -> int:
    return int(shared.pg("SELECT count(*) FROM pending")[0][0])


def _wait(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("down", ["redis", "postgres"])
def test_an_outage_refuses_calls_with_503_in_each_callers_shape(relayed, shared, sim, down):
    run, redis_relay, pg_relay = relayed()
    run.anthropic().messages.create(**ASK)  # served while both answer
    _wait(lambda: _pending(shared) == 0 and shared.held() == 0)
    rows, requests = len(shared.pg("SELECT id FROM ledger")), len(sim.requests)
    (redis_relay if down == "redis" else pg_relay).cut()

    with pytest.raises(anthropic.InternalServerError) as a:
        run.anthropic().messages.create(**ASK)
    assert a.value.status_code == 503 and a.value.body["error"]["type"] == "api_error"  # the Anthropic error shape
    assert "cannot be" in a.value.message
    with pytest.raises(openai.InternalServerError) as o:
        run.openai().chat.completions.create(**CHAT)
    assert o.value.status_code == 503 and o.value.body["code"] == "store_unavailable"  # the OpenAI error shape
    assert len(sim.requests) == requests  # nothing was sent upstream

    (redis_relay if down == "redis" else pg_relay).resume()
    _wait(lambda: _pending(shared) == 0 and shared.held() == 0)  # nothing left behind, nobody's spend changed
    assert len(shared.pg("SELECT id FROM ledger")) == rows
    run.anthropic().messages.create(**ASK)  # and calls are admitted again


def test_admit_unmetered_answers_flags_and_books_the_call_once_postgres_is_back(relayed, shared, sim):
    run, _redis_relay, pg_relay = relayed(on_store_outage="admit_unmetered")
    pg_relay.cut()
    r = run.anthropic().messages.with_raw_response.create(**ASK)
    assert r.headers["x-paymaster-unmetered"].startswith("store outage")
    call_id = r.headers["x-paymaster-call-id"]
    pg_relay.resume()
    _wait(lambda: bool(shared.pg("SELECT 1 FROM ledger WHERE id = $1", call_id)), timeout=15)
    row = shared.pg("SELECT reconcile, error, cost_nanos, day FROM ledger WHERE id = $1", call_id)[0]
    assert row["reconcile"] == 1 and row["error"].startswith("unmetered") and row["cost_nanos"] > 0
    key = f"pm:w:day:{row['day']}:alice"
    _wait(lambda: int(shared.redis.hget(key, "spent") or 0) == row["cost_nanos"], timeout=15)  # counted too


def test_admin_views_read_the_shared_ledger(relayed, shared):
    run, _, _ = relayed()
    r = run.anthropic().messages.with_raw_response.create(**ASK)
    call_id = r.headers["x-paymaster-call-id"]
    _wait(lambda: _pending(shared) == 0)
    assert [row["id"] for row in run.ledger()] == [call_id]
    alice = run.admin("/admin/agents/alice").json()
    assert alice["savings"]["today"]["calls"] == 1
    assert run.admin("/admin/ledger", agent="nobody").json()["data"] == []
    assert run.admin("/healthz", key=ADMIN_KEY).status_code == 200
    r = run.admin("/admin/overview")
    assert r.status_code == 200, r.text
    overview = r.json()  # the dashboard's data, read from Postgres
    assert [c["id"] for c in overview["recent"]] == [call_id]
    assert sum(float(v) for v in overview["spend"]["month"]["agents"]["alice"]) > 0


def test_report_reads_the_shared_ledger(relayed, shared, capsys):
    from paymaster.report import print_report

    run, _, _ = relayed()
    run.anthropic().messages.create(**ASK)
    _wait(lambda: _pending(shared) == 0)
    print_report(run.config)
    out = capsys.readouterr().out
    alice = next(line for line in out.splitlines() if line.startswith("alice"))
    assert alice.split()[2] == "1"  # one call booked, read from Postgres
