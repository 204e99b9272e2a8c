"""Deferred calls end to end through the official SDKs: 202 + job id, sent as a provider batch, settled at the
batch price per request, the answer readable as the SDK's own response type."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest
from anthropic.types import Message
from conftest import Running
from openai.types.chat import ChatCompletion

from paymaster.app import Gateway
from paymaster.batch.prices import batch_rates
from paymaster.call import Usage
from paymaster.pricing import to_nanos
from paymaster.server import ServerThread

FAST = {"batch": {"flush_age_s": 0.05, "poll_s": 0.05}}
DEFER = {"x-paymaster-defer": "true"}


def jobs(client: Any, rest: str = "") -> str:
    """The jobs path as the client joins it (the OpenAI SDK's base URL ends in /v1)."""
    return ("/paymaster/jobs" if isinstance(client, openai.OpenAI) else "/v1/paymaster/jobs") + rest


def wait_job(client: Any, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    end = time.time() + timeout
    while time.time() < end:
        r = client.get(jobs(client, f"/{job_id}"), cast_to=object)
        if r["status"] not in ("queued", "submitted"):
            return r
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {r['status']}")


def anth_defer(c: anthropic.Anthropic, text: str = "summarise this", **kw: Any) -> Any:
    return c.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": text}],
        extra_headers={**DEFER, **kw.pop("headers", {})}, **kw,
    )  # fmt: skip


def test_deferred_anthropic_call_is_settled_at_the_batch_price(gateway: Any, sim: Any) -> None:
    gw = gateway(**FAST)
    c = gw.anthropic()
    raw = anth_defer(c)
    assert raw.status_code == 202
    job_id = raw.headers["x-paymaster-job-id"]
    assert not [r for r in sim.requests if r["path"] == "/v1/messages"]  # nothing sent in real time
    job = wait_job(c, job_id)
    assert job["status"] == "succeeded", job
    msg = c.get(f"/v1/paymaster/jobs/{job_id}/result", cast_to=Message)
    assert isinstance(msg, Message) and msg.content[0].type == "text"
    assert [r for r in sim.requests if r["path"] == "/v1/messages/batches" and r["body"]]
    row = next(r for r in gw.ledger("alice") if r["id"] == job_id)
    usage = Usage(msg.usage.input_tokens, msg.usage.output_tokens)
    batch = to_nanos(batch_rates(gw.config, "claude-haiku-4-5").cost(usage))
    real = to_nanos(gw.gw.rates_of("claude-haiku-4-5").cost(usage))
    assert row["status"] == "ok" and row["cost_nanos"] == batch and batch * 2 == real
    assert row["baseline_cost_nanos"] == real and row["cost_nanos"] <= row["worst_nanos"]
    assert orjson.loads(row["savings"]) == {"batch": real - batch}  # the batch discount, as its own lever's saving
    assert Decimal(job["cost_usd"]) == Decimal(row["cost_usd"])
    assert all(
        w["reserved_usd"] == "0.000000" for a in gw.admin("/admin/agents").json()["agents"] for w in a["windows"]
    )


def test_deferred_openai_call_reads_back_as_a_chat_completion(gateway: Any) -> None:
    gw = gateway(**FAST)
    c = gw.openai()
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_headers=DEFER
    )
    assert raw.status_code == 202
    job_id = raw.headers["x-paymaster-job-id"]
    assert wait_job(c, job_id)["status"] == "succeeded"
    cc = c.get(jobs(c, f"/{job_id}/result"), cast_to=ChatCompletion)
    assert isinstance(cc, ChatCompletion) and cc.usage is not None and cc.usage.completion_tokens > 0
    row = next(r for r in gw.ledger("olivia") if r["id"] == job_id)
    assert row["cost_nanos"] * 2 == row["baseline_cost_nanos"]


def test_an_agent_cannot_read_another_agents_job(gateway: Any) -> None:
    gw = gateway(**FAST)
    job_id = anth_defer(gw.anthropic()).headers["x-paymaster-job-id"]
    other = gw.anthropic("bob")
    with pytest.raises(anthropic.NotFoundError):
        other.get(f"/v1/paymaster/jobs/{job_id}", cast_to=object)
    assert other.get("/v1/paymaster/jobs", cast_to=object)["data"] == []
    assert [j["id"] for j in gw.anthropic().get("/v1/paymaster/jobs", cast_to=object)["data"]] == [job_id]


def test_a_deferred_call_that_does_not_fit_is_refused_alone(gateway: Any, sim: Any) -> None:
    gw = gateway(agents={"alice": {"model": "claude-haiku-4-5", "daily_usd": "0.001", "max_tokens": 2048}}, **FAST)
    c = gw.anthropic()
    with pytest.raises(anthropic.APIStatusError) as e:
        anth_defer(c, max_tokens=4000) if False else c.messages.create(
            model="claude-haiku-4-5", max_tokens=2048, messages=[{"role": "user", "content": "x " * 3000}],
            extra_headers=DEFER,
        )  # fmt: skip
    assert e.value.status_code == 402
    assert anth_defer(c).status_code == 202  # a small one still fits
    assert not [
        r
        for r in sim.requests
        if r["path"].startswith("/v1/messages/batches") and r["body"] and "x x x" in str(r["body"])
    ]


