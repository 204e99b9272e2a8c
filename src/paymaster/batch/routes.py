"""The gateway's own job endpoints (an agent sees only its own jobs):

GET /v1/paymaster/jobs[?status=&limit=]   the agent's deferred calls, newest first
GET /v1/paymaster/jobs/{id}               one job (its answer under `response` once it succeeded)
GET /v1/paymaster/jobs/{id}/result        the answer alone, as the provider's endpoint would give it: the
                                          SDKs read it as their normal response type (409 until it is ready)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..errors import GatewayError, NotFound
from ..http import Receive, Scope, Send, json_response, respond
from ..query import number, params
from .service import job_view

if TYPE_CHECKING:
    from ..app import Gateway
    from ..call import Call
    from ..levers.base import LeverContext

PREFIX = "/v1/paymaster/jobs"


class NotReady(GatewayError):
    status, kind = 409, "invalid_request_error"


async def defer(gw: Gateway, call: Call, ctx: LeverContext, source: dict[str, Any], send: Send) -> None:
    """202: the call is admitted at batch prices and queued (see batch/service.py)."""
    note = ctx.state["batch"]
    job = await gw.batches.admit(call, ctx, source, note.deadline)
    gw.batches.commit([job])
    day, month = gw.budget.remaining(call.agent)
    headers = [
        (b"location", f"{PREFIX}/{job.id}".encode()),
        (b"x-paymaster-job-id", job.id.encode()),
        (b"x-paymaster-call-id", job.id.encode()),
        (b"x-paymaster-reserved-usd", job_view(job)["reserved_usd"].encode()),
        *((k.encode(), v.encode()) for k, v in call.notes.items()),
    ]
    if day is not None:
        headers.append((b"x-paymaster-remaining-daily-usd", str(day / 1e9).encode()))
    await respond(send, 202, orjson.dumps(job_view(job)), headers)


async def jobs(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from ..http import header_map

    agent = gw.agent(header_map(scope))
    parts = scope["path"][len(PREFIX) :].strip("/").split("/")
    if parts == [""]:
        q = params(scope)
        where, args = "agent = ? AND grp = ''", [agent.name]
        if "status" in q:
            where += " AND status = ?"
            args.append(q["status"])
        found = gw.batches.queue.jobs(where, tuple(args), number(q, "limit", int, 100, 1, 1000))
        await json_response(send, {"object": "list", "data": [job_view(j) for j in reversed(found)]})
        return
    job = gw.batches.queue.job(parts[0])
    if job is None or job.agent != agent.name or len(parts) > 2 or (len(parts) == 2 and parts[1] != "result"):
        raise NotFound(f"no job {parts[0]!r}")
    if len(parts) == 1:
        await json_response(send, job_view(job))
    elif job.status != "succeeded" or job.result is None:
        raise NotReady(f"job {job.id} is {job.status}: no answer to read", extra={"status": job.status})
    else:
        await respond(send, 200, job.result, [(b"x-paymaster-cost-usd", job_view(job)["cost_usd"].encode())])
