"""The simulator: routing, recording, faults, and the control API, as one raw ASGI app.

POST /v1/messages               Anthropic Messages (stream or not)
POST /v1/messages/count_tokens  Anthropic token count
POST /v1/chat/completions       OpenAI Chat Completions (stream or not)
POST /v1/responses              OpenAI Responses (stream or not; GET/DELETE /v1/responses/{id}[/input_items|/cancel])
POST /v1/embeddings             OpenAI Embeddings
GET  /v1/models[/{id}]          either list: Anthropic when the request carries
                                anthropic-version or x-api-key, else OpenAI
/v1/messages/batches…           Anthropic Message Batches (sim/batch_anthropic.py)
/v1/files…, /v1/batches…        OpenAI Files and Batch (sim/batch_openai.py)
POST /_sim/faults               {"fault", "count", "model", "retry_after"} → queue faults
GET  /_sim/faults               the queued faults
GET  /_sim/requests             the recorded requests
POST /_sim/reset                clear faults, recorded requests and the prompt cache, release held requests
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import orjson

from .answer import Answer, Ask, answer
from .anthropic import AnthropicWire
from .asgi import (
    Receive,
    Reply,
    Scope,
    Send,
    Stream,
    drop,
    hold,
    json_reply,
    read_body,
    send_reply,
    send_stream,
)
from .batch_anthropic import AnthropicBatches
from .batch_openai import OpenAIBatches
from .cache import Clock, PromptCache
from .embeddings import EmbeddingsWire
from .faults import USAGE_FAULTS, Fault, Faults, alter_frame, alter_usage
from .flaws import Flaws
from .openai import OpenAIWire
from .responses import ResponsesWire

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Wire(Protocol):
    """One provider API's shapes: what `anthropic.py` and `openai.py` each implement."""

    name: str

    def admit(self, headers: dict[str, str], accepted: Callable[[str], bool]) -> Reply | None: ...
    def error(self, status: int, message: str) -> Reply: ...
    def fault(self, fault: Fault) -> Reply: ...
    def not_found(self, method: str, path: str) -> Reply: ...
    def ask(self, body: Any, raw: bytes) -> Ask | Reply: ...
    def reply(self, ask: Ask, answer: Answer) -> Reply: ...
    def stream(self, ask: Ask, answer: Answer) -> Stream: ...
    def models(self, query: bytes) -> Reply: ...
    def model(self, model_id: str) -> Reply: ...


_GENERATE = {"/v1/messages", "/v1/chat/completions", "/v1/responses"}
_MODELS = "/v1/models"
PROXY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"


