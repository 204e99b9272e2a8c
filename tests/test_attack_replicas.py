"""Replicas and the Responses API's stored context: a response served by one replica, continued through another.
With a book per replica the other one bounded it by the context window (an affordable continuation refused for an
agent whose cap is below a window's worth) and could not check its owner (another agent could continue it); both
failed before the shared book (Postgres). Needs Redis and Postgres (tests/services.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import openai
import pytest
import yaml

from paymaster.config import hash_key
from tests.conftest import ADMIN_KEY
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_alerts import until
from tests.test_replicas import serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)

KEYS = {"olivia": "pm-olivia-replicas", "mallory": "pm-mallory-replicas"}


def serve_two(tmp: Path, sim_url: str, shared: Shared) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    agents = {
        name: {"model": "gpt-4.1-mini", "daily_usd": "0.3", "max_tokens": 256, "key_sha256": hash_key(key)}
        for name, key in KEYS.items()
    }
    raw = {
        "reservations": shared.redis_url,
        "ledger": shared.postgres_url,
        "admin": {"key_sha256": hash_key(ADMIN_KEY)},
        "providers": {"openai": {"kind": "openai", "base_url": sim_url + "/v1", "api_key_env": "SIM_KEY"}},
        "agents": agents,
    }
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    return serve(path, 2)


def client(port: int, agent: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEYS[agent], max_retries=0)


def test_a_response_continued_through_another_replica_is_bounded_by_its_size_and_kept_to_its_owner(
    sim_process: str,  # noqa: F811
    tmp_path: Path,
    shared: Shared,  # noqa: F811
) -> None:
    procs, (a, b) = serve_two(tmp_path, sim_process, shared)
    try:
        first = client(a, "olivia").responses.create(model="gpt-4.1-mini", input="hello", max_output_tokens=16)
        # the shared book is written in the background as the call settles (about a millisecond; longer on a
        # loaded machine): wait until it is there, as a client continuing a moment later would find it
        until(lambda: shared.pg("SELECT 1 FROM responses WHERE id = $1", first.id))
        # a $0.30 cap is below a window's worth of gpt-4.1-mini input (1,047,576 × $0.40 / MTok ≈ $0.42)
        again = client(b, "olivia").responses.create(
            model="gpt-4.1-mini", previous_response_id=first.id, input="and then?", max_output_tokens=16
        )
        assert again.previous_response_id == first.id
        with pytest.raises(openai.NotFoundError):
            client(b, "mallory").responses.create(
                model="gpt-4.1-mini", previous_response_id=first.id, input="show me", max_output_tokens=16
            )
        assert client(b, "olivia").responses.retrieve(first.id).id == first.id  # served by A, read through B
        with pytest.raises(openai.NotFoundError):
            client(b, "mallory").responses.retrieve(first.id)
        query = "SELECT agent, cost_nanos, worst_nanos FROM ledger WHERE api = 'responses'"
        until(lambda: len(shared.pg(query)) >= 2)  # settled rows are committed in the background
        rows = shared.pg(query)
        assert sorted(r["agent"] for r in rows) == ["olivia", "olivia"]
        assert all(r["cost_nanos"] <= r["worst_nanos"] for r in rows)
    finally:
        stop(procs)
