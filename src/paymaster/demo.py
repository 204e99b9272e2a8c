"""`paymaster demo`: the main job on the embedded defaults.

A provider simulator and the gateway start on loopback with a SQLite ledger in a temp dir; a
five-agent content pipeline (classify → research → outline → draft → validate) runs several tasks
through the official `anthropic` and `openai` SDKs. The drafter's daily cap is small: it is blocked
part-way (HTTP 402, `budget_exceeded`) while the other four agents finish every task.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import yaml

from .app import Gateway
from .config import load
from .report import render
from .server import ServerThread
from .sim import Simulator

PIPELINE = [
    # agent, API, model, daily cap, prompt template, answer length (simulator tokens)
    (
        "classifier",
        "anthropic",
        "claude-haiku-4-5",
        "2.00",
        "Classify the topic '{topic}' into one content category.",
        12,
    ),
    ("researcher", "openai", "gpt-4.1-mini", "2.00", "List the key facts a writer needs about {topic}.", 400),
    ("outliner", "anthropic", "claude-haiku-4-5", "2.00", "Outline a 5-section article on {topic}.", 250),
    ("drafter", "anthropic", "claude-sonnet-4-6", "0.05", "Write the full article on {topic} from the outline.", 900),
    ("validator", "openai", "gpt-4.1-mini", "2.00", "Check this draft about {topic} for factual errors.", 120),
]
TOPICS = [
    "solar storage",
    "urban beekeeping",
    "sourdough science",
    "deep-sea cables",
    "rust in embedded systems",
    "tidal power",
    "coral restoration",
    "quantum sensors",
    "bicycle logistics",
    "vertical farms",
]


def fleet(sim_url: str, keys: dict[str, str], ca_bundle: str | None = None) -> dict[str, Any]:
    tls = {"ca_bundle": ca_bundle} if ca_bundle else {}
    return {
        "timezone": "UTC",
        "ledger": "ledger.db",
        "observability": {"access_log": "access.log"},  # one JSON line per call, beside the ledger (not the terminal)
        "admin": {"key_env": "PAYMASTER_DEMO_ADMIN_KEY"},
        "fleet": {"daily_usd": 50, "monthly_usd": 500},
        "defaults": {"max_tokens": 1024},
        "providers": {
            "anthropic": {
                "kind": "anthropic",
                "base_url": sim_url,
                "api_key_env": "PAYMASTER_DEMO_PROVIDER_KEY",
                **tls,
            },
            "openai": {
                "kind": "openai",
                "base_url": sim_url + "/v1",
                "api_key_env": "PAYMASTER_DEMO_PROVIDER_KEY",
                **tls,
            },
        },
        "agents": {
            name: {"key_env": f"PAYMASTER_DEMO_KEY_{name.upper()}", "model": model, "daily_usd": cap, "monthly_usd": 20}
            for name, _, model, cap, _, _ in PIPELINE
        },
    }


def run(tasks: int = 6, keep: bool = False) -> int:
    env = {f"PAYMASTER_DEMO_KEY_{p[0].upper()}": "pm-" + secrets.token_urlsafe(16) for p in PIPELINE}
    env["PAYMASTER_DEMO_ADMIN_KEY"] = admin_key = "pm-admin-" + secrets.token_urlsafe(16)
    env["PAYMASTER_DEMO_PROVIDER_KEY"] = provider_key = "sk-sim-" + secrets.token_urlsafe(8)
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="paymaster-demo-") as tmp:
        sim = Simulator(latency_ms=2.0, api_keys={provider_key})
        with ServerThread(sim.app, tls=True) as sim_srv:  # the real path: the provider hop over HTTPS
            assert sim_srv.tls is not None
            path = Path(tmp) / "fleet.yaml"
            path.write_text(yaml.safe_dump(fleet(sim_srv.url, env, str(sim_srv.tls.ca_pem))))
            gw = Gateway(load(path))
            with ServerThread(gw) as gw_srv:
                print(f"paymaster demo: simulator on {sim_srv.url}, gateway on {gw_srv.url}, ledger in {tmp}")
                print(f"pipeline: {' → '.join(p[0] for p in PIPELINE)}; {tasks} tasks\n")
                outcomes = pipeline(gw_srv.url, env, tasks)
                print(table(gw_srv.url, admin_key))
                print("\nper task (✗ = refused by the budget):")
                for topic, done in outcomes:
                    print(f"  {topic:26} {done}")
                print("\nevents:")
                for e in gw.board.history:
                    line = e[1].decode().split("data: ", 1)[1].strip()
                    print("  " + line)
                print(f"\nadmin API: {gw_srv.url}/admin/agents (Authorization: Bearer {admin_key})")
                if keep:
                    print("serving until Ctrl-C")
                    try:
                        while True:
                            time.sleep(3600)
                    except KeyboardInterrupt:
                        pass
    return 0


def pipeline(url: str, env: dict[str, str], tasks: int) -> list[tuple[str, str]]:
    clients: dict[str, Any] = {}
    for name, api, *_ in PIPELINE:
        key = env[f"PAYMASTER_DEMO_KEY_{name.upper()}"]
        if api == "anthropic":
            clients[name] = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
        else:
            clients[name] = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    outcomes = []
    for i in range(tasks):
        topic = TOPICS[i % len(TOPICS)]
        context = ""
        done = []
        for name, api, model, _, template, length in PIPELINE:
            prompt = f"{template.format(topic=topic)}\n{context[-2000:]}\n[sim:tokens={length}]"
            try:
                if api == "anthropic":
                    msg = clients[name].messages.create(
                        model=model, max_tokens=1024, messages=[{"role": "user", "content": prompt}]
                    )
                    context = msg.content[0].text
                else:
                    chat = clients[name].chat.completions.create(
                        model=model, messages=[{"role": "user", "content": prompt}]
                    )
                    context = chat.choices[0].message.content or ""
                done.append(name)
            except (anthropic.APIStatusError, openai.APIStatusError) as e:
                if e.status_code != 402:
                    raise
                done.append(f"{name}✗")
        outcomes.append((topic, " ".join(done)))
    return outcomes


def table(url: str, admin_key: str) -> str:
    with httpx2.Client(base_url=url, headers={"authorization": f"Bearer {admin_key}"}) as c:
        agents = c.get("/admin/agents").json()["agents"]
        rows = []
        for a in agents:
            ledger = c.get("/admin/ledger", params={"agent": a["name"], "limit": 1000}).json()["data"]
            day = next(w for w in a["windows"] if w["window"] == "agent daily")
            rows.append(
                [
                    a["name"],
                    a["model"],
                    len(ledger),
                    a["refused_calls"],
                    sum(1 for r in ledger if r["status"] != "ok"),
                    sum(r["input_tokens"] for r in ledger),
                    sum(r["output_tokens"] for r in ledger),
                    day["spent_usd"],
                    a["remaining_daily_usd"],
                    a["status"]["state"],
                ]
            )
    return render(rows)
