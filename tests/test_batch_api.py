"""The providers' batch APIs through the gateway, driven by the official SDKs: the gateway's own ids, an agent
sees only its own batches and files, caps checked for the whole batch at submission, bad lines reported per
line without sinking the batch."""

from __future__ import annotations

import io
import time
from typing import Any

import anthropic
import openai
import orjson
import pytest

FAST = {"batch": {"flush_age_s": 0.05, "poll_s": 0.05}}


def params(text: str, **kw: Any) -> dict[str, Any]:
    return {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": text}], **kw}


def wait(fetch: Any, done: Any, timeout: float = 10.0) -> Any:
    end = time.time() + timeout
    while True:
        b = fetch()
        if done(b) or time.time() > end:
            return b
        time.sleep(0.05)


def test_anthropic_message_batches_through_the_gateway(gateway: Any, sim: Any) -> None:
    gw = gateway(**FAST)
    c = gw.anthropic()
    b = c.messages.batches.create(
        requests=[{"custom_id": f"doc-{i}", "params": params(f"summarise document {i}")} for i in range(5)]
        + [{"custom_id": "broken", "params": {"model": "claude-haiku-4-5", "messages": []}}]
    )
    assert b.id.startswith("msgbatch_pm") and b.processing_status == "in_progress"
    b = wait(lambda: c.messages.batches.retrieve(b.id), lambda x: x.processing_status == "ended")
    assert b.request_counts.succeeded == 5 and b.request_counts.errored == 1
    results = {r.custom_id: r.result for r in c.messages.batches.results(b.id)}
    assert set(results) == {f"doc-{i}" for i in range(5)} | {"broken"}
    assert results["broken"].type == "errored" and "max_tokens" in results["broken"].error.error.message
    assert all(results[f"doc-{i}"].type == "succeeded" for i in range(5))
    provider_ids = {
        r["body"]["requests"][0]["custom_id"] for r in sim.requests if r["path"] == "/v1/messages/batches" and r["body"]
    }
    assert "doc-0" not in provider_ids  # the provider sees the gateway's ids, not the agent's
    assert [x.id for x in c.messages.batches.list()] == [b.id]
    rows = [r for r in gw.ledger("alice") if r["status"] == "ok"]
    assert len(rows) == 5 and all(r["cost_nanos"] * 2 == r["baseline_cost_nanos"] for r in rows)
    # another agent cannot see it
    other = gw.anthropic("bob")
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(b.id)
    assert list(other.messages.batches.list()) == []


def test_a_batch_that_does_not_fit_the_cap_is_refused_before_anything_is_sent(gateway: Any, sim: Any) -> None:
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.05", "max_tokens": 4096}}, **FAST)
    c = gw.anthropic()
    before = gw.spend()
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.batches.create(
            requests=[{"custom_id": f"r{i}", "params": params("x", max_tokens=4096)} for i in range(200)]
        )
    assert e.value.status_code == 402
    time.sleep(0.2)
    assert not [r for r in sim.requests if r["path"].startswith("/v1/messages/batches")]
    assert gw.spend() == before  # nothing held, nothing booked
    assert list(c.messages.batches.list()) == []


def test_openai_files_and_batches_through_the_gateway(gateway: Any, sim: Any) -> None:
    gw = gateway(**FAST)
    c = gw.openai()
    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4.1-mini", "max_tokens": 40, "messages": [{"role": "user", "content": f"q {i}"}]}}
        for i in range(3)
    ]  # fmt: skip
    data = b"\n".join(orjson.dumps(x) for x in lines) + b"\nnot json at all\n"
    f = c.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    assert f.id.startswith("file-pm") and f.bytes == len(data)
    assert c.files.content(f.id).content == data
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert b.id.startswith("batch_pm")
    b = wait(lambda: c.batches.retrieve(b.id), lambda x: x.status == "completed")
    assert b.status == "completed" and b.request_counts.completed == 3 and b.request_counts.failed == 1
    out = [orjson.loads(x) for x in c.files.content(b.output_file_id).content.splitlines()]
    assert sorted(x["custom_id"] for x in out) == ["q0", "q1", "q2"]
    assert all(
        x["response"]["status_code"] == 200 and x["response"]["body"]["object"] == "chat.completion" for x in out
    )
    err = [orjson.loads(x) for x in c.files.content(b.error_file_id).content.splitlines()]
    assert len(err) == 1 and "line 4" in err[0]["response"]["body"]["error"]["message"]
    # another agent sees neither the file nor the batch
    other = gw.openai("alice")
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(b.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(b.output_file_id)
    assert [x.id for x in c.batches.list()] == [b.id] and list(other.batches.list()) == []


def test_canceling_a_batch_releases_its_holds(gateway: Any, sim: Any) -> None:
    sim.anthropic_batches.faults.hold = True
    gw = gateway(**FAST)
    c = gw.anthropic()
    b = c.messages.batches.create(requests=[{"custom_id": f"r{i}", "params": params("hi")} for i in range(3)])
    time.sleep(0.3)
    c.messages.batches.cancel(b.id)
    b = wait(lambda: c.messages.batches.retrieve(b.id), lambda x: x.processing_status == "ended")
    assert b.request_counts.canceled == 3
    assert all(
        w["reserved_usd"] == "0.000000" for a in gw.admin("/admin/agents").json()["agents"] for w in a["windows"]
    )
    assert all(r["cost_nanos"] == 0 for r in gw.ledger("alice"))


def test_fast_mode_is_refused_in_a_batch_request_by_request_with_nothing_held_or_spent(gateway: Any, sim: Any) -> None:
    """platform.claude.com/docs/en/about-claude/pricing ("Fast mode pricing"): "Fast mode is not available with the
    Batch API". Before, a fast-mode request was queued, held and booked at the full fast price (the speed
    prices were not halved: a price nobody charges, for a request the provider refuses). Now it is an errored
    result of its own, as a request that cannot be read is; the batch's other requests run."""
    gw = gateway(agents={"fay": {"model": "claude-opus-4-8", "daily_usd": 5, "max_tokens": 100}}, **FAST)
    c = gw.anthropic("fay")
    b = c.messages.batches.create(
        requests=[
            {"custom_id": "fast", "params": params("hi", model="claude-opus-4-8", speed="fast")},
            {"custom_id": "plain", "params": params("hi", model="claude-opus-4-8")},
        ]
    )
    b = wait(lambda: c.messages.batches.retrieve(b.id), lambda x: x.processing_status == "ended")
    results = {r.custom_id: r.result for r in c.messages.batches.results(b.id)}
    assert results["plain"].type == "succeeded"
    fast = results["fast"]
    assert fast.type == "errored" and fast.error.error.type == "invalid_request_error"
    assert "fast mode is not available with the Batch API" in fast.error.error.message
    sent = [p for r in sim.requests if r["path"] == "/v1/messages/batches" and r["body"] for p in r["body"]["requests"]]
    assert len(sent) == 1 and "speed" not in sent[0]["params"]  # the fast request never reached the provider
    booked = [r for r in gw.ledger("fay") if r["cost_nanos"]]
    assert len(booked) == 1 and booked[0]["status"] == "ok"  # only the plain request costs anything
    assert all(w["reserved_usd"] == "0.000000" for w in gw.admin("/admin/agents/fay").json()["windows"])


def test_a_deferred_fast_mode_call_is_refused_and_a_defer_setting_leaves_it_real_time(gateway: Any, sim: Any) -> None:
    """x-paymaster-defer on a fast-mode call: 400 naming `speed`, nothing queued or spent. An agent whose calls are
    deferred by setting (`defer: true`) has its fast-mode calls run in real time, as its streamed ones are."""
    ask = {"model": "claude-opus-4-8", "max_tokens": 50, "speed": "fast",
           "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    gw = gateway(agents={"fay": {"model": "claude-opus-4-8", "daily_usd": 5, "max_tokens": 100},
                         "dan": {"model": "claude-opus-4-8", "daily_usd": 5, "max_tokens": 100, "defer": True}},
                 **FAST)  # fmt: skip
    raw = gw.anthropic("dan").messages.with_raw_response.create(**ask)  # before: refused (no fast batch price)
    assert raw.status_code == 200 and raw.parse().usage.speed == "fast"  # answered now, not a 202 job
    assert len([r for r in sim.requests if r["path"] == "/v1/messages"]) == 1
    with pytest.raises(anthropic.BadRequestError) as e:
        gw.anthropic("fay").messages.create(**ask, extra_headers={"x-paymaster-defer": "true"})
    assert e.value.body["error"]["message"].startswith("speed: fast mode is not available with the Batch API")
    assert gw.ledger("fay") == [] and len([r for r in sim.requests if r["path"].startswith("/v1/messages")]) == 1
