"""`paymaster doctor` against the simulator and loopback servers: what it says, and its exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import transport_kit
import yaml
from conftest import PROVIDER_KEY
from transport_kit import PKI, ConnectProxy, Loop, Origin

from paymaster import doctor
from paymaster.cli import main
from paymaster.config import hash_key, parse

loop, pki = transport_kit.loop, transport_kit.pki  # module-scoped fixtures


def fleet(anthropic: dict[str, Any], openai: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": {
            "anthropic": {"kind": "anthropic", "api_key_env": "SIM_KEY", **anthropic},
            "openai": {"kind": "openai", "api_key_env": "SIM_KEY", **openai},
        },
        "agents": {"w": {"key_sha256": hash_key("pm-w"), "model": "claude-haiku-4-5", "daily_usd": 5}},
    }


def diagnose(raw: dict[str, Any], capsys: pytest.CaptureFixture[str], key: str = PROVIDER_KEY) -> tuple[int, str]:
    code = doctor.run(parse(raw, env={"SIM_KEY": key}))
    return code, capsys.readouterr().out


def test_healthy_fleet(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = diagnose(fleet({"base_url": sim.url}, {"base_url": sim.url + "/v1"}), capsys)
    assert code == 0, out
    assert out.count("key accepted") == 2 and "FAIL" not in out and "2 of 2 providers usable" in out
    asked = [r for r in sim.requests if r["path"] == "/v1/models"]
    assert len(asked) == 2 and {r["api"] for r in asked} == {"anthropic", "openai"}


def test_refused_key(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = diagnose(fleet({"base_url": sim.url}, {"base_url": sim.url + "/v1"}), capsys, key="sk-wrong")
    assert code == 1
    assert out.count("refused the key (HTTP 401)") == 2 and "providers.openai.api_key_env" in out


def test_wrong_base_url_and_dead_host(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out = diagnose(fleet({"base_url": dead}, {"base_url": sim.url}), capsys)  # openai: /v1 missing
    assert code == 1
    assert "unreachable: cannot connect to http://127.0.0.1" in out
    assert "has no model list (HTTP 404): is base_url right? (OpenAI-style base URLs end in /v1)" in out
    assert "0 of 2 providers usable; fix: anthropic, openai" in out


def test_untrusted_certificate_and_proxy_refusal(
    sim: Any, loop: Loop, pki: PKI, capsys: pytest.CaptureFixture[str]
) -> None:
    with Origin(loop, pki.server_ctx()) as o, ConnectProxy(loop, auth=("u", "right")) as px:
        raw = fleet({"base_url": o.url}, {"base_url": o.url + "/v1", "proxy": px.url("u", "wrong")})
        code, out = diagnose(raw, capsys)
    assert code == 1
    assert "TLS: the provider's certificate was refused" in out and "providers.anthropic.ca_bundle" in out
    assert "proxy: the proxy http://127.0.0.1" in out and "407" in out and "user:password" in out


def test_cli_doctor(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIM_KEY", PROVIDER_KEY)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet({"base_url": sim.url}, {"base_url": sim.url + "/v1"})))
    assert main(["doctor", "--config", str(path)]) == 0
    assert "2 of 2 providers usable" in capsys.readouterr().out


def test_serve_refuses_an_unusable_environment_proxy(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIM_KEY", PROVIDER_KEY)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    raw = fleet({"base_url": "https://api.anthropic.example"}, {"base_url": sim.url + "/v1"})
    raw["ledger"] = str(tmp_path / "ledger.db")
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["serve", "--config", str(path)]) == 2
    assert "bad proxy setting: ALL_PROXY: only http:// and https:// proxies" in capsys.readouterr().err
    assert main(["doctor", "--config", str(path)]) == 1
    assert "anthropic  FAIL" in capsys.readouterr().out
