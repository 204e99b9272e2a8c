"""Anthropic's Message Batches API, served by the gateway (the provider's shapes, the gateway's own ids):

POST /v1/messages/batches   GET /v1/messages/batches[/{id}]   POST …/{id}/cancel   GET …/{id}/results
DELETE …/{id}

Each request joins the durable queue as a job of the agent's batch (`Batches.intake`); the batch object is
computed from its jobs. An agent sees only its own batches (another's id is a 404).
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequest, MethodNotAllowed, NotFound, TooLarge
from ..http import Receive, Scope, Send, header_map, json_response, read_json, respond
from ..query import number, params
from .queue import OPEN, Job

if TYPE_CHECKING:
    from ..app import Gateway

PREFIX = "/v1/messages/batches"
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_REQUESTS = 100_000  # per batch, as Anthropic documents; more is split by the gateway only when queued


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    h = header_map(scope)
    agent = gw.agent(h)
    method, parts = scope["method"], scope["path"][len(PREFIX) :].strip("/").split("/")
    base = f"{scope.get('scheme', 'http')}://{h.get(b'host', b'localhost').decode('latin-1')}"
    q = gw.batches.queue
    if parts == [""]:
        if method == "POST":
            body, _ = await read_json(receive, h, gw.config.max_body_bytes)
            return await create(gw, agent, h, body, base, send)
        if method == "GET":
            qs = params(scope)
            limit = number(qs, "limit", int, 20, 1, 1000)  # as Anthropic documents it
            ids = q.groups(agent.name, "anthropic")
            if qs.get("after_id") in ids:
                ids = ids[ids.index(qs["after_id"]) + 1 :]
            data = [view(gw, g, agent.name, base) for g in ids[:limit]]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return await json_response(send, {"data": data, "has_more": len(ids) > limit, "first_id": first,
                                              "last_id": last})  # fmt: skip
        raise MethodNotAllowed(f"{method} is not allowed on {PREFIX}")
    gid = parts[0]
    if q.group(gid, agent.name) is None:
        raise NotFound(f"message batch {gid!r} not found")
    if len(parts) == 1 and method == "GET":
        return await json_response(send, view(gw, gid, agent.name, base))
    if len(parts) == 1 and method == "DELETE":
        if view(gw, gid, agent.name, base)["processing_status"] != "ended":
            raise BadRequest("a message batch can only be deleted once it has ended; cancel it first")
        return await json_response(send, {"id": gid, "type": "message_batch_deleted"})
    if parts[1:] == ["cancel"] and method == "POST":
        await gw.batches.cancel(gid)
        return await json_response(send, view(gw, gid, agent.name, base))
    if parts[1:] == ["results"] and method == "GET":
        jobs = q.jobs("grp = ?", (gid,))
        if any(j.status in OPEN for j in jobs):
            raise BadRequest(f"message batch {gid} is still processing; its results are not ready")
        lines = b"".join(orjson.dumps({"custom_id": j.custom_id, "result": result(j)}) + b"\n" for j in jobs)
        return await respond(send, 200, lines, ctype=b"application/binary")
    raise NotFound(f"no route {method} {scope['path']}")


async def create(gw: Gateway, agent: Any, h: dict[bytes, bytes], body: dict[str, Any], base: str, send: Send) -> None:
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        raise BadRequest("requests: must be a non-empty list", param="requests")
    if len(reqs) > MAX_REQUESTS:
        raise TooLarge(f"requests: a message batch holds at most {MAX_REQUESTS} requests", param="requests")
    seen: set[str] = set()
    items: list[tuple[str, Any]] = []
    for i, r in enumerate(reqs):
        cid = r.get("custom_id") if isinstance(r, dict) else None
        if not isinstance(cid, str) or not CUSTOM_ID.fullmatch(cid):
            raise BadRequest(f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$", param=f"requests.{i}")
        if cid in seen:
            raise BadRequest(f"requests.{i}.custom_id: {cid!r} is not unique within the batch", param=f"requests.{i}")
        seen.add(cid)
        items.append((cid, r.get("params")))
    gid = "msgbatch_pm" + secrets.token_hex(12)
    gw.batches.queue.add_group(gid, agent.name, "anthropic", b"")
    try:
        await gw.batches.intake("anthropic", agent, h, gid, items)
    except BaseException:
        gw.batches.queue.drop_group(gid)
        raise
    await json_response(send, view(gw, gid, agent.name, base))


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def result(j: Job) -> dict[str, Any]:
    body = orjson.loads(j.result) if j.result else None
    if j.status == "succeeded":
        return {"type": "succeeded", "message": body}
    if j.status == "errored":
        if not (isinstance(body, dict) and body.get("type") == "error"):
            body = {"type": "error", "error": {"type": "api_error", "message": j.error or "the request failed"}}
        return {"type": "errored", "error": body}
    return {"type": j.status}


def view(gw: Gateway, gid: str, agent: str, base: str) -> dict[str, Any]:
    g = gw.batches.queue.group(gid, agent)
    assert g is not None
    _, created, cancel, _ = g
    tally = gw.batches.queue.tally(gid)
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    for status, (n, _) in tally.items():
        counts["processing" if status in OPEN else status] += n
    ended = counts["processing"] == 0
    state = "ended" if ended else "canceling" if cancel else "in_progress"
    finished = max((last for _, last in tally.values()), default=time.time())
    return {
        "id": gid,
        "type": "message_batch",
        "processing_status": state,
        "request_counts": counts,
        "ended_at": rfc3339(finished) if ended else None,
        "created_at": rfc3339(created),
        "expires_at": rfc3339(created + 86400),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(created) if cancel else None,
        "results_url": f"{base}{PREFIX}/{gid}/results" if ended else None,
    }
