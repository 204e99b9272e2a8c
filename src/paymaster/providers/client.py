"""A small HTTP/1.1 client for the upstream hop: keep-alive pool, streaming bodies, idle timeouts.

Why not aiohttp or httpx: on the gateway's hot path the general-purpose clients cost more CPU per
call than everything else the gateway does (see bench/upstream_client.py). The gateway needs one
thing — POST a JSON body to one host and read the answer as it arrives — so this client is built
on asyncio protocols and `httptools` (the parser uvicorn already uses), and does only that.

    pool = Pool("https://api.anthropic.com", read_timeout=600)
    resp = await pool.post("/v1/messages", headers, body)
    resp.status, resp.headers            # after the head arrives
    await resp.read()                    # the whole body, or:
    async for chunk in resp.iter_chunks(): ...
    resp.close()                         # drop a response before its end (closes the connection)

Errors: `Unreachable` (nothing was sent), `UpstreamTimeout`, `UpstreamClosed` (the connection ended
before the response did).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 1 << 20  # pause reading when this much of a streamed body waits unread


class UpstreamError(Exception):
    """The upstream exchange failed."""


class Unreachable(UpstreamError):
    """Could not connect: the request was never sent."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """No byte arrived within the read timeout."""


class UpstreamClosed(UpstreamError):
    """The connection ended before the response was complete."""


class Response:
    __slots__ = ("status", "headers", "_conn", "_chunks", "_done", "_error", "_waiter", "_buffered")

    def __init__(self, conn: Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._conn.paused and self._buffered < HIGH_WATER // 2:
                    self._conn.resume()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self._done:
                return
            await self._wait()

    async def read(self) -> bytes:
        while not self._done:
            if self._error is not None:
                raise self._error
            await self._wait()
        if self._error is not None:
            raise self._error
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data

    def close(self) -> None:
        """Abandon the response; an unfinished one takes its connection with it."""
        if not self._done:
            self._conn.abort(UpstreamClosed("response closed by the gateway"))


class Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: Response | None = None
        self.head: asyncio.Future[Response] | None = None
        self.closed = False
        self.paused = False
        self._header_name = b""
        self._activity = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- protocol --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.abort(UpstreamClosed(f"malformed response from the provider: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.pool.forget(self)
        if self.head is not None or (self.resp is not None and not self.resp._done):
            self._fail(UpstreamClosed("the provider closed the connection mid-response"))

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.resp is not None
        self.resp.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.resp is not None
        self.resp.status = self.parser.get_status_code()
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_result(self.resp)

    def on_body(self, body: bytes) -> None:
        r = self.resp
        assert r is not None
        r._chunks.append(body)
        r._buffered += len(body)
        if r._buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        r._wake()

    def on_message_complete(self) -> None:
        r = self.resp
        assert r is not None
        r._done = True
        self.resp = None
        self._cancel_timer()
        keep = self.parser.should_keep_alive()
        r._wake()
        if keep and not self.closed:
            self.pool.release(self)
        else:
            self.abort(None)

    # -- driving ---------------------------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.resp = Response(self)
        self.head = self.loop.create_future()
        self._activity = self.loop.time()
        self._arm()
        self.transport.write(data)
        return self.head

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abort(self, exc: BaseException | None) -> None:
        if exc is not None:
            self._fail(exc)
        self.closed = True
        self._cancel_timer()
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(exc)
        r = self.resp
        if r is not None and not r._done and r._error is None:
            r._error = exc
            r._wake()

    def _arm(self) -> None:
        self._timer = self.loop.call_at(self._activity + self.pool.read_timeout, self._check)

    def _check(self) -> None:
        idle = self.loop.time() - self._activity
        if idle >= self.pool.read_timeout:
            self.abort(UpstreamTimeout(f"no answer from the provider for {self.pool.read_timeout:g}s"))
        else:
            self._arm()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Pool:
    """Keep-alive connections to one origin."""

    def __init__(self, base_url: str, *, read_timeout: float = 600.0, connect_timeout: float = 10.0) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if u.scheme == "https" else None
        self.base_path = u.path.rstrip("/")
        default_port = self.port == (443 if self.ssl else 80)
        self.host_header = (self.host if default_port else f"{self.host}:{self.port}").encode()
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def _connect(self) -> Connection:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as e:
            raise Unreachable(f"cannot connect to {self.host}:{self.port}: {e or type(e).__name__}") from e
        return conn

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        """Send a POST; returns once the response head has arrived."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                break
        else:
            conn = await self._connect()
        self.busy.add(conn)
        head = [
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"
            % ((self.base_path + path).encode(), self.host_header, len(body))
        ]
        head.extend(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        head.append(b"\r\n")
        return await conn.send(b"".join(head) + body)

    def release(self, conn: Connection) -> None:
        self.busy.discard(conn)
        if not conn.closed:
            self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    async def close(self) -> None:
        for conn in [*self.idle, *self.busy]:
            conn.abort(None)
        self.idle.clear()
        self.busy.clear()
