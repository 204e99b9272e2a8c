"""`paymaster doctor`: can the gateway reach each provider, over TLS, through its proxy, with its key?

One model-list GET per provider (free, authenticated, and on the same host and transport as a real
call), all providers at once; a plain-words line for whatever is wrong; exit status 1 if anything is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field

import orjson

from .config import Config, Provider
from .providers import (
    ConnectTimeout,
    PoolTimeout,
    ProxyFailure,
    TLSFailure,
    Unreachable,
    Upstream,
    UpstreamError,
    UpstreamTimeout,
)
from .providers.proxy import ProxyURLError

CHECK_TIMEOUT_S = 30.0  # the longest the doctor waits for one provider's answer
# a transport error in plain words: the first row whose type matches
PROBLEMS: list[tuple[type[UpstreamError] | tuple[type[UpstreamError], ...], str]] = [
    (TLSFailure, "TLS: the provider's certificate was refused: {e}"),
    (ProxyFailure, "proxy: {e}"),
    ((ConnectTimeout, PoolTimeout), "unreachable: {e} (a firewall dropping packets, or egress only through a proxy?)"),
    (Unreachable, "unreachable: {e} (is base_url right? is the host up? does egress need a proxy?)"),
    (UpstreamTimeout, "connected, but the provider did not answer: {e}"),
    (UpstreamError, "connected, but the exchange broke off: {e}"),
]


@dataclass
class Finding:
    provider: str
    ok: bool
    route: str = ""
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _route(up: Upstream) -> str:
    t = up.target
    via = "direct" if t.proxy is None else f"via proxy {t.proxy.url} (from {t.proxy.source})"
    trust = "" if t.ssl is None else f", trusting {up.provider.ca_bundle or 'the system CA store'}"
    return f"{up.provider.base_url} {via}{trust}, transport {up.provider.transport}"


def _error_message(body: bytes) -> str:
    try:
        err = orjson.loads(body).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg)[:200] if msg else body[:200].decode("utf-8", "replace")
    except (orjson.JSONDecodeError, AttributeError):
        return body[:200].decode("utf-8", "replace")


async def check(p: Provider, config_models: list[str]) -> Finding:
    f = Finding(p.name, ok=False)
    quick = dataclasses.replace(p, timeout_s=min(p.timeout_s, CHECK_TIMEOUT_S))
    try:
        up = Upstream(quick)
    except (ProxyURLError, ValueError) as e:
        f.problems.append(f"cannot set up the connection: {e}")
        return f
    f.route = _route(up)
    started = time.perf_counter()
    try:
        resp = await up.list_models()
        body = await resp.read()
    except UpstreamError as e:
        f.problems.append(next(msg for kind, msg in PROBLEMS if isinstance(e, kind)).format(e=e))
        return f
    finally:
        await up.close()
    ms = (time.perf_counter() - started) * 1000
    status = resp.status
    if status == 200:
        f.ok = True
        try:
            offered = {m["id"] for m in orjson.loads(body).get("data", []) if isinstance(m, dict) and "id" in m}
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            offered = set()
        f.summary = f"reachable, TLS verified, key accepted, {len(offered)} models listed, {ms:.0f} ms"
        if up.target.ssl is None:
            f.summary = f.summary.replace("TLS verified", "plain HTTP (no TLS)")
        # the lists name dated ids (claude-haiku-4-5-20251001); an alias counts when one starts with it
        missing = [m for m in config_models if offered and not any(o == m or o.startswith(m + "-") for o in offered)]
        if missing:
            f.notes.append(f"models fleet.yaml sends here that the provider's list lacks: {', '.join(missing)}")
    elif status in (401, 403):
        f.problems.append(
            f"the provider refused the key (HTTP {status}): {_error_message(body)} — check the variable named "
            f"in providers.{p.name}.api_key_env"
        )
    elif status == 404:
        hint = " (OpenAI-style base URLs end in /v1)" if p.api == "openai" else ""
        f.problems.append(f"reachable, but {p.base_url} has no model list (HTTP 404): is base_url right?{hint}")
    elif status == 429:
        f.ok = True
        f.summary = f"reachable, key accepted, but rate-limited right now (HTTP 429), {ms:.0f} ms"
    else:
        f.problems.append(f"the provider answered HTTP {status}: {_error_message(body)}")
    return f


async def diagnose(config: Config) -> list[Finding]:
    by_provider: dict[str, list[str]] = {name: [] for name in config.providers}
    for model in config.models.values():
        by_provider.setdefault(model.provider.name, []).append(model.name)
    return list(await asyncio.gather(*(check(p, by_provider.get(name, [])) for name, p in config.providers.items())))


def run(config: Config) -> int:
    """Print one block per provider; 0 if every provider is usable, 1 if not."""
    findings = asyncio.run(diagnose(config))
    width = max(len(f.provider) for f in findings)
    for f in findings:
        print(f"{f.provider:<{width}}  {'ok  ' if f.ok else 'FAIL'}  {f.route}")
        for line in [f.summary] if f.ok else f.problems:
            print(f"{'':<{width}}        {line}")
        for note in f.notes:
            print(f"{'':<{width}}        note: {note}")
    bad = [f.provider for f in findings if not f.ok]
    print(
        f"\n{len(findings) - len(bad)} of {len(findings)} providers usable"
        + (f"; fix: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0
