"""The blackboard and ledger an orchestrator reads: agent status, events (SSE), the paged ledger."""

from __future__ import annotations

import threading
import time

import anthropic
import httpx2
import orjson
import pytest

from tests.conftest import ADMIN_KEY


def read_events(
    url: str, n: int, out: list, ready: threading.Event, last_id: str | None = None, until: str | None = None
) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    if last_id:
        headers["last-event-id"] = last_id
    with httpx2.stream("GET", url + "/admin/events", headers=headers, timeout=10) as r:
        assert r.headers["content-type"] == "text/event-stream"
        frame: dict = {}
        for line in r.iter_lines():
            ready.set()
            if line.startswith("id: "):
                frame["id"] = line[4:]
            elif line.startswith("data: "):
                frame["data"] = orjson.loads(line[6:])
            elif line == "" and "data" in frame:
                out.append(frame)
                frame = {}
                if len(out) >= n or (until and out[-1]["data"]["type"] == until):
                    return


def test_blocked_and_threshold_events_reach_an_orchestrator(gateway):
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.0016", "max_tokens": 100}})
    events: list = []
    ready = threading.Event()
    t = threading.Thread(target=read_events, args=(gw.url, 10, events, ready, None, "agent.blocked"), daemon=True)
    t.start()
    assert ready.wait(5)
    c = gw.anthropic()
    call = dict(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "q [sim:tokens=100]"}])
    for _ in range(3):  # each ~$0.0005: the fourth cannot fit
        c.messages.create(**call)
    with pytest.raises(anthropic.APIStatusError):
        c.messages.create(**call)
    t.join(5)
    kinds = [e["data"]["type"] for e in events]
    assert kinds.count("budget.threshold") >= 1 and "agent.blocked" in kinds, kinds
    blocked = next(e["data"] for e in events if e["data"]["type"] == "agent.blocked")
    assert blocked["agent"] == "alice" and blocked["window"] == "agent daily" and blocked["until"]

    # replay from Last-Event-ID: a reconnecting orchestrator misses nothing
    replay: list = []
    read_events(gw.url, 1, replay, threading.Event(), last_id=events[0]["id"])
    assert replay[0]["id"] == events[1]["id"]

    view = gw.admin("/admin/agents/alice").json()
    assert view["status"]["state"] == "blocked" and view["refused_calls"] == 1
    windows = {w["window"]: w for w in view["windows"]}
    assert windows["agent daily"]["cap_usd"] == "0.001600" and windows["agent daily"]["reserved_usd"] == "0.000000"
    assert windows["fleet daily"]["cap_usd"] is None
    everyone = gw.admin("/admin/agents").json()["agents"]
    assert {a["name"]: a["status"]["state"] for a in everyone} == {
        "alice": "blocked",
        "olivia": "active",
        "bob": "active",
    }


def test_ledger_pages_and_filters(gateway):
    gw = gateway()
    c = gw.anthropic()
    for i in range(5):
        c.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": f"{i}"}])
    gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}])
    page1 = gw.admin("/admin/ledger", agent="alice", limit=3).json()
    assert len(page1["data"]) == 3 and page1["next_after"] == page1["data"][-1]["seq"]
    page2 = gw.admin("/admin/ledger", agent="alice", limit=3, after=page1["next_after"]).json()
    assert len(page2["data"]) == 2 and page2["next_after"] is None
    ids = [r["id"] for r in page1["data"] + page2["data"]]
    assert len(set(ids)) == 5
    assert [r["agent"] for r in gw.admin("/admin/ledger", model="gpt-4.1-mini").json()["data"]] == ["olivia"]
    assert gw.admin("/admin/ledger", since=time.time() + 60).json()["data"] == []
    assert gw.admin("/admin/ledger", reconcile="true").json()["data"] == []
