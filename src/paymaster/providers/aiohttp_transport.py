"""The `aiohttp` transport: the same interface on a maintained client (`providers.<name>.transport: aiohttp`).

aiohttp does the protocol work (pool, TLS, CONNECT tunnels, decoding); this module only maps the
provider's settings onto it and its errors onto the transport's. The pool limit is enforced here
with a bounded wait so that both transports report a full pool the same way (`PoolTimeout`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping

import aiohttp

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
    UpstreamError,
    UpstreamTimeout,
    tls_message,
)


def _translate(t: Target, e: BaseException, sent: bool) -> UpstreamError:
    """aiohttp's error → the transport's, by type (the one place this happens)."""
    proxy = t.proxy.url if t.proxy is not None else ""
    via = f" through the proxy {proxy}" if proxy else ""
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return TLSFailure(tls_message(t, e.certificate_error))
    if isinstance(e, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return TLSFailure(f"{t.host}:{t.port}: TLS handshake failed{via} ({e})")
    if isinstance(e, aiohttp.ClientHttpProxyError):
        hint = " (check the proxy's user:password)" if e.status == 407 else ""
        return ProxyFailure(f"the proxy {proxy} refused the tunnel to {t.host}:{t.port}: {e.status} {e.message}{hint}")
    if isinstance(e, aiohttp.ClientProxyConnectionError):
        return ProxyFailure(f"cannot reach the proxy {proxy}: {e.os_error.strerror or e.os_error}")
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(f"cannot connect to {t.origin}{via}: no connection within {t.connect_timeout:g}s")
    if isinstance(e, aiohttp.ClientConnectorError):
        return Unreachable(f"cannot connect to {t.origin}{via}: {e.os_error.strerror or e.os_error}")
    if isinstance(e, aiohttp.SocketTimeoutError):
        return UpstreamTimeout(f"no answer from the provider for {t.read_timeout:g}s (timeout_s)")
    if isinstance(e, TimeoutError):
        if not sent:
            return ConnectTimeout(f"cannot connect to {t.origin}{via}: total_timeout_s={t.total_timeout:g} passed")
        return UpstreamTimeout(f"the exchange with the provider passed total_timeout_s={t.total_timeout:g}")
    if isinstance(e, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamClosed(f"the provider closed the connection mid-response ({e})")
    return UpstreamClosed(f"the exchange with the provider failed: {type(e).__name__}: {e}")


class AiohttpResponse:
    __slots__ = ("status", "headers", "_r", "_t", "_release")

    def __init__(self, r: aiohttp.ClientResponse, t: Target, release: asyncio.Semaphore) -> None:
        self.status = r.status
        self.headers: Mapping[str, str] = r.headers
        self._r = r
        self._t = t
        self._release: asyncio.Semaphore | None = release

    def _done(self) -> None:
        if self._release is not None:
            self._release.release()
            self._release = None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._r.content.iter_any():
                yield data
        except (aiohttp.ClientError, TimeoutError) as e:
            self._r.close()
            raise _translate(self._t, e, True) from e
        finally:
            self._done()

    async def read(self) -> bytes:
        try:
            return await self._r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            self._r.close()
            raise _translate(self._t, e, True) from e
        finally:
            self._done()

    def close(self) -> None:
        if not self._r.closed:
            self._r.close()
        self._done()


class AiohttpTransport:
    def __init__(self, target: Target) -> None:
        self.target = t = target
        self.base = t.origin + t.base_path
        self.proxy = None if t.proxy is None else t.proxy.url
        auth = {"proxy-authorization": t.proxy.auth} if t.proxy and t.proxy.auth else None
        # CONNECT carries the credentials for https providers; plain-http requests carry them themselves
        self.proxy_headers = auth if t.ssl is not None else None
        self.request_headers = auth if t.ssl is None else None
        self.ssl: ssl.SSLContext | bool = (
            t.ssl if t.ssl is not None else (t.proxy.ssl if t.proxy and t.proxy.ssl else False)
        )
        self.timeout = aiohttp.ClientTimeout(total=t.total_timeout, connect=t.connect_timeout, sock_read=t.read_timeout)
        self.session: aiohttp.ClientSession | None = None
        self.slots: asyncio.Semaphore | None = None

    def _open(self) -> aiohttp.ClientSession:
        t = self.target
        conn = aiohttp.TCPConnector(
            limit=t.max_connections, limit_per_host=t.max_connections, keepalive_timeout=KEEPALIVE_EXPIRY_S
        )
        self.slots = asyncio.Semaphore(t.max_connections)
        self.session = aiohttp.ClientSession(
            connector=conn, timeout=self.timeout, trust_env=False, skip_auto_headers=("user-agent",)
        )
        return self.session

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> AiohttpResponse:
        t = self.target
        session = self.session or self._open()
        if self.request_headers:
            headers = {**headers, **self.request_headers}
        slots = self.slots
        assert slots is not None
        try:
            await asyncio.wait_for(slots.acquire(), t.pool_timeout)
        except TimeoutError:
            raise PoolTimeout(
                f"all {t.max_connections} connections to {t.origin} stayed busy for {t.pool_timeout:g}s"
                " (max_connections, pool_timeout_s)"
            ) from None
        try:
            for attempt in (1, 2):
                try:
                    r = await session.request(
                        method,
                        self.base + path,
                        data=body,
                        headers=headers,
                        proxy=self.proxy,
                        proxy_headers=self.proxy_headers,
                        ssl=self.ssl,
                        allow_redirects=False,
                    )
                    return AiohttpResponse(r, t, slots)
                except aiohttp.ServerDisconnectedError as e:
                    # a kept-alive connection the provider had closed: no byte of the answer came. Only an
                    # idempotent request is sent again: the provider may have run a POST (client.py, Stale)
                    if attempt == 2 or method not in IDEMPOTENT:
                        raise _translate(t, e, True) from e
                except (aiohttp.ClientError, TimeoutError) as e:
                    sent = not isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
                    raise _translate(t, e, sent) from e
            raise AssertionError("unreachable")
        except BaseException:
            slots.release()
            raise

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
