"""How a provider's hop is configured: fleet.yaml fields, proxy resolution, CA trust, request headers."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from paymaster.config import ConfigError, hash_key, parse
from paymaster.providers import Target, Upstream
from paymaster.providers import tls as tls_mod
from paymaster.providers.proxy import bypassed, resolve_proxy

ENV = {"SIM_KEY": "sk"}


def fleet(**hop: Any) -> dict[str, Any]:
    return {
        "providers": {"anthropic": {"api_key_env": "SIM_KEY", **hop}, "openai": {"api_key_env": "SIM_KEY"}},
        "agents": {"w": {"key_sha256": hash_key("pm-w"), "model": "claude-haiku-4-5", "daily_usd": 5}},
    }


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("connect_timeout_s", 0, "providers.anthropic.connect_timeout_s: must be a positive number of seconds"),
        ("timeout_s", "long", "providers.anthropic.timeout_s: must be a positive number of seconds"),
        ("total_timeout_s", -1, "providers.anthropic.total_timeout_s: must be a positive number"),
        ("pool_timeout_s", True, "providers.anthropic.pool_timeout_s: must be a positive number"),
        ("max_connections", 0, "providers.anthropic.max_connections: must be a whole number from 1"),
        ("proxy", "socks5://127.0.0.1:1080", "providers.anthropic.proxy: only http:// and https:// proxies"),
        ("proxy", "http://:8080", "providers.anthropic.proxy: no host"),
        ("proxy", "", "providers.anthropic.proxy: must be a non-empty string"),
        ("no_proxy", [1], "providers.anthropic.no_proxy: must be a list of hosts"),
        ("ca_bundle", "nowhere.pem", "providers.anthropic.ca_bundle: no such file"),
        ("transport", "curl", "providers.anthropic.transport: must be one of builtin, aiohttp"),
        ("retries", 3, "providers.anthropic.retries: unknown field"),
    ],
)
def test_bad_hop_settings_name_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(fleet(**{field: value}), env=ENV)
    assert message in str(e.value)


def test_ca_bundle_that_is_not_pem(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="providers.anthropic.ca_bundle: not a PEM file"):
        parse(fleet(ca_bundle="junk.pem"), env=ENV, base=tmp_path)


def test_defaults_and_values(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    p = parse(fleet(), env=ENV).providers["anthropic"]
    assert (p.connect_timeout_s, p.timeout_s, p.total_timeout_s) == (10.0, 600.0, None)
    assert (p.max_connections, p.pool_timeout_s, p.transport, p.proxy, p.ca_bundle) == (
        100,
        10.0,
        "builtin",
        None,
        None,
    )
    raw = fleet(
        ca_bundle="ca.pem",
        proxy="http://u:p@proxy.internal:3128",
        no_proxy="a.internal, b.internal",
        connect_timeout_s=2,
        total_timeout_s=30,
        max_connections=8,
        pool_timeout_s=1.5,
        transport="aiohttp",
    )
    p = parse(raw, env=ENV, base=tmp_path).providers["anthropic"]
    assert p.ca_bundle == str(tmp_path / "ca.pem")  # relative to fleet.yaml
    assert p.no_proxy == ("a.internal", "b.internal")
    assert (p.connect_timeout_s, p.total_timeout_s, p.max_connections, p.pool_timeout_s) == (2.0, 30.0, 8, 1.5)
    t = Target.of(p)
    assert t.proxy is not None and (t.proxy.host, t.proxy.port, t.proxy.auth) == ("proxy.internal", 3128, "Basic dTpw")
    assert t.ssl is not None and t.ssl.cert_store_stats()["x509_ca"] == 1  # the bundle only, not the system store


def test_environment_proxy_precedence() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "HTTP_PROXY": "http://plain:3"}
    assert resolve_proxy("https", "api.anthropic.com", None, None, env=env).host == "lower"  # type: ignore[union-attr]
    assert resolve_proxy("http", "api.anthropic.com", None, None, env=env).host == "plain"  # type: ignore[union-attr]
    assert resolve_proxy("https", "x.io", None, None, env={"ALL_PROXY": "https://all:4"}).scheme == "https"  # type: ignore[union-attr]
    assert resolve_proxy("https", "x.io", None, None, env={}) is None
    assert resolve_proxy("https", "x.io", None, "none", env=env) is None
    assert resolve_proxy("https", "x.io", None, "http://cfg:5", env=env).host == "cfg"  # type: ignore[union-attr]
    assert resolve_proxy("https", "x.io", None, "http://cfg:5", ["x.io"], env=env) is None
    assert resolve_proxy("https", "x.io", None, None, env={**env, "NO_PROXY": "*.io"}) is None
    assert resolve_proxy("https", "localhost", None, None, env=env) is None  # loopback: not from the env
    assert resolve_proxy("https", "::1", None, None, env=env) is None
    assert resolve_proxy("https", "127.0.0.1", None, "http://cfg:5", env=env) is not None  # fleet.yaml's: yes
    with pytest.raises(ValueError, match="ALL_PROXY: only http:// and https://"):
        resolve_proxy("https", "x.io", None, None, env={"ALL_PROXY": "socks5://s:1"})


@pytest.mark.parametrize(
    "host,port,entries,expected",
    [
        ("api.openai.com", 443, ["openai.com"], True),
        ("api.openai.com", 443, [".openai.com"], True),
        ("api.openai.com", 443, ["*.openai.com"], True),
        ("openai.com", 443, [".openai.com"], True),
        ("notopenai.com", 443, ["openai.com"], False),
        ("api.openai.com", 443, ["openai.com:8443"], False),
        ("api.openai.com", 443, ["openai.com:443"], True),
        ("10.1.2.3", 443, ["10.0.0.0/8"], True),
        ("10.1.2.3", 443, ["10.1.2.4"], False),
        ("::1", 443, ["::1"], True),
        ("::1", 8443, ["[::1]:8443"], True),
        ("anything", 1, ["*"], True),
        ("x.io", 443, [], False),
    ],
)
def test_no_proxy_matching(host: str, port: int, entries: list[str], expected: bool) -> None:
    assert bypassed(host, port, entries) is expected


def test_empty_system_store_falls_back_to_certifi(monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    real = ssl.create_default_context
    empty = ssl.DefaultVerifyPaths("/nonexistent.pem", "/nonexistent", "", "", "", "")

    def no_system_store(*a: Any, **kw: Any) -> ssl.SSLContext:
        if kw.get("cafile"):
            return real(*a, **kw)
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # what a slim image without CA files gives

    monkeypatch.setattr(tls_mod.ssl, "create_default_context", no_system_store)
    monkeypatch.setattr(tls_mod.ssl, "get_default_verify_paths", lambda: empty)
    tls_mod.ssl_context.cache_clear()
    try:
        ctx = tls_mod.ssl_context(None)
        expected = real(cafile=certifi.where()).cert_store_stats()["x509_ca"]
        assert ctx.cert_store_stats()["x509_ca"] == expected > 100
    finally:
        tls_mod.ssl_context.cache_clear()


def test_requests_ask_for_identity_encoding() -> None:
    p = parse(fleet(), env=ENV).providers["anthropic"]
    h = Upstream(p).headers({b"accept-encoding": b"br", b"anthropic-beta": b"x"})
    assert h["accept-encoding"] == "identity" and h["anthropic-beta"] == "x" and h["x-api-key"] == "sk"
