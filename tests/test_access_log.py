"""The access log: one JSON line per call, with the call id the agent saw; prompts only when the fleet opts in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest


def lines(gw: Any, path: Path) -> list[dict[str, Any]]:
    gw.gw.metrics.log.flush()
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_line_per_call_with_its_call_id(gateway: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    gw = gateway(observability={"access_log": str(log)})
    raw = gw.anthropic("alice").messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "the secret plan"}]
    )
    call_id = raw.headers["x-paymaster-call-id"]
    stream = gw.openai("olivia").chat.completions.create(
        model="gpt-4.1-mini", stream=True, messages=[{"role": "user", "content": "the secret plan"}]
    )
    for _ in stream:
        pass
    gw.admin("/admin/agents")  # not a call: no line
    got = lines(gw, log)
    assert [g["agent"] for g in got] == ["alice", "olivia"]
    first, second = got
    assert first["call_id"] == call_id
    row = next(r for r in gw.ledger() if r["id"] == call_id)
    assert first["cost_usd"] == row["cost_usd"] and first["reserved_nanos"] == row["worst_nanos"]
    assert (first["input_tokens"], first["output_tokens"]) == (row["input_tokens"], row["output_tokens"])
    assert first["http_status"] == 200 and first["status"] == "ok" and first["model"] == "claude-haiku-4-5"
    assert first["duration_us"] >= first["upstream_us"] > 0 and first["duration_us"] >= first["overhead_us"] >= 0
    assert first["ts"] == row["ts"]
    assert second["stream"] == 1 and second["path"] == "/v1/chat/completions"
    assert "secret plan" not in log.read_text()  # prompts are never logged unless the fleet opts in


def test_a_refused_call_is_logged_without_a_booking(gateway: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    gw = gateway(
        observability={"access_log": str(log)},
        agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": 0, "max_tokens": 100}},
    )
    with pytest.raises(anthropic.APIStatusError):
        gw.anthropic("bob").messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    (line,) = lines(gw, log)
    assert line["agent"] == "bob" and line["call_id"] is None
    assert line["http_status"] == 402 and line["status"] == "refused" and line["error"] == "budget_exceeded"


def test_prompts_logged_when_the_fleet_opts_in(gateway: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    gw = gateway(observability={"access_log": str(log), "log_prompts": True})
    gw.anthropic("alice").messages.create(
        model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "the secret plan"}]
    )
    (line,) = lines(gw, log)
    assert line["request"]["messages"][0]["content"] == "the secret plan"


def test_access_log_off(gateway: Any, tmp_path: Path) -> None:
    gw = gateway(observability={"access_log": "off"})
    gw.anthropic("alice").messages.create(
        model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "x"}]
    )
    assert gw.gw.metrics.log.out is None
