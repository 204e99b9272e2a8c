"""What every transport must do (providers/transport.py): each test runs once per implementation.

Loopback only: a scripted origin over TLS signed by a throwaway CA (trustme), a CONNECT proxy, a
server that never finishes a handshake (tests/transport_kit.py).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import transport_kit
import uvloop
from transport_kit import PKI, PROVIDER_HOST, ConnectProxy, Loop, Origin, Silent, body_of

from paymaster.config import TRANSPORTS, Provider
from paymaster.providers import (
    ConnectTimeout,
    PoolTimeout,
    ProxyFailure,
    Target,
    TLSFailure,
    Transport,
    Unreachable,
    UpstreamClosed,
    UpstreamTimeout,
)
from paymaster.providers.transport import open_transport

MiB = 1 << 20
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


loop, pki = transport_kit.loop, transport_kit.pki  # module-scoped fixtures


@pytest.fixture(scope="module")
def bundle(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> str:
    return pki.bundle(tmp_path_factory.mktemp("ca"))


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


@pytest.fixture(params=TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tls(loop: Loop, pki: PKI) -> Iterator[Origin]:
    with Origin(loop, pki.server_ctx()) as o:
        yield o


def make(kind: str, url: str, **kw: Any) -> Transport:
    kw.setdefault("timeout_s", 5.0)
    return open_transport(Target.of(Provider("p", "anthropic", url, "k", **kw)), kind)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return uvloop.run(coro)


async def fetch(t: Transport, path: str, stream: bool = False) -> tuple[int, bytes]:
    resp = await t.send("GET", path, {"accept-encoding": "identity"}, b"")
    if not stream:
        return resp.status, await resp.read()
    parts = [chunk async for chunk in resp.iter_chunks()]
    return resp.status, b"".join(parts)


async def fetch_once(t: Transport, path: str, stream: bool = False) -> tuple[int, bytes]:
    try:
        return await fetch(t, path, stream)
    finally:
        await t.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- TLS -----------------------------------------------------------------------------------------------


def test_tls_with_the_providers_ca_bundle(kind: str, tls: Origin, bundle: str) -> None:
    assert run(fetch_once(make(kind, tls.url, ca_bundle=bundle), "/length?n=5000")) == (200, body_of(5000))


def test_untrusted_certificate_is_refused(kind: str, tls: Origin) -> None:
    with pytest.raises(TLSFailure, match="not signed by a trusted CA.*ca_bundle"):
        run(fetch_once(make(kind, tls.url), "/length"))


def test_hostname_mismatch_is_refused(kind: str, loop: Loop, pki: PKI, bundle: str) -> None:
    with Origin(loop, pki.server_ctx("api.other.example")) as o, pytest.raises(TLSFailure, match="not valid for"):
        run(fetch_once(make(kind, o.url, ca_bundle=bundle), "/length"))


def test_the_bundle_replaces_the_store(kind: str, loop: Loop, pki: PKI, bundle: str) -> None:
    """A certificate from another CA is refused even though that CA might be trusted elsewhere."""
    with Origin(loop, pki.server_ctx(ca=pki.other_ca)) as o, pytest.raises(TLSFailure):
        run(fetch_once(make(kind, o.url, ca_bundle=bundle), "/length"))


# -- bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_ten_mib_bodies(kind: str, tls: Origin, bundle: str, framing: str, stream: bool) -> None:
    """Non-streamed answers past the 1 MiB back-pressure mark used to hang until the read timeout."""
    t = make(kind, tls.url, ca_bundle=bundle, timeout_s=3.0)
    status, data = run(fetch_once(t, f"/{framing}?n={10 * MiB}", stream))
    assert status == 200 and len(data) == 10 * MiB and data == body_of(10 * MiB)


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_are_decoded(kind: str, tls: Origin, bundle: str, encoding: str, stream: bool) -> None:
    status, data = run(fetch_once(make(kind, tls.url, ca_bundle=bundle), f"/{encoding}?n={2 * MiB}", stream))
    assert status == 200 and data == body_of(2 * MiB)


def test_keep_alive_reuses_one_connection(kind: str, tls: Origin, bundle: str) -> None:
    async def go() -> list[tuple[int, bytes]]:
        t = make(kind, tls.url, ca_bundle=bundle)
        try:
            return [await fetch(t, "/length?n=10") for _ in range(5)]
        finally:
            await t.close()

    assert run(go()) == [(200, body_of(10))] * 5
    assert tls.connections == 1


# -- connections the provider closes -------------------------------------------------------------------


def test_server_closing_idle_connections(kind: str, loop: Loop, pki: PKI, bundle: str) -> None:
    async def go() -> list[int]:
        t = make(kind, o.url, ca_bundle=bundle)
        try:
            first = await fetch(t, "/length?n=10")
            await asyncio.sleep(0.3)  # the server drops the idle connection meanwhile
            return [first[0], (await fetch(t, "/length?n=10"))[0]]
        finally:
            await t.close()

    with Origin(loop, pki.server_ctx(), idle_close=0.05) as o:
        assert run(go()) == [200, 200]
        assert o.connections == 2


def test_stale_connection_is_retried_once_on_a_fresh_one(kind: str, loop: Loop, pki: PKI, bundle: str) -> None:
    """The provider drops a kept-alive connection as the request goes out: no byte came, send again."""

    async def go() -> list[tuple[int, bytes]]:
        t = make(kind, o.url, ca_bundle=bundle)
        try:
            return [await fetch(t, f"/length?n={i}") for i in (1, 2, 3)]
        finally:
            await t.close()

    with Origin(loop, pki.server_ctx(), drop_reused=True) as o:
        assert run(go()) == [(200, body_of(1)), (200, body_of(2)), (200, body_of(3))]
        assert o.requests == ["/length?n=1", "/length?n=2", "/length?n=3"]  # each answered once
        assert o.dropped == 2 and o.connections == 3  # requests 2 and 3 met a dropped connection first


def test_a_post_on_a_dropped_connection_is_not_sent_again(kind: str, loop: Loop, pki: PKI, bundle: str) -> None:
    """The provider read the POST before the kept-alive connection died: it may have run it (and billed it),
    so the request is not sent a second time (RFC 9112 §9.3.1); the caller gets UpstreamClosed."""

    async def go() -> None:
        t = make(kind, o.url, ca_bundle=bundle)
        try:
            first = await t.send("POST", "/length?n=1", {"accept-encoding": "identity"}, b"{}")
            assert (first.status, await first.read()) == (200, body_of(1))
            await t.send("POST", "/length?n=2", {"accept-encoding": "identity"}, b"{}")
        finally:
            await t.close()

    with Origin(loop, pki.server_ctx(), drop_reused=True) as o:
        with pytest.raises(UpstreamClosed):
            run(go())
        assert o.requests == ["/length?n=1"] and o.dropped == 1 and o.connections == 1


def test_a_connection_the_provider_closed_unnoticed_is_not_reused(loop: Loop, pki: PKI, bundle: str) -> None:
    """The provider closed an idle connection while the event loop was busy (its close sits unread): a POST
    goes out on a fresh connection, not on the dead one where it could not be sent again."""

    async def go() -> int:
        t = make("builtin", o.url, ca_bundle=bundle)
        try:
            first = await t.send("POST", "/length?n=1", {"accept-encoding": "identity"}, b"{}")
            await first.read()
            time.sleep(0.3)  # the loop is busy (blocked) while the provider drops the idle connection
            second = await t.send("POST", "/length?n=2", {"accept-encoding": "identity"}, b"{}")
            assert await second.read() == body_of(2)
            return second.status
        finally:
            await t.close()

    with Origin(loop, pki.server_ctx(), idle_close=0.05) as o:
        assert run(go()) == 200
        assert o.requests == ["/length?n=1", "/length?n=2"] and o.connections == 2


def test_no_retry_once_the_answer_started(kind: str, tls: Origin, bundle: str) -> None:
    async def go() -> None:
        t = make(kind, tls.url, ca_bundle=bundle)
        try:
            await fetch(t, "/length?n=10")
            await fetch(t, "/die?n=100000")  # on the reused connection; half the body, then gone
        finally:
            await t.close()

    with pytest.raises(UpstreamClosed):
        run(go())
    assert tls.requests.count("/die?n=100000") == 1


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
def test_provider_dies_mid_answer(kind: str, tls: Origin, bundle: str, stream: bool) -> None:
    with pytest.raises(UpstreamClosed):
        run(fetch_once(make(kind, tls.url, ca_bundle=bundle), "/die?n=100000", stream))


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
def test_reset_cuts_a_close_delimited_body(kind: str, loop: Loop, stream: bool) -> None:
    """Only a clean close ends a body that has no length; a reset is a broken answer."""
    if kind == "aiohttp":
        pytest.xfail("aiohttp ends a close-delimited body at a reset as at a clean close (truncated, no error)")
    with Origin(loop) as o, pytest.raises(UpstreamClosed):
        run(fetch_once(make(kind, o.url), "/close-reset?n=400000", stream))


def test_abandoned_stream_frees_its_connection(kind: str, tls: Origin, bundle: str) -> None:
    async def go() -> tuple[int, bytes]:
        t = make(kind, tls.url, ca_bundle=bundle, max_connections=1, pool_timeout_s=2.0)
        try:
            resp = await t.send("GET", "/drip", {}, b"")
            async for _ in resp.iter_chunks():
                break
            resp.close()
            return await fetch(t, "/length?n=10")
        finally:
            await t.close()

    assert run(go()) == (200, body_of(10))


# -- limits and timeouts -------------------------------------------------------------------------------


def test_connection_limit_with_a_bounded_wait(kind: str, tls: Origin, bundle: str) -> None:
    async def go() -> list[tuple[int, bytes]]:
        t = make(kind, tls.url, ca_bundle=bundle, max_connections=2, pool_timeout_s=5.0)
        try:
            return list(await asyncio.gather(*(fetch(t, "/hold?s=0.05") for _ in range(8))))
        finally:
            await t.close()

    assert run(go()) == [(200, b"ok")] * 8
    assert tls.most_open <= 2


def test_pool_timeout_is_an_unsent_refusal(kind: str, tls: Origin, bundle: str) -> None:
    async def go() -> None:
        t = make(kind, tls.url, ca_bundle=bundle, max_connections=1, pool_timeout_s=0.2)
        busy = asyncio.create_task(fetch(t, "/hold?s=1"))
        await asyncio.sleep(0.1)
        try:
            await fetch(t, "/length?n=10")
        finally:
            busy.cancel()
            await asyncio.gather(busy, return_exceptions=True)
            await t.close()

    with pytest.raises(PoolTimeout, match="max_connections") as e:
        run(go())
    assert isinstance(e.value, Unreachable)  # nothing was sent: the gateway books it at zero


def test_connect_timeout_on_a_handshake_that_never_ends(kind: str, loop: Loop, bundle: str) -> None:
    with Silent(loop) as s, pytest.raises(ConnectTimeout, match="no connection within 0.3s"):
        run(fetch_once(make(kind, f"https://127.0.0.1:{s.port}", ca_bundle=bundle, connect_timeout_s=0.3), "/"))


def test_refused_connection_is_unreachable(kind: str) -> None:
    with pytest.raises(Unreachable, match="cannot connect"):
        run(fetch_once(make(kind, f"http://127.0.0.1:{free_port()}"), "/"))


def test_read_timeout_when_the_provider_never_answers(kind: str, tls: Origin, bundle: str) -> None:
    with pytest.raises(UpstreamTimeout, match="0.3s"):
        run(fetch_once(make(kind, tls.url, ca_bundle=bundle, timeout_s=0.3), "/silent"))


@pytest.mark.parametrize("pause", [0.0, 0.5], ids=["at-once", "after-the-timeout"])
def test_read_timeout_on_a_kept_alive_connection(kind: str, tls: Origin, bundle: str, pause: float) -> None:
    """The second request on a connection times out too, whether it is sent while the first request's
    read timer would still be running or after that timer's time has passed."""

    async def go() -> None:
        t = make(kind, tls.url, ca_bundle=bundle, timeout_s=0.3)
        try:
            assert await fetch(t, "/length?n=10") == (200, body_of(10))
            await asyncio.sleep(pause)
            with pytest.raises(UpstreamTimeout, match="0.3s"):
                async with asyncio.timeout(5):  # a timer that never fires fails here, not by hanging
                    await fetch(t, "/silent")
        finally:
            await t.close()

    run(go())
    assert tls.connections == 1


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
def test_total_timeout_on_a_trickling_answer(kind: str, tls: Origin, bundle: str, stream: bool) -> None:
    t = make(kind, tls.url, ca_bundle=bundle, timeout_s=5.0, total_timeout_s=0.4)
    with pytest.raises(UpstreamTimeout, match="total_timeout_s"):
        run(fetch_once(t, "/drip", stream))


