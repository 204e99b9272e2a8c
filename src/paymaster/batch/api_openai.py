"""OpenAI's Files and Batch APIs, served by the gateway (the provider's shapes, the gateway's own ids):

POST /v1/files (multipart: file, purpose)   GET /v1/files/{id}   GET /v1/files/{id}/content
POST /v1/batches   GET /v1/batches[/{id}]   POST /v1/batches/{id}/cancel

An uploaded file stays in the gateway's store; a batch reads it line by line: a line that is not a valid
request is reported in the batch's error file under its line number (or custom_id) and the other lines
go on. The output and error files are made from the jobs when asked for. An agent sees only its own files
and batches (another's id is a 404).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import orjson

from .. import multipart
from ..errors import BadRequest, MethodNotAllowed, NotFound
from ..http import Receive, Scope, Send, header_map, json_response, read_body, read_json, respond
from ..query import number, params
from .queue import OPEN, Job

if TYPE_CHECKING:
    from ..app import Gateway

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000  # per input file, as OpenAI documents
OUT, ERR = "file-pmout-", "file-pmerr-"


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    h = header_map(scope)
    agent = gw.agent(h)
    method, parts = scope["method"], scope["path"].strip("/").split("/")[1:]
    if parts[0] == "files":
        if len(parts) == 1 and method == "POST":
            return await upload(gw, agent.name, h, receive, send)
        if len(parts) == 1:
            raise MethodNotAllowed(f"{method} is not allowed on /v1/files")
        return await file(gw, agent.name, parts[1], parts[2:], send)
    q = gw.batches.queue
    if len(parts) == 1 and method == "POST":
        body, _ = await read_json(receive, h, gw.config.max_body_bytes)
        return await create(gw, agent, h, body, send)
    if len(parts) == 1 and method == "GET":
        qs = params(scope)
        limit = number(qs, "limit", int, 20, 1, 100)  # as OpenAI documents it
        ids = q.groups(agent.name, "openai")
        if qs.get("after") in ids:
            ids = ids[ids.index(qs["after"]) + 1 :]
        data = [view(gw, g, agent.name) for g in ids[:limit]]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return await json_response(
            send, {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": len(ids) > limit}
        )
    if len(parts) == 1:
        raise MethodNotAllowed(f"{method} is not allowed on /v1/batches")
    gid = parts[1]
    if q.group(gid, agent.name) is None:
        raise NotFound(f"No batch found with id '{gid}'.")
    if len(parts) == 2 and method == "GET":
        return await json_response(send, view(gw, gid, agent.name))
    if parts[2:] == ["cancel"] and method == "POST":
        await gw.batches.cancel(gid)
        return await json_response(send, view(gw, gid, agent.name))
    raise NotFound(f"no route {method} {scope['path']}")


async def upload(gw: Gateway, agent: str, h: dict[bytes, bytes], receive: Receive, send: Send) -> None:
    raw = await read_body(receive, h, gw.config.max_body_bytes)
    try:
        form = multipart.parse(h.get(b"content-type", b"").decode("latin-1"), raw)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    if "file" not in form or "purpose" not in form:
        raise BadRequest("'file' and 'purpose' are required form fields", param="file")
    purpose = form["purpose"].data.decode("utf-8", "replace")
    if purpose != "batch":
        raise BadRequest(f"purpose: the gateway keeps files for batches only, got {purpose!r}", param="purpose")
    fid = "file-pm" + secrets.token_hex(12)
    name = form["file"].filename or "upload.jsonl"
    created = gw.batches.queue.add_file(fid, agent, name, purpose, form["file"].data)
    await json_response(send, file_object(fid, name, purpose, len(form["file"].data), created))


def file_object(fid: str, name: str, purpose: str, size: int, created: float) -> dict[str, Any]:
    return {"id": fid, "object": "file", "bytes": size, "created_at": int(created), "filename": name,
            "purpose": purpose, "status": "processed", "status_details": None}  # fmt: skip


async def file(gw: Gateway, agent: str, fid: str, rest: list[str], send: Send) -> None:
    q = gw.batches.queue
    if fid.startswith((OUT, ERR)):
        gid = fid[len(OUT) :]
        if q.group(gid, agent) is None:
            raise NotFound(f"No such File object: {fid}", param="id")
        data = output(gw, gid, errors=fid.startswith(ERR))
        name, purpose, created = f"{gid}_{'error' if fid.startswith(ERR) else 'output'}.jsonl", "batch_output", 0.0
    else:
        found = q.file(fid, agent)
        if found is None:
            raise NotFound(f"No such File object: {fid}", param="id")
        name, purpose, data, created = found
    if rest == ["content"]:
        return await respond(send, 200, data, ctype=b"application/octet-stream")
    if rest:
        raise NotFound(f"no route /v1/files/{fid}/{'/'.join(rest)}")
    await json_response(send, file_object(fid, name, purpose, len(data), created))


def read_lines(data: bytes) -> list[tuple[str, Any]]:
    """(custom_id, body or the error that line is) for each line of an input file."""
    items: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for n, text in enumerate(data.splitlines(), 1):
        if not text.strip():
            continue
        try:
            ln = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            items.append((f"line-{n}", BadRequest(f"line {n}: not valid JSON ({e})")))
            continue
        cid = ln.get("custom_id") if isinstance(ln, dict) else None
        if not isinstance(cid, str) or not cid:
            items.append((f"line-{n}", BadRequest(f"line {n}: custom_id must be a non-empty string")))
        elif cid in seen:
            items.append((f"line-{n}", BadRequest(f"line {n}: custom_id {cid!r} is not unique in the file")))
        elif ln.get("url") != ENDPOINT or ln.get("method", "POST") != "POST":
            items.append((cid, BadRequest(f"line {n}: url must be {ENDPOINT} with method POST", param="url")))
        else:
            seen.add(cid)
            items.append((cid, ln.get("body")))
    return items


async def create(gw: Gateway, agent: Any, h: dict[bytes, bytes], body: dict[str, Any], send: Send) -> None:
    if body.get("endpoint") != ENDPOINT:
        raise BadRequest(f"endpoint: the gateway batches {ENDPOINT} only", param="endpoint")
    if body.get("completion_window") != "24h":
        raise BadRequest("completion_window: must be '24h'", param="completion_window")
    found = gw.batches.queue.file(str(body.get("input_file_id")), agent.name)
    if found is None:
        raise NotFound(f"input_file_id: no file {body.get('input_file_id')!r}", param="input_file_id")
    items = read_lines(found[2])
    if not items:
        raise BadRequest("input_file_id: the file holds no requests", param="input_file_id")
    if len(items) > MAX_REQUESTS:
        raise BadRequest(f"input_file_id: a batch holds at most {MAX_REQUESTS} requests", param="input_file_id")
    gid = "batch_pm" + secrets.token_hex(12)
    meta = {"input_file_id": body["input_file_id"], "metadata": body.get("metadata")}
    gw.batches.queue.add_group(gid, agent.name, "openai", orjson.dumps(meta))
    try:
        await gw.batches.intake("openai", agent, h, gid, items)
    except BaseException:
        gw.batches.queue.drop_group(gid)
        raise
    await json_response(send, view(gw, gid, agent.name))


def line(j: Job) -> dict[str, Any]:
    body = orjson.loads(j.result) if j.result else None
    if j.status == "succeeded":
        return {"id": "batch_req_" + j.id, "custom_id": j.custom_id,
                "response": {"status_code": 200, "request_id": j.id, "body": body}, "error": None}  # fmt: skip
    if j.status == "errored":
        status = 400 if not j.provider else 500
        if not (isinstance(body, dict) and "error" in body):
            body = {"error": {"message": j.error or "the request failed", "type": "server_error", "param": None,
                              "code": None}}  # fmt: skip
        return {"id": "batch_req_" + j.id, "custom_id": j.custom_id,
                "response": {"status_code": status, "request_id": j.id, "body": body}, "error": None}  # fmt: skip
    code = "batch_expired" if j.status == "expired" else "batch_cancelled"
    return {"id": "batch_req_" + j.id, "custom_id": j.custom_id, "response": None,
            "error": {"code": code, "message": f"This request was {j.status}."}}  # fmt: skip


def output(gw: Gateway, gid: str, errors: bool) -> bytes:
    jobs = gw.batches.queue.jobs("grp = ?", (gid,))
    chosen = [j for j in jobs if (j.status != "succeeded") == errors and j.status not in OPEN]
    return b"".join(orjson.dumps(line(j)) + b"\n" for j in chosen)


def view(gw: Gateway, gid: str, agent: str) -> dict[str, Any]:
    g = gw.batches.queue.group(gid, agent)
    assert g is not None
    _, created, cancel, meta = g
    m = orjson.loads(meta) if meta else {}
    tally = gw.batches.queue.tally(gid)
    total = sum(n for n, _ in tally.values())
    done = sum(n for status, (n, _) in tally.items() if status not in OPEN)
    ok = tally.get("succeeded", (0, 0.0))[0]
    finished = max((last for s, (_, last) in tally.items() if s not in OPEN), default=0) if done == total else None
    status = (
        ("cancelled" if cancel else "completed") if finished is not None else "cancelling" if cancel else "in_progress"
    )
    c = int(created)
    return {
        "id": gid, "object": "batch", "endpoint": ENDPOINT, "errors": None,
        "input_file_id": m.get("input_file_id", ""), "completion_window": "24h", "status": status,
        "output_file_id": OUT + gid if finished is not None and ok else None,
        "error_file_id": ERR + gid if finished is not None and done > ok else None,
        "created_at": c, "in_progress_at": c, "expires_at": c + 86400,
        "finalizing_at": int(finished) if finished else None,
        "completed_at": int(finished) if finished and not cancel else None,
        "failed_at": None, "expired_at": None,
        "cancelling_at": c if cancel else None, "cancelled_at": int(finished) if finished and cancel else None,
        "request_counts": {"total": total, "completed": ok, "failed": done - ok},
        "metadata": m.get("metadata"),
    }  # fmt: skip
