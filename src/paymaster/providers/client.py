"""The in-house HTTP/1.1 transport: keep-alive pool, streaming bodies, proxies, timeouts, pool limits.

Why keep one: on the gateway's hot path a general-purpose client costs more CPU per call than the
rest of the gateway (bench/transport.py measures it against aiohttp over TLS). The gateway needs one
thing — send a request to one origin and read the answer as it arrives — so this is asyncio
protocols plus `httptools` (the parser uvicorn already uses), and it passes the same conformance
suite as the maintained client (tests/test_transport_conformance.py).

    t = Builtin(Target.of(provider))
    resp = await t.send("POST", "/v1/messages", headers, body)

Connections: at most `max_connections` per provider, open or opening; a call finding them all busy
waits up to `pool_timeout` (then `PoolTimeout`, nothing sent). An idle connection is reused for
`KEEPALIVE_EXPIRY_S`, unless the provider's close already waits on it (checked before reuse). If a
reused one turns out dead before any byte of the answer arrived, an idempotent request (GET, HEAD…)
is sent once more on a fresh connection; a POST is not: the provider may have read and run it (and
billed it) before the connection died, and a second run the ledger never booked would be spend under
the cap's count (RFC 9112 §9.3.1). It fails as `UpstreamClosed`, booked at its worst case.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator

import httptools

from .transport import (
    IDEMPOTENT,
    KEEPALIVE_EXPIRY_S,
    ConnectTimeout,
    PoolTimeout,
    ProxyFailure,
    Target,
    TLSFailure,
    Unreachable,
    UpstreamClosed,
    UpstreamTimeout,
    tls_message,
)

HIGH_WATER = 1 << 20  # a streamed body pauses reading when this much waits unread


class Stale(UpstreamClosed):
    """A reused connection ended before any byte of the answer: an idempotent request may be sent again on
    a fresh one; a POST may have been run by the provider and is not."""


class BuiltinResponse:
    __slots__ = ("status", "headers", "_conn", "_chunks", "_done", "_error", "_waiter", "_buffered", "_whole")

    def __init__(self, conn: Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._whole = False  # read(): the caller wants it all, no back-pressure
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
            if self._chunks:  # everything that has arrived, as one piece (one HTTP chunk per event is common)
                chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                if self._conn.paused:  # all of it taken: nothing buffered
                    self._conn.resume()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self._done:
                return
            await self._wait()

    async def read(self) -> bytes:
        self._whole = True
        self._conn.resume()
        while not self._done and self._error is None:
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
    def __init__(self, pool: Builtin) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: BuiltinResponse | None = None
        self.head: asyncio.Future[BuiltinResponse] | None = None
        self.closed = False
        self.paused = False
        self.requests = 0
        self.idle_since = 0.0
        self._got = False  # a byte of the current answer arrived
        self._framed = False  # the answer says where it ends (content-length or chunked)
        self._decoder: Decoder | None = None
        self._activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def closing(self) -> bool:
        """Whether bytes wait unread on this idle connection — the provider's close (or anything else it
        sent unasked) that the event loop has not yet read: it is not reused, as a POST sent on it could
        not be sent again (see `Stale`). One zero-timeout poll of the socket."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        try:
            return bool(select.select((sock.fileno(),), (), (), 0)[0])
        except (OSError, ValueError):  # a socket already gone
            return True

    # -- protocol --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got = True
        self._activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.abort(UpstreamClosed(f"malformed response from the provider: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timers()
        self.pool.forget(self)
        r = self.resp
        if r is not None and r.status and not self._framed and not r._done and r._error is None and exc is None:
            self.on_message_complete()  # a body delimited by the connection's (clean) close; a reset cuts it
        elif self.head is not None or (r is not None and not r._done):
            if not self._got and self.requests > 1:
                self._fail(Stale("the provider closed a kept-alive connection"))
            else:
                self._fail(UpstreamClosed("the provider closed the connection mid-response"))

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.resp is not None
        key = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        self.resp.headers[key] = v
        if key == "content-length" or (key == "transfer-encoding" and "chunked" in v.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        r = self.resp
        assert r is not None
        r.status = self.parser.get_status_code()
        if r.status < 200:  # 1xx: an interim head; the real one follows
            r.headers.clear()
            r.status = 0
            return
        enc = r.headers.get("content-encoding", "identity").strip().lower()
        if enc not in ("identity", ""):
            if enc not in WBITS:
                self.abort(UpstreamClosed(f"the provider answered in an unsupported content-encoding {enc!r}"))
                return
            self._decoder = Decoder(enc)
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_result(r)

    def on_body(self, body: bytes) -> None:
        r = self.resp
        if r is None or r._error is not None:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decode(body)
            except zlib.error as e:
                self.abort(UpstreamClosed(f"the provider's compressed answer is corrupt: {e}"))
                return
            if not body:
                return
        r._chunks.append(body)
        r._buffered += len(body)
        if r._buffered > HIGH_WATER and not r._whole and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        r._wake()

    def on_message_complete(self) -> None:
        r = self.resp
        if r is None or r.status == 0:
            return
        if self._decoder is not None:
            with contextlib.suppress(zlib.error):
                tail = self._decoder.flush()
                if tail:
                    r._chunks.append(tail)
        r._done = True
        self.resp = None
        if self._deadline is not None:  # the read timer stays for the connection's next request (`_check`)
            self._deadline.cancel()
            self._deadline = None
        keep = self._framed and self.parser.should_keep_alive()
        r._wake()
        if keep and not self.closed:
            self.pool.release(self)
        elif not self.closed:
            self.abort(None)

    # -- driving ---------------------------------------------------------------------------------------

    def send(self, data: bytes, deadline: float | None) -> asyncio.Future[BuiltinResponse]:
        assert self.transport is not None
        self.requests += 1
        self._got = False
        self._framed = False
        self._decoder = None
        self.resp = BuiltinResponse(self)
        self.head = self.loop.create_future()
        self._activity = self.loop.time()
        if self._timer is None:  # one read timer per connection, kept across its requests (see `_check`)
            self._arm()
        if deadline is not None:
            self._deadline = self.loop.call_at(deadline, self._expire)
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
        self._cancel_timers()
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
        self._timer = self.loop.call_at(self._activity + self.pool.target.read_timeout, self._check)

    def _check(self) -> None:
        """The read timer fired: abort a request silent for `read_timeout`, else look again when it could be.
        Between requests it lapses; a request made meanwhile finds it still set and does not arm another
        (arming and cancelling a timer per request costs more than this late look)."""
        if self.resp is None and self.head is None:  # idle: nothing to time out
            self._timer = None
            return
        read_timeout = self.pool.target.read_timeout
        if self.loop.time() - self._activity >= read_timeout:
            self.abort(UpstreamTimeout(f"no answer from the provider for {read_timeout:g}s (timeout_s)"))
        else:
            self._arm()

    def _expire(self) -> None:
        total = self.pool.target.total_timeout
        self.abort(UpstreamTimeout(f"the exchange with the provider passed total_timeout_s={total:g}"))

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class Decoder:
    """gzip / deflate bodies (a provider should not send them: the gateway asks for identity)."""

    def __init__(self, encoding: str) -> None:
        self.deflate = encoding == "deflate"
        self.z = zlib.decompressobj(WBITS[encoding])
        self.started = False

    def decode(self, data: bytes) -> bytes:
        if self.deflate and not self.started:  # "deflate" is zlib-wrapped by the RFC, raw in practice
            self.started = True
            try:
                return self.z.decompress(data)
            except zlib.error:
                self.z = zlib.decompressobj(-zlib.MAX_WBITS)
        self.started = True
        return self.z.decompress(data)

    def flush(self) -> bytes:
        return self.z.flush()


class Tunnel(asyncio.Protocol):
    """The proxy's answer to CONNECT."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = b""
        self.reply: asyncio.Future[tuple[int, str]] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end >= 0 and not self.reply.done():
            line = self.buf[: self.buf.find(b"\r\n")].decode("latin-1")
            parts = line.split(" ", 2)
            try:
                self.reply.set_result((int(parts[1]), parts[2] if len(parts) > 2 else ""))
            except (IndexError, ValueError):
                self.reply.set_exception(ProxyFailure(f"the proxy answered CONNECT with {line[:80]!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(ProxyFailure("the proxy closed the connection during CONNECT"))


class Builtin:
    """Keep-alive connections to one provider (the `builtin` transport)."""

    def __init__(self, target: Target) -> None:
        self.target = t = target
        default_port = t.port == (443 if t.scheme == "https" else 80)
        host = f"[{t.host}]" if ":" in t.host else t.host
        self.host_header = (host if default_port else f"{host}:{t.port}").encode()
        self.prefix = t.base_path.encode()
        self.extra = b""
        if t.proxy is not None and t.ssl is None:  # plain http through a proxy: absolute-form requests
            self.prefix = f"http://{self.host_header.decode()}{t.base_path}".encode()
            if t.proxy.auth:
                self.extra = b"proxy-authorization: %s\r\n" % t.proxy.auth.encode()
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()
        self.opening = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> BuiltinResponse:
        """Send a request; returns once the response head has arrived."""
        total = self.target.total_timeout
        deadline = self.loop.time() + total if total is not None else None
        head = [
            b"%s %s%s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n%s"
            % (method.encode(), self.prefix, path.encode(), self.host_header, len(body), self.extra)
        ]
        head.extend(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        head.append(b"\r\n")
        data = b"".join(head) + body
        conn = self._idle() or await self._acquire(deadline, fresh=False)
        try:
            return await conn.send(data, deadline)
        except Stale:
            if method not in IDEMPOTENT:  # the provider may have run it: a second run would go unbooked
                raise
            conn = await self._acquire(deadline, fresh=True)
            return await conn.send(data, deadline)
        except asyncio.CancelledError:
            conn.abort(None)
            raise

    def _idle(self) -> Connection | None:
        """A kept-alive connection young enough to reuse (the hot path: no await)."""
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or now - conn.idle_since > KEEPALIVE_EXPIRY_S or conn.closing():
                conn.abort(None)
                continue
            self.busy.add(conn)
            return conn
        return None

    async def _acquire(self, deadline: float | None, *, fresh: bool) -> Connection:
        t = self.target
        loop = self.loop
        wait_until = loop.time() + t.pool_timeout
        while True:
            now = loop.time()
            if fresh:
                while self.idle:
                    self.idle.pop().abort(None)
            else:
                conn = self._idle()
                if conn is not None:
                    return conn
            if len(self.busy) + self.opening < t.max_connections:
                self.opening += 1
                try:
                    conn = await self._connect(deadline)
                finally:
                    self.opening -= 1
                    self._wake()
                self.busy.add(conn)
                return conn
            until = wait_until if deadline is None else min(wait_until, deadline)
            fut: asyncio.Future[None] = loop.create_future()
            self.waiters.append(fut)
            try:
                async with asyncio.timeout_at(until):
                    await fut
            except TimeoutError:
                raise PoolTimeout(
                    f"all {t.max_connections} connections to {t.origin} stayed busy for {until - now:g}s"
                    " (max_connections, pool_timeout_s)"
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)

    def _wake(self) -> None:
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def _connect(self, deadline: float | None) -> Connection:
        t = self.target
        timeout = t.connect_timeout
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - self.loop.time()))
        via = f" through the proxy {t.proxy.url}" if t.proxy is not None else ""
        try:
            async with asyncio.timeout(timeout):
                conn = await self._open()
        except TimeoutError:
            raise ConnectTimeout(f"cannot connect to {t.origin}{via}: no connection within {timeout:g}s") from None
        except ssl.SSLCertVerificationError as e:
            raise TLSFailure(tls_message(t, e)) from e
        except ssl.SSLError as e:
            raise TLSFailure(f"{t.host}:{t.port}: TLS handshake failed{via} ({e.reason or e})") from e
        except OSError as e:
            raise Unreachable(f"cannot connect to {t.origin}{via}: {e.strerror or e}") from e
        return conn

    async def _open(self) -> Connection:
        t, loop = self.target, self.loop
        p = t.proxy
        if p is None:
            _, conn = await loop.create_connection(
                lambda: Connection(self), t.host, t.port, ssl=t.ssl, server_hostname=t.host if t.ssl else None
            )
            return conn
        try:
            tr, tun = await loop.create_connection(
                lambda: Tunnel(loop), p.host, p.port, ssl=p.ssl, server_hostname=p.host if p.ssl else None
            )
        except ssl.SSLError:
            raise
        except OSError as e:
            raise ProxyFailure(f"cannot reach the proxy {p.url}: {e.strerror or e}") from e
        conn = Connection(self)
        try:
            if t.ssl is None:
                tr.set_protocol(conn)
                conn.connection_made(tr)
                return conn
            auth = b"proxy-authorization: %s\r\n" % p.auth.encode() if p.auth else b""
            authority = self.host_header if b":" in self.host_header else b"%s:%d" % (self.host_header, t.port)
            tr.write(b"CONNECT %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (authority, authority, auth))
            status, reason = await tun.reply
            if status != 200:
                hint = " (check the proxy's user:password)" if status == 407 else ""
                raise ProxyFailure(
                    f"the proxy {p.url} refused the tunnel to {t.host}:{t.port}: {status} {reason}{hint}"
                )
            tls = await loop.start_tls(tr, conn, t.ssl, server_hostname=t.host)
            assert tls is not None
            conn.connection_made(tls)
            return conn
        except BaseException:
            tr.abort()
            raise

    def release(self, conn: Connection) -> None:
        self.busy.discard(conn)
        if not conn.closed:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
        self._wake()

    def forget(self, conn: Connection) -> None:
        if conn in self.busy:
            self.busy.discard(conn)
            self._wake()
        elif conn in self.idle:
            self.idle.remove(conn)

    async def close(self) -> None:
        for conn in [*self.idle, *self.busy]:
            conn.abort(None)
        self.idle.clear()
        self.busy.clear()