# -- proxies -------------------------------------------------------------------------------------------


def test_connect_tunnel_with_proxy_credentials(kind: str, loop: Loop, tls: Origin, bundle: str) -> None:
    with ConnectProxy(loop, auth=("agent", "s3cr=t")) as px:
        t = make(kind, tls.url, ca_bundle=bundle, proxy=px.url("agent", "s3cr%3Dt"))
        assert run(fetch_once(t, "/length?n=100")) == (200, body_of(100))
        assert px.tunnels == 1 and px.refused == 0


def test_wrong_proxy_credentials_are_named(kind: str, loop: Loop, tls: Origin, bundle: str) -> None:
    with ConnectProxy(loop, auth=("agent", "right")) as px, pytest.raises(ProxyFailure, match="407"):
        run(fetch_once(make(kind, tls.url, ca_bundle=bundle, proxy=px.url("agent", "wrong")), "/length"))


def test_https_proxy(kind: str, loop: Loop, pki: PKI, tls: Origin, bundle: str) -> None:
    with ConnectProxy(loop, pki.server_ctx()) as px:
        assert run(fetch_once(make(kind, tls.url, ca_bundle=bundle, proxy=px.url()), "/chunked?n=300000")) == (
            200,
            body_of(300000),
        )
        assert px.tunnels == 1


