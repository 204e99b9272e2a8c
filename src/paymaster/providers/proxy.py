"""Where the upstream hop goes through: a proxy from fleet.yaml, else from the environment, else none.

Resolved once per provider when the gateway starts (never per call):

- `providers.<name>.proxy: http://[user:pass@]host:port` (or https://…) — that proxy; `none` — no proxy
  whatever the environment says;
- otherwise `https_proxy` / `HTTPS_PROXY` for https providers (`http_proxy` / `HTTP_PROXY` for http ones),
  then `all_proxy` / `ALL_PROXY`; lower case wins, as in curl;
- a provider on the loopback interface (localhost, 127.0.0.0/8, ::1: a local model server, the
  simulator) never takes a proxy from the environment, as in Go's net/http; fleet.yaml's `proxy` still applies;
- `no_proxy` / `NO_PROXY` plus `providers.<name>.no_proxy` list hosts that go direct: `*`, a host, a domain
  (`example.com` and `.example.com` both cover its subdomains), an IP, a CIDR block, each optionally `:port`.

An https provider is reached through a CONNECT tunnel (TLS end to end with the provider); an http one
by sending the request, in absolute form, to the proxy.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from ssl import SSLContext  # the annotation inside Proxy, whose field `ssl` shadows the module
from urllib.parse import unquote, urlsplit


class ProxyURLError(ValueError):
    """A proxy URL the gateway cannot use."""


@dataclass(frozen=True)
class Proxy:
    scheme: str  # http | https (the hop to the proxy itself)
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization header value
    url: str  # without credentials, for messages
    source: str = "proxy"  # where it was configured: fleet.yaml's field or the environment variable
    ssl: SSLContext | None = None  # https proxies: the context their certificate is checked with

    def with_ssl(self, ctx: SSLContext | None) -> Proxy:
        return replace(self, ssl=ctx or ssl.create_default_context())


def parse_proxy(url: str, where: str = "proxy") -> Proxy:
    u = urlsplit(url if "://" in url else "http://" + url)
    if u.scheme not in ("http", "https"):
        raise ProxyURLError(f"{where}: only http:// and https:// proxies are supported, got {u.scheme}://")
    try:
        port = u.port
    except ValueError:
        raise ProxyURLError(f"{where}: bad port in {url!r}") from None
    if not u.hostname:
        raise ProxyURLError(f"{where}: no host in {url!r}")
    auth = None
    if u.username is not None:
        cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
        auth = "Basic " + base64.b64encode(cred).decode()
    port = port or (443 if u.scheme == "https" else 80)
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return Proxy(u.scheme, u.hostname, port, auth, f"{u.scheme}://{host}:{port}", where)


def resolve_proxy(
    scheme: str,
    host: str,
    port: int | None,
    configured: str | None,
    no_proxy: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy for one provider; `configured` is fleet.yaml's value (None: take the environment's)."""
    env = os.environ if env is None else env
    port = port or (443 if scheme == "https" else 80)
    bypass = [*_env_list(env, "no_proxy"), *no_proxy]
    if configured is not None:
        if configured.strip().lower() == "none":
            return None
        url, where = configured, "fleet.yaml"
    else:
        for var in (f"{scheme}_proxy", "all_proxy"):
            url = env.get(var) or env.get(var.upper()) or ""
            if url:
                where = var.upper() if not env.get(var) else var
                break
        else:
            return None
        if _loopback(host):
            return None
    if bypassed(host, port, bypass):
        return None
    return parse_proxy(url, where)


def _loopback(host: str) -> bool:
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_list(env: Mapping[str, str], var: str) -> list[str]:
    raw = env.get(var) or env.get(var.upper()) or ""
    return [x.strip() for x in raw.split(",") if x.strip()]


def bypassed(host: str, port: int, entries: Iterable[str]) -> bool:
    """Whether `host:port` matches a NO_PROXY entry."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in entries:
        e = entry.strip().lower()
        if e == "*":
            return True
        e_host, e_port = e, None
        if e.startswith("[") and "]" in e:  # [::1]:8080
            e_host, _, rest = e[1:].partition("]")
            e_port = rest[1:] if rest.startswith(":") else None
        elif e.count(":") == 1:
            e_host, e_port = e.split(":")
        if e_port and e_port != str(port):
            continue
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(e_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        e_host = e_host.lstrip("*").lstrip(".").rstrip(".")
        if e_host and (host == e_host or host.endswith("." + e_host)):
            return True
    return False
