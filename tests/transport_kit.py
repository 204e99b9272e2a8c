"""Loopback servers for the transport tests: a scripted HTTP/1.1 origin (plain or TLS) and a CONNECT proxy.

Both run on their own event loop in a daemon thread, so the transport under test runs on the test's
loop exactly as it does in the gateway. Only 127.0.0.1 is ever bound or dialled.

Origin paths (the query's `n` is a body size in bytes):
    /length?n=   content-length body            /chunked?n=   chunked body
    /close?n=    body delimited by closing       /gzip?n=      gzip-encoded, chunked
    /close-reset?n=  half a close-delimited body, then a TCP reset
    /deflate?n=  deflate-encoded (zlib), content-length
    /hold?s=     answer after s seconds         /silent       read the request, never answer
    /drip        head, then a byte every 50 ms  /die          half of a content-length body, then close
    /echo        the request (method, target, headers) as JSON
    /v1/messages an Anthropic Messages answer (for gateway tests)
Options: `drop_reused` closes a connection, without a byte, on its second request (a provider that
closed a kept-alive connection as the request went out); `idle_close` closes connections idle that long.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Coroutine, Iterator
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

PROVIDER_HOST = "provider.test"  # a name only the ConnectProxy knows: it dials 127.0.0.1 for it


async def asgi_lifespan(receive: Any, send: Any) -> None:
    """Answer an ASGI lifespan scope until shutdown: the part every stand-in provider app served by
    `paymaster.server.ServerThread` shares."""
    while True:
        kind = (await receive())["type"].removeprefix("lifespan.")
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def asgi_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    raw = b""
    while True:
        event = await receive()
        raw += event.get("body", b"")
        if not event.get("more_body"):
            return raw


def body_of(n: int) -> bytes:
    """A deterministic body of n bytes (varied, so a byte lost or repeated shows)."""
    unit = bytes(range(33, 127)) * 16
    return (unit * (n // len(unit) + 1))[:n]


class Loop:
    """An event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Listener:
    """A loopback server on a `Loop`'s thread, started and stopped as a context manager; subclasses
    answer each connection in `serve`."""

    loop: Loop
    ssl: ssl.SSLContext | None
    server: asyncio.Server | None
    port: int

    def __enter__(self) -> Self:
        async def start() -> None:
            self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=self.ssl)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()

        self.loop.run(stop())

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class Origin(Listener):
    def __init__(
        self,
        loop: Loop,
        ssl_ctx: ssl.SSLContext | None = None,
        *,
        drop_reused: bool = False,
        idle_close: float | None = None,
        hold: float = 0.0,
    ) -> None:
        self.loop = loop
        self.ssl = ssl_ctx
        self.drop_reused = drop_reused
        self.idle_close = idle_close
        self.hold = hold  # seconds before answering /v1/messages
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.dropped = 0
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        served = 0
        try:
            while True:
                try:
                    if self.idle_close is not None and served:
                        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), self.idle_close)
                    else:
                        head = await r.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await r.readexactly(int(headers.get("content-length", 0)))
                if self.drop_reused and served:
                    self.dropped += 1
                    return
                served += 1
                self.requests.append(target)
                if not await self.answer(w, method, target, headers, body):
                    return
        finally:
            self.open -= 1
            w.close()  # a FIN after whatever was written (an abort would discard unsent bytes)
            with contextlib.suppress(Exception):
                await w.wait_closed()

    async def answer(
        self, w: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> bool:
        """Write one answer; False closes the connection."""
        u = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n = int(q.get("n", 1000))
        path = u.path.removeprefix("/base")

        def head(status: int, extra: str) -> bytes:
            return f"HTTP/1.1 {status} OK\r\ncontent-type: application/octet-stream\r\n{extra}\r\n".encode()

        if path == "/length":
            w.write(head(200, f"content-length: {n}\r\n") + body_of(n))
        elif path == "/chunked":
            w.write(head(200, "transfer-encoding: chunked\r\n"))
            data = body_of(n)
            for i in range(0, n, 65536):
                part = data[i : i + 65536]
                w.write(b"%x\r\n%s\r\n" % (len(part), part))
                await w.drain()
            w.write(b"0\r\n\r\n")
        elif path == "/close":
            w.write(head(200, "") + body_of(n))
            await w.drain()
            return False
        elif path == "/close-reset":  # a close-delimited body cut by a reset, not a clean close
            w.write(head(200, "") + body_of(n // 2))
            await w.drain()
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
            return False
        elif path == "/gzip":
            data = gzip.compress(body_of(n))
            w.write(head(200, "content-encoding: gzip\r\ntransfer-encoding: chunked\r\n"))
            for i in range(0, len(data), 4096):
                w.write(b"%x\r\n%s\r\n" % (len(data[i : i + 4096]), data[i : i + 4096]))
            w.write(b"0\r\n\r\n")
        elif path == "/deflate":
            data = zlib.compress(body_of(n))
            w.write(head(200, f"content-encoding: deflate\r\ncontent-length: {len(data)}\r\n") + data)
        elif path == "/hold":
            await asyncio.sleep(float(q.get("s", 0.2)))
            w.write(head(200, "content-length: 2\r\n") + b"ok")
        elif path == "/silent":
            await asyncio.sleep(3600)
        elif path == "/drip":
            w.write(head(200, "content-length: 100000\r\n"))
            for _ in range(100000):
                await w.drain()
                w.write(b"x")
                await asyncio.sleep(0.05)
        elif path == "/die":
            w.write(head(200, f"content-length: {n}\r\n") + body_of(n // 2))
            await w.drain()
            return False
        elif path == "/echo":
            data = json.dumps({"method": method, "target": target, "headers": headers, "body": len(body)}).encode()
            w.write(head(200, f"content-length: {len(data)}\r\n") + data)
        elif path == "/v1/messages":
            await asyncio.sleep(self.hold)
            req = json.loads(body)
            data = json.dumps(
                {
                    "id": "msg_kit",
                    "type": "message",
                    "role": "assistant",
                    "model": req["model"],
                    "content": [{"type": "text", "text": "hello"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 2},
                }
            ).encode()
            w.write(
                f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_kit\r\n"
                f"content-length: {len(data)}\r\n\r\n".encode()
                + data
            )
        else:
            w.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await w.drain()
        return True


class ConnectProxy(Listener):
    """An HTTP proxy on loopback: CONNECT tunnels and absolute-form forwarding, to 127.0.0.1 only.

    It knows `provider.test` as 127.0.0.1, so a test can reach a provider by a name that is not loopback
    (environment proxies skip loopback providers) while nothing but 127.0.0.1 is ever dialled."""

    def __init__(self, loop: Loop, ssl_ctx: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None) -> None:
        self.loop = loop
        self.ssl = ssl_ctx
        self.want = None if auth is None else "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.tunnels = 0
        self.forwarded = 0
        self.refused = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"{'https' if self.ssl else 'http'}://{cred}127.0.0.1:{self.port}"

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        if self.want is not None and headers.get("proxy-authorization") != self.want:
            self.refused += 1
            w.write(b'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="kit"\r\n')
            w.write(b"content-length: 0\r\nconnection: close\r\n\r\n")
            await w.drain()
            w.close()
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            first = b""
        else:
            u = urlsplit(target)
            host, port = u.hostname or "", str(u.port or 80)
            first = head
        if host not in ("127.0.0.1", "localhost", PROVIDER_HOST):
            w.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            await w.drain()
            w.close()
            return
        ur, uw = await asyncio.open_connection("127.0.0.1", int(port))
        if method == "CONNECT":
            self.tunnels += 1
            w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            self.forwarded += 1
            uw.write(first)
        await asyncio.gather(_pipe(r, uw), _pipe(ur, w))


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            w.close()


class Silent:
    """Accepts TCP connections and never says a word: a TLS handshake against it never completes."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.port = 0
        self.server: asyncio.Server | None = None

    def __enter__(self) -> Silent:
        async def start() -> None:
            self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run(start())
        return self

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()

        self.loop.run(stop())


class PKI:
    """A throwaway CA (trustme) and server contexts signed by it."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()

    def server_ctx(self, *names: str, ca: trustme.CA | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (ca or self.ca).issue_cert(*(names or ("127.0.0.1", "localhost", PROVIDER_HOST))).configure_cert(ctx)
        return ctx

    def bundle(self, tmp: Any) -> str:
        p = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(p))
        return str(p)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    """The servers' event loop (tests take it as `loop = transport_kit.loop`)."""
    lp = Loop()
    yield lp
    lp.stop()


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()
