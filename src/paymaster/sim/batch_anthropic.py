"""Anthropic's Message Batches API, simulated (docs.anthropic.com/en/api/creating-message-batches).

POST /v1/messages/batches               {"requests": [{"custom_id", "params"}]} → a message_batch
GET  /v1/messages/batches[?limit&after_id&before_id]
GET  /v1/messages/batches/{id}
POST /v1/messages/batches/{id}/cancel   in_progress → canceling → ended (unfinished requests canceled)
GET  /v1/messages/batches/{id}/results  JSONL, one {"custom_id", "result"} a line, in arbitrary order
DELETE /v1/messages/batches/{id}        only once ended

processing_status: in_progress → (canceling →) ended; each request ends succeeded | errored | canceled |
expired. Limits: 100,000 requests or 256 MB per batch; custom_id ^[a-zA-Z0-9_-]{1,64}$, unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .asgi import Reply, json_reply
from .batch_common import BatchAPI, Outcomes, rfc3339, shuffled
from .ids import new_id

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
PREFIX = "/v1/messages/batches"


@dataclass
class Batch:
    id: str
    created: float
    requests: list[dict[str, Any]]
    outcomes: Outcomes
    cancel_at: float | None = None
    ended_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class AnthropicBatches(BatchAPI):
    batches: dict[str, Batch]

    def handle(self, method: str, path: str, query: bytes, raw: bytes, base: str) -> Reply:
        rest = path[len(PREFIX) :].strip("/")
        parts = rest.split("/") if rest else []
        if not parts:
            if method == "POST":
                return self.create(raw, base)
            if method == "GET":
                return self.listing(query, base)
        elif len(parts) == 1:
            b = self.batches.get(parts[0])
            if b is None:
                return self.error(404, f"message batch {parts[0]!r} not found")
            if method == "GET":
                return json_reply(200, self.view(b, base))
            if method == "DELETE":
                if self._advance(b) != "ended":
                    return self.error(400, "a message batch can only be deleted once it has ended")
                del self.batches[b.id]
                return json_reply(200, {"id": b.id, "type": "message_batch_deleted"})
        elif len(parts) == 2 and parts[1] in ("cancel", "results"):
            b = self.batches.get(parts[0])
            if b is None:
                return self.error(404, f"message batch {parts[0]!r} not found")
            if parts[1] == "cancel" and method == "POST":
                if self._advance(b) == "in_progress":
                    b.cancel_at = self.clock()
                return json_reply(200, self.view(b, base))
            if parts[1] == "results" and method == "GET":
                if self._advance(b) != "ended":
                    return self.error(400, f"message batch {b.id} is still processing; results are not ready")
                lines = b"".join(orjson.dumps(r) + b"\n" for r in b.results)
                return Reply(200, [(b"content-type", b"application/binary")], lines)
        return self.error(405 if parts else 404, f"Not found: {method} {path}")

    def create(self, raw: bytes, base: str) -> Reply:
        if len(raw) > MAX_BYTES:
            return self.error(413, f"a message batch is limited to {MAX_BYTES} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.error(400, "The request body is not valid JSON.")
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return self.error(400, "requests: Field required (a non-empty list)")
        if len(reqs) > MAX_REQUESTS:
            return self.error(400, f"requests: a message batch holds at most {MAX_REQUESTS} requests")
        seen: set[str] = set()
        for i, r in enumerate(reqs):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not CUSTOM_ID.fullmatch(cid):
                return self.error(400, f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
            if cid in seen:
                return self.error(400, f"requests.{i}.custom_id: {cid!r} is not unique within the batch")
            seen.add(cid)
            if not isinstance(r.get("params"), dict):
                return self.error(400, f"requests.{i}.params: Field required")
            if r["params"].get("stream"):
                return self.error(400, f"requests.{i}.params.stream: streaming is not supported in batches")
        b = Batch(new_id("msgbatch_"), self.clock(), reqs, Outcomes.draw(list(seen), self.faults))
        self.batches[b.id] = b
        return json_reply(200, self.view(b, base))

    def listing(self, query: bytes, base: str) -> Reply:
        page, more = self.page(query, "after_id")
        data = [self.view(b, base) for b in page]
        return json_reply(
            200,
            {
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    # -- lifecycle

    def _advance(self, b: Batch) -> str:
        now = self.clock()
        if b.ended_at is not None:
            return "ended"
        if b.cancel_at is not None:
            if now - b.cancel_at >= self.batch_s / 10:
                self._end(b, canceled=True)
                return "ended"
            return "canceling"
        if now - b.created >= self.batch_s and not self.faults.hold:
            self._end(b, canceled=False)
            return "ended"
        return "in_progress"

    def _end(self, b: Batch, canceled: bool) -> None:
        out = []
        for r in b.requests:
            cid = r["custom_id"]
            if canceled:
                result: dict[str, Any] = {"type": "canceled"}
            elif cid in b.outcomes.expired:
                result = {"type": "expired"}
            elif cid in b.outcomes.errored:
                result = {"type": "errored", "error": _error("api_error", "Internal server error")}
            elif r["params"].get("speed") == "fast":  # …/about-claude/pricing: "not available with the Batch API"
                message = "speed: fast mode is not available with the Batch API"
                result = {"type": "errored", "error": _error("invalid_request_error", message)}
            else:
                status, answer = self.run("anthropic", r["params"])
                if status == 200:
                    answer["usage"]["service_tier"] = "batch"  # as batch results report it
                    result = {"type": "succeeded", "message": answer}
                else:
                    result = {"type": "errored", "error": answer}
            out.append({"custom_id": cid, "result": result})
        b.results = shuffled(out)
        b.ended_at = self.clock()

    def view(self, b: Batch, base: str) -> dict[str, Any]:
        state = self._advance(b)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if state == "ended":
            for r in b.results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(b.requests)
        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": state,
            "request_counts": counts,
            "ended_at": rfc3339(b.ended_at) if b.ended_at is not None else None,
            "created_at": rfc3339(b.created),
            "expires_at": rfc3339(b.created + 86400),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(b.cancel_at) if b.cancel_at is not None else None,
            "results_url": f"{base}{PREFIX}/{b.id}/results" if state == "ended" else None,
        }


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
