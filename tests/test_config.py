"""A bad fleet.yaml fails at start with a message naming the field and the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("translation.policy", "loose", "translation.policy: must be one of"),
        ("agents.writer.webhook_secret_env", "SIM_KEY", "agents.writer.webhook_secret_env: signs the agent's webhook"),
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


def test_a_deferred_jobs_webhook_secret_comes_from_the_environment_and_is_never_shown() -> None:
    raw = with_("agents.writer.webhook", "https://hooks.example.com/done")
    raw["agents"]["writer"]["webhook_secret_env"] = "HOOK_SECRET"
    with pytest.raises(ConfigError, match="webhook_secret_env: environment variable HOOK_SECRET is not set"):
        parse(raw, env=ENV)
    agent = parse(raw, env={**ENV, "HOOK_SECRET": "whsec-123456"}).agents["writer"]
    assert agent.webhook_secret == "whsec-123456" and "whsec-123456" not in repr(agent)


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


# -- typed models: every problem at once, exact money, duplicates, secrets -------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymaster.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", **(env or {})},
    )


def test_every_problem_is_reported_at_once_with_its_path():
    raw = base()
    raw["agents"]["writer"]["daily_usd"] = "ten"
    raw["agents"]["writer"]["colour"] = "red"
    raw["listen"] = {"port": 70000}
    raw["routing"] = {"cooldown_s": -1}
    with pytest.raises(ConfigError) as e:
        parse(raw, env=ENV)
    assert sorted(p.split(":")[0] for p in e.value.problems) == [
        "agents.writer.colour",
        "agents.writer.daily_usd",
        "listen.port",
        "routing.cooldown_s",
    ]
    expected = "agents.writer.colour: unknown field (expected one of: brevity, caching, compression, daily_usd"
    assert expected in str(e.value)


def test_a_key_given_twice_in_one_mapping_is_refused_with_its_line(tmp_path: Path):
    (tmp_path / "fleet.yaml").write_text(
        "providers:\n"
        "  anthropic: {api_key_env: SIM_KEY}\n"
        "agents:\n"
        f"  writer: {{key_sha256: {hash_key('pm-a')}, model: claude-haiku-4-5, daily_usd: 5}}\n"
        f"  writer: {{key_sha256: {hash_key('pm-b')}, model: claude-haiku-4-5, daily_usd: 500}}\n"
    )
    with pytest.raises(ConfigError, match=r"line 5: duplicate key 'writer' \(first given on line 4\)"):
        load(tmp_path / "fleet.yaml", env=ENV)


@pytest.mark.parametrize("text", ["0.1", "0.1000000000000000055511151231257827", "1e-9", "12345678.000000001"])
def test_yaml_numbers_reach_money_as_the_exact_decimal_written(tmp_path: Path, text: str):
    (tmp_path / "fleet.yaml").write_text(
        "providers:\n  anthropic: {api_key_env: SIM_KEY}\n"
        f"agents:\n  writer: {{key_sha256: {hash_key('pm-a')}, model: claude-haiku-4-5, daily_usd: {text}}}\n"
    )
    assert load(tmp_path / "fleet.yaml", env=ENV).agents["writer"].daily_usd == Decimal(text)


@given(st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False))
@settings(max_examples=60, deadline=None)
def test_any_decimal_written_in_yaml_is_read_exactly(amount: Decimal):
    from paymaster.config.yaml_file import read

    text = f"{amount:f}" if "." in f"{amount:f}" else f"{amount:f}.0"
    assert read(f"daily_usd: {text}\n")["daily_usd"] == amount


@pytest.mark.parametrize(
    "secret", ["sk-ant-api03-Zx9fQ2mL7pR4tW8yB1cD", "sk-proj-abcDEF123456ghiJKL789mno", "a" * 20 + "B7" * 10]
)
def test_a_key_pasted_where_a_variable_name_belongs_is_not_echoed(secret: str, tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        parse(with_("providers.openai.api_key_env", secret), env=ENV)
    assert "providers.openai.api_key_env: must name the environment variable" in str(e.value)
    assert secret not in str(e.value) and secret[:12] not in str(e.value)
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(with_("providers.openai.api_key_env", secret)))
    r = cli("config", "check", str(tmp_path / "fleet.yaml"), env={"SIM_KEY": "x"})
    assert r.returncode == 1 and "providers.openai.api_key_env" in r.stderr and secret[:12] not in r.stderr


def test_degrade_at_zero_is_refused_not_replaced():
    with pytest.raises(ConfigError, match="routing.degrade_at: must be above 0"):
        parse(with_("routing.degrade_at", 0), env=ENV)
    assert parse(with_("routing.degrade_at", 0.05), env=ENV).routing.degrade_at == 0.05
    assert parse(base(), env=ENV).routing.degrade_at == 0.8


def test_config_check_lists_every_problem_and_exits_1(tmp_path: Path):
    bad = with_("agents.writer.daily_usd", "ten")
    bad["listen"] = {"port": "eighty"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = cli("config", "check", str(tmp_path / "bad.yaml"), env={"SIM_KEY": "x"})
    assert r.returncode == 1
    assert "2 problems" in r.stderr
    assert "agents.writer.daily_usd: must be a dollar amount, got 'ten'" in r.stderr
    assert "listen.port: must be a whole number from 0 to 65535, got 'eighty'" in r.stderr
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(base()))
    r = cli("config", "check", str(tmp_path / "good.yaml"), env={"SIM_KEY": "x"})
    assert r.returncode == 0 and "ok (1 agents" in r.stdout


def test_config_schema_describes_every_section_and_refuses_unknown_keys():
    r = cli("config", "schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "timezone", "listen", "ledger", "durability", "admin", "limits", "defaults",
        "fleet", "providers", "models", "agents", "tasks", "routing", "alerts", "translation", "observability",
        "store", "reservations", "batch", "replica_lease_s", "on_store_outage", "responses",
    }  # fmt: skip
    agent = schema["$defs"]["AgentFile"]
    assert agent["additionalProperties"] is False and agent["required"] == ["model"]
    assert "schema" in schema["$defs"]["TaskFile"]["properties"]  # the name written in the file, not the attribute
    assert all("description" in p for p in schema["$defs"]["ProviderFile"]["properties"].values())


def test_a_task_schema_keeps_json_numbers(tmp_path: Path):
    (tmp_path / "fleet.yaml").write_text(
        "providers:\n  anthropic: {api_key_env: SIM_KEY}\n"
        "tasks:\n  scoring:\n    schema:\n      type: object\n"
        "      properties: {score: {type: number, minimum: 0.5, maximum: 10}}\n"
        f"agents:\n  writer: {{key_sha256: {hash_key('pm-a')}, model: claude-haiku-4-5}}\n"
    )
    schema = load(tmp_path / "fleet.yaml", env=ENV).agents["writer"].tasks["scoring"].schema
    assert schema == {"type": "object", "properties": {"score": {"type": "number", "minimum": 0.5, "maximum": 10}}}
    assert (
        orjson.dumps(schema) == b'{"type":"object","properties":{"score":{"type":"number","minimum":0.5,"maximum":10}}}'
    )


def test_the_json_schema_accepts_the_demo_fleet_and_flags_what_the_loader_refuses():
    from jsonschema import Draft202012Validator

    from paymaster.config import json_schema
    from paymaster.demo import fleet

    validator = Draft202012Validator(json_schema())
    demo = yaml.safe_load(yaml.safe_dump(fleet("https://127.0.0.1:9", "/tmp/ca.pem", after=True, compression=False)))
    assert list(validator.iter_errors(demo)) == []
    for bad in (
        with_("agents.writer.colour", "red"),
        with_("providers.openai.api_key_env", "sk-proj-abc-123"),
        with_("routing.degrade_at", 0),
        with_("listen.port", 70000),
        {**base(), "agents": {"team a": base()["agents"]["writer"]}},
    ):
        assert list(validator.iter_errors(yaml.safe_load(yaml.safe_dump(bad)))), bad


def test_a_proxy_password_is_not_echoed_in_a_proxy_error():
    url = "http://ops:hunter2-secret@proxy.internal:80800"
    with pytest.raises(ConfigError, match="providers.anthropic.proxy: bad port") as e:
        parse(with_("providers.anthropic.proxy", url), env=ENV)
    assert "hunter2" not in str(e.value) and "proxy.internal" in str(e.value)


def test_empty_sections_mean_their_defaults():
    raw = {**base(), "listen": None, "routing": None, "fleet": {"caching": None}, "models": None, "tasks": None}
    cfg = parse(raw, env=ENV)
    assert (cfg.host, cfg.port, cfg.routing.degrade_at) == ("127.0.0.1", 8080, 0.8)
    assert cfg.alert_thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal("0.95"))


def test_serve_with_bad_config_names_every_problem(tmp_path: Path):
    bad = with_("agents.writer.daily_usd", "ten")
    bad["durability"] = "disk"
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(bad))
    r = cli("serve", "--config", str(tmp_path / "fleet.yaml"), env={"SIM_KEY": "x"})
    assert r.returncode == 2
    assert "bad config: durability: must be one of process, power, got 'disk'" in r.stderr
    assert "bad config: agents.writer.daily_usd: must be a dollar amount" in r.stderr


def test_the_package_exports_what_it_names():
    import paymaster.config as config

    assert all(hasattr(config, name) for name in config.__all__)
    public = {n for n in vars(config) if not n.startswith("_")} - {"build", "errors", "fleet_file", "model", "values"}
    public -= {"yaml_file", "reference", "annotations"}
    assert public == set(config.__all__)


def test_observability_settings(tmp_path: Path):
    from paymaster.config import ConfigError, parse

    raw = base()
    raw["observability"] = {"access_log": "logs/access.log", "log_prompts": True, "metrics_max_series": 50}
    c = parse(raw, env={"SIM_KEY": "x"}, base=tmp_path)
    assert c.observability.access_log == str(tmp_path / "logs/access.log")
    assert c.observability.log_prompts is True and c.observability.metrics_max_series == 50
    assert parse(base(), env={"SIM_KEY": "x"}).observability.access_log == "stderr"
    raw["observability"] = {"metrics_max_series": 0, "log_prompts": "yes", "access_logs": "off"}
    with pytest.raises(ConfigError) as e:
        parse(raw, env={"SIM_KEY": "x"})
    text = str(e.value)
    assert "observability.metrics_max_series" in text and "observability.log_prompts" in text
    assert "observability.access_logs" in text
