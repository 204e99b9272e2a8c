"""`paymaster batch submit | status | results` against a running gateway: bad lines reported by number
without sinking the batch, a progress bar while waiting, failed requests listed readably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from paymaster.cli import main

FAST = {"batch": {"flush_age_s": 0.05, "poll_s": 0.05}}


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_submit_wait_and_read_results(gateway: Any, tmp_path: Path, capsys: Any, api: str) -> None:
    gw = gateway(**FAST)
    agent = "alice" if api == "anthropic" else "olivia"
    model = "claude-haiku-4-5" if api == "anthropic" else "gpt-4.1-mini"
    good = [{"model": model, "max_tokens": 30, "messages": [{"role": "user", "content": f"doc {i}"}]} for i in range(3)]
    if api == "anthropic":
        lines = [orjson.dumps({"custom_id": f"d{i}", "params": b}) for i, b in enumerate(good)]
        bad_request = orjson.dumps({"custom_id": "nope", "params": {"model": model, "messages": []}})
    else:
        lines = [orjson.dumps({"custom_id": f"d{i}", "method": "POST", "url": "/v1/chat/completions", "body": b})
                 for i, b in enumerate(good)]  # fmt: skip
        bad_request = orjson.dumps({"custom_id": "nope", "method": "POST", "url": "/v1/chat/completions",
                                    "body": {"model": model, "messages": "not a list"}})  # fmt: skip
    f = tmp_path / "requests.jsonl"
    f.write_bytes(b"\n".join([lines[0], b"{broken", lines[1], bad_request, b'{"custom_id": "d0", "x": 1}', lines[2]]))
    common = ("--agent", agent, "--url", gw.url, "--key", gw.keys[agent])
    code, out, err = run(capsys, "batch", "submit", str(f), *common, "--wait")
    assert code == 1  # lines were left out
    assert "line 2: not valid JSON" in err and "line 5:" in err
    assert "4 requests submitted, 2 lines left out" in out
    assert "req" in err and "4/4" in err  # the progress bar
    bid = out.split("\t")[0]
    code, out, _ = run(capsys, "batch", "status", bid, *common, "--api", api)
    assert "4/4 finished" in out
    res = tmp_path / "results.jsonl"
    code, out, err = run(capsys, "batch", "results", bid, *common, "--api", api, "--out", str(res))
    assert code == 1 and "failed: nope:" in err and err.count("failed:") == 1
    assert len(res.read_bytes().splitlines()) == 4


def test_a_missing_key_is_a_clear_error(capsys: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("PAYMASTER_KEY", raising=False)
    monkeypatch.delenv("PAYMASTER_KEY_ALICE", raising=False)
    code, _, err = run(capsys, "batch", "status", "msgbatch_x", "--agent", "alice", "--url", "http://127.0.0.1:9")
    assert code == 2 and "PAYMASTER_KEY_ALICE" in err
