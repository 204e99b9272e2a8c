"""Shared fixtures: a provider simulator and gateways on real loopback servers (uvicorn in threads),
driven by the official SDKs. Real upstream calls are impossible: every provider points at the sim."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from paymaster.app import Gateway
from paymaster.config import Config, hash_key, parse
from paymaster.levers import LEVERS
from paymaster.server import ServerThread
from paymaster.sim import Simulator

PROVIDER_KEY = "sk-sim-provider-key"
ADMIN_KEY = "pm-admin-test-key"


class Clock:
    """An injectable clock (epoch seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    s = Simulator(api_keys={PROVIDER_KEY})
    with ServerThread(s.app) as srv:
        s.url = srv.url  # type: ignore[attr-defined]
        yield s


@pytest.fixture(autouse=True)
def _clean_sim(sim: Simulator) -> None:
    sim.reset()


@dataclass
class Running:
    url: str
    gw: Gateway
    keys: dict[str, str]
    config: Config
    srv: ServerThread
    raw: dict[str, Any] = field(default_factory=dict)

    def anthropic(self, agent: str = "alice", **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.keys[agent], max_retries=0, **kw)

    def openai(self, agent: str = "olivia", **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.keys[agent], max_retries=0, **kw)

    def async_anthropic(self, agent: str = "alice", **kw: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=self.keys[agent], max_retries=0, **kw)

    def async_openai(self, agent: str = "olivia", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.keys[agent], max_retries=0, **kw)

    def admin(self, path: str, key: str = ADMIN_KEY, **params: Any) -> httpx2.Response:
        return httpx2.get(self.url + path, params=params, headers={"authorization": f"Bearer {key}"})

    def spend(self) -> list[Any]:
        """Every agent's windows (spent, reserved) and the ledger: what 'no change to any spend' compares."""
        agents = self.admin("/admin/agents").json()["agents"]
        return [[(a["name"], w["spent_usd"], w["reserved_usd"]) for w in a["windows"]] for a in agents] + [
            len(self.ledger())
        ]

    def ledger(self, agent: str | None = None) -> list[dict[str, Any]]:
        """The ledger, read the way an operator does (admin API, so the store is only touched by its loop)."""
        params: dict[str, Any] = {"limit": 1000}
        if agent:
            params["agent"] = agent
        r = self.admin("/admin/ledger", **params)
        assert r.status_code == 200, r.text
        return r.json()["data"]


def fleet(sim_url: str, keys: dict[str, str], tmp: Path, **over: Any) -> dict[str, Any]:
    agents = {
        "alice": {
            "model": "claude-haiku-4-5",
            "models": ["claude-haiku-4-5", "claude-sonnet-4-6"],
            "daily_usd": 5,
            "monthly_usd": 50,
            "max_tokens": 2048,
        },
        "olivia": {
            "model": "gpt-4.1-mini",
            "models": ["gpt-4.1-mini", "gpt-4o"],
            "daily_usd": 5,
            "monthly_usd": 50,
            "max_tokens": 2048,
        },
        "bob": {"model": "claude-haiku-4-5", "daily_usd": 5, "monthly_usd": 50, "max_tokens": 2048},
    }
    agents.update(over.pop("agents", {}))
    for name, a in agents.items():
        a["key_sha256"] = hash_key(keys[name])
    raw: dict[str, Any] = {
        "ledger": str(tmp / "ledger.db"),
        "admin": {"key_sha256": hash_key(ADMIN_KEY)},
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": sim_url, "api_key_env": "SIM_KEY", "timeout_s": 5},
            "openai": {"kind": "openai", "base_url": sim_url + "/v1", "api_key_env": "SIM_KEY", "timeout_s": 5},
        },
        "agents": agents,
    }
    raw.update(over)
    return raw


@pytest.fixture
def gateway(sim: Simulator, tmp_path: Path) -> Iterator[Any]:
    """`gateway(**fleet_overrides, clock=..., levers=...)` starts a gateway; all are stopped after the test."""
    started: list[ServerThread] = []

    def start(clock: Any = None, levers: tuple[str, ...] | None = None, **over: Any) -> Running:
        if "ledger" not in over and any(s.thread.is_alive() for s in started):
            over["ledger"] = str(tmp_path / f"ledger-{len(started)}.db")  # one writer per ledger: a ledger each
        names = {"alice", "olivia", "bob", *over.get("agents", {})}
        keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in names}
        raw = fleet(sim.url, keys, tmp_path, **over)  # type: ignore[attr-defined]
        config = parse(raw, env={"SIM_KEY": PROVIDER_KEY})
        gw = Gateway(config, clock=clock or time.time, levers=LEVERS if levers is None else levers)
        srv = ServerThread(gw).start()
        started.append(srv)
        return Running(srv.url, gw, keys, config, srv, raw)

    yield start
    for srv in started:
        srv.stop()
