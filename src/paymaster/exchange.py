"""One admitted attempt on its way to the provider and back: forward, settle, encode (non-streamed and
streamed). Failures before any byte reached the agent go through `upstream_errors`, the one boundary
that says what they mean."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import orjson

from .budget import Budget, Ticket
from .call import Call, Usage
from .errors import UpstreamFailed
from .http import Headers, Receive, Send, respond
from .levers.base import LeverContext
from .pricing import Rates, usd_str
from .providers import Response, Upstream, UpstreamClosed, UpstreamError, relay_headers, request_ids
from .settle import Settler
from .upstream_errors import RETRYABLE, Retry, fail, status_of
from .wire import SSEFrames, Wire, translate
from .wire import anthropic as wire_anthropic

SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError)
"""What reading a provider's answer whose fields have the wrong shape raises (orjson's errors included)."""


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One admitted call on its way upstream and back."""

    api: Wire  # the caller's wire format
    wire: Wire  # the provider's (the caller's, unless the call is translated)
    call: Call
    ctx: LeverContext
    rates: Rates
    up: Upstream
    ticket: Ticket
    headers: dict[bytes, bytes]  # the caller's request headers
    started: float
    payload: bytes  # the request body as sent upstream
    may_retry: bool = False  # a fallback model exists: retryable failures raise Retry instead of answering
    path: str = ""  # the provider's endpoint, when not the upstream's default (the Responses API's)

    @property
    def translated(self) -> bool:
        return self.wire is not self.api


