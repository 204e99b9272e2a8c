"""Provider limits: a queue larger than a provider batch may hold (requests or bytes) is sent as several."""

from __future__ import annotations

from typing import Any

import pytest

from paymaster.batch import upstream
from paymaster.batch.queue import Job


def job(i: int, size: int) -> Job:
    return Job(id=f"pm_{i:024x}", agent="a", api="anthropic", target_api="anthropic", provider="anthropic",
               model="m", model_requested="m", body=b"x" * size, status="queued", worst_nanos=1, max_tokens=1,
               day="2026-12-02", month="2026-12", created=0.0)  # fmt: skip


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_a_queue_over_the_providers_request_limit_is_split(api: str, monkeypatch: Any) -> None:
    monkeypatch.setitem(upstream.LIMITS, api, (3, 10**9))
    chunks = upstream.split([job(i, 10) for i in range(7)], api, 10**6, 10**9)
    assert [len(c) for c in chunks] == [3, 3, 1]


def test_a_queue_over_the_byte_limit_is_split_and_no_batch_exceeds_it(monkeypatch: Any) -> None:
    limit = 1000
    monkeypatch.setitem(upstream.LIMITS, "anthropic", (10**6, limit))
    jobs = [job(i, 300) for i in range(7)]
    chunks = upstream.split(jobs, "anthropic", 10**6, 10**9)
    assert sum(len(c) for c in chunks) == 7 and len(chunks) > 1
    for c in chunks:
        body = b'{"requests":[' + b",".join(upstream.line(j) for j in c) + b"]}"
        assert len(body) <= limit


def test_the_documented_limits() -> None:
    assert upstream.LIMITS == {"anthropic": (100_000, 256 * 1024 * 1024), "openai": (50_000, 200 * 1024 * 1024)}
