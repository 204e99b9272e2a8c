"""Conversation summaries across replicas: two `paymaster serve` processes on one Redis and Postgres.

A load balancer spreads a conversation's calls over replicas. The summary of its older turns is the fleet's:
written once, whichever replica the next call reaches, and sent as the same bytes from every replica (a summary
that changed with the replica would move the provider's cached prefix on every alternation). Two replicas that
summarise the same prefix at once both send the one stored first; the other summary was paid for, and stays
booked. The simulator answers as a sampled model does here (`sim.sampled`): the same summariser request gives
another summary each time, so two summaries of one prefix differ as real ones do.

Needs Redis and Postgres (tests/services.py): skipped without them, failed under CI.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anthropic

from paymaster.config import hash_key
from paymaster.levers.compression import TASK
from paymaster.sim import Simulator
from tests.conversation_rules import anthropic_problems
from tests.services import Shared, shared_store  # noqa: F401  (the `shared` fixture)
from tests.test_compression_e2e import SMALL, TOOLS_A, anthropic_loop, search_result, sent
from tests.test_replicas import fleet_file, serve, stop

KEY = "pm-cara-summaries"
MAIN, LIGHT = "claude-sonnet-4-6", "claude-haiku-4-5"


def fleet(tmp_path: Path, sim: Simulator, shared: Shared) -> Path:
    agents = {
        "cara": {
            "model": MAIN,
            "models": [MAIN, LIGHT],
            "daily_usd": "5",
            "max_tokens": 1024,
            "key_sha256": hash_key(KEY),
            "compression": {"summarise": SMALL},
        }
    }
    return fleet_file(tmp_path, sim.url, shared, agents)  # type: ignore[attr-defined]


def ask(port: int, msgs: list[dict[str, Any]]) -> Any:
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=KEY, max_retries=0)
    r = client.messages.with_raw_response.create(model=MAIN, max_tokens=100, messages=msgs, tools=TOOLS_A)
    assert r.http_response.status_code == 200
    return r


def summary_sent(body: dict[str, Any]) -> str:
    """The summary the provider received: the first user turn's text (the summary's header and text)."""
    return body["messages"][0]["content"][0]["text"]


def grown(msgs: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return msgs + [{"role": "assistant", "content": f"Widget {n}."}, {"role": "user", "content": f"And #{n}?"}]


def compression_rows(shared: Shared) -> list[dict[str, Any]]:
    return [dict(r) for r in shared.pg("SELECT * FROM ledger WHERE task = $1 ORDER BY seq", TASK)]


def test_a_conversation_alternating_replicas_is_summarised_once_and_sent_alike(
    sim: Simulator, tmp_path: Path, shared: Shared
) -> None:
    sim.sampled = True
    procs, (a, b) = serve(fleet(tmp_path, sim, shared), 2)
    try:
        first = anthropic_loop(6, search_result(8))
        r = ask(a, first)
        assert "summary new" in r.headers["x-paymaster-compression"]
        second = grown(first, 2)
        r = ask(b, second)  # before: replica b had no summary, wrote its own (another text)
        assert "summary reused" in r.headers["x-paymaster-compression"], r.headers["x-paymaster-compression"]
        r = ask(a, grown(second, 3))
        assert "summary reused" in r.headers["x-paymaster-compression"]
        fourth = grown(grown(second, 3), 4)
        r = ask(b, fourth)
        assert "summary reused" in r.headers["x-paymaster-compression"]
        assert len(sent(sim, LIGHT)) == 1  # summarised once for the fleet
        # grown past the threshold again through b: b extends a's summary; a then sends b's extension
        longer = [*fourth, {"role": "assistant", "content": "Widget 5."}, *anthropic_loop(10, search_result(8))[4:]]
        r = ask(b, longer)
        assert "summary extended" in r.headers["x-paymaster-compression"], r.headers["x-paymaster-compression"]
        r = ask(a, grown(longer, 6))
        assert "summary reused" in r.headers["x-paymaster-compression"], r.headers["x-paymaster-compression"]
    finally:
        stop(procs)
    asks = sent(sim, LIGHT)
    mains = sent(sim, MAIN)
    assert len(asks) == 2 and len(mains) == 6
    assert all(anthropic_problems(body["messages"]) == [] for body in mains)
    assert len({summary_sent(body) for body in mains[:4]}) == 1  # the same prefix from both replicas
    assert len({summary_sent(body) for body in mains[4:]}) == 1  # and the extension too
    assert summary_sent(mains[0]).split("\n", 1)[1] in asks[1]["messages"][0]["content"]  # extended, not rewritten
    rows = compression_rows(shared)
    assert len(rows) == 2 and all(r["cost_nanos"] > 0 and r["model"] == LIGHT for r in rows)
    stored = shared.pg("SELECT upto, model, cost_nanos, summary FROM summaries WHERE agent = 'cara' ORDER BY upto")
    assert len(stored) == 2 and all(s["model"] == LIGHT and s["cost_nanos"] > 0 for s in stored)
    assert stored[0]["summary"] in summary_sent(mains[0]) and stored[1]["summary"] in summary_sent(mains[5])


def test_two_replicas_summarising_one_prefix_at_once_send_one_summary_and_book_both(
    sim: Simulator, tmp_path: Path, shared: Shared
) -> None:
    procs, (a, b) = serve(fleet(tmp_path, sim, shared), 2)
    try:
        sim.sampled = True
        sim.latency = 1.5  # both summariser calls in flight at once: neither replica finds the other's yet
        msgs = anthropic_loop(6, search_result(8))
        headers: dict[int, str] = {}

        def call(port: int) -> None:
            headers[port] = ask(port, msgs).headers["x-paymaster-compression"]

        threads = [threading.Thread(target=call, args=(p,)) for p in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sim.latency = 0.0
        assert len(headers) == 2 and all("summary new" in h for h in headers.values()), headers
        assert len(sent(sim, LIGHT)) == 2  # both summarised (paid), with different texts (a sampled model)
        assert len({str(body) for body in sent(sim, LIGHT)}) == 1  # … from one request
        for port in (a, b):  # the conversation goes on through each: the one summary kept
            r = ask(port, grown(msgs, port % 7))
            assert "summary reused" in r.headers["x-paymaster-compression"]
    finally:
        sim.latency = 0.0
        stop(procs)
    mains = sent(sim, MAIN)
    assert len(mains) == 4
    assert len({summary_sent(body) for body in mains}) == 1  # before: each replica sent its own summary
    stored = shared.pg("SELECT summary FROM summaries WHERE agent = 'cara'")
    assert len(stored) == 1 and stored[0]["summary"] in summary_sent(mains[0])
    rows = compression_rows(shared)  # both summary calls were paid: both booked, neither lost
    assert len(rows) == 2 and all(r["cost_nanos"] > 0 and r["status"] == "ok" for r in rows), rows