class Forwarder:
    def __init__(self, budget: Budget, settle: Settler) -> None:
        self.budget = budget
        self.settle = settle

    async def forward(self, x: Exchange, receive: Receive, send: Send) -> None:
        call, up = x.call, x.up
        status, error, rid = "ok", "", ""
        usage: Usage | None = None
        answer: bytes | None = None
        try:
            try:
                resp = await up.post(x.path or up.path, x.payload, up.headers(x.headers))
                data = await resp.read()
            except UpstreamError as e:
                status, error = status_of(e), str(e)
                fail(e, up.provider.name, may_retry=x.may_retry)
            rid = resp.headers.get("request-id") or resp.headers.get("x-request-id") or ""
            if resp.status != 200:
                status, error = "upstream_error", f"{resp.status}: {data[:300].decode('utf-8', 'replace')}"
                if x.may_retry and resp.status in RETRYABLE:
                    raise Retry(str(resp.status))
                data = translate.error_for(call.api, resp.status, data, x.translated)
            else:
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    parsed = None
                usage = x.wire.answer_usage(parsed)  # None: booked at the worst case, flagged
                if not isinstance(parsed, dict):
                    status, error = "bad_upstream_body", "the provider answered 200 with no JSON object"
                try:
                    if x.translated and status == "ok":
                        data = orjson.dumps(translate.answer_for(call.api, parsed, call.model))
                    if call.structured_tool and status == "ok":
                        data = wire_anthropic.unwrap_structured(data, call.structured_tool)
                except MALFORMED as e:  # a field of the wrong type, or nested past what orjson writes (254 levels)
                    raise UpstreamFailed(
                        f"the provider's answer cannot be re-encoded for the caller: {e}", retry=False
                    ) from e
                answer = data
        finally:
            cost = self.settle(x, status, usage, error, rid, answer=answer)
        await respond(send, resp.status, data, [*relayed(resp, x.ticket.id), *self.headers(x, cost)])

    async def stream(self, x: Exchange, receive: Receive, send: Send) -> None:
        call, up = x.call, x.up
        status, error, rid = "ok", "", ""
        watch = x.wire.StreamWatch(call)
        relay = translate.StreamFor(call) if x.translated else None
        gone = asyncio.Event()
        resp: Response | None = None
        last: list[bytes] = []  # events after the stream's final one was seen: sent with the cost line

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if resp is not None:
                resp.close()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            try:
                resp = await up.post(x.path or up.path, x.payload, up.headers(x.headers))
            except UpstreamError as e:
                status, error = status_of(e), str(e)
                fail(e, up.provider.name, may_retry=x.may_retry)
            rid = resp.headers.get("request-id") or resp.headers.get("x-request-id") or ""
            if resp.status != 200:
                data = await resp.read()
                status, error = "upstream_error", f"{resp.status}: {data[:300].decode('utf-8', 'replace')}"
                if x.may_retry and resp.status in RETRYABLE:
                    raise Retry(str(resp.status))
                data = translate.error_for(call.api, resp.status, data, x.translated)
                await respond(send, resp.status, data, relayed(resp, x.ticket.id))
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*SSE_HEADERS, *relayed(resp, x.ticket.id), *self.headers(x, None)],
                }
            )
            frames = SSEFrames()
            try:
                async for chunk in resp.iter_chunks():
                    # the frames that arrived together go out together: one send per read, not per event
                    out: list[bytes] = []
                    for f in frames.feed(chunk):
                        g = watch.frame(f)
                        if relay is not None:
                            out += relay.frame(f)
                        elif g is not None:
                            out.append(g)
                    if watch.finished:  # the answer's last events leave with the cost line below, in one write
                        last += out
                    elif out:
                        await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
                if relay is not None and watch.finished:
                    last += relay.close()
            except UpstreamClosed as e:
                status, error = "cut", f"the provider's stream broke off: {e}"
            except UpstreamError as e:
                status, error = status_of(e), str(e)
            except MALFORMED as e:  # an event the wire or translation could not read: the stream ends there
                status, error = "cut", f"the provider's stream carried an unreadable event: {e!r}"
            if gone.is_set() and watch.finished:  # it left after the final event: billed as reported
                status, error = "ok", ""  # (the close that cut the rest of the body short was ours)
            elif gone.is_set():
                status, error = "disconnected", "the agent closed the stream; upstream closed"
            elif not watch.finished and status == "ok":
                status, error = "cut", "the provider's stream ended before its final event"
        finally:
            watcher.cancel()
            if resp is not None:
                resp.close()
            usage = watch.usage()
            # the input side alone counts only when the whole usage does not (a stream cut short, or no usage)
            partial = watch.input_usage() if status != "ok" or usage is None else None
            cost = self.settle(x, status, usage, error, rid, partial)
        if not gone.is_set():
            tail = b": paymaster cost_usd=%s\n\n" % usd_str(cost).encode()
            if status != "ok":  # tell the agent its stream broke, in its own API's words
                seq = relay.seq if relay is not None else getattr(watch, "seq", 0)  # a Responses stream's next
                tail = x.api.stream_error(f"the provider's stream was interrupted ({error})", seq) + tail
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"".join((*last, tail)), "more_body": False})

    def headers(self, x: Exchange, cost: int | None) -> Headers:
        call, t = x.call, x.ticket
        out = remaining_headers(self.budget, call.agent, t.id)
        if t.unmetered:  # admitted while the shared store was down (`on_store_outage: admit_unmetered`)
            out.append((b"x-paymaster-unmetered", b"store outage; booked and flagged for reconciliation"))
        if cost is not None:
            out.append((b"x-paymaster-cost-usd", usd_str(cost).encode()))
        else:
            out.append((b"x-paymaster-reserved-usd", usd_str(t.worst).encode()))
        out.extend((k.encode(), v.encode()) for k, v in call.notes.items())
        return out


def relayed(resp: Response, call_id: str) -> Headers:
    """The provider's headers an agent gets, with both request ids: the provider's, or (an answer with none,
    a proxy's error page) the call's own id, so every answer carries them."""
    out = relay_headers(resp)
    if not (resp.headers.get("request-id") or resp.headers.get("x-request-id")):
        out += request_ids(call_id)
    return out


def remaining_headers(budget: Budget, agent: str, call_id: str) -> Headers:
    """The call's id and what the agent has left, as every answer carries them."""
    day, month = budget.remaining(agent)
    return [
        (b"x-paymaster-call-id", call_id.encode()),
        (b"x-paymaster-remaining-daily-usd", usd_str(day).encode() if day is not None else b"unlimited"),
        (b"x-paymaster-remaining-monthly-usd", usd_str(month).encode() if month is not None else b"unlimited"),
    ]
