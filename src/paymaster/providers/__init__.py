"""Upstream clients: where a call goes and with which credential. One pooled session per provider."""

from __future__ import annotations

from typing import Any

import aiohttp

from ..config import Provider

# request headers an agent may pass through to the provider (credentials never pass)
PASS_HEADERS = {"anthropic": ("anthropic-version", "anthropic-beta"), "openai": ("openai-beta",)}
# response headers relayed back to the agent
RELAY_HEADERS = ("request-id", "x-request-id", "retry-after", "anthropic-organization-id", "openai-processing-ms")
PATHS = {"anthropic": "/v1/messages", "openai": "/chat/completions"}


class Upstream:
    """A provider's endpoint and credential, with a keep-alive connection pool."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.session: aiohttp.ClientSession | None = None
        base = provider.base_url
        self.url = base + PATHS[provider.api]
        self.count_tokens_url = base + "/v1/messages/count_tokens"
        if provider.api == "anthropic":
            self.auth = {"x-api-key": provider.api_key}
        else:
            self.auth = {"authorization": f"Bearer {provider.api_key}"}

    async def start(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=75, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.provider.timeout_s),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def headers(self, incoming: dict[bytes, bytes]) -> dict[str, str]:
        h = {"content-type": "application/json", "user-agent": "paymaster", **self.auth}
        for name in PASS_HEADERS[self.provider.api]:
            v = incoming.get(name.encode())
            if v:
                h[name] = v.decode("latin-1")
        if self.provider.api == "anthropic" and "anthropic-version" not in h:
            h["anthropic-version"] = "2023-06-01"
        return h

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        assert self.session is not None, "upstream not started (the ASGI lifespan starts it)"
        return await self.session.post(url, data=body, headers=headers)


def relay_headers(resp: Any) -> list[tuple[bytes, bytes]]:
    out = []
    for name in RELAY_HEADERS:
        v = resp.headers.get(name)
        if v is not None:
            out.append((name.encode(), v.encode("latin-1")))
    return out
