"""The gateway as an ASGI app. One call, top to bottom (see `Gateway.complete`):

    authenticate → decode → levers → admit → forward → settle → encode

Admin endpoints (the blackboard, the ledger) live in `admin.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType
from typing import Any

import orjson

from . import admin, feedback
from .blackboard import Blackboard
from .budget import Budget, Refusal, Ticket, Wait
from .call import Call, Usage
from .config import PRICE_PROVIDER, TIERS, Agent, Config, Task
from .costmodel import Estimate, Unbounded, data, estimate
from .costmodel.anthropic import bound_server_tools, count_tokens_body
from .errors import (
    BadRequest,
    BudgetBusy,
    BudgetExceeded,
    CallTooLarge,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    UpstreamFailed,
)
from .http import Headers, Receive, Scope, Send, bearer_or_key, header_map, json_response, read_json, respond
from .levers import caching, output
from .levers.response_cache import ResponseCache
from .levers.routing import Route, Router
from .levers.routing_cascade import cascade
from .pricing import Rates, from_nanos, plain_tokens, to_nanos, usd_str
from .providers import Response, Unreachable, Upstream, UpstreamClosed, UpstreamError, UpstreamTimeout, relay_headers
from .store.sqlite import LedgerRow, SQLiteStore
from .wire import SSEFrames, translate
from .wire import anthropic as wire_anthropic
from .wire import openai as wire_openai

log = logging.getLogger("paymaster")

SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(slots=True)
class Exchange:
    """One admitted call on its way upstream and back."""

    api: ModuleType  # the caller's wire module
    call: Call
    rates: Rates
    up: Upstream
    ticket: Ticket
    headers: dict[bytes, bytes]  # the caller's request headers
    started: float
    payload: bytes  # the request body as sent upstream
    cache_key: bytes | None = None  # response-cache key, when the answer may be stored
    may_retry: bool = False  # a fallback model exists: retryable failures raise Retry instead of answering
    target: ModuleType | None = None  # the provider's wire, when it differs from the caller's (translation)

    @property
    def wire(self) -> ModuleType:
        """The wire format the provider speaks."""
        return self.target or self.api

    @property
    def translated(self) -> bool:
        return self.target is not None and self.target is not self.api


class Retry(Exception):
    """The provider failed in a way another model may not (429, 5xx, overloaded, timeout), before
    any byte reached the agent; the attempt is already settled."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


RETRYABLE = {429, 500, 502, 503, 504, 529}
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError)
"""What reading a provider's answer whose fields have the wrong shape raises (orjson's errors included)."""


