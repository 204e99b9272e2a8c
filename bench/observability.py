"""What the metrics and the access log add to one call, in process: `Metrics.begin` + `settled` + `end` (the
three hooks the gateway runs per call) on a typical ledger row, with the access log off, to a file, and with
prompts logged; and one `/metrics` render with many series.

    python bench/observability.py [--calls 20000]

The hooks' CPU per call in µs on the call's path and in the access log's flush (once a second, off the
path), each the best of 5 rounds. `bench/pipeline_instructions.py --tree <older checkout>`
gives the same comparison for the whole pipeline in instructions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from paymaster.call import Call
from paymaster.config import hash_key, parse
from paymaster.metrics import Metrics
from paymaster.store.row import LedgerRow


class FakeGateway:
    """Only what Metrics reads: the config and the budget's open tickets."""

    def __init__(self, obs: dict[str, Any], agents: int) -> None:
        raw = {
            "ledger": ":memory:",
            "observability": obs,
            "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
            "agents": {f"a{i}": {"key_sha256": hash_key(f"k{i}"), "model": "claude-haiku-4-5"} for i in range(agents)},
        }
        self.config = parse(raw, env={"K": "x"})
        self.budget = type("B", (), {"open": {}})()


def row(i: int) -> LedgerRow:
    return LedgerRow(
        id=f"pm_{i:024x}", ts=time.time(), agent=f"a{i % 5}", api="anthropic", provider="anthropic",
        model_requested="claude-haiku-4-5", model="claude-haiku-4-5", status="ok", cost_usd="0.000502",
        cost_nanos=502_000, day="2026-12-02", month="2026-12", worst_nanos=3_000_000, input_tokens=142,
        output_tokens=72, latency_ms=3.2, upstream_request_id="req_x",
    )  # fmt: skip


def per_call(m: Metrics, calls: int) -> tuple[float, float]:
    """(the hooks on the call's path, the access log's flush), µs per call, best of 5 rounds."""
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}
    call = Call("anthropic", "a0", body, "claude-haiku-4-5", False, 100)
    rows = [row(i) for i in range(calls)]
    best, best_flush = float("inf"), float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for r in rows:
            trace = m.begin("/v1/messages")
            assert trace is not None
            m.settled(call, r)
            m.end(trace, {"headers": []})
        t1 = time.process_time()
        m.log.flush()
        best, best_flush = min(best, t1 - t0), min(best_flush, time.process_time() - t1)
    return best / calls * 1e6, best_flush / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "access.log")
        for label, obs in (
            ("metrics only (access_log: off)", {"access_log": "off"}),
            ("metrics + access log to a file", {"access_log": log}),
            ("metrics + access log + prompts", {"access_log": log, "log_prompts": True}),
        ):
            m = Metrics(FakeGateway(obs, 5))  # type: ignore[arg-type]
            hooks, flush = per_call(m, args.calls)
            print(f"{label:36} {hooks:6.2f} µs per call on its path, {flush:6.2f} µs in the flush")
            m.log.close()
        m = Metrics(FakeGateway({"access_log": "off"}, 1000))  # type: ignore[arg-type]
        for i in range(1000):
            r = row(i)
            r.agent = f"a{i}"
            m.settled(Call("anthropic", r.agent, {}, r.model, False, 100), r)
        t0 = time.perf_counter()
        size = len(m.render())
        print(f"/metrics render, 1,000 series           {(time.perf_counter() - t0) * 1000:6.1f} ms ({size:,} bytes)")


if __name__ == "__main__":
    main()
