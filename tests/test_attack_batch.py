"""Attacks on the cap through batches: a batch result is settled by the same rules as a real-time answer —
a usage field nothing can price, or usage that cannot be read, is booked at the reservation and flagged,
never at less than the provider may bill. Failed before its fix (batch settlement priced only the counts it
knew, unflagged)."""

from __future__ import annotations

import time
from typing import Any

import pytest

FAST = {"batch": {"flush_age_s": 0.05, "poll_s": 0.05}}
DEFER = {"x-paymaster-defer": "true"}


def wait_job(client: Any, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    end = time.time() + timeout
    while time.time() < end:
        r = client.get(f"/paymaster/jobs/{job_id}", cast_to=object)
        if r["status"] not in ("queued", "submitted"):
            return r
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {r['status']}")


def usage_edit(sim: Any, monkeypatch: pytest.MonkeyPatch, edit: Any) -> None:
    """The simulated OpenAI batch answers each request as the real-time endpoint would, then `edit`s its usage."""
    run = sim.openai_batches.run

    def edited(wire: str, body: Any) -> tuple[int, dict[str, Any]]:
        status, answer = run(wire, body)
        if status == 200 and isinstance(answer.get("usage"), dict):
            edit(answer["usage"])
        return status, answer

    monkeypatch.setattr(sim.openai_batches, "run", edited)


def defer(gw: Any) -> tuple[Any, str]:
    c = gw.openai()
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_headers=DEFER
    )
    assert raw.status_code == 202
    return c, raw.headers["x-paymaster-job-id"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda u: u.setdefault("completion_tokens_details", {}).update(surprise_tokens=900),  # a new billable count
        lambda u: u.pop("completion_tokens"),  # a required count missing
        lambda u: u.update(prompt_tokens=-5),  # malformed
    ],
    ids=["unpriced-field", "missing-count", "malformed"],
)
def test_a_batch_result_whose_usage_cannot_be_priced_is_booked_at_its_reservation(
    gateway: Any, sim: Any, monkeypatch: pytest.MonkeyPatch, edit: Any
) -> None:
    usage_edit(sim, monkeypatch, edit)
    gw = gateway(**FAST)
    c, job_id = defer(gw)
    assert wait_job(c, job_id)["status"] == "succeeded"
    row = next(r for r in gw.ledger("olivia") if r["id"] == job_id)
    assert row["reconcile"] == 1, row
    assert row["cost_nanos"] == row["worst_nanos"] > 0, row
