"""Alerts across replicas: two `paymaster serve` processes on one Redis and Postgres, one webhook receiver. Every
replica sees every event (the event stream is shared) and each decides thresholds from its own view of the
counters; the receiver must still get each event once and each threshold once. Needs Redis and Postgres
(tests/services.py): skipped without them, failed under CI."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import orjson
import yaml

from paymaster.config import hash_key
from paymaster.server import ServerThread
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_alerts import Receiver, valid
from tests.test_replicas import fleet_file, serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)

KEY = "pm-alice-alerts"


def ask(port: int) -> None:
    c = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=KEY, max_retries=0)
    c.messages.create(
        model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": "hi [sim:tokens=200]"}]
    )


def test_each_event_and_each_threshold_reaches_the_webhook_once(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    receiver = Receiver()
    with ServerThread(receiver) as hook_srv:
        agents = {"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.01", "key_sha256": hash_key(KEY)}}
        path = fleet_file(tmp_path, sim_process, shared, agents)
        raw = yaml.safe_load(path.read_text())
        raw["alerts"] = {
            "thresholds": {"alice": [0.1, 0.2, 0.3, 0.4]},
            "webhooks": [{"url": hook_srv.url + "/hook", "secret_env": "SIM_KEY", "events": ["budget.threshold"]}],
        }
        path.write_text(yaml.safe_dump(raw))
        procs, ports = serve(path, 2)
        try:
            for i in range(4):  # ~$0.001 each of $0.01: 0.1 .. 0.4 crossed, on both replicas by turns
                ask(ports[i % 2])
                ask(ports[(i + 1) % 2])
            time.sleep(2.0)  # every replica has had its chance to post
        finally:
            stop(procs)
    posts = receiver.got
    events = [orjson.loads(p["body"]) for p in posts]
    ids = [p["headers"]["x-paymaster-event-id"] for p in posts]
    assert all(valid(p) for p in posts)
    assert len(ids) == len(set(ids)), ids  # no event posted by both replicas
    assert sorted(e["threshold"] for e in events) == [0.1, 0.2, 0.3, 0.4], events  # each threshold once
