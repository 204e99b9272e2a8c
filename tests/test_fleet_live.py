"""Live fleet management (issue 16): agents, keys and caps changed on a running gateway through the admin API
and the CLI, driven with the official SDKs; SIGHUP with a valid and an invalid fleet.yaml."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import yaml

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.server import ServerThread, free_port, wait_port
from tests.conftest import ADMIN_KEY, PROVIDER_KEY, fleet

ENV = {"SIM_KEY": PROVIDER_KEY}
HI = [{"role": "user", "content": "hi"}]


class Live:
    def __init__(self, url: str, gw: Gateway, keys: dict[str, str]) -> None:
        self.url, self.gw, self.keys = url, gw, keys

    def admin(self, method: str, path: str, body: Any = None) -> httpx2.Response:
        return httpx2.request(method, self.url + path, json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"})

    def claude(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0)

    def gpt(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)

    def events(self) -> str:
        """The blackboard's event stream so far (SSE frames)."""
        return b"".join(frame for _, frame in self.gw.board.history).decode()


@pytest.fixture
def live(sim: Any, tmp_path: Path) -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(**over: Any) -> Live:
        names = {"alice", "olivia", "bob", *over.get("agents", {})}
        keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in names}
        raw = fleet(sim.url, keys, tmp_path, **over)
        gw = Gateway(parse(raw, env=ENV), seed=raw, env=ENV)
        srv = ServerThread(gw).start()
        started.append(srv)
        return Live(srv.url, gw, keys)

    yield start
    for srv in started:
        srv.stop()


def ask(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)


def test_an_agent_added_at_run_time_calls_with_its_key_shown_once(live: Any) -> None:
    g = live()
    r = g.admin("POST", "/admin/agents", {"name": "carol", "model": "claude-haiku-4-5", "daily_usd": "2"})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert ask(g.claude(key)).content[0].type == "text"
    as_agent = httpx2.get(g.url + "/admin/agents", headers={"authorization": f"Bearer {key}"})
    assert as_agent.status_code == 403, as_agent.text  # an agent's key, issued at run time: not an admin's
    assert httpx2.get(g.url + "/admin/agents", headers={"authorization": "Bearer pm-nobody"}).status_code == 401
    listed = g.admin("GET", "/admin/keys", None).json()["keys"]
    assert key not in str(listed) and any(k["agent"] == "carol" and k["live"] for k in listed)
    assert [k["agent"] for k in g.admin("GET", "/admin/keys?agent=carol").json()["keys"]] == ["carol"]
    assert g.admin("GET", "/admin/keys?agent=nobody").status_code == 404  # not an empty list: no such agent
    assert g.gw.store.conn.execute("SELECT count(*) FROM fleet_keys WHERE hash = ?", (key,)).fetchone()[0] == 0
    bad = g.admin("POST", "/admin/agents", {"name": "dave", "model": "no-such-model"})
    assert bad.status_code == 400 and "no-such-model" in bad.text
    assert g.admin("POST", "/admin/agents", {"name": "carol", "model": "claude-haiku-4-5"}).status_code == 400


def test_a_rotated_key_works_for_its_grace_period_then_not_and_a_revoked_key_at_once(live: Any) -> None:
    g = live()
    old = g.keys["alice"]
    r = g.admin("POST", "/admin/agents/alice/keys/rotate", {"grace_s": 1.0})
    assert r.status_code == 201, r.text
    new = r.json()["key"]
    ask(g.claude(new))
    assert httpx2.get(g.url + "/admin/agents", headers={"authorization": f"Bearer {new}"}).status_code == 403
    ask(g.claude(old))  # within the grace period
    time.sleep(1.1)
    with pytest.raises(anthropic.AuthenticationError):
        ask(g.claude(old))
    ask(g.claude(new))
    kid = r.json()["key_id"]
    assert g.admin("POST", f"/admin/keys/{kid}/revoke").status_code == 200
    with pytest.raises(anthropic.AuthenticationError):
        ask(g.claude(new))
    with pytest.raises(openai.AuthenticationError):
        g.gpt(new).chat.completions.create(model="gpt-4.1-mini", messages=HI)
    ask(g.claude(g.keys["bob"]))  # only the offender's key


