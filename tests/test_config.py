"""A bad fleet.yaml fails at start with a message naming the field and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paymaster.config import ConfigError, hash_key, load, parse

ENV = {"SIM_KEY": "sk", "AGENT_KEY": "pm-agent"}


def base() -> dict:
    return {
        "providers": {"anthropic": {"api_key_env": "SIM_KEY"}, "openai": {"api_key_env": "SIM_KEY"}},
        "agents": {"writer": {"key_sha256": hash_key("pm-writer"), "model": "claude-haiku-4-5", "daily_usd": 5}},
    }


def with_(path: str, value) -> dict:
    raw = base()
    node = raw
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("agents.writer.daily_usd", "ten", "agents.writer.daily_usd: must be a dollar amount"),
        ("agents.writer.daily_usd", -1, "agents.writer.daily_usd: must be a non-negative dollar amount"),
        ("agents.writer.monthly_usd", True, "agents.writer.monthly_usd: must be a dollar amount"),
        ("agents.writer.model", "gpt-nonexistent", "agents.writer.model: model 'gpt-nonexistent' is not priced"),
        ("agents.writer.max_tokens", 0, "agents.writer.max_tokens: must be a whole number"),
        ("agents.writer.key_sha256", "abc", "agents.writer.key_sha256: must be 64 hex digits"),
        ("agents.writer.colour", "red", "agents.writer.colour: unknown field"),
        ("timezone", "Mars/Olympus", "timezone: unknown time zone 'Mars/Olympus'"),
        ("providers.anthropic.kind", "bedrock", "providers.anthropic.kind: must be one of"),
        (
            "providers.openai.api_key_env",
            "NOT_SET_ANYWHERE",
            "providers.openai.api_key_env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("providers.openai.base_url", "ftp://x", "providers.openai.base_url: must start with http"),
        ("fleet.alert_thresholds", [1.5], "fleet.alert_thresholds[0]: must be a fraction"),
        ("models.llama.provider", "nowhere", "models.llama.provider: no provider named 'nowhere'"),
        ("listen.port", 70000, "listen.port: must be a whole number from 0 to 65535"),
    ],
)
def test_bad_config_names_the_field(path, value, message):
    with pytest.raises(ConfigError) as e:
        parse(with_(path, value), env=ENV)
    assert message in str(e.value)


def test_openai_compatible_models_need_a_price():
    raw = base()
    raw["providers"]["vllm"] = {
        "kind": "openai-compatible",
        "base_url": "http://127.0.0.1:8000/v1",
        "api_key_env": "SIM_KEY",
    }
    raw["models"] = {"llama-3-70b": {"provider": "vllm"}}
    with pytest.raises(ConfigError, match="models.llama-3-70b.price: required"):
        parse(raw, env=ENV)
    raw["models"]["llama-3-70b"]["price"] = {"input_mtok": 0.5, "output_mtok": 1}
    raw["agents"]["writer"]["models"] = ["llama-3-70b"]
    cfg = parse(raw, env=ENV)
    assert cfg.models["llama-3-70b"].provider.name == "vllm"
    assert cfg.models["claude-haiku-4-5"].provider.name == "anthropic"


def test_duplicate_agent_keys_are_refused():
    raw = base()
    raw["agents"]["editor"] = dict(raw["agents"]["writer"])
    with pytest.raises(ConfigError, match="same key as agents.writer"):
        parse(raw, env=ENV)


def test_key_env_and_good_config(tmp_path: Path):
    raw = base()
    raw["agents"]["writer"] = {"key_env": "AGENT_KEY", "model": "claude-haiku-4-5", "monthly_usd": "12.50"}
    raw["timezone"] = "Asia/Kolkata"
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(raw))
    cfg = load(tmp_path / "fleet.yaml", env=ENV)
    assert cfg.agent_by_key("pm-agent").name == "writer"
    assert str(cfg.agents["writer"].monthly_usd) == "12.50" and cfg.agents["writer"].daily_usd is None
    assert cfg.ledger == str(tmp_path / "paymaster.db")


def test_serve_with_bad_config_exits_with_the_message(tmp_path: Path):
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(with_("agents.writer.daily_usd", "ten")))
    r = subprocess.run(
        [sys.executable, "-m", "paymaster.cli", "serve", "--config", str(tmp_path / "fleet.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SIM_KEY": "x", "PATH": ""},
    )
    assert r.returncode == 2
    assert "bad config: agents.writer.daily_usd: must be a dollar amount" in r.stderr


def test_a_price_override_needs_a_provider_unless_the_table_knows_the_model():
    raw = base()
    raw["models"] = {"house-model": {"price": {"input_mtok": 1, "output_mtok": 2}}}
    raw["agents"]["writer"]["models"] = ["house-model"]
    with pytest.raises(ConfigError, match="models.house-model.provider: required"):
        parse(raw, env=ENV)
    # a negotiated price for a model the table knows: its provider is found, the override applies
    raw = base()
    raw["models"] = {"claude-haiku-4-5": {"price": {"input_mtok": "0.5", "output_mtok": "2.5"}}}
    cfg = parse(raw, env=ENV)
    assert cfg.models["claude-haiku-4-5"].provider.name == "anthropic"
    assert cfg.prices.rates("claude-haiku-4-5", "anthropic").source == "config"
