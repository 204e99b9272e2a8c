"""A worst case past what the shared stores hold (Postgres bigint, Redis' integer counters), on replicas: a capped
agent's call is refused as on one replica (402), never taken for a store outage — which `on_store_outage:
admit_unmetered` admitted with nothing held, past the cap; an agent with no cap is served, its calls at once.

Needs Redis and Postgres (tests/services.py): skipped without them, failed under CI.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anthropic
import yaml

from paymaster.config import hash_key
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_attack_tool_counts import anthropic_body
from tests.test_replicas import fleet_file, serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)


def test_a_worst_case_past_the_stores_is_refused_for_a_capped_agent_and_served_for_an_uncapped_one(
    sim_process: str,  # noqa: F811
    tmp_path: Path,
    shared: Shared,  # noqa: F811
) -> None:
    agents = {
        "ursula": {"model": "claude-haiku-4-5", "max_tokens": 2048, "key_sha256": hash_key("pm-ursula-1")},
        "cara": {"model": "claude-haiku-4-5", "max_tokens": 2048, "daily_usd": 5, "key_sha256": hash_key("pm-cara-1")},
    }
    path = fleet_file(tmp_path, sim_process, shared, agents)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "on_store_outage": "admit_unmetered"}))
    procs, (port,) = serve(path, 1)
    got: list[tuple[str, int, Any]] = []

    def one(key: str) -> None:
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=key, max_retries=0)
        try:
            r = client.messages.with_raw_response.create(**anthropic_body(10**15))
            got.append((key, r.status_code, None))
        except anthropic.APIStatusError as e:
            got.append((key, e.status_code, e.body))

    try:
        threads = [threading.Thread(target=one, args=(k,)) for k in ("pm-ursula-1", "pm-ursula-1", "pm-cara-1")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop(procs)
    assert sorted(g[:2] for g in got) == [("pm-cara-1", 402), ("pm-ursula-1", 200), ("pm-ursula-1", 200)], got
    rows = shared.pg("SELECT agent, status, cost_nanos, error FROM ledger ORDER BY agent")
    cara = [r for r in rows if r["agent"] == "cara"]
    assert [r["status"] for r in cara] == ["refused"] and cara[0]["cost_nanos"] == 0, cara  # before: unmetered, sent
    assert all("unmetered" not in r["error"] for r in rows)
    assert [r["status"] for r in rows if r["agent"] == "ursula"] == ["ok", "ok"]