def test_a_disabled_agent_is_refused_and_enabled_again(live: Any) -> None:
    g = live()
    assert g.admin("POST", "/admin/agents/bob/disable").status_code == 200
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(g.claude(g.keys["bob"]))
    ask(g.claude(g.keys["alice"]))
    assert g.admin("POST", "/admin/agents/bob/enable").status_code == 200
    ask(g.claude(g.keys["bob"]))


def test_a_cap_raised_at_run_time_unblocks_a_blocked_agent_with_an_event(live: Any) -> None:
    g = live(agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": "0.0001", "max_tokens": 2048}})
    client = g.claude(g.keys["bob"])
    with pytest.raises(anthropic.APIStatusError) as e:
        for _ in range(20):
            client.messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=HI)
    assert e.value.status_code == 402
    assert g.gw.board.status["bob"].state == "blocked"
    r = g.admin("PATCH", "/admin/agents/bob", {"daily_usd": "5"})
    assert r.status_code == 200, r.text
    assert g.gw.board.status["bob"].state == "active"
    assert '"type":"agent.unblocked"' in g.events() and "a cap was raised" in g.events()
    client.messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=HI)
    assert g.admin("PATCH", "/admin/agents/bob", {"daily_usd": "ten"}).status_code == 400  # refused; old cap stays
    assert g.gw.config.agents["bob"].daily_usd == 5


def test_limits_changed_at_run_time_apply_from_the_next_call(live: Any) -> None:
    """A rate set on a running agent starts with a full bucket (no false refusal right after the change), and a
    lowered one refuses from the next call."""
    g = live(agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": 5, "limits": {"max_in_flight": 4}}})
    bob = g.claude(g.keys["bob"])
    ask(bob)
    r = g.admin("PATCH", "/admin/agents/bob", {"limits": {"max_in_flight": 4, "requests_per_minute": 3}})
    assert r.status_code == 200, r.text
    for _ in range(3):
        ask(bob)
    with pytest.raises(anthropic.RateLimitError):
        ask(bob)
    assert g.admin("PATCH", "/admin/agents/bob", {"limits": {"max_in_flight": 4}}).status_code == 200
    ask(bob)  # the rate taken off: admitted again


def test_run_time_changes_survive_a_restart(sim: Any, tmp_path: Path) -> None:
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path)
    gw = Gateway(parse(raw, env=ENV), seed=raw, env=ENV)
    with ServerThread(gw) as srv:
        g = Live(srv.url, gw, keys)
        key = g.admin("POST", "/admin/agents", {"name": "carol", "model": "claude-haiku-4-5"}).json()["key"]
        g.admin("POST", "/admin/agents/alice/keys/rotate", {"grace_s": 0})
    gw2 = Gateway(parse(raw, env=ENV), seed=raw, env=ENV)
    with ServerThread(gw2) as srv:
        g = Live(srv.url, gw2, keys)
        ask(g.claude(key))
        with pytest.raises(anthropic.AuthenticationError):
            ask(g.claude(keys["alice"]))


# -- the CLI and SIGHUP, on a `paymaster serve` process ------------------------------------------------------


@pytest.fixture
def served(sim: Any, tmp_path: Path) -> Iterator[Any]:
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path)
    port = free_port()
    raw["listen"] = {"host": "127.0.0.1", "port": port}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "SIM_KEY": PROVIDER_KEY, "PAYMASTER_ADMIN_KEY": ADMIN_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "paymaster.cli", "serve", "--config", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_port(port, alive=lambda: proc.poll() is None)
        yield proc, path, raw, keys, f"http://127.0.0.1:{port}", env
    finally:
        proc.terminate()
        proc.wait(10)