class Gateway:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.board = Blackboard(list(config.agents))
        self.store = SQLiteStore(config.ledger, config.durability)
        try:
            self.recovered = self.store.recover(clock())  # takes the ledger: one writer (LedgerLocked if not)
        except BaseException:
            self.store.close()
            raise
        self.store.on_error = lambda e: self.board.publish("ledger.failing", reason=self.store.failing)
        self.store.on_ok = lambda: self.board.publish("ledger.writable")
        for row in self.recovered:
            self.board.publish("ledger.recovered", agent=row.agent, call_id=row.id, cost_usd=row.cost_usd)
        self.budget = Budget(config, self.store, self.board, clock)
        self.upstreams = {name: Upstream(p) for name, p in config.providers.items()}
        self.answers = ResponseCache()
        self.router = Router(config, clock, self.rates_of)
        self._tasks: set[asyncio.Task[None]] = set()
        self.routes: dict[tuple[str, str], Callable[..., Any]] = {
            ("POST", "/v1/messages"): self.messages,
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/chat/completions"): self.chat_completions,
            ("POST", "/v1/messages/count_tokens"): self.count_tokens,
            ("GET", "/v1/models"): self.list_models,
            ("GET", "/healthz"): self.health,
            ("POST", "/v1/paymaster/feedback"): functools.partial(feedback.handle, self),  # routing feedback
        }

    # -- ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        self._tasks.add(asyncio.create_task(self._tick()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for up in self.upstreams.values():
            await up.close()
        self.router.close()
        self.store.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.board.expire(self.clock())

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        api: ModuleType = wire_anthropic if path.startswith("/v1/messages") else wire_openai
        try:
            handler = self.routes.get((method, path))
            if handler is not None:
                await handler(scope, receive, send)
            elif path.startswith("/admin/"):
                await admin.handle(self, scope, receive, send)
            elif any(p == path for _, p in self.routes):
                raise MethodNotAllowed(f"{method} is not allowed on {path}")
            else:
                raise NotFound(f"no route {method} {path}")
        except GatewayError as e:
            if path == "/v1/models" and b"anthropic-version" in header_map(scope):
                api = wire_anthropic
            await self.refuse(send, api, e)

    async def refuse(self, send: Send, api: ModuleType, e: GatewayError) -> None:
        final = e.status in (402, 413) or (isinstance(e, UpstreamFailed) and not e.retry)
        headers: Headers = [(b"x-should-retry", b"false")] if final else []
        if isinstance(e, BudgetBusy):
            headers = [(b"retry-after", b"1")]
        await respond(send, e.status, api.error_body(e), headers)

    # -- authenticate --------------------------------------------------------------------------------

    def agent(self, h: dict[bytes, bytes]) -> Agent:
        key = bearer_or_key(h)
        if not key:
            raise Unauthorized("missing API key: send the agent's Paymaster key as x-api-key or a Bearer token")
        agent = self.config.agent_by_key(key)
        if agent is None:
            raise Unauthorized("invalid API key")
        return agent

    # -- one call, top to bottom ---------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_anthropic, scope, receive, send)

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_openai, scope, receive, send)

    async def complete(self, api: ModuleType, scope: Scope, receive: Receive, send: Send) -> None:
        h = header_map(scope)
        agent = self.agent(h)  # 1. authenticate
        body, raw = await read_json(receive, h, self.config.max_body_bytes)
        call = self.decode(api, agent, body, h)  # 2. decode
        call.raw_len = len(raw)
        task = output.task_of(agent, call)
        original = copy.deepcopy(call.body) if self.router.cascades(call, task) else None  # verified cascade
        output.apply(call, agent, task)  # 3. levers, in order: output → routing → caching
        if call.stream and api is wire_openai:
            call.wants_usage_chunk = wire_openai.ask_usage(call.body)
        if call.model == "auto":
            call.prefix_key = caching.cache_key(agent.name, call.body)
            call.approx_tokens = len(orjson.dumps(call.body)) // 4
        share = self.budget.share(agent.name) if call.model == "auto" else 0.0  # only auto calls degrade
        route = self.router.route(call, agent, task, share)
        self.note_route(call, agent, route)
        if (
            original is not None
            and task is not None
            and await self.cascade(api, scope, call, agent, task, original, send)
        ):
            return  # a cheaper tier's answer passed the check
        source = call.body  # the caller's request, in its own API's shape
        cache_key = self.answers.key(call) if agent.response_cache.enabled else None
        if cache_key is not None and await self.answer_from_cache(call, cache_key, send):
            return
        tried: set[str] = set()
        while True:
            tried.add(call.model)
            target, rates, upstream = self.prepare(call, agent, source)  # translation, caching
            payload = orjson.dumps(call.body)
            worst, payload = self.bound(payload, call, rates, h)
            ticket = await self.admit(call, worst, upstream, h)  # 4. admit (402 when over a cap)
            if ticket.fitted:
                target.set_max_tokens(call.body, ticket.max_tokens, upstream.provider.kind)
                call.notes["x-paymaster-max-tokens"] = f"{ticket.max_tokens}; fitted to budget"
                payload = orjson.dumps(call.body)
            try:
                self.store.reserve(self.budget.journal(ticket, call.model, call.api))  # durable first
            except OSError as e:
                self.budget.release_unsent(ticket)
                raise UpstreamFailed(f"could not record the reservation: {e}", status=503) from e
            nxt = self.router.fallback(call.model, tried, agent.models, call.input_bound, ticket.max_tokens)
            x = Exchange(
                api, call, rates, upstream, ticket, h, time.perf_counter(), payload, cache_key, nxt is not None, target
            )
            forward = self.forward_stream if call.stream else self.forward  # 5–7. forward, settle, encode
            try:
                await forward(x, receive, send)
                return
            except Retry as r:  # the provider failed before anything reached the agent: next model
                self.router.failed(call.model)
                assert nxt is not None
                self.route_to(call, nxt, f"fallback from {call.model} ({r.why})")
                source["model"] = nxt

    async def cascade(
        self, api: ModuleType, scope: Scope, call: Call, agent: Agent, task: Task, body: dict[str, Any], send: Send
    ) -> bool:
        """Verified cascade (levers/routing_cascade.py): the cheaper tiers answer `body` first, each as a call of
        its own (admitted, booked); True when one passed its check and was sent, else the call moves to the top
        tier. Minimal hook until the lever protocol's `ask` lands."""
        ladder = [agent.tiers[t] for t in TIERS if t in agent.tiers]
        passed: list[tuple[bytes, bytes]] = []

        async def ask(b: dict[str, Any]) -> tuple[int, bytes]:
            status, raw, headers = await self._ask(api, scope, b, task.name)
            passed[:] = headers
            return status, raw

        answer, tried = await cascade(api.API, body, ladder, ask, task.schema)
        trail = "; ".join(f"{a.model} {'passed' if a.failed is None else 'failed: ' + a.failed}" for a in tried)
        if answer is not None:
            headers = [(k, v) for k, v in passed if k.startswith(b"x-paymaster-")]
            await respond(send, 200, answer, [*headers, (b"x-paymaster-cascade", trail.encode()[:1000])])
            return True
        call.notes["x-paymaster-cascade"] = trail[:1000]
        self.route_to(call, ladder[-1], f"cascade: {trail}"[:500])
        return False

    async def _ask(
        self, api: ModuleType, scope: Scope, body: dict[str, Any], task: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """`body` through the whole pipeline as the same caller, booked under task type `task`."""
        raw = orjson.dumps(body)
        keep = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"x-paymaster-task")]
        inner = {
            **scope,
            "headers": [*keep, (b"content-length", str(len(raw)).encode()), (b"x-paymaster-task", task.encode())],
        }
        reply: dict[str, Any] = {"status": 0, "body": b"", "headers": []}
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the caller never goes away
            raise AssertionError("unreachable")

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                reply["status"], reply["headers"] = msg["status"], list(msg.get("headers") or [])
            else:
                reply["body"] += msg.get("body", b"")

        try:
            await self.complete(api, inner, receive, send)
        except GatewayError as e:
            return e.status, api.error_body(e), []
        return reply["status"], reply["body"], reply["headers"]

    def prepare(self, call: Call, agent: Agent, source: dict[str, Any]) -> tuple[ModuleType, Rates, Upstream]:
        """Shape the request for the provider of `call.model`: translated when that provider speaks the other
        API, then the caching lever (which works in the provider's shape). Returns (its wire, rates, upstream)."""
        m = self.config.models[call.model]
        kind = m.provider.kind
        target = wire_anthropic if m.provider.api == "anthropic" else wire_openai
        assert call.max_tokens is not None
        if target.API == call.api:
            call.body = source
            target.set_max_tokens(source, call.max_tokens, kind)
        else:
            shaped = dict(source)
            (wire_anthropic if call.api == "anthropic" else wire_openai).set_max_tokens(
                shaped, call.max_tokens, "openai"
            )
            if call.api == "openai":
                if call.addendum is not None:  # Claude takes system text up front: the addendum joins it
                    shaped["messages"] = translate.addendum_up_front(shaped["messages"], call.addendum)
                    call.system_tail = 1
                call.body = translate.openai_request_to_anthropic(shaped, call.model)
            else:
                call.body = translate.anthropic_request_to_openai(shaped, call.model, kind)
            call.notes["x-paymaster-translated"] = f"{call.api} -> {target.API}"
        call.target_api = target.API
        caching.apply(call, agent, kind)
        return target, self.rates_of(call.model), self.upstreams[m.provider.name]

    def decode(self, api: ModuleType, agent: Agent, body: dict[str, Any], h: dict[bytes, bytes]) -> Call:
        model, max_tokens, stream = api.check(body)
        if model not in agent.models and not (model == "auto" and agent.tiers):
            raise NotFound(
                f"model {model!r} is not available to agent {agent.name!r} (allowed: {', '.join(agent.models)})",
                param="model",
            )
        return Call(
            api=api.API,
            agent=agent.name,
            body=body,
            model=model,
            stream=stream,
            max_tokens=max_tokens,
            choices=wire_openai.choices(body) if api is wire_openai else 1,
            task=_task_name(h, body),
        )

    def rates_of(self, model: str) -> Rates:
        return self.config.prices.rates(model, PRICE_PROVIDER[self.config.models[model].provider.kind])

    def note_route(self, call: Call, agent: Agent, route: Route) -> None:
        if route.reason == "requested":
            return
        call.requested = call.model
        call.baseline = route.baseline
        self.route_to(call, route.model, route.reason)
        st = self.board.status[agent.name]
        if "degraded" in route.reason and st.state == "active":
            self.board.degrade(agent.name, route.reason)
        elif "degraded" not in route.reason and st.state == "degraded":
            self.board.unblock(agent.name, "back under the degrade threshold")

    def route_to(self, call: Call, model: str, reason: str) -> None:
        call.model = model
        call.route = reason
        call.body["model"] = model
        call.notes["x-paymaster-model"] = model
        call.notes["x-paymaster-route"] = reason

    def bound(self, payload: bytes, call: Call, rates: Rates, h: dict[bytes, bytes]) -> tuple[Estimate, bytes]:
        """The request's worst case as it will be sent (levers included), from the cost model; and the
        payload, re-encoded when a server tool was given its configured `max_uses`."""
        try:
            if call.target_api == "anthropic":
                if set_uses := bound_server_tools(call.body):
                    call.notes["x-paymaster-max-uses"] = ", ".join(set_uses)
                    payload = orjson.dumps(call.body)
            long_context = b"context-1m" in h.get(b"anthropic-beta", b"")
            cap = None if long_context else rates.context_window
            tier = self.config.models[call.model].provider.service_tier
            worst = estimate(call.body, call.target_api, len(payload), rates, cap, default_tier=tier)
        except Unbounded as e:
            raise BadRequest(str(e), param=e.param) from e
        call.input_bound = worst.tokens
        return worst, payload

    async def refine(self, call: Call, worst: Estimate, up: Upstream, h: dict[bytes, bytes]) -> Estimate:
        """A tighter worst case, when the coarse one would not fit what the agent has left: OpenAI text
        counted with its public tokenizer (OpenAI's models only: an openai-compatible server tokenizes its
        own way); Claude's from the provider's count_tokens (plus a margin).
        Anything going wrong keeps the coarse bound, which is always safe."""
        assert call.max_tokens is not None
        left = [r for r in self.budget.remaining(call.agent) if r is not None]
        if not left or to_nanos(worst.worst_case(0, call.max_tokens * call.choices)) <= min(left):
            return worst
        if up.provider.kind == "openai-compatible":
            return worst  # its tokenizer is the served model's, not one we can count with: bytes bound it
        rates = self.rates_of(call.model)
        cap = None if b"context-1m" in h.get(b"anthropic-beta", b"") else rates.context_window
        if call.target_api == "openai":
            tight = estimate(call.body, "openai", 0, rates, cap, exact=True, default_tier=up.provider.service_tier)
        else:
            try:
                resp = await up.post(up.count_tokens_path, orjson.dumps(count_tokens_body(call.body)), up.headers(h))
                data = await resp.read()
                counted = orjson.loads(data)["input_tokens"] if resp.status == 200 else None
            except (UpstreamError, ValueError, KeyError, TypeError):
                counted = None
            if not isinstance(counted, int) or isinstance(counted, bool) or counted < 0:
                return worst
            payload = orjson.dumps(call.body)
            tight = estimate(call.body, "anthropic", len(payload), rates, cap, counted=counted)
        if tight.worst_case(0, 1) < worst.worst_case(0, 1):
            call.input_bound = tight.tokens
            return tight
        return worst

    async def answer_from_cache(self, call: Call, key: bytes, send: Send) -> bool:
        """Answer a repeated deterministic request from the response cache, at no cost."""
        now = self.clock()
        hit = self.answers.get(key, now)
        if hit is None:
            return False
        p = self.budget.calendar.periods(now)
        call_id = "pm_" + secrets.token_hex(12)
        self.store.book(
            LedgerRow(
                id=call_id,
                ts=now,
                agent=call.agent,
                api=call.api,
                provider="gateway",
                model_requested=call.model,
                model=hit.model,
                status="response_cache",
                max_tokens=call.max_tokens or 0,
                cost_usd="0",
                cost_nanos=0,
                day=p.day,
                month=p.month,
                task=call.task or "",
                max_tokens_requested=call.max_tokens_requested or 0,
                uncached_cost_nanos=hit.cost_nanos,
            )
        )
        day, month = self.budget.remaining(call.agent)
        headers: Headers = [
            (b"x-paymaster-call-id", call_id.encode()),
            (b"x-paymaster-cache", b"hit"),
            (b"x-paymaster-cost-usd", b"0.000000"),
            (b"x-paymaster-remaining-daily-usd", usd_str(day).encode() if day is not None else b"unlimited"),
            (b"x-paymaster-remaining-monthly-usd", usd_str(month).encode() if month is not None else b"unlimited"),
        ]
        await respond(send, 200, hit.body, headers)
        return True

    async def admit(self, call: Call, worst: Estimate, up: Upstream, h: dict[bytes, bytes]) -> Ticket:
        assert call.max_tokens is not None, "output control sets max_tokens"
        worst = await self.refine(call, worst, up, h)
        verdict = await self.budget.admit_waiting(
            call.agent, worst, call.input_bound, call.max_tokens, call.choices, self.config.admission_wait_s
        )
        if isinstance(verdict, Wait):
            raise BudgetBusy(
                f"the budget this call needs is held by agent {call.agent!r}'s calls in flight; retry shortly",
                extra={"retry_after_s": 1},
            )
        if isinstance(verdict, Refusal):  # 402: budget_exceeded (the agent is blocked) or call_too_large
            raise (CallTooLarge if verdict.too_large else BudgetExceeded)(
                verdict.message(),
                extra={
                    "window": verdict.window,
                    "spent_usd": usd_str(verdict.spent),
                    "reserved_usd": usd_str(verdict.held),
                    "cap_usd": usd_str(verdict.cap),
                    "needed_usd": usd_str(verdict.needed),
                    "resets_at": verdict.resets_at,
                },
            )
        return verdict

    # -- forward, settle, encode ---------------------------------------------------------------------

    async def forward(self, x: Exchange, receive: Receive, send: Send) -> None:
        call, up = x.call, x.up
        status, error, rid = "ok", "", ""
        usage: Usage | None = None
        try:
            try:
                resp = await up.post(up.path, x.payload, up.headers(x.headers))
                data = await resp.read()
            except UpstreamError as e:
                status, error = _failure(e)
                if x.may_retry and status != "error":
                    raise Retry(status) from e
                raise UpstreamFailed(f"provider {up.provider.name!r}: {error}", status=_http_status(status)) from e
            rid = resp.headers.get("request-id") or resp.headers.get("x-request-id") or ""
            if resp.status != 200:
                status, error = "upstream_error", f"{resp.status}: {data[:300].decode('utf-8', 'replace')}"
                if x.may_retry and resp.status in RETRYABLE:
                    raise Retry(str(resp.status))
                if x.translated:
                    data = translate.error_for(call.api, data)
            else:
                try:
                    answer = orjson.loads(data)
                except orjson.JSONDecodeError:
                    answer = None
                usage = x.wire.answer_usage(answer)  # None: booked at the worst case, flagged
                if not isinstance(answer, dict):
                    status, error = "bad_upstream_body", "the provider answered 200 with no JSON object"
                try:
                    if x.translated and status == "ok":
                        data = orjson.dumps(translate.answer_for(call.api, answer, call.model))
                    if call.structured_tool and status == "ok":
                        data = wire_anthropic.unwrap_structured(data, call.structured_tool)
                except MALFORMED as e:  # a field of the wrong type, or nested past what orjson writes (254 levels)
                    raise UpstreamFailed(
                        f"the provider's answer cannot be re-encoded for the caller: {e}", retry=False
                    ) from e
        finally:
            cost = self._settle(x, status, usage, error, rid)
        if x.cache_key is not None and status == "ok" and usage is not None and not usage.unpriced:
            ttl = self.config.agents[call.agent].response_cache.ttl_s
            self.answers.put(x.cache_key, self.clock(), ttl, data, to_nanos(cost), call.model)
        await respond(send, resp.status, data, [*relay_headers(resp), *self._headers(x, cost)])

    async def forward_stream(self, x: Exchange, receive: Receive, send: Send) -> None:
        api, call, up = x.api, x.call, x.up
        status, error, rid = "ok", "", ""
        watch = x.wire.StreamWatch(call)
        relay = translate.StreamFor(call) if x.translated else None
        gone = asyncio.Event()
        resp: Response | None = None

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if resp is not None:
                resp.close()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            try:
                resp = await up.post(up.path, x.payload, up.headers(x.headers))
            except UpstreamError as e:
                status, error = _failure(e)
                if x.may_retry and status != "error":
                    raise Retry(status) from e
                raise UpstreamFailed(f"provider {up.provider.name!r}: {error}", status=_http_status(status)) from e
            rid = resp.headers.get("request-id") or resp.headers.get("x-request-id") or ""
            if resp.status != 200:
                data = await resp.read()
                status, error = "upstream_error", f"{resp.status}: {data[:300].decode('utf-8', 'replace')}"
                if x.may_retry and resp.status in RETRYABLE:
                    raise Retry(str(resp.status))
                if x.translated:
                    data = translate.error_for(call.api, data)
                await respond(send, resp.status, data, relay_headers(resp))
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*SSE_HEADERS, *relay_headers(resp), *self._headers(x, None)],
                }
            )
            frames = SSEFrames()
            try:
                async for chunk in resp.iter_chunks():
                    for f in frames.feed(chunk):
                        out = watch.frame(f)
                        for g in relay.frame(f) if relay is not None else (out,) if out is not None else ():
                            await send({"type": "http.response.body", "body": g, "more_body": True})
                if relay is not None and watch.finished:
                    for g in relay.close():
                        await send({"type": "http.response.body", "body": g, "more_body": True})
            except UpstreamClosed as e:
                status, error = "cut", f"the provider's stream broke off: {e}"
            except UpstreamError as e:
                status, error = _failure(e)
            except MALFORMED as e:  # an event the wire or translation could not read: the stream ends there
                status, error = "cut", f"the provider's stream carried an unreadable event: {e!r}"
            if gone.is_set():
                status, error = "disconnected", "the agent closed the stream; upstream closed"
            elif not watch.finished and status == "ok":
                status, error = "cut", "the provider's stream ended before its final event"
        finally:
            watcher.cancel()
            if resp is not None:
                resp.close()
            cost = self._settle(x, status, watch.usage(), error, rid, watch.input_usage())
        if not gone.is_set():
            tail = b": paymaster cost_usd=%s\n\n" % usd_str(cost).encode()
            if status != "ok":  # tell the agent its stream broke, in its own API's words
                tail = api.stream_error(f"the provider's stream was interrupted ({error})") + tail
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": tail, "more_body": False})

    def _settle(
        self, x: Exchange, status: str, usage: Usage | None, error: str, rid: str, partial: Usage | None = None
    ) -> Decimal:
        """Book the call exactly once, at what the provider will bill.

        A finished call costs its reported usage; a call the provider refused or never received costs
        nothing. A finished call whose answer carried no usable usage (`usage` None: missing, a count
        missing or malformed, inconsistent), or reported a billable field nothing can price
        (`usage.unpriced`), is booked at its reserved worst case (never below what its usage prices
        at) and flagged for reconciliation: never at zero, never dropped. An interrupted one (timeout,
        cut stream, agent gone) may have been billed for every output token it was allowed, so it is
        booked so, on the input the provider reported (`partial`) or, when none was, at the full worst
        case — and flagged for reconciliation.
        """
        call, rates, t = x.call, x.rates, x.ticket
        worst = from_nanos(t.worst)
        reconcile = 0
        if status == "ok":
            if usage is not None and call.target_api == "openai" and "web_search_options" in call.body:
                # a search model searches once per request and reports it nowhere in usage
                # (developers.openai.com/api/docs/guides/tools-web-search, Chat Completions)
                usage.server_tool_uses.setdefault("web_search", 1)
            try:
                cost_usd = rates.cost(usage) if usage is not None else worst
                if usage is not None and call.target_api == "openai":
                    cost_usd += _search_fee_shortfall(rates, usage)
            except ValueError as e:  # counts that contradict each other: no bill can be read from them
                cost_usd, usage, error = worst, None, f"{e}; "
            if usage is None:
                reconcile, error = 1, error + "the provider reported no usable usage: booked at the worst case"
            elif unpriced := (*usage.unpriced, *_unpriceable(rates, usage)):
                reconcile, cost_usd = 1, max(cost_usd, worst)
                error = f"usage fields with no price ({', '.join(unpriced)}): booked at the worst case"
        elif status in ("upstream_error", "unreachable"):
            cost_usd = Decimal(0)
        else:
            reconcile, cost_usd = 1, worst
            # server tools (web search, web fetch) run after the first counts were sent: the searches made
            # and the results they added are unknown, so such a call stays at its worst case
            if partial is not None and partial.input_tokens and not partial.unpriced and not _server_tools(call):
                partial.output_tokens = t.max_tokens * call.choices
                with contextlib.suppress(ValueError):
                    cost_usd = rates.cost(partial)
        usage = usage if usage is not None and status == "ok" else (partial or Usage())
        nanos = to_nanos(cost_usd)
        exact = status == "ok" and not reconcile  # the cost comes from the provider's own figures
        if exact and call.prefix_key:
            self.router.remember(call, usage.cache_read_tokens + usage.cache_write_tokens)
        uncached = nanos
        if exact and not plain_tokens(usage):  # what it would have cost with no prompt caching
            uncached = to_nanos(rates.cost(Usage(usage.input_tokens, usage.output_tokens)))
        exposure = 0
        if call.max_tokens_requested and call.max_tokens_requested > t.max_tokens:
            cut = (call.max_tokens_requested - t.max_tokens) * call.choices
            exposure = to_nanos(cut * rates.output_rate(call.input_bound))
        if nanos > t.worst:
            log.warning("call %s cost %s above its reserved worst case %s", t.id, nanos, t.worst)
        self.budget.settle(
            t,
            LedgerRow(
                id=t.id,
                ts=t.created,
                agent=call.agent,
                api=call.api,
                provider=x.up.provider.name,
                model_requested=call.requested or call.model,
                model=call.model,
                status=status,
                stream=int(call.stream),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                max_tokens=t.max_tokens,
                cost_usd=str(cost_usd),
                cost_nanos=nanos,
                worst_nanos=t.worst,
                day=t.day,
                month=t.month,
                reconcile=reconcile,
                latency_ms=round((time.perf_counter() - x.started) * 1000, 3),
                upstream_request_id=rid,
                error=error,
                task=call.task or "",
                max_tokens_requested=call.max_tokens_requested or 0,
                uncached_cost_nanos=uncached,
                exposure_removed_nanos=exposure,
                route=call.route,
                baseline_cost_nanos=self._baseline(call, usage, nanos) if exact else nanos,
            ),
        )
        return cost_usd

    def _baseline(self, call: Call, usage: Usage, nanos: int) -> int:
        """What the call would have cost on the model it asked for (or, for `auto`, the agent's top tier)."""
        baseline = call.baseline or call.requested
        if not baseline or baseline == call.model or baseline not in self.config.models:
            return nanos
        return to_nanos(self.rates_of(baseline).cost(usage))

    def _headers(self, x: Exchange, cost: Any) -> Headers:
        call, t = x.call, x.ticket
        day, month = self.budget.remaining(call.agent)
        out: Headers = [
            (b"x-paymaster-call-id", t.id.encode()),
            (b"x-paymaster-remaining-daily-usd", usd_str(day).encode() if day is not None else b"unlimited"),
            (b"x-paymaster-remaining-monthly-usd", usd_str(month).encode() if month is not None else b"unlimited"),
        ]
        if cost is not None:
            out.append((b"x-paymaster-cost-usd", usd_str(cost).encode()))
        else:
            out.append((b"x-paymaster-reserved-usd", usd_str(t.worst).encode()))
        out.extend((k.encode(), v.encode()) for k, v in call.notes.items())
        return out

    # -- the small endpoints -------------------------------------------------------------------------

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = header_map(scope)
        agent = self.agent(h)
        api = wire_anthropic if b"anthropic-version" in h else wire_openai
        await respond(send, 200, api.models_body((["auto"] if agent.tiers else []) + list(agent.models)))

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's free token count, proxied with the gateway's credential; no budget involved."""
        h = header_map(scope)
        agent = self.agent(h)
        body, raw = await read_json(receive, h, self.config.max_body_bytes)
        model = body.get("model")
        if not isinstance(model, str) or model not in agent.models:
            raise NotFound(f"model {model!r} is not available to agent {agent.name!r}", param="model")
        up = self.upstreams[self.config.models[model].provider.name]
        if up.provider.api != "anthropic":
            raise BadRequest(f"count_tokens is an Anthropic endpoint; {model!r} is not an Anthropic model")
        try:
            resp = await up.post(up.count_tokens_path, raw, up.headers(h))
            data = await resp.read()
        except UpstreamError as e:
            raise UpstreamFailed(f"provider {up.provider.name!r}: {_failure(e)[1]}") from e
        await respond(send, resp.status, data, relay_headers(resp))

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        """200 {"status": "ok"}; 503 {"status": "failing", "reason"} while ledger commits fail (calls are refused)."""
        self.store.flush()
        out: dict[str, Any] = {"status": "ok"}
        if self.store.failing is not None:
            out = {"status": "failing", "reason": self.store.failing}
        out.update(open_calls=len(self.budget.open), journal_open=self.store.open_reservations())
        await json_response(send, out, 503 if self.store.failing is not None else 200)


def _task_name(h: dict[bytes, bytes], body: dict[str, Any]) -> str | None:
    """The declared task type: the `x-paymaster-task` header, or `metadata.paymaster_task` (taken out of
    the body: providers reject metadata keys they do not know)."""
    meta = body.get("metadata")
    from_body = meta.pop("paymaster_task", None) if isinstance(meta, dict) else None
    if isinstance(meta, dict) and not meta:
        del body["metadata"]
    task = h.get(b"x-paymaster-task")
    if task:
        return task.decode("latin-1").strip()
    if from_body is not None and not isinstance(from_body, str):
        raise BadRequest("metadata.paymaster_task: must be a string", param="metadata.paymaster_task")
    return from_body


def _unpriceable(rates: Rates, u: Usage) -> list[str]:
    """What the call reported that the price table has no price for, so `Rates.cost` would leave it out:
    server-tool uses without a per-use fee (the cost model's data says which tools are free), and a
    service tier the table does not price."""
    out = []
    if u.server_tool_uses:
        tools = data()["anthropic"]["server_tools"]
        for name, n in u.server_tool_uses.items():
            free = name in tools and Decimal(tools[name]["fee_usd"]) == 0
            if n and not free and rates.fee(name) is None:
                out.append(f"server_tool_use.{name}")
    if u.service_tier and not rates.prices_tier(u.service_tier):
        out.append(f"service_tier={u.service_tier}")
    if u.input_audio_tokens and not rates.input_audio:  # audio has its own rate; text's is far below it
        out.append("input audio tokens")
    if u.output_audio_tokens and not rates.output_audio:
        out.append("output audio tokens")
    return out


def _server_tools(call: Call) -> bool:
    """Whether the request as sent can run server tools, whose uses and results only the final counts tell."""
    if call.target_api == "openai":
        return "web_search_options" in call.body
    tools = call.body.get("tools")
    return isinstance(tools, list) and any(isinstance(t, dict) and "max_uses" in t for t in tools)


def _search_fee_shortfall(rates: Rates, u: Usage) -> Decimal:
    """What an OpenAI search call's documented per-search fee adds over the price table's, when the
    table has a lower one (data/costmodel.yaml `openai.web_search`); the table's own is in `Rates.cost`."""
    n, fee = u.server_tool_uses.get("web_search", 0), rates.fee("web_search")
    if not n or fee is None:
        return Decimal(0)
    return n * max(Decimal(0), Decimal(str(data()["openai"]["web_search"]["fee_usd"])) - fee)


def _failure(e: UpstreamError) -> tuple[str, str]:
    if isinstance(e, UpstreamTimeout):
        return "timeout", str(e)
    if isinstance(e, Unreachable):
        return "unreachable", str(e)
    return "error", str(e)


def _http_status(status: str) -> int:
    return 504 if status == "timeout" else 502
