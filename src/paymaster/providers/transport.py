"""The transport interface: one `send`, answering with a `Response` whose body arrives as a stream.

The gateway does not care which HTTP client is underneath: `client.Builtin` (in-house, the default)
and `aiohttp_transport.AiohttpTransport` both pass tests/test_transport_conformance.py.

    t = open_transport(Target.of(provider))
    resp = await t.send("POST", "/v1/messages", headers, body)   # returns once the head has arrived
    resp.status, resp.headers                                    # headers: lower-case names
    await resp.read()  |  async for chunk in resp.iter_chunks()  # decoded (gzip/deflate) body
    resp.close()                                                 # drop an unfinished answer
    await t.close()

Errors (the only ones a transport raises; the gateway translates them at one place, app._failure):

    UpstreamError
     ├── Unreachable          nothing was sent: the call costs nothing
     │    ├── TLSFailure      certificate untrusted, expired or for another host
     │    ├── ProxyFailure    the proxy refused (407, 403, …) or could not reach the provider
     │    ├── ConnectTimeout  no connection within connect_timeout_s
     │    └── PoolTimeout     every connection to the provider stayed busy for pool_timeout_s
     ├── UpstreamTimeout      the request went out; no byte for timeout_s, or total_timeout_s passed
     └── UpstreamClosed       the connection ended before the answer did (provider died mid-answer)
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ..config import Provider
from .proxy import Proxy, resolve_proxy
from .tls import ssl_context

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods a client may send again when it cannot tell whether the first was applied (RFC 9110 §9.2.2)."""
KEEPALIVE_EXPIRY_S = 15.0  # an idle connection older than this is closed, not reused (aiohttp's default)


class UpstreamError(Exception):
    """The upstream exchange failed."""


class Unreachable(UpstreamError):
    """Could not connect: the request was never sent."""


class TLSFailure(Unreachable):
    """The provider's certificate was refused."""


class ProxyFailure(Unreachable):
    """The proxy refused the tunnel or could not be reached."""


class ConnectTimeout(Unreachable, TimeoutError):
    """No connection (TCP, proxy tunnel and TLS handshake) within the connect timeout."""


class PoolTimeout(Unreachable, TimeoutError):
    """Every connection to the provider stayed busy past the pool timeout."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """No byte arrived within the read timeout, or the whole exchange outlasted the total timeout."""


class UpstreamClosed(UpstreamError):
    """The connection ended before the response was complete."""


class Response(Protocol):
    @property
    def status(self) -> int: ...  # read-only, so a transport may keep a plain dict of headers

    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """Everything a transport needs about one provider, resolved once (never per call)."""

    name: str
    scheme: str
    host: str
    port: int
    base_path: str
    ssl: ssl.SSLContext | None
    proxy: Proxy | None
    connect_timeout: float
    read_timeout: float
    total_timeout: float | None
    max_connections: int
    pool_timeout: float

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def of(cls, p: Provider) -> Target:
        u = urlsplit(p.base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"providers.{p.name}.base_url: not an http(s) URL: {p.base_url!r}")
        https = u.scheme == "https"
        proxy = resolve_proxy(u.scheme, u.hostname, u.port, p.proxy, p.no_proxy)
        ctx = ssl_context(p.ca_bundle) if https or (proxy is not None and proxy.scheme == "https") else None
        return cls(
            name=p.name,
            scheme=u.scheme,
            host=u.hostname,
            port=u.port or (443 if https else 80),
            base_path=u.path.rstrip("/"),
            ssl=ctx if https else None,
            proxy=proxy if proxy is None or proxy.scheme == "http" else proxy.with_ssl(ctx),
            connect_timeout=p.connect_timeout_s,
            read_timeout=p.timeout_s,
            total_timeout=p.total_timeout_s,
            max_connections=p.max_connections,
            pool_timeout=p.pool_timeout_s,
        )


def open_transport(target: Target, kind: str = "builtin") -> Transport:
    """The transport named in `providers.<name>.transport`."""
    if kind == "aiohttp":
        from .aiohttp_transport import AiohttpTransport

        return AiohttpTransport(target)
    from .client import Builtin

    return Builtin(target)


def tls_message(target: Target, e: BaseException) -> str:
    """A certificate failure in plain words."""
    reason = getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e)
    text = str(e)
    if "match" in text or "mismatch" in str(reason).lower():
        why = f"its certificate is not valid for {target.host!r} ({reason})"
    elif "self-signed" in text or "unable to get local issuer" in text or "self signed" in text:
        why = f"its certificate is not signed by a trusted CA ({reason}); set providers.{target.name}.ca_bundle"
    else:
        why = f"TLS failed ({reason})"
    return f"{target.host}:{target.port}: {why}"
