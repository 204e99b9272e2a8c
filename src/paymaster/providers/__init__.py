"""Upstream clients: where a call goes and with which credential, over one transport per provider."""

from __future__ import annotations

from collections.abc import Awaitable

from ..config import Provider
from .transport import (
    ConnectTimeout,
    PoolTimeout,
    ProxyFailure,
    Response,
    Target,
    TLSFailure,
    Transport,
    Unreachable,
    UpstreamClosed,
    UpstreamError,
    UpstreamTimeout,
    open_transport,
)

# request headers an agent may pass through to the provider (credentials never pass)
PASS_HEADERS = {"anthropic": ("anthropic-version", "anthropic-beta"), "openai": ("openai-beta",)}
# response headers relayed back to the agent
RELAY_HEADERS = ("retry-after", "anthropic-organization-id", "openai-processing-ms")
PATHS = {"anthropic": "/v1/messages", "openai": "/chat/completions"}
MODELS_PATH = {"anthropic": "/v1/models", "openai": "/models"}  # the cheapest authenticated call (doctor)


class Upstream:
    """A provider's endpoint and credential, with its transport (connection pool, TLS, proxy, timeouts)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.target = Target.of(provider)
        self.transport: Transport = open_transport(self.target, provider.transport)
        self.path = PATHS[provider.api]
        self.count_tokens_path = "/v1/messages/count_tokens"
        if provider.api == "anthropic":
            self.auth = {"x-api-key": provider.api_key}
        else:
            self.auth = {"authorization": f"Bearer {provider.api_key}"}
        # identity: decoding gzip would cost the gateway CPU on every answer for bytes that cross a
        # datacenter link; a provider that compresses anyway is decoded by the transport
        self.base_headers = {
            "content-type": "application/json",
            "user-agent": "paymaster",
            "accept-encoding": "identity",
        }

    async def close(self) -> None:
        await self.transport.close()

    def headers(self, incoming: dict[bytes, bytes]) -> dict[str, str]:
        h = {**self.base_headers, **self.auth}
        for name in PASS_HEADERS[self.provider.api]:
            v = incoming.get(name.encode())
            if v:
                h[name] = v.decode("latin-1")
        if self.provider.api == "anthropic" and "anthropic-version" not in h:
            h["anthropic-version"] = "2023-06-01"
        return h

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Awaitable[Response]:
        """Send; awaits the response head."""
        return self.transport.send("POST", path, headers, body)

    def list_models(self) -> Awaitable[Response]:
        """GET the model list: reaches the provider, checks TLS, proxy and key, costs nothing."""
        return self.transport.send("GET", MODELS_PATH[self.provider.api], self.headers({}), b"")


def relay_headers(resp: Response) -> list[tuple[bytes, bytes]]:
    out = []
    for name in RELAY_HEADERS:
        v = resp.headers.get(name)
        if v is not None:
            out.append((name.encode(), v.encode("latin-1")))
    rid = resp.headers.get("request-id") or resp.headers.get("x-request-id")
    return out + request_ids(rid) if rid else out


def request_ids(rid: str) -> list[tuple[bytes, bytes]]:
    """The request id under both APIs' names (Anthropic's SDK reads `request-id`, OpenAI's `x-request-id`),
    so a caller served across the APIs still gets its own."""
    v = rid.encode("latin-1")
    return [(b"request-id", v), (b"x-request-id", v)]


__all__ = [
    "Upstream",
    "request_ids",
    "Response",
    "Transport",
    "Target",
    "UpstreamError",
    "Unreachable",
    "TLSFailure",
    "ProxyFailure",
    "ConnectTimeout",
    "PoolTimeout",
    "UpstreamTimeout",
    "UpstreamClosed",
    "relay_headers",
]
