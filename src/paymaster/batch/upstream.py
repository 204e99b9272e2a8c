"""The providers' batch APIs as the gateway speaks to them: submit a list of jobs, poll, read results.

Anthropic: POST /v1/messages/batches, GET …/{id}, GET …/{id}/results (JSONL).
OpenAI: POST /files (multipart, purpose=batch), POST /batches, GET /batches/{id}, GET /files/{id}/content.
A result is (custom_id, outcome, body): outcome succeeded | errored | expired | canceled; body the answer
(succeeded) or the provider's error object.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from .. import multipart
from ..providers import Upstream, UpstreamError
from .queue import Job

LIMITS = {"anthropic": (100_000, 256 * 1024 * 1024), "openai": (50_000, 200 * 1024 * 1024)}
"""Per batch: (requests, bytes) — Anthropic's per batch, OpenAI's per input file."""

Result = tuple[str, str, Any]


class BatchFailed(Exception):
    """The provider refused or could not be reached; the jobs stay queued."""


async def _call(up: Upstream, method: str, path: str, body: bytes = b"", ctype: str | None = None) -> bytes:
    h = up.headers({})
    if ctype is not None:
        h["content-type"] = ctype
    try:
        resp = await up.transport.send(method, path, h, body)
        data = await resp.read()
    except UpstreamError as e:
        raise BatchFailed(f"{method} {path}: {e}") from e
    if resp.status != 200:
        raise BatchFailed(f"{method} {path}: {resp.status} {data[:300].decode('utf-8', 'replace')}")
    return data


def line(job: Job) -> bytes:
    """One request as the provider's batch carries it."""
    if job.target_api == "anthropic":
        return b'{"custom_id":"%s","params":%s}' % (job.id.encode(), job.body)
    return b'{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":%s}' % (job.id.encode(), job.body)


def split(jobs: list[Job], api: str, max_count: int, max_bytes: int) -> list[list[Job]]:
    """Jobs in chunks each within the provider's limits and the configured flush size."""
    count, size = LIMITS[api]
    count, size = min(count, max_count), min(size, max_bytes)
    envelope = 16  # {"requests":[…]} around Anthropic's lines
    out: list[list[Job]] = [[]]
    used = envelope
    for j in jobs:
        n = len(j.body) + len(j.id) + 80  # the line around the body, its separator included
        if out[-1] and (len(out[-1]) >= count or used + n > size):
            out.append([])
            used = envelope
        out[-1].append(j)
        used += n
    return [c for c in out if c]


async def submit(up: Upstream, jobs: list[Job]) -> tuple[str, str]:
    """Send one batch; returns (the provider's batch id, its input file id or "")."""
    if up.provider.api == "anthropic":
        body = b'{"requests":[' + b",".join(line(j) for j in jobs) + b"]}"
        data = orjson.loads(await _call(up, "POST", "/v1/messages/batches", body))
        return data["id"], ""
    boundary = "pm" + secrets.token_hex(12)
    jsonl = b"\n".join(line(j) for j in jobs) + b"\n"
    form = multipart.form({"purpose": "batch"}, {"file": ("paymaster.jsonl", jsonl)}, boundary)
    f = orjson.loads(await _call(up, "POST", "/files", form, f"multipart/form-data; boundary={boundary}"))
    req = {"input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    data = orjson.loads(await _call(up, "POST", "/batches", orjson.dumps(req)))
    return data["id"], f["id"]


async def poll(up: Upstream, batch_id: str) -> list[Result] | None:
    """The batch's results once it has ended (None while it runs)."""
    if up.provider.api == "anthropic":
        b = orjson.loads(await _call(up, "GET", f"/v1/messages/batches/{batch_id}"))
        if b.get("processing_status") != "ended":
            return None
        raw = await _call(up, "GET", f"/v1/messages/batches/{batch_id}/results")
        out: list[Result] = []
        for text in raw.splitlines():
            if text.strip():
                r = orjson.loads(text)
                res = r["result"]
                out.append((r["custom_id"], res["type"], res.get("message", res.get("error"))))
        return out
    b = orjson.loads(await _call(up, "GET", f"/batches/{batch_id}"))
    if b.get("status") not in ("completed", "failed", "expired", "cancelled"):
        return None
    out = []
    for key in ("output_file_id", "error_file_id"):
        if b.get(key):
            for text in (await _call(up, "GET", f"/files/{b[key]}/content")).splitlines():
                if text.strip():
                    out.append(_openai_result(orjson.loads(text)))
    if b.get("status") == "failed":  # refused at validation: nothing ran
        out.append(("*", "errored", b.get("errors")))
    return out


def _openai_result(r: dict[str, Any]) -> Result:
    resp, err = r.get("response"), r.get("error")
    if resp is not None and resp.get("status_code") == 200:
        return r["custom_id"], "succeeded", resp.get("body")
    code = (err or {}).get("code")
    if code == "batch_expired":
        return r["custom_id"], "expired", err
    if code == "batch_cancelled":
        return r["custom_id"], "canceled", err
    return r["custom_id"], "errored", (resp or {}).get("body") or err


async def cancel(up: Upstream, batch_id: str) -> None:
    path = (
        f"/v1/messages/batches/{batch_id}/cancel" if up.provider.api == "anthropic" else f"/batches/{batch_id}/cancel"
    )
    await _call(up, "POST", path, b"{}")
