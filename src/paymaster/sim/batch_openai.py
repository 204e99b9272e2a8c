"""OpenAI's Files and Batch APIs, simulated (platform.openai.com/docs/api-reference/batch).

POST /v1/files (multipart: file, purpose=batch)   GET /v1/files/{id}   GET /v1/files/{id}/content
POST /v1/batches {"input_file_id", "endpoint", "completion_window": "24h", "metadata"}
GET  /v1/batches[?after&limit]   GET /v1/batches/{id}   POST /v1/batches/{id}/cancel

status: validating → in_progress → finalizing → completed (or failed at validation, expired, cancelling →
cancelled). Input lines {"custom_id", "method": "POST", "url", "body"}; output lines {"id", "custom_id",
"response": {"status_code", "request_id", "body"}, "error"}; failures and expired requests go to the error
file (code "batch_expired"). Limits: 50,000 requests and 200 MB per input file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import multipart
from .asgi import Reply, json_reply
from .batch_common import BatchAPI, Outcomes, Run, shuffled
from .ids import new_id

MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
ENDPOINTS = ("/v1/chat/completions",)


@dataclass
class File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created: float

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": int(self.created),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class Batch:
    id: str
    input_file_id: str
    endpoint: str
    created: float
    lines: list[dict[str, Any]]
    outcomes: Outcomes
    metadata: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    cancel_at: float | None = None
    stamps: dict[str, float] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    final: str | None = None


class OpenAIBatches(BatchAPI):
    batches: dict[str, Batch]

    def __init__(self, run: Run, error: Callable[..., Reply], clock: Callable[[], float] = time.time) -> None:
        super().__init__(run, error, clock)
        self.files: dict[str, File] = {}

    def reset(self) -> None:
        super().reset()
        self.files.clear()

    def handle(self, method: str, path: str, query: bytes, headers: dict[str, str], raw: bytes) -> Reply:
        parts = path.strip("/").split("/")[1:]  # after "v1"
        if parts[0] == "files":
            if len(parts) == 1 and method == "POST":
                return self.upload(headers.get("content-type", ""), raw)
            f = self.files.get(parts[1]) if len(parts) > 1 else None
            if len(parts) > 1 and f is None:
                return self.error(404, f"No such File object: {parts[1]}", param="id")
            if f is not None and len(parts) == 2 and method == "GET":
                return json_reply(200, f.view())
            if f is not None and len(parts) == 3 and parts[2] == "content" and method == "GET":
                return Reply(200, [(b"content-type", b"application/octet-stream")], f.data)
        elif parts[0] == "batches":
            if len(parts) == 1 and method == "POST":
                return self.create(raw)
            if len(parts) == 1 and method == "GET":
                return self.listing(query)
            b = self.batches.get(parts[1]) if len(parts) > 1 else None
            if b is None:
                return self.error(404, f"No batch found with id '{parts[1]}'.")
            if len(parts) == 2 and method == "GET":
                return json_reply(200, self.view(b))
            if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                if self._advance(b) in ("validating", "in_progress", "finalizing"):
                    b.cancel_at = self.clock()
                    b.stamps["cancelling_at"] = b.cancel_at
                return json_reply(200, self.view(b))
        return self.error(404, f"Invalid URL ({method} {path})")

    def upload(self, ctype: str, raw: bytes) -> Reply:
        try:
            form = multipart.parse(ctype, raw)
        except ValueError as e:
            return self.error(400, str(e))
        if "file" not in form or "purpose" not in form:
            return self.error(400, "'file' and 'purpose' are required form fields", param="file")
        purpose = form["purpose"].data.decode()
        data = form["file"].data
        if purpose == "batch" and len(data) > MAX_FILE_BYTES:
            return self.error(400, f"a batch input file is limited to {MAX_FILE_BYTES} bytes", param="file")
        f = File(new_id("file-"), form["file"].filename or "upload.jsonl", purpose, data, self.clock())
        self.files[f.id] = f
        return json_reply(200, f.view())

    def create(self, raw: bytes) -> Reply:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self.error(400, "the body must be a JSON object")
        f = self.files.get(body.get("input_file_id", ""))
        if f is None:
            return self.error(400, f"Invalid 'input_file_id': {body.get('input_file_id')!r}.", param="input_file_id")
        if body.get("endpoint") not in ENDPOINTS:
            return self.error(400, f"Invalid 'endpoint': {body.get('endpoint')!r}.", param="endpoint")
        if body.get("completion_window") != "24h":
            return self.error(400, "Invalid 'completion_window': only '24h' is supported.", param="completion_window")
        lines, errors = self._read(f.data, body["endpoint"])
        ids = [ln["custom_id"] for ln in lines]
        b = Batch(new_id("batch_"), f.id, body["endpoint"], self.clock(), lines,
                  Outcomes.draw(ids, self.faults), body.get("metadata"), errors)  # fmt: skip
        b.counts["total"] = len(lines)
        self.batches[b.id] = b
        return json_reply(200, self.view(b))

    def _read(self, data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The input file's requests, or the validation errors that fail the whole batch."""
        lines, errors, seen = [], [], set()
        for n, text in enumerate(data.splitlines(), 1):
            if not text.strip():
                continue
            try:
                ln = orjson.loads(text)
                ok = isinstance(ln, dict) and isinstance(ln.get("custom_id"), str) and isinstance(ln.get("body"), dict)
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                errors.append({"code": "invalid_json_line", "line": n, "message": "This line is not a valid request."})
            elif ln.get("url") != endpoint:
                errors.append({"code": "mismatched_url", "line": n, "message": "The url must match the endpoint."})
            elif ln["custom_id"] in seen:
                errors.append({"code": "duplicate_custom_id", "line": n, "message": "custom_id must be unique."})
            else:
                seen.add(ln["custom_id"])
                lines.append(ln)
        if len(lines) > MAX_REQUESTS:
            errors.append({"code": "too_many_requests", "line": None, "message": f"at most {MAX_REQUESTS} requests"})
        if not lines and not errors:
            errors.append({"code": "empty_file", "line": None, "message": "The input file is empty."})
        return lines, errors

    def listing(self, query: bytes) -> Reply:
        page, more = self.page(query, "after")
        data = [self.view(b) for b in page]
        return json_reply(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            },
        )

    # -- lifecycle: validating → in_progress → finalizing → completed, over `batch_s` seconds

    def _advance(self, b: Batch) -> str:
        if b.final is not None:
            return b.final
        now, t = self.clock(), self.batch_s
        if b.errors:
            return self._finish(b, "failed", "failed_at")
        if b.cancel_at is not None:
            return self._end(b, "cancelled", "cancelled_at") if now - b.cancel_at >= t / 10 else "cancelling"
        age = now - b.created
        if self.faults.hold or age < t * 0.1:
            return "validating" if age < t * 0.1 else "in_progress"
        b.stamps.setdefault("in_progress_at", b.created + t * 0.1)
        if age < t * 0.8:
            return "in_progress"
        b.stamps.setdefault("finalizing_at", b.created + t * 0.8)
        if age < t:
            return "finalizing"
        if b.lines and b.outcomes.expired >= {ln["custom_id"] for ln in b.lines}:  # nothing ran in the window
            return self._end(b, "expired", "expired_at")
        return self._end(b, "completed", "completed_at")

    def _finish(self, b: Batch, status: str, stamp: str) -> str:
        b.final = status
        b.stamps[stamp] = self.clock()
        return status

    def _end(self, b: Batch, status: str, stamp: str) -> str:
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for ln in b.lines:
            cid = ln["custom_id"]
            rid = new_id("batch_req_")
            if status == "cancelled" or cid in b.outcomes.expired or status == "expired":
                kind = "batch_cancelled" if status == "cancelled" else "batch_expired"
                msg = (
                    "This request was cancelled."
                    if kind == "batch_cancelled"
                    else "This request could not be executed before the completion window expired."
                )
                err.append({"id": rid, "custom_id": cid, "response": None, "error": {"code": kind, "message": msg}})
                continue
            code: int
            answer: Any
            if cid in b.outcomes.errored:
                code = 500
                answer = {"error": {"message": "The server had an error.", "type": "server_error", "param": None,
                                    "code": None}}  # fmt: skip
            else:
                code, answer = self.run("openai", ln["body"])
            line = {
                "id": rid,
                "custom_id": cid,
                "response": {"status_code": code, "request_id": new_id("req_"), "body": answer},
                "error": None,
            }
            (out if code == 200 else err).append(line)
        b.counts = {"total": len(b.lines), "completed": len(out), "failed": len(b.lines) - len(out)}
        if out:
            b.output_file_id = self._file(b, "output", out)
        if err:
            b.error_file_id = self._file(b, "error", err)
        return self._finish(b, status, stamp)

    def _file(self, b: Batch, kind: str, lines: list[dict[str, Any]]) -> str:
        data = b"".join(orjson.dumps(x) + b"\n" for x in shuffled(lines))
        f = File(new_id("file-"), f"{b.id}_{kind}.jsonl", "batch_output", data, self.clock())
        self.files[f.id] = f
        return f.id

    def view(self, b: Batch) -> dict[str, Any]:
        status = self._advance(b)
        created = int(b.created)
        out: dict[str, Any] = {
            "id": b.id,
            "object": "batch",
            "endpoint": b.endpoint,
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
            "input_file_id": b.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "created_at": created,
            "expires_at": created + 86400,
            "request_counts": b.counts,
            "metadata": b.metadata,
        }
        for stamp in (
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        ):
            out[stamp] = int(b.stamps[stamp]) if stamp in b.stamps else None
        return out
