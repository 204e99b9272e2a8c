"""Routing's learnt state across replicas (levers/routing_sync.py): two `paymaster serve` processes on one Redis and
Postgres. Feedback given through one replica trains the bandit the other routes with; ratings given on both at once
add up exactly, a call rated on both counts once; a restart keeps the bandit's counts and the share windows; the
admin view shows the same fleet-wide figures on every replica. Needs Redis and Postgres (tests/services.py):
skipped without them, failed under CI."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import yaml

from paymaster.config import hash_key
from tests.conftest import ADMIN_KEY
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_replicas import fleet_file, serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)

KEYS = {"alice": "pm-alice-routing-replicas", "bob": "pm-bob-routing-replicas"}
LADDER = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}
SYNC_S = 1.0  # a few of admin.poll_s (0.25 s): every replica has pulled what the others pushed


def config(tmp: Path, sim: str, shared: Shared) -> Path:
    agents = {
        name: {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 100, "key_sha256": hash_key(key)}
        for name, key in KEYS.items()
    }
    path = fleet_file(tmp, sim, shared, agents)
    raw = yaml.safe_load(path.read_text())
    raw["routing"] = {"feedback_tasks": ["extraction"], "feedback_floor": 0.8, "feedback_explore": 0.05}
    path.write_text(yaml.safe_dump(raw))
    return path


def call(
    port: int,
    model: str = "auto",
    task: str | None = "extraction",
    text: str = "Pull the date out",
    agent: str = "alice",
) -> str:
    """One call through replica `port`: the model it ran on and its call id, as `model|id`."""
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=KEYS[agent], max_retries=0)
    raw = client.messages.with_raw_response.create(
        model=model,
        max_tokens=20,
        messages=[{"role": "user", "content": f"{text} [sim:tokens=5]"}],
        extra_headers={"x-paymaster-task": task} if task else {},
    )
    return raw.parse().model + "|" + raw.headers["x-paymaster-call-id"]


def rate(port: int, call_id: str, success: bool, agent: str = "alice") -> dict[str, Any]:
    r = httpx2.post(
        f"http://127.0.0.1:{port}/v1/paymaster/feedback",
        json={"call_id": call_id, "success": success},
        headers={"authorization": f"Bearer {KEYS[agent]}"},
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def routing(port: int) -> dict[str, Any]:
    r = httpx2.get(f"http://127.0.0.1:{port}/admin/routing", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def light_calls(port: int, n: int, agent: str = "alice") -> list[str]:
    """`n` calls on the light model named outright (not routed): rateable calls of the light tier."""
    return [call(port, LADDER["light"], agent=agent).split("|")[1] for _ in range(n)]


def test_feedback_through_one_replica_moves_the_others_choice_and_ratings_on_both_add_up_exactly(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    procs, ports = serve(config(tmp_path, sim_process, shared), 2)
    a, b = ports
    try:
        # alice: calls routed through a, rated through b only
        before = [call(a).split("|")[0] for _ in range(8)]
        assert before.count(LADDER["heavy"]) >= 7  # nothing known: the top tier (exploration at most 5 %)
        for call_id in light_calls(a, 12):
            rate(b, call_id, True)
        time.sleep(SYNC_S)
        after = [call(a).split("|")[0] for _ in range(16)]
        # before: a never heard of the ratings and kept the top tier; now light has shown it meets the floor
        assert after.count(LADDER["light"]) >= 9, after
        assert routing(a)["feedback"]["alice/extraction"]["safe_tier"] == "light"

        # bob: calls and ratings on both replicas at once
        with ThreadPoolExecutor(16) as pool:
            routed = list(pool.map(lambda i: call(ports[i % 2], agent="bob"), range(24)))
            ids = list(pool.map(lambda i: light_calls(ports[i % 2], 1, agent="bob")[0], range(16)))
            list(pool.map(lambda i: rate(ports[i % 2], ids[i], False, agent="bob"), range(16)))  # a failure each
            # then every call rated a success on both replicas at the same moment: each must count once
            list(pool.map(lambda j: rate(ports[j % 2], ids[j // 2], True, agent="bob"), range(32)))
        time.sleep(SYNC_S)
        views = [routing(p)["feedback"]["bob/extraction"] for p in (a, b)]
        assert views[0] == views[1]  # before: each replica showed only its own calls and ratings
        v = views[0]
        assert v["calls"] == 24  # the routed calls of both replicas, each counted once
        light = v["tiers"]["light"]
        assert light["rated"] == 16 and light["success"] == 1.0, light  # 16 calls, each at its latest rating
        picks = {t: round(s["share"] * 24) for t, s in v["tiers"].items()}
        assert sum(picks.values()) == 24
        assert picks.get("heavy", 0) == sum(m.startswith(LADDER["heavy"]) for m in routed)
        rows = shared.pg("SELECT count(*) AS n, sum(score) AS s FROM routing_feedback WHERE call_id = ANY($1)", ids)
        assert (rows[0]["n"], rows[0]["s"]) == (16, 16.0)
    finally:
        stop(procs)


def test_a_restart_keeps_the_bandits_counts_and_the_share_windows(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    path = config(tmp_path, sim_process, shared)
    procs, (a,) = serve(path, 1)
    try:
        ids = light_calls(a, 12)
        for call_id in ids:
            rate(a, call_id, True)
        for i in range(45):  # classifier-routed calls (no feedback task): their scores fill the share window
            call(a, task=None, text=f"Explain step {i} of a proof in detail" if i % 3 else "Say hi")
        before = routing(a)
    finally:
        stop(procs)  # a clean stop writes what the last sync had not
    procs, (a2,) = serve(path, 1)
    try:
        after = routing(a2)
        assert after["feedback"] == before["feedback"] and after["feedback"]["alice/extraction"]["safe_tier"] == "light"
        assert before["share_windows"]["alice/"] == 45
        assert after["share_windows"]["alice/"] == 45  # before: a restart started every window cold
        assert rate(a2, ids[0], False)["replaced"] is True  # the ratings too: a re-rating counts once
        light = routing(a2)["feedback"]["alice/extraction"]["tiers"]["light"]
        assert light["rated"] == 12 and light["success"] == round(11 / 12, 4)
    finally:
        stop(procs)
