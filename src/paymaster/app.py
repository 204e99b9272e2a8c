"""The gateway as an ASGI app. One call, top to bottom (see `Gateway.run`):

    authenticate → decode → levers (levers.LEVERS, in order) → shape → admit → forward → settle → encode

Each stage is its own module: the levers (`levers/`, one protocol: `levers/base.py`), translation
(`wire/translate.py`), admission (`admission.py`), the exchange with the provider (`exchange.py`, whose
failures `upstream_errors.py` maps in one table), settlement (`settle.py`). Admin endpoints: `admin.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from . import admin, dashboard, feedback, model_route, responses_api, savings
from .admission import Admission
from .alerts import Alerts
from .batch import api_anthropic as batch_anthropic
from .batch import api_openai as batch_openai
from .batch import routes as batch_routes
from .batch.service import Batches
from .blackboard import Blackboard, stored_events
from .budget import Budget
from .call import Call, Usage
from .config import PRICE_PROVIDER, Agent, AgentLimits, Config, Task
from .config.yaml_file import read_file
from .errors import (
    BadRequest,
    BudgetBusy,
    GatewayError,
    Internal,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamFailed,
)
from .exchange import Exchange, Forwarder, relayed, remaining_headers
from .fleet.live import Fleet
from .http import Headers, Message, Receive, Scope, Send, bearer_or_key, header_map, json_response, read_json, respond
from .levers import LEVERS, build
from .levers.base import Answer, Bill, LeverContext, hooked
from .limits import Limits
from .limits_redis import RedisLimits
from .metrics import Metrics
from .pricing import Rates, to_nanos
from .providers import Upstream, UpstreamError, request_ids
from .query import number, params
from .response_book import ResponseBook
from .settle import Settler, answered
from .store import shared_events, shared_status
from .store.redis import ConversationFlights
from .store.row import LedgerRow
from .store.shared import SharedStore
from .store.sqlite import SQLiteStore
from .upstream_errors import Retry, fail
from .wire import Wire, translate, translate_responses
from .wire import anthropic as wire_anthropic
from .wire import embeddings as wire_embeddings
from .wire import openai as wire_openai
from .wire import responses as wire_responses

WIRES: dict[str, Wire] = {
    "anthropic": wire_anthropic,
    "openai": wire_openai,
    "responses": wire_responses,
    "embeddings": wire_embeddings,
}
log = logging.getLogger("paymaster")
PATHS = {"responses": "/responses", "embeddings": "/embeddings"}  # an OpenAI provider's other endpoints


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        levers: tuple[str, ...] = LEVERS,
        fleet_file: Path | None = None,
        seed: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`fleet_file` / `seed`: fleet.yaml (its path, or its parsed content) and `env` its variables, for
        run-time fleet changes and SIGHUP reloads (fleet/live.py); without them the fleet is fixed."""
        self.config = config
        self.clock = clock
        self.board = Blackboard(list(config.agents))
        self.store: SQLiteStore | SharedStore
        self.recovered: list[LedgerRow] = []
        if config.shared is not None:  # replicas: Redis counters + Postgres ledger, opened at start
            sh = config.shared
            self.store = SharedStore(sh.redis_url, sh.postgres_url, config.timezone, sh.lease_s)
        else:
            self.store = SQLiteStore(config.ledger, config.durability)
            try:
                self.recovered = self.store.recover(clock())  # takes the ledger: one writer (LedgerLocked if not)
            except BaseException:
                self.store.close()
                raise
            stored_events(self.store, self.board)
        self.store.on_error = lambda e: self.board.publish("ledger.failing", reason=self.store.failing)
        self.store.on_ok = lambda: self.board.publish("ledger.writable")
        for row in self.recovered:
            self.board.publish("ledger.recovered", agent=row.agent, call_id=row.id, cost_usd=row.cost_usd)
        self.budget = Budget(config, self.store, self.board, clock)
        self.upstreams = {name: Upstream(p) for name, p in config.providers.items()}
        self.levers = build(config, self, levers)  # levers.LEVERS, or the sub-list given
        self.appliers, self.shapers, self.fallbacks, self.retried = (
            hooked(self.levers, h) for h in ("apply", "shape", "fallback", "retried")
        )
        self.admission = Admission(config, self.budget, self.rates_of)
        # the Responses API's stored responses: owners, context sizes (replicas: in Postgres, for all of them)
        self.book = (
            ResponseBook(config.ledger, self.store.pg, ConversationFlights(self.store.counters.redis))
            if isinstance(self.store, SharedStore)
            else ResponseBook(config.ledger)
        )
        self.limits = Limits(self.board, limits_of=self.limits_of)  # denial-of-wallet limits; tokens as calls settle
        if isinstance(self.store, SharedStore):
            self.limits.shared = RedisLimits(self.store.counters.redis, self.store.replica)
        self.metrics = Metrics(self)  # /metrics and the access log; dashboard/ serves /metrics and /dashboard
        settled = (*hooked(self.levers, "settled"), self.book, self.limits)
        self.undoers = hooked(self.levers, "undo")  # savings attribution (savings.py)
        self.exchange = Forwarder(
            self.budget, Settler(self.budget, settled, self.metrics.settled, self.undoers, self.price)
        )
        if fleet_file is not None and seed is None:
            seed = read_file(fleet_file)
        self.fleet = Fleet(self, seed, fleet_file, env)
        self.admin = admin.Admin(
            config, self.store, self.budget, self.board, clock, routing=self.routing_view, fleet=self.fleet
        )
        self.batches = Batches(self)  # deferred calls and batches: a durable queue beside the ledger
        self._tasks: set[asyncio.Task[None]] = set()
        self.alerts = Alerts(config, self.board, self.budget, clock)  # projections and webhooks (alerts.py)
        self.routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/messages"): self.messages,
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/chat/completions"): self.chat_completions,
            ("POST", "/v1/messages/count_tokens"): self.count_tokens,
            ("POST", "/v1/responses"): self.responses,
            ("POST", "/responses"): self.responses,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", "/embeddings"): self.embeddings,
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
        if isinstance(self.store, SharedStore):
            status = (await shared_events.connect(self.store, self.board)).status
            self.admin = dataclasses.replace(
                self.admin, refresh=functools.partial(shared_status.fresh_view, status, self.budget)
            )
            self.alerts.claim = self.store.counters.claim
        await self.fleet.start()
        for lever in hooked(self.levers, "start"):  # levers that load shared state once the store is open (routing)
            await lever.start(self.store)
        self.spawn(self._tick())
        self.spawn(self.batches.run())
        self._tasks.update(self.alerts.tasks())
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # the main thread only
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.fleet.on_sighup)

    def spawn(self, coro: Any) -> None:
        self._tasks.add(asyncio.create_task(coro))

    def reconfigure(self, config: Config) -> None:
        """Run on `config` from the next call on (fleet/live.py: agents, keys, caps, limits changed)."""
        self.config = config
        self.board.add(list(config.agents))
        self.admission.config = config
        self.admin = dataclasses.replace(self.admin, config=config)
        self.budget.reconfigure(config)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for up in self.upstreams.values():
            await up.close()
        for lever in hooked(self.levers, "stop"):  # levers that write shared state while the store is open
            await lever.stop()
        for lever in hooked(self.levers, "close"):  # levers that keep state across restarts (routing)
            lever.close()
        await self.book.drain()  # responses still being written to the shared book
        self.batches.close()  # replicas: the batch lease given up, the queue's connection closed
        if isinstance(self.store, SharedStore):
            await self.store.aclose()
        self.store.close()
        self.book.close()
        self.metrics.log.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.board.expire(self.clock())
            self.metrics.log.flush()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        api: Wire = wire_anthropic if path.startswith("/v1/messages") else wire_openai
        trace = self.metrics.begin(path)  # None unless a call endpoint
        try:
            handler = self.routes.get((method, path))
            if handler is not None:
                await handler(scope, receive, send)
            elif path.startswith(batch_routes.PREFIX):
                await batch_routes.jobs(self, scope, receive, send)
            elif path.startswith(batch_anthropic.PREFIX):
                await batch_anthropic.handle(self, scope, receive, send)
            elif path.startswith(("/v1/files", "/v1/batches")):
                await batch_openai.handle(self, scope, receive, send)
            elif path.startswith("/admin/"):
                await admin.handle(self.admin, scope, receive, send)
            elif path.startswith(("/v1/responses/", "/responses/")):
                await responses_api.stored(self, scope, receive, send)
            elif method == "GET" and path.startswith(model_route.PREFIX):
                await model_route.retrieve(self, scope, receive, send)
            elif path == "/metrics" or path == "/dashboard" or path.startswith("/dashboard/"):
                await dashboard.handle(self, scope, receive, send)
            elif any(p == path for _, p in self.routes):
                raise MethodNotAllowed(f"{method} is not allowed on {path}")
            else:
                raise NotFound(f"no route {method} {path}")
        except GatewayError as e:
            if trace is not None:
                trace.error = e
            if path.startswith("/v1/models") and b"anthropic-version" in header_map(scope):
                api = wire_anthropic
            await self.refuse(send, api, e)
        except Exception as e:  # a defect: logged, and still answered in the caller's own shape
            if trace is not None:
                trace.error = e
            rid = "req_" + secrets.token_hex(12)
            log.exception("%s: unexpected failure on %s %s", rid, method, path)
            try:
                await self.refuse(send, api, Internal(f"internal error in the gateway (logged as {rid})"), rid)
            except RuntimeError:  # the answer had begun (a stream): the server cuts the connection instead
                raise e from None
        finally:
            if trace is not None:
                self.metrics.end(trace, scope)

    async def refuse(self, send: Send, api: Wire, e: GatewayError, rid: str | None = None) -> None:
        final = e.status in (402, 413) or (isinstance(e, UpstreamFailed) and not e.retry)
        headers: Headers = [(b"x-should-retry", b"false")] if final else []
        if isinstance(e, BudgetBusy):
            headers = [(b"retry-after", b"1")]
        elif isinstance(e, RateLimited):
            headers = [(b"retry-after", str(e.retry_after).encode())]
        rid = rid or "req_" + secrets.token_hex(12)  # the gateway's own answer: its own id
        await respond(send, e.status, api.error_body(e, rid), headers + request_ids(rid))

    def agent(self, h: dict[bytes, bytes]) -> Agent:
        key = bearer_or_key(h)
        if not key:
            raise Unauthorized("missing API key: send the agent's Paymaster key as x-api-key or a Bearer token")
        return self.fleet.agent(key)  # Unauthorized / Forbidden (disabled)

    # -- one call, top to bottom ---------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_anthropic, scope, receive, send)

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_openai, scope, receive, send)

    async def responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_responses, scope, receive, send)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(wire_embeddings, scope, receive, send)

    async def complete(self, api: Wire, scope: Scope, receive: Receive, send: Send) -> None:
        h = header_map(scope)
        agent = self.agent(h)  # 1. authenticate
        entry = await self.limits.enter(agent) if agent.limits.on else None  # 429 over a rate, before the body
        try:
            body, raw = await read_json(receive, h, self.config.max_body_bytes)
            if entry is not None:
                await self.limits.check(agent, entry, body)  # 429 from the loop detector
            try:
                await self.run(api, agent, body, len(raw), h, receive, send)
            finally:
                if api is wire_responses:
                    self.book.end(body)  # a conversation it named is no longer in flight
        finally:
            if entry is not None:
                self.limits.leave(agent.name, entry)

    async def run(
        self,
        api: Wire,
        agent: Agent,
        body: dict[str, Any],
        size: int,
        h: dict[bytes, bytes],
        receive: Receive,
        send: Send,
        internal: bool = False,
    ) -> None:
        """`internal`: a lever's own call (`ask`), whose task type need not be one the agent configured."""
        call = decode(api, agent, body, h, size)  # 2. decode
        ctx = LeverContext(agent, task_of(agent, call, internal), h, self)
        if api is wire_responses:  # the stored context it names: the agent's own, and how large
            ctx.state[self.book.name] = await responses_api.stored_context(self, agent, body)
        for lever in self.appliers if api is not wire_embeddings else ():  # 3. the levers, in list order
            answer = await lever.apply(call, ctx)
            if answer is not None:
                return await self.answer(call, answer, ctx, send)
        if call.max_tokens is None:  # output control sets a ceiling; without it, the agent's own
            call.max_tokens = agent.max_tokens
        if call.model not in self.config.models:  # "auto" that no lever routed
            raise BadRequest(f"model {call.model!r} needs the routing lever, which this gateway runs without")
        source = call.body  # the caller's request, in its own API's shape
        if "batch" in ctx.state and call.api in ("responses", "embeddings"):  # batch/ queues Messages and Chat only
            if b"x-paymaster-defer" in h:
                raise BadRequest(
                    f"deferred calls are Messages and Chat Completions only, not {call.api}", param="x-paymaster-defer"
                )
            del ctx.state["batch"]  # an agent's defer setting: this call runs in real time
        if "batch" in ctx.state:  # deferred: admitted at batch prices, queued, answered 202 (batch/)
            return await batch_routes.defer(self, call, ctx, source, send)
        tried: set[str] = set()
        while True:
            tried.add(call.model)
            x, nxt = await self.attempt(api, call, ctx, source, tried)  # 4. shape, bound, admit, reserve
            try:  # 5–7. forward, settle, encode
                return await (self.exchange.stream if call.stream else self.exchange.forward)(x, receive, send)
            except Retry as r:  # the provider failed before anything reached the agent: the next model
                assert nxt is not None
                for lever in self.retried:
                    lever.retried(call, nxt, r.why, ctx)
                call.model = source["model"] = nxt

    async def attempt(
        self, api: Wire, call: Call, ctx: LeverContext, source: dict[str, Any], tried: set[str]
    ) -> tuple[Exchange, str | None]:
        """One attempt at `call.model`, admitted and durably reserved; and the model to fall back on."""
        wire, rates, up = self.shape(call, ctx, source)
        stored = ctx.state.get(self.book.name, 0)
        worst, payload = self.admission.bound(orjson.dumps(call.body), call, rates, ctx.headers, stored)
        ticket = await self.admission.admit(call, worst, up, ctx.headers, stored)  # 402 when over a cap
        if ticket.fitted:
            wire.set_max_tokens(call.body, ticket.max_tokens, up.provider.kind)
            call.notes["x-paymaster-max-tokens"] = f"{ticket.max_tokens}; fitted to budget"
            payload = orjson.dumps(call.body)
        try:
            self.store.reserve(self.budget.journal(ticket, call.model, call.api))  # durable first
        except OSError as e:
            self.budget.release_unsent(ticket)
            raise UpstreamFailed(f"could not record the reservation: {e}", status=503) from e
        nxt = next((m for f in self.fallbacks if (m := f.fallback(call, tried, ticket.max_tokens, ctx))), None)
        x = Exchange(api=api, wire=wire, call=call, ctx=ctx, rates=rates, up=up, ticket=ticket, headers=ctx.headers,
                     started=time.perf_counter(), payload=payload, may_retry=nxt is not None,
                     path=PATHS.get(call.target_api, ""))  # fmt: skip
        return x, nxt

    def shape(self, call: Call, ctx: LeverContext, source: dict[str, Any]) -> tuple[Wire, Rates, Upstream]:
        """Shape the request for the provider of `call.model`: translated when that provider speaks the other
        API, then the levers' `shape` hooks (caching). Returns (its wire, rates, upstream)."""
        m = self.config.models[call.model]
        target = WIRES[m.provider.api]
        assert call.max_tokens is not None
        if call.api in ("responses", "embeddings") and m.provider.api == "openai":
            target = WIRES[call.api]  # the same provider, at its own endpoint
        elif call.api == "embeddings":
            raise BadRequest(f"model {call.model!r} is not an embeddings model (its provider has no embeddings API)")
        elif call.api == "responses" and wire_responses.stored_reference(source) is not None:
            raise BadRequest(
                f"model {call.model!r} is not an OpenAI model: a Responses request naming stored state "
                "(previous_response_id, conversation) can only go to OpenAI",
                param="previous_response_id" if "previous_response_id" in source else "conversation",
            )
        if target.API == call.api:
            call.body = source
            target.set_max_tokens(source, call.max_tokens, m.provider.kind)
        else:
            shaped = dict(source)
            WIRES[call.api].set_max_tokens(shaped, call.max_tokens, "openai")
            if call.api == "responses":  # to Claude by way of the Chat Completions shape (stateless only)
                shaped = translate_responses.request_to_chat(shaped)
            if call.api in ("openai", "responses"):
                if call.addendum is not None:  # Claude takes system text up front: the addendum joins it
                    shaped["messages"] = translate.addendum_up_front(shaped["messages"], call.addendum)
                    call.system_tail = 1
                drops = translate.Drops(strict=self.config.translation == "strict")
                call.body = translate.openai_request_to_anthropic(shaped, call.model, drops)
                if dropped := drops.header():
                    call.notes["x-paymaster-dropped"] = dropped
            else:
                call.body = translate.anthropic_request_to_openai(shaped, call.model, m.provider.kind)
            call.notes["x-paymaster-translated"] = f"{call.api} -> {target.API}"
        call.target_api = target.API
        for lever in self.shapers if call.api != "embeddings" else ():
            lever.shape(call, ctx)
        return target, self.rates_of(call.model), self.upstreams[m.provider.name]

    async def answer(self, call: Call, answer: Answer, ctx: LeverContext, send: Send) -> None:
        """A lever answered in the provider's place: booked at zero cost, sent as the provider's would be."""
        saved = savings.of_levers(self.undoers, self.price, Bill(answer.model, Usage()), 0, call, ctx)
        call_id = answered(call, answer, self.store, self.budget, self.clock(), self.metrics.settled, saved)
        headers = [*remaining_headers(self.budget, call.agent, call_id), *request_ids(call_id)]
        await respond(send, 200, answer.body, [*headers, *answer.headers, (b"x-paymaster-cost-usd", b"0.000000")])

    def lever(self, name: str) -> Any:
        """The running lever called `name`, or None when this gateway runs without it."""
        return next((lever for lever in self.levers if lever.name == name), None)

    async def routing_view(self) -> dict[str, Any]:
        """What routing learnt (GET /admin/routing; replicas: the fleet's figures); empty without the routing lever."""
        routing = self.lever("routing")
        return await routing.router.fleet_view() if routing is not None else {}

    # -- what the levers may use (levers.base.Services) ---------------------------------------------

    def rates_of(self, model: str) -> Rates:
        return self.config.prices.rates(model, PRICE_PROVIDER[self.config.models[model].provider.kind])

    def limits_of(self, agent: str) -> AgentLimits | None:
        a = self.config.agents.get(agent)
        return a.limits if a is not None else None

    def price(self, bill: Bill) -> int:
        return to_nanos(self.rates_of(bill.model).cost(bill.usage))

    async def ask(self, agent: Agent, api: str, body: dict[str, Any], task: str) -> tuple[int, bytes]:
        """A call through the whole pipeline on `agent`'s budget, booked under task type `task`."""
        reply: dict[str, Any] = {"status": 0, "body": b""}

        async def send(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                reply["status"] = msg["status"]
            else:
                reply["body"] += msg.get("body", b"")

        async def receive() -> Message:  # the caller never goes away
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        h = {b"x-paymaster-task": task.encode()}
        wire = WIRES[api]
        try:
            await self.run(wire, agent, body, len(orjson.dumps(body)), h, receive, send, internal=True)
        except GatewayError as e:
            return e.status, wire.error_body(e)
        finally:
            self.book.end(body)  # a conversation it named is no longer in flight
        return reply["status"], reply["body"]

    # -- the small endpoints -------------------------------------------------------------------------

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = header_map(scope)
        agent = self.agent(h)
        models = (["auto"] if agent.tiers else []) + list(agent.models)
        if b"anthropic-version" not in h:
            return await respond(send, 200, wire_openai.models_body(models))
        q = params(scope)  # Anthropic's list pages: limit 1–1000 (default 20), after_id / before_id
        limit = number(q, "limit", int, 20, 1, 1000)
        await respond(send, 200, wire_anthropic.models_body(models, limit, q.get("after_id"), q.get("before_id")))

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's free token count, proxied with the gateway's credential; no budget involved."""
        h = header_map(scope)
        agent = self.agent(h)
        body, raw = await read_json(receive, h, self.config.max_body_bytes)
        model = body.get("model")
        if not isinstance(model, str) or model not in agent.models:
            raise ModelNotFound(f"model {model!r} is not available to agent {agent.name!r}", param="model")
        up = self.upstreams[self.config.models[model].provider.name]
        if up.provider.api != "anthropic":
            raise BadRequest(f"count_tokens is an Anthropic endpoint; {model!r} is not an Anthropic model")
        try:
            resp = await up.post(up.count_tokens_path, raw, up.headers(h))
            data = await resp.read()
        except UpstreamError as e:
            fail(e, up.provider.name)
        if resp.status != 200:
            data = translate.error_for("anthropic", resp.status, data, False)
        await respond(send, resp.status, data, relayed(resp, "req_" + secrets.token_hex(12)))

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        """200 {"status": "ok"}; 503 {"status": "failing", "reason"} while ledger commits fail (calls are refused)."""
        self.store.flush()
        out: dict[str, Any] = {"status": "ok"}
        if self.store.failing is not None:
            out = {"status": "failing", "reason": self.store.failing}
        out.update(open_calls=len(self.budget.open), journal_open=self.store.open_reservations())
        await json_response(send, out, 503 if self.store.failing is not None else 200)


def decode(api: Wire, agent: Agent, body: dict[str, Any], h: dict[bytes, bytes], size: int) -> Call:
    model, max_tokens, stream = api.check(body)
    if model not in agent.models and not (model == "auto" and agent.tiers):
        raise ModelNotFound(
            f"model {model!r} is not available to agent {agent.name!r} (allowed: {', '.join(agent.models)})",
            param="model",
        )
    openai = api is wire_openai
    return Call(
        api=api.API,
        agent=agent.name,
        body=body,
        model=model,
        stream=stream,
        max_tokens=max_tokens,
        max_tokens_requested=max_tokens,
        choices=wire_openai.choices(body) if openai else 1,
        task=_task_name(h, body),
        raw_len=size,
        wants_usage_chunk=openai and stream and wire_openai.ask_usage(body),
    )


def task_of(agent: Agent, call: Call, internal: bool = False) -> Task | None:
    """The call's declared task type, as the agent's config defines it (a 400 for one it does not know,
    unless the gateway made the call itself)."""
    if call.task is None:
        return None
    task = agent.tasks.get(call.task)
    if task is None and not internal:
        known = ", ".join(sorted(agent.tasks)) or "none configured"
        raise BadRequest(f"unknown task type {call.task!r} (known: {known})", param="x-paymaster-task")
    return task


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