def test_proxy_from_the_environment(
    kind: str, loop: Loop, tls: Origin, bundle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = f"https://{PROVIDER_HOST}:{tls.port}"  # resolvable only through the proxy
    with ConnectProxy(loop) as px:
        monkeypatch.setenv("HTTPS_PROXY", px.url())
        assert run(fetch_once(make(kind, named, ca_bundle=bundle), "/length?n=10")) == (200, body_of(10))
        assert px.tunnels == 1
        # a loopback provider (a local model server, the simulator) never takes the environment's proxy
        assert run(fetch_once(make(kind, tls.url, ca_bundle=bundle), "/length"))[0] == 200
        assert px.tunnels == 1


def test_no_proxy_from_the_environment_and_fleet_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def proxied(**kw: Any) -> bool:
        return Target.of(Provider("p", "anthropic", f"https://{PROVIDER_HOST}", "k", **kw)).proxy is not None

    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    assert proxied()
    assert not proxied(no_proxy=("provider.test",)) and not proxied(proxy="none")
    monkeypatch.delenv("https_proxy")
    assert proxied(proxy="http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "example.com,.test")
    assert not proxied(proxy="http://127.0.0.1:3128")  # NO_PROXY applies to fleet.yaml's proxy too


def test_plain_http_provider_through_a_proxy(kind: str, loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    with Origin(loop) as o, ConnectProxy(loop, auth=("u", "p")) as px:
        monkeypatch.setenv("http_proxy", px.url("u", "p"))
        status, data = run(fetch_once(make(kind, f"http://{PROVIDER_HOST}:{o.port}/base"), "/echo"))
        assert status == 200 and px.forwarded == 1
        assert b'"target": "http://%s:%d/base/echo"' % (PROVIDER_HOST.encode(), o.port) in data


def test_unreachable_proxy_is_named(kind: str, tls: Origin, bundle: str) -> None:
    with pytest.raises(ProxyFailure, match="proxy"):
        run(fetch_once(make(kind, tls.url, ca_bundle=bundle, proxy=f"http://127.0.0.1:{free_port()}"), "/"))


def test_bundle_path_error_is_config_error(tmp_path: Path) -> None:
    """Covered per transport above; the config layer refuses a missing bundle before any transport."""
    from paymaster.config import ConfigError, _hop

    with pytest.raises(ConfigError, match="providers.p.ca_bundle: no such file"):
        _hop({"ca_bundle": "missing.pem"}, "providers.p", tmp_path)
