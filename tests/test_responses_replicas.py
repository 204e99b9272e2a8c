"""The Responses API's book across replicas: two `paymaster serve` processes on one Redis and Postgres. A response
made through one replica is the same agent's on the other — retrievable there, continued there with its context
bounded from the book — and still nobody else's: another agent naming it through either replica is told it does
not exist. Needs Redis and Postgres (tests/services.py): skipped without them, failed under CI."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
import yaml

from paymaster.config import hash_key
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_attack_responses import streaming
from tests.test_replicas import fleet_file, serve, sim_process, stop  # noqa: F401  (the `sim_process` fixture)

KEYS = {"olivia": "pm-olivia-replicas", "mallory": "pm-mallory-replicas"}


def client(port: int, agent: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEYS[agent], max_retries=0)


def test_a_response_made_on_one_replica_is_its_agents_alone_on_every_replica(
    sim_process: str,  # noqa: F811  (the fixture)
    tmp_path: Path,
    shared: Shared,
) -> None:
    agents = {n: {"model": "gpt-4.1-mini", "daily_usd": "5", "key_sha256": hash_key(k)} for n, k in KEYS.items()}
    path = fleet_file(tmp_path, sim_process, shared, agents)
    raw = yaml.safe_load(path.read_text())
    raw["providers"]["openai"] = {"kind": "openai", "base_url": sim_process + "/v1", "api_key_env": "SIM_KEY"}
    path.write_text(yaml.safe_dump(raw))
    procs, (a, b) = serve(path, 2)
    try:
        first = client(a, "olivia").responses.create(
            model="gpt-4.1-mini", input="Name three rivers.", max_output_tokens=64
        )
        time.sleep(0.5)  # the book is written to Postgres as the call settles, in the background
        again = client(b, "olivia").responses.retrieve(first.id)  # before: 404 — replica b had never seen it
        assert again.id == first.id
        nxt = client(b, "olivia").responses.with_raw_response.create(
            model="gpt-4.1-mini", input="And three lakes.", previous_response_id=first.id, max_output_tokens=64
        )
        assert nxt.status_code == 200
        for port in (a, b):  # another agent: not found, whichever replica it asks
            with pytest.raises(openai.NotFoundError):
                client(port, "mallory").responses.retrieve(first.id)
            with pytest.raises(openai.NotFoundError):
                client(port, "mallory").responses.create(
                    model="gpt-4.1-mini", input="Go on.", previous_response_id=first.id, max_output_tokens=64
                )
        client(b, "olivia").responses.delete(first.id)
        time.sleep(0.2)
        with pytest.raises(openai.NotFoundError):  # deleted through b: gone on a as well (a had it in memory)
            client(a, "olivia").responses.retrieve(first.id)
    finally:
        stop(procs)


def ledger_rows(shared: Shared) -> list[dict]:
    """The Responses calls' ledger rows, read from Postgres after the replicas stopped (all settled)."""
    return [dict(r) for r in shared.pg("SELECT * FROM ledger WHERE api = 'responses' ORDER BY seq")]


def test_a_conversation_grown_on_one_replica_is_bounded_by_its_new_size_on_the_other(
    sim,  # the in-process simulator: its token delay can be set while the replicas call it
    tmp_path: Path,
    shared: Shared,
) -> None:
    """API reference, responses.create `conversation`: the conversation's items are prepended to the input and
    each response's items are appended to it. A load balancer sends a conversation's calls to any replica: a
    replica that served it before must not bound the next call by the size it saw then, and a call that starts
    while another is in flight on the conversation through another replica is of unknown size. Every call's
    bill must fit its hold."""
    import httpx2

    from tests.conftest import PROVIDER_KEY

    agents = {"olivia": {"model": "gpt-4.1-mini", "daily_usd": "5", "key_sha256": hash_key(KEYS["olivia"])}}
    path = fleet_file(tmp_path, sim.url, shared, agents)
    raw = yaml.safe_load(path.read_text())
    raw["providers"]["openai"] = {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"}
    path.write_text(yaml.safe_dump(raw))
    conv = httpx2.post(sim.url + "/v1/conversations", json={}, headers={"authorization": f"Bearer {PROVIDER_KEY}"})
    conv_id = conv.json()["id"]
    procs, (a, b) = serve(path, 2)
    try:

        def ask(port: int, text: str) -> None:
            client(port, "olivia").responses.create(
                model="gpt-4.1-mini", conversation=conv_id, input=text, max_output_tokens=16
            )

        ask(a, "hello")  # replica a learns the conversation's (small) size
        ask(b, "the figures for the quarter " * 4000)  # ~24,000 tokens more, through b
        time.sleep(0.5)
        ask(a, "and now?")  # a must bound it by the grown size

        sim.token_delay = 0.02
        try:
            t = streaming(sim, "more figures", lambda: client(a, "olivia").responses.stream(
                model="gpt-4.1-mini", conversation=conv_id, max_output_tokens=100,
                input="more figures for the year " * 4000 + " [sim:tokens=60]"))  # fmt: skip
            ask(b, "and meanwhile?")  # in flight through a: its size is unknown to b
            t.join()
        finally:
            sim.token_delay = 0.0
        time.sleep(0.5)
        ask(b, "and finally?")
        time.sleep(0.5)
    finally:
        stop(procs)
    rows = ledger_rows(shared)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), rows
    for row in rows:
        assert row["cost_nanos"] <= row["worst_nanos"], row
