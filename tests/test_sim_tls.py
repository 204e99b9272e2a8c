"""The simulator over TLS (`paymaster sim --tls`, `ServerThread(app, tls=True)`): the official SDKs reach it
when they trust the CA it made, a client that does not is refused, and the gateway reaches it with
`ca_bundle` set under its provider."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from paymaster.app import Gateway
from paymaster.config import Provider, hash_key, parse
from paymaster.server import ServerThread, free_port, wait_port
from paymaster.sim import Simulator

KEY = "sk-sim-tls"
ADMIN = "pm-admin-tls"
MODEL = "claude-sim"  # not a real model: the SDK warns on deprecated names, and warnings are errors
GPT = "gpt-sim"


@pytest.fixture(scope="module")
def tls_sim() -> Iterator[tuple[Simulator, ServerThread]]:
    sim = Simulator(api_keys={KEY})
    with ServerThread(sim.app, tls=True) as srv:
        yield sim, srv


@pytest.fixture(autouse=True)
def _no_ca_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA bundle in the environment would decide what 'the system store' trusts; these tests choose."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def trusting(srv: ServerThread) -> httpx2.Client:
    assert srv.tls
    return anthropic.DefaultHttpxClient(verify=srv.tls.client_context())


def test_sdks_reach_the_tls_sim_with_its_ca(tls_sim: tuple[Simulator, ServerThread]) -> None:
    sim, srv = tls_sim
    assert srv.url.startswith("https://127.0.0.1:")
    sim.reset()
    with trusting(srv) as http:
        claude = anthropic.Anthropic(base_url=srv.url, api_key=KEY, http_client=http, max_retries=0)
        msg = claude.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi [sim:tokens=5]"}]
        )
        assert msg.usage.output_tokens == 5 and msg.content[0].type == "text"
        with claude.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "again [sim:tokens=7]"}]
        ) as stream:
            final = stream.get_final_message()
        assert final.usage.output_tokens == 7

        gpt = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, http_client=http, max_retries=0)
        done = gpt.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi [sim:tokens=6]"}])
        assert done.usage and done.usage.completion_tokens == 6
    assert [r["api"] for r in sim.requests] == ["anthropic", "anthropic", "openai"]


def test_async_sdks_reach_the_tls_sim(tls_sim: tuple[Simulator, ServerThread]) -> None:
    _, srv = tls_sim
    assert srv.tls
    ctx = srv.tls.client_context()

    async def calls() -> tuple[int, int]:
        async with openai.DefaultAsyncHttpxClient(verify=ctx) as http:
            gpt = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key=KEY, http_client=http, max_retries=0)
            claude = anthropic.AsyncAnthropic(base_url=srv.url, api_key=KEY, http_client=http, max_retries=0)
            done, msg = await asyncio.gather(
                gpt.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x [sim:tokens=3]"}]),
                claude.messages.create(
                    model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "y [sim:tokens=2]"}]
                ),
            )
        assert done.usage
        return done.usage.completion_tokens, msg.usage.output_tokens

    assert asyncio.run(calls()) == (3, 2)


def test_a_client_without_the_ca_is_refused(tls_sim: tuple[Simulator, ServerThread]) -> None:
    sim, srv = tls_sim
    sim.reset()
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx2.post(srv.url + "/v1/messages", json={}, headers={"x-api-key": KEY})
    claude = anthropic.Anthropic(base_url=srv.url, api_key=KEY, max_retries=0)  # the SDK's default trust store
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    # trusting some other CA is no better than trusting none
    with ServerThread(Simulator().app, tls=True) as other:
        assert other.tls
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx2.post(srv.url + "/v1/messages", json={}, verify=other.tls.client_context())
    assert not sim.requests  # nothing got through to the provider


def test_plain_http_to_the_tls_port_gets_no_answer(tls_sim: tuple[Simulator, ServerThread]) -> None:
    _, srv = tls_sim
    with pytest.raises(httpx2.HTTPError):
        httpx2.post(srv.url.replace("https://", "http://") + "/v1/messages", json={}, headers={"x-api-key": KEY})


def _start_cli(port: int, *extra: str) -> tuple[subprocess.Popen[str], str, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "paymaster.cli", "sim", "--tls", "--port", str(port), "--api-key", KEY, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout
    first, second = proc.stdout.readline(), proc.stdout.readline()
    assert second.startswith("CA certificate: "), (first, second, proc.stderr and proc.stderr.read())
    return proc, first, Path(second.removeprefix("CA certificate: ").split()[0])


def _call(port: int, ca: Path) -> int:
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    verify = ssl.create_default_context(cafile=str(ca))
    return httpx2.post(f"https://localhost:{port}/v1/messages", json=body, headers=headers, verify=verify).status_code


def test_cli_sim_tls_prints_its_ca_and_removes_it_at_exit() -> None:
    port = free_port()
    proc, banner, ca = _start_cli(port)
    try:
        assert f"https://127.0.0.1:{port}" in banner
        wait_port(port)
        assert ca.is_file() and "BEGIN CERTIFICATE" in ca.read_text()
        assert _call(port, ca) == 200  # the certificate names localhost as well as 127.0.0.1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not ca.exists() and not ca.parent.exists()  # the CA and the server's private key are gone


def test_cli_sim_tls_writes_the_ca_where_asked(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "sim-ca.pem"
    proc, _, ca = _start_cli(port, "--ca-out", str(out))
    try:
        assert ca == out
        wait_port(port)
        assert _call(port, out) == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert out.is_file()  # the caller's file stays


# -- the full path: agent SDK → gateway → simulator over TLS


def _fleet(sim_url: str, keys: dict[str, str], tmp: Path, **provider: Any) -> dict[str, Any]:
    return {
        "ledger": str(tmp / "ledger.db"),
        "admin": {"key_sha256": hash_key(ADMIN)},
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": sim_url, "api_key_env": "SIM_KEY", **provider},
            "openai": {"kind": "openai", "base_url": sim_url + "/v1", "api_key_env": "SIM_KEY", **provider},
        },
        "agents": {
            "alice": {"model": "claude-haiku-4-5", "daily_usd": 5, "key_sha256": hash_key(keys["alice"])},
            "olivia": {"model": "gpt-4.1-mini", "daily_usd": 5, "key_sha256": hash_key(keys["olivia"])},
        },
    }


def _fields(cls: type) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(getattr(cls, "model_fields", {}))  # a pydantic model


@pytest.fixture
def gateway_to(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerThread] = []

    def start(sim_url: str, **provider: Any) -> tuple[str, dict[str, str]]:
        keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia")}
        config = parse(_fleet(sim_url, keys, tmp_path, timeout_s=5, **provider), env={"SIM_KEY": KEY})
        servers.append(ServerThread(Gateway(config)).start())
        return servers[-1].url, keys

    yield start
    for srv in servers:
        srv.stop()


def _spent(url: str) -> list[tuple[str, str]]:
    rows = httpx2.get(url + "/admin/ledger", headers={"authorization": f"Bearer {ADMIN}"}).json()["data"]
    return [(r["agent"], r["cost_usd"]) for r in rows]


@pytest.mark.skipif(
    "ca_bundle" not in _fields(Provider),
    reason="providers.<name>.ca_bundle is not in this checkout's config (issue 8's transport work adds it)",
)
def test_gateway_reaches_the_tls_sim_through_ca_bundle(
    tls_sim: tuple[Simulator, ServerThread], gateway_to: Any
) -> None:
    sim, srv = tls_sim
    assert srv.tls
    sim.reset()
    url, keys = gateway_to(srv.url, ca_bundle=str(srv.tls.ca_pem))
    claude = anthropic.Anthropic(base_url=url, api_key=keys["alice"], max_retries=0)
    msg = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi [sim:tokens=5]"}]
    )
    assert msg.usage.output_tokens == 5
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "more [sim:tokens=9]"}]
    ) as stream:
        assert stream.get_final_message().usage.output_tokens == 9
    gpt = openai.OpenAI(base_url=url + "/v1", api_key=keys["olivia"], max_retries=0)
    done = gpt.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x [sim:tokens=4]"}])
    assert done.usage and done.usage.completion_tokens == 4
    assert [r["api"] for r in sim.requests] == ["anthropic", "anthropic", "openai"]
    booked = _spent(url)
    assert sorted(a for a, _ in booked) == ["alice", "alice", "olivia"]
    assert all(Decimal(c) > 0 for _, c in booked)


def test_gateway_without_the_ca_does_not_trust_the_tls_sim(
    tls_sim: tuple[Simulator, ServerThread], gateway_to: Any
) -> None:
    """Today's default (the system store) refuses a certificate from an unknown CA: the agent gets an
    error in its own API's shape, the provider sees nothing, and nothing is charged."""
    sim, srv = tls_sim
    sim.reset()
    url, keys = gateway_to(srv.url)
    claude = anthropic.Anthropic(base_url=url, api_key=keys["alice"], max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code >= 500 and e.value.status_code != 500  # a gateway error, never a crash
    assert "certificate" in str(e.value.message).lower()
    assert not sim.requests
    assert all(Decimal(c) == 0 for _, c in _spent(url))
