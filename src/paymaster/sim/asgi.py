"""Raw ASGI plumbing: read a body, send a prepared reply or event stream, hold or drop a connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")
EVENT_STREAM = (b"content-type", b"text/event-stream; charset=utf-8")
NO_CACHE = (b"cache-control", b"no-cache")


@dataclass(slots=True)
class Reply:
    """A complete response: status, headers (content-type included, content-length added on send), body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(slots=True)
class Stream:
    """A server-sent event stream, prepared whole, sent chunk by chunk.

    Each chunk carries the number of output tokens it delivers, which paces it under token_delay;
    `cut_at` is how many chunks go out before a "cut" fault drops the connection.
    """

    headers: Headers
    chunks: list[tuple[bytes, int]]
    cut_at: int


def json_reply(status: int, value: Any, headers: Headers | None = None) -> Reply:
    return Reply(status, [JSON, *(headers or ())], orjson.dumps(value))


def bearer(authorization: str) -> str:
    """The token of an `Authorization: Bearer …` header, or ""."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def seconds(value: float) -> bytes:
    """A retry-after header value: whole seconds as an integer, else the float."""
    return str(int(value) if float(value).is_integer() else value).encode()


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def send_stream(send: Send, receive: Receive, stream: Stream, token_delay: float, cut: bool) -> None:
    """Send the stream; with token_delay, sleep that long per token before each chunk that has some.

    While pacing, a client that goes away ends the stream early. With `cut`, the connection is
    dropped after `stream.cut_at` chunks, without the stream's proper end.
    """
    chunks = stream.chunks[: stream.cut_at] if cut else stream.chunks
    await send({"type": "http.response.start", "status": 200, "headers": stream.headers})
    gone: asyncio.Task[Message] | None = None
    if token_delay > 0:
        gone = asyncio.ensure_future(receive())
    try:
        for data, tokens in chunks:
            if gone is not None and tokens:
                await asyncio.wait((gone,), timeout=token_delay * tokens)
                if gone.done():
                    return
            await send({"type": "http.response.body", "body": data, "more_body": True})
    finally:
        if gone is not None and not gone.done():
            gone.cancel()
    if cut:
        await drop(send, receive)
    else:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def hold(send: Send, receive: Receive, released: Callable[[], bool], limit: float) -> bool:
    """Answer nothing until the client disconnects (→ True), `released()` turns true, the server
    shuts down, or `limit` seconds pass.

    uvicorn marks an in-flight request's cycle `keep_alive = False` when it starts shutting down
    and then waits for the request to finish; watching that flag keeps a held request from
    stalling the server's exit.
    """
    cycle = getattr(send, "__self__", None)
    kept = getattr(cycle, "keep_alive", None) is True
    gone = asyncio.ensure_future(receive())
    deadline = time.monotonic() + limit
    try:
        while not gone.done() and not released() and time.monotonic() < deadline:
            if kept and not cycle.keep_alive:  # type: ignore[union-attr]
                break
            await asyncio.wait((gone,), timeout=0.1)
    finally:
        if not gone.done():
            gone.cancel()
    return gone.done() and not gone.cancelled()


async def drop(send: Send, receive: Receive) -> None:
    """Close the connection now, whatever has been sent so far.

    ASGI has no verb for this, so it reaches uvicorn's transport through the bound `send`; then
    it waits for the disconnect so uvicorn sees a vanished client rather than an unfinished app.
    Under another server it raises instead, which makes the server close the connection.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise ConnectionAbortedError("simulated connection cut")
    transport.close()
    while (await receive())["type"] != "http.disconnect":
        pass