class Simulator:
    """A fake Anthropic and OpenAI provider; serve `sim.app` with uvicorn (see `paymaster.server`)."""

    HOLD_LIMIT = 3600.0
    """Longest a "timeout" fault holds a request whose client never gives up (seconds)."""

    def __init__(
        self,
        latency_ms: float = 0.0,
        token_delay_ms: float = 0.0,
        default_output_tokens: int = 50,
        api_keys: Iterable[str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if latency_ms < 0 or token_delay_ms < 0 or default_output_tokens < 0:
            raise ValueError("latency_ms, token_delay_ms and default_output_tokens must not be negative")
        self.latency = latency_ms / 1000
        self.token_delay = token_delay_ms / 1000
        self.default_output_tokens = default_output_tokens
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.faults = Faults()
        self.flaws = Flaws()  # per-model rates of structurally wrong answers (sim/flaws.py)
        self.cache = PromptCache(clock)
        self.sampled = False  # True: the same request gets another answer each time, as a sampled model's
        self._draws = 0
        self._epoch = 0
        self._anthropic = AnthropicWire()
        self._openai = OpenAIWire()
        self._responses = ResponsesWire()
        self._embeddings = EmbeddingsWire()
        self.anthropic_batches = AnthropicBatches(self._run, self._anthropic.error)
        self.openai_batches = OpenAIBatches(self._run, self._openai.error)

    def inject(self, fault: str, count: int = 1, model: str | None = None, retry_after: float | None = None) -> None:
        """Queue `count` faults (`faults.KINDS`: "429", "500", "529", "timeout", "cut", usage faults) for
        `model` (any model if None)."""
        self.faults.inject(fault, count, model, retry_after)

    def workspace(self, inference_geo: str) -> None:
        """Set the Anthropic workspace's default inference geography ("global" | "us"; reset to global)."""
        self._anthropic.workspace_geo = inference_geo

    def reset(self) -> None:
        """Clear faults, recorded requests and the prompt cache; requests held by "timeout" are dropped."""
        self.faults.clear()
        self.flaws.clear()
        self._anthropic.workspace_geo = "global"
        self.requests.clear()
        self.cache.clear()
        self.anthropic_batches.reset()
        self.openai_batches.reset()
        self.sampled = False
        self._epoch += 1

    # -- ASGI

    @property
    def app(self) -> App:
        """The ASGI callable (the simulator itself: uvicorn detects ASGI 3 by an async `__call__`)."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith("/_sim/"):
                await send_reply(send, self._control(scope["method"], scope["path"], await read_body(receive)))
            else:
                await self._api(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        raw = await read_body(receive)
        wire = self._wire(path, headers)
        try:
            body: Any = orjson.loads(raw) if raw else None
            parsed = True
        except orjson.JSONDecodeError:
            body, parsed = raw.decode("utf-8", "replace"), False
        self.requests.append({"api": wire.name, "path": path, "headers": headers, "body": body})

        refusal = wire.admit(headers, self._accepted)
        if refusal is not None:
            return await self._send(send, refusal)
        if path.startswith("/v1/messages/batches"):
            base = f"{scope.get('scheme', 'http')}://{headers.get('host', 'localhost')}"
            return await self._send(send, self.anthropic_batches.handle(method, path, scope["query_string"], raw, base))
        if path.startswith(("/v1/files", "/v1/batches")):
            return await self._send(send, self.openai_batches.handle(method, path, scope["query_string"], headers, raw))
        if not parsed:
            return await self._send(send, wire.error(400, "The request body is not valid JSON."))
        if path.startswith("/v1/responses/"):
            rid, _, action = path[len("/v1/responses/") :].partition("/")
            return await self._send(send, self._responses.stored_endpoint(method, rid, action))
        if method == "POST" and path == "/v1/conversations":
            return await self._send(send, self._responses.create_conversation(body))
        if method == "POST" and path in ("/v1/embeddings", "/v1/messages/count_tokens") and self._page(body):
            return await self._send(send, Reply(502, [(b"content-type", b"text/html")], PROXY_PAGE))
        if method == "POST" and path == "/v1/embeddings":
            return await self._send(send, self._embeddings.create(body))
        if method == "POST" and path in _GENERATE:
            return await self._generate(wire, body, raw, receive, send)
        if method == "POST" and path == "/v1/messages/count_tokens" and isinstance(wire, AnthropicWire):
            return await self._send(send, wire.count(body, raw))
        if method == "GET" and path == _MODELS:
            return await self._send(send, wire.models(scope.get("query_string", b"")))
        if method == "GET" and path.startswith(_MODELS + "/"):
            return await self._send(send, wire.model(path[len(_MODELS) + 1 :]))
        if path in _GENERATE or path == "/v1/messages/count_tokens" or path == _MODELS:
            return await self._send(send, wire.error(405, f"Method not allowed: {method} {path}"))
        await self._send(send, wire.not_found(method, path))

    def _page(self, body: Any) -> bool:
        """Whether an "html" fault is queued for this request's model (taken if so)."""
        model = body.get("model") if isinstance(body, dict) else None
        return self.faults.take(model if isinstance(model, str) else "", ("html",)) is not None

    async def _generate(self, wire: Wire, body: Any, raw: bytes, receive: Receive, send: Send) -> None:
        """validate → fault? → prompt cache → answer → (latency) → reply, stream, or the fault's misbehaviour."""
        ask = wire.ask(body, raw)
        if isinstance(ask, Reply):
            return await self._send(send, ask)
        if self.sampled:
            self._draws += 1
            ask.seed += self._draws
        fault = self.faults.take(ask.model)
        if fault is not None and fault.kind == "timeout":
            epoch = self._epoch
            if not await hold(send, receive, lambda: self._epoch != epoch, self.HOLD_LIMIT):
                await drop(send, receive)
            return
        usage_fault = fault.kind if fault is not None and fault.kind in USAGE_FAULTS else None
        if usage_fault is not None:
            fault = None
        if fault is not None and fault.kind == "html":
            return await self._send(send, Reply(502, [(b"content-type", b"text/html")], PROXY_PAGE))
        if fault is not None and fault.kind != "cut":
            return await self._send(send, wire.fault(fault))
        if ask.cacheable is not None:  # the provider caches once it starts answering (a "cut" included)
            ask.cache = self.cache.settle(ask.cacheable)
        said = self.flaws.apply(ask, answer(ask, self.default_output_tokens))
        if self.latency:
            await asyncio.sleep(self.latency)
        if ask.stream:
            stream = wire.stream(ask, said)
            if usage_fault is not None:
                altered = [(alter_frame(usage_fault, data), n) for data, n in stream.chunks]
                stream.chunks = [(data, n) for data, n in altered if data is not None]
            await send_stream(send, receive, stream, self.token_delay, cut=fault is not None)
        elif fault is not None:
            await drop(send, receive)
        else:
            reply = wire.reply(ask, said)
            if usage_fault is not None:
                reply.body = orjson.dumps(alter_usage(usage_fault, orjson.loads(reply.body)))
            await send_reply(send, reply)

    def _run(self, api: str, body: Any) -> tuple[int, Any]:
        """A batched request, answered as the real-time endpoint would (no stream, no faults, no latency)."""
        wire: Wire = self._anthropic if api == "anthropic" else self._openai
        ask = wire.ask(body, orjson.dumps(body))
        if isinstance(ask, Reply):
            return ask.status, orjson.loads(ask.body)
        if ask.cacheable is not None:
            ask.cache = self.cache.settle(ask.cacheable)
        reply = wire.reply(ask, answer(ask, self.default_output_tokens))
        return reply.status, orjson.loads(reply.body)

    async def _send(self, send: Send, reply: Reply) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        await send_reply(send, reply)

    def _wire(self, path: str, headers: dict[str, str]) -> Wire:
        if path.startswith("/v1/messages"):
            return self._anthropic
        if path.startswith("/v1/chat/"):
            return self._openai
        if path.startswith("/v1/responses"):
            return self._responses
        if "anthropic-version" in headers or "x-api-key" in headers:
            return self._anthropic
        return self._openai

    def _accepted(self, key: str) -> bool:
        return self.api_keys is None or key in self.api_keys

    # -- control API

    def _control(self, method: str, path: str, raw: bytes) -> Reply:
        if (method, path) == ("POST", "/_sim/faults"):
            try:
                spec = orjson.loads(raw or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("expected a JSON object")
                self.inject(spec.get("fault", ""), spec.get("count", 1), spec.get("model"), spec.get("retry_after"))
            except (ValueError, orjson.JSONDecodeError) as e:
                return json_reply(400, {"error": str(e)})
            return json_reply(200, {"pending": self.faults.pending()})
        if (method, path) == ("GET", "/_sim/faults"):
            return json_reply(200, {"pending": self.faults.pending()})
        if (method, path) == ("GET", "/_sim/requests"):
            return json_reply(200, list(self.requests))
        if (method, path) == ("POST", "/_sim/reset"):
            self.reset()
            return json_reply(200, {"ok": True})
        return json_reply(404, {"error": f"no control endpoint {method} {path}"})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
