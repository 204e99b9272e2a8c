"""Upstream clients: where a call goes and with which credential. One pooled session per provider."""

from __future__ import annotations

from typing import Any

from ..config import Provider
from .client import Pool, Response, Unreachable, UpstreamClosed, UpstreamError, UpstreamTimeout

# request headers an agent may pass through to the provider (credentials never pass)
PASS_HEADERS = {"anthropic": ("anthropic-version", "anthropic-beta"), "openai": ("openai-beta",)}
# response headers relayed back to the agent
RELAY_HEADERS = ("request-id", "x-request-id", "retry-after", "anthropic-organization-id", "openai-processing-ms")
PATHS = {"anthropic": "/v1/messages", "openai": "/chat/completions"}


class Upstream:
    """A provider's endpoint and credential, with a keep-alive connection pool."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.pool = Pool(provider.base_url, read_timeout=provider.timeout_s)
        self.path = PATHS[provider.api]
        self.count_tokens_path = "/v1/messages/count_tokens"
        if provider.api == "anthropic":
            self.auth = {"x-api-key": provider.api_key}
        else:
            self.auth = {"authorization": f"Bearer {provider.api_key}"}

    async def close(self) -> None:
        await self.pool.close()

    def headers(self, incoming: dict[bytes, bytes]) -> dict[str, str]:
        h = {"content-type": "application/json", "user-agent": "paymaster", **self.auth}
        for name in PASS_HEADERS[self.provider.api]:
            v = incoming.get(name.encode())
            if v:
                h[name] = v.decode("latin-1")
        if self.provider.api == "anthropic" and "anthropic-version" not in h:
            h["anthropic-version"] = "2023-06-01"
        return h

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        """Send; awaits the response head (`Response`)."""
        return self.pool.post(path, headers, body)


def relay_headers(resp: Response) -> list[tuple[bytes, bytes]]:
    out = []
    for name in RELAY_HEADERS:
        v = resp.headers.get(name)
        if v is not None:
            out.append((name.encode(), v.encode("latin-1")))
    return out


__all__ = [
    "Upstream",
    "Response",
    "UpstreamError",
    "Unreachable",
    "UpstreamTimeout",
    "UpstreamClosed",
    "relay_headers",
]