def test_errored_and_expired_requests_release_their_holds(gateway: Any, sim: Any) -> None:
    gw = gateway(batch={"flush_age_s": 0.3, "poll_s": 0.05})
    c = gw.anthropic()
    sim.anthropic_batches.faults.errored = 1
    sim.anthropic_batches.faults.expired = 1
    ids = [anth_defer(c, f"doc {i}").headers["x-paymaster-job-id"] for i in range(4)]
    jobs = [wait_job(c, i) for i in ids]
    assert sorted(j["status"] for j in jobs) == ["errored", "expired", "succeeded", "succeeded"]
    rows = {r["id"]: r for r in gw.ledger("alice")}
    for j in jobs:
        assert (rows[j["id"]]["cost_nanos"] > 0) == (j["status"] == "succeeded")
    assert all(
        w["reserved_usd"] == "0.000000" for a in gw.admin("/admin/agents").json()["agents"] for w in a["windows"]
    )


def test_a_restart_mid_batch_loses_nothing_and_settles_once(gateway: Any, sim: Any, tmp_path: Any) -> None:
    sim.anthropic_batches.faults.hold = True
    gw = gateway(**FAST)
    c = gw.anthropic()
    job_id = anth_defer(c).headers["x-paymaster-job-id"]
    end = time.time() + 5
    while c.get(f"/v1/paymaster/jobs/{job_id}", cast_to=object)["status"] != "submitted" and time.time() < end:
        time.sleep(0.05)
    held = [w["reserved_usd"] for w in gw.admin("/admin/agents").json()["agents"][0]["windows"]]
    assert held[0] != "0.000000"
    gw.srv.stop()  # the gateway stops with the job in the provider's hands
    g2 = Gateway(gw.config)
    with ServerThread(g2) as srv:  # same fleet, same ledger
        gw2 = Running(srv.url, g2, gw.keys, gw.config, srv)
        c2 = gw2.anthropic()
        agents = {a["name"]: a for a in gw2.admin("/admin/agents").json()["agents"]}
        assert [w["reserved_usd"] for w in agents["alice"]["windows"]] == held  # the hold survived the restart
        sim.anthropic_batches.faults.hold = False
        assert wait_job(c2, job_id)["status"] == "succeeded"  # polling resumed
        rows = [r for r in gw2.ledger("alice") if r["id"] == job_id]
        assert len(rows) == 1 and rows[0]["status"] == "ok"
        agents = {a["name"]: a for a in gw2.admin("/admin/agents").json()["agents"]}
        assert all(w["reserved_usd"] == "0.000000" for w in agents["alice"]["windows"])


def test_a_task_type_setting_defers_and_the_agents_webhook_hears_of_the_result_signed(gateway: Any) -> None:
    import hashlib
    import hmac
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from conftest import PROVIDER_KEY

    heard: list[dict[str, Any]] = []
    refusals = [503]  # the receiver is down for the first POST: the gateway tries again

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["content-length"]))
            if refusals:
                self.send_response(refusals.pop())
                self.end_headers()
                return
            ts, sig = self.headers["x-paymaster-timestamp"], self.headers["x-paymaster-signature"]
            want = "sha256=" + hmac.new(PROVIDER_KEY.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(sig, want) and abs(time.time() - int(ts)) < 60
            assert self.headers["x-paymaster-event"] == "job.finished"
            heard.append(json.loads(raw))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{srv.server_port}/done"
        alice = {
            "model": "claude-haiku-4-5", "daily_usd": 5, "webhook": hook, "webhook_secret_env": "SIM_KEY",
            "tasks": {"nightly": {"defer": True}},
        }  # fmt: skip
        gw = gateway(agents={"alice": alice}, tasks={"nightly": {}}, **FAST)
        c = gw.anthropic()
        raw = c.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "report"}],
            extra_headers={"x-paymaster-task": "nightly"},
        )  # fmt: skip
        assert raw.status_code == 202
        job_id = raw.headers["x-paymaster-job-id"]
        assert wait_job(c, job_id)["status"] == "succeeded"
        end = time.time() + 10
        while not heard and time.time() < end:
            time.sleep(0.05)
        assert [h["id"] for h in heard] == [job_id] and heard[0]["response"]["type"] == "message"
        now = c.messages.with_raw_response.create(  # another task type: real time
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "now"}]
        )
        assert now.status_code == 200
    finally:
        srv.shutdown()


def test_the_levers_apply_to_a_deferred_call_cache_breakpoints_included(gateway: Any, sim: Any) -> None:
    gw = gateway(**FAST)
    c = gw.anthropic()
    system = "You summarise quarterly reports for the finance team. " * 600  # well past the cacheable minimum
    ids = [
        c.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=50, system=system,
            messages=[{"role": "user", "content": f"report {i}"}], extra_headers=DEFER,
        ).headers["x-paymaster-job-id"]
        for i in range(2)
    ]  # fmt: skip
    jobs = [wait_job(c, i) for i in ids]
    sent = [r for r in sim.requests if r["path"] == "/v1/messages/batches" and r["body"]]
    params = [q["params"] for r in sent for q in r["body"]["requests"]]
    assert params and all("cache_control" in orjson.dumps(p).decode() for p in params)
    usage = [j["response"]["usage"] for j in jobs]
    assert sum(u["cache_creation_input_tokens"] for u in usage) > 0  # written once in the batch …
    assert sum(u["cache_read_input_tokens"] for u in usage) > 0  # … and read by the other request
    rows = {r["id"]: r for r in gw.ledger("alice")}
    for j in jobs:  # cache reads and writes at batch prices: half the real-time price of the same usage
        assert rows[j["id"]]["cost_nanos"] * 2 - rows[j["id"]]["baseline_cost_nanos"] in (0, 1)