def cli(env: dict[str, str], path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paymaster.cli", *args, "--config", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def key_of(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("key:"))


def test_keys_and_agents_through_the_cli_on_a_running_gateway(served: Any) -> None:
    proc, path, raw, keys, url, env = served
    r = cli(env, path, "agents", "add", "carol", "--model", "claude-haiku-4-5", "--daily-usd", "3")
    assert r.returncode == 0, r.stderr
    carol = key_of(r.stdout)
    ask(anthropic.Anthropic(base_url=url, api_key=carol, max_retries=0))
    r = cli(env, path, "keys", "rotate", "carol", "--grace", "30")
    assert r.returncode == 0, r.stderr
    new = key_of(r.stdout)
    for k in (carol, new):  # the old key within its grace period
        ask(anthropic.Anthropic(base_url=url, api_key=k, max_retries=0))
    kid = next(line.split()[-1] for line in r.stdout.splitlines() if line.startswith("key_id:"))
    r = cli(env, path, "keys", "revoke", kid)
    assert r.returncode == 0, r.stderr
    with pytest.raises(anthropic.AuthenticationError):
        ask(anthropic.Anthropic(base_url=url, api_key=new, max_retries=0))
    r = cli(env, path, "keys", "create", "bob")
    assert r.returncode == 0, r.stderr
    ask(anthropic.Anthropic(base_url=url, api_key=key_of(r.stdout), max_retries=0))
    assert cli(env, path, "agents", "set", "bob", "--daily-usd", "7").returncode == 0
    assert cli(env, path, "agents", "disable", "bob").returncode == 0
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(anthropic.Anthropic(base_url=url, api_key=keys["bob"], max_retries=0))
    bad = cli(env, path, "agents", "set", "bob", "--daily-usd", "lots")
    assert bad.returncode != 0 and "daily_usd" in bad.stderr


def test_sighup_applies_a_valid_file_and_refuses_an_invalid_one(served: Any) -> None:
    proc, path, raw, keys, url, env = served
    client = anthropic.Anthropic(base_url=url, api_key=keys["bob"], max_retries=0)
    ask(client)
    raw["agents"]["bob"]["daily_usd"] = "0.0000001"  # valid: bob's cap drops below a minimal call
    path.write_text(yaml.safe_dump(raw))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        try:
            ask(client)
        except anthropic.APIStatusError as e:
            assert e.status_code == 402
            break
        assert time.monotonic() < deadline, "the reloaded cap never applied"
        time.sleep(0.1)
    path.write_text("agents: [not, a, mapping\n")  # invalid: refused, the old config stays
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None
    ask(anthropic.Anthropic(base_url=url, api_key=keys["alice"], max_retries=0))
    with pytest.raises(anthropic.APIStatusError):
        ask(client)


def test_a_reload_that_changes_what_needs_a_restart_is_refused_and_the_old_config_stays(
    sim: Any, tmp_path: Path
) -> None:
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    gw = Gateway(parse(raw, env=ENV), fleet_file=path, env=ENV)
    with ServerThread(gw) as srv:
        g = Live(srv.url, gw, keys)
        moved = {**raw, "providers": {**raw["providers"], "other": {"kind": "openai", "api_key_env": "SIM_KEY"}}}
        path.write_text(yaml.safe_dump(moved))
        r = g.admin("POST", "/admin/fleet/reload")
        assert r.status_code == 400 and "providers: changed; restart" in r.text
        raw["agents"]["bob"]["daily_usd"] = "ten"
        path.write_text(yaml.safe_dump(raw))
        r = g.admin("POST", "/admin/fleet/reload")
        assert r.status_code == 400 and "agents.bob.daily_usd" in r.text
        assert "fleet.reload_refused" in g.events()
        assert gw.config.agents["bob"].daily_usd == 5
        raw["agents"]["bob"]["daily_usd"] = "7"
        path.write_text(yaml.safe_dump(raw))
        assert g.admin("POST", "/admin/fleet/reload").status_code == 200
        assert gw.config.agents["bob"].daily_usd == 7
        ask(g.claude(keys["bob"]))


def test_a_reload_taking_out_a_blocked_agent_applies_and_its_key_is_refused(sim: Any, tmp_path: Path) -> None:
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path, agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": "0.0000001"}})
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    gw = Gateway(parse(raw, env=ENV), fleet_file=path, env=ENV)
    with ServerThread(gw) as srv:
        g = Live(srv.url, gw, keys)
        with pytest.raises(anthropic.APIStatusError):
            ask(g.claude(keys["bob"]))
        assert gw.board.status["bob"].state == "blocked"
        del raw["agents"]["bob"]
        path.write_text(yaml.safe_dump(raw))
        assert g.admin("POST", "/admin/fleet/reload").status_code == 200
        with pytest.raises(anthropic.AuthenticationError):
            ask(g.claude(keys["bob"]))
        ask(g.claude(keys["alice"]))
