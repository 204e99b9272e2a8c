"""Every fleet.yaml the README and docs/ show is accepted by the real loader, `paymaster config check` says what
the README says it does, the config reference is what `paymaster config schema --markdown` generates, and the
README's fleet.yaml with its SDK snippet runs against the gateway (the simulator standing in for the providers)."""

from __future__ import annotations

import copy
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import certifi
import httpx2
import pytest
import yaml
from jsonschema import Draft202012Validator

from paymaster.app import Gateway
from paymaster.cli import main
from paymaster.config import ConfigError, hash_key, load
from paymaster.config.reference import markdown
from paymaster.server import ServerThread
from tests.conftest import PROVIDER_KEY
from tests.readme_blocks import ROOT, Block, block_after, blocks

FLEET = block_after("## fleet.yaml")  # the README's full example
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "OPENAI_API_KEY": "sk-test",
    "VLLM_KEY": "vllm-test",
    "PAYMASTER_ADMIN_KEY": "pm-admin-test",
    "PAYMASTER_WEBHOOK_SECRET": "whsec-test",
    "SIM_KEY": "sk-sim",
    "RESEARCHER_KEY": "pm-researcher-test",
}
BASE = {  # what a fragment leaves out: providers to call and an agent
    "providers": {
        "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
    },
    "agents": {"writer": {"model": "claude-sonnet-4-6"}},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def filled(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The placeholders a reader fills in: `key_sha256: 3f1c…` from `paymaster keys new`; agents named elsewhere
    in a fragment (alerts.thresholds) exist; a fragment's agent gets a key and a model."""
    raw = copy.deepcopy(raw)
    agents = raw.setdefault("agents", {})
    for name in raw.get("alerts", {}).get("thresholds", {}):
        agents.setdefault(name, {"model": "claude-haiku-4-5"})
    for name, agent in agents.items():
        agent.setdefault("model", "claude-haiku-4-5")
        if str(agent.get("key_sha256", "")).endswith("…"):
            agent["key_sha256"] = hash_key("pm-" + secrets.token_urlsafe(24))
        if "key_sha256" not in agent and "key_env" not in agent:
            var = f"KEY_{name.upper().replace('-', '_')}"
            env[var] = "pm-" + secrets.token_urlsafe(12)
            agent["key_env"] = var
    return raw


def write(tmp: Path, raw: dict[str, Any]) -> Path:
    """fleet.yaml with the files it names (CA bundles) beside it."""
    for p in raw.get("providers", {}).values():
        if isinstance(p, dict) and p.get("ca_bundle"):
            (tmp / p["ca_bundle"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(certifi.where(), tmp / p["ca_bundle"])
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


FLEET_BLOCKS = [b for b in blocks(lang="yaml") if b.file != "docs/config-reference.md"]


@pytest.mark.parametrize("block", FLEET_BLOCKS, ids=str)
def test_every_fleet_yaml_example_loads(block: Block, tmp_path: Path) -> None:
    fragment = yaml.safe_load(block.text)
    env = dict(ENV)
    raw = filled(fragment if "providers" in fragment and "agents" in fragment else merged(BASE, fragment), env)
    try:
        load(write(tmp_path, raw), env=env)
    except ConfigError as e:
        pytest.fail(f"{block}: " + "; ".join(e.problems))


def test_the_readme_fleet_yaml_is_checked_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As written (before its placeholder hash is filled in): `config check` names each thing left to do."""
    (tmp_path / "fleet.yaml").write_text(FLEET.text)
    assert main(["config", "check", str(tmp_path / "fleet.yaml")]) == 1
    problems = capsys.readouterr().err.splitlines()[1:]
    placeholder = "  agents.writer.key_sha256: must be 64 hex digits (see `paymaster keys new`)"
    assert placeholder in problems
    assert all(line.endswith("is not set") for line in problems if line != placeholder)


def test_config_check_says_what_the_readme_shows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = block_after("### Checking a fleet file").text.splitlines()
    (tmp_path / "fleet.yaml").write_text(
        "providers:\n"
        "  anthropic: {kind: anthropic, api_key_env: sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789}\n"
        "agents:\n"
        "  writer: {key_sha256: 3f1c, model: claude-sonnet-4-6, daily_usd: ten}\n"
    )
    assert shown[0] == "$ paymaster config check fleet.yaml" and shown[-2:] == ["$ echo $?", "1"]
    assert main(["config", "check", str(tmp_path / "fleet.yaml")]) == 1
    got = capsys.readouterr().err.replace(str(tmp_path / "fleet.yaml"), "fleet.yaml").splitlines()
    assert len(got) == len(shown) - 3
    for said, printed in zip(shown[1:-2], got, strict=True):
        assert printed.startswith(said.removesuffix("…)")), (said, printed)


def test_config_schema_prints_a_2020_12_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """ "`paymaster config schema` prints the JSON Schema (draft 2020-12)": it says so, for the editors that read it."""
    assert "(draft 2020-12)" in (ROOT / "README.md").read_text()
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_config_reference_is_the_generated_one() -> None:
    page = (ROOT / "docs/config-reference.md").read_text()
    assert page.endswith(markdown() + "\n"), "regenerate: paymaster config schema --markdown"


def test_the_readme_fleet_yaml_serves_the_sdk_snippet(sim: Any, tmp_path: Path) -> None:
    """README "Run it for real": the README's fleet.yaml, its providers pointed at the simulator (no proxy or
    private CA in between), a key from `paymaster keys new`, and the SDK snippet as written."""
    raw = yaml.safe_load(FLEET.text)
    for provider in raw["providers"].values():
        for k in ("proxy", "ca_bundle"):
            provider.pop(k, None)
        provider["api_key_env"] = "SIM_KEY"
        provider["base_url"] = sim.url + ("" if provider["kind"] == "anthropic" else "/v1")
    raw["listen"]["port"] = 0
    writer_key = "pm-" + secrets.token_urlsafe(24)
    raw["agents"]["writer"]["key_sha256"] = hash_key(writer_key)
    env = {**ENV, "SIM_KEY": PROVIDER_KEY}
    config = load(write(tmp_path, raw), env=env)
    shell = block_after("## Run it for real")  # `keys new`, `serve`; then the snippet
    snippet = next(b for b in blocks("README.md", lang="python") if b.line > shell.line)
    with ServerThread(Gateway(config)) as srv:
        code = (
            snippet.text.replace("http://127.0.0.1:8080", srv.url)
            .replace("pm-…writer's key…", writer_key)
            .replace("pm-…researcher's key…", env["RESEARCHER_KEY"])
            .replace("messages=[...]", 'messages=[{"role": "user", "content": "Hello [sim:tokens=12]"}]')
        )
        exec(compile(code, str(snippet), "exec"), {})  # noqa: S102 - the README's own snippet
        rows = httpx2.get(
            srv.url + "/admin/ledger", headers={"authorization": f"Bearer {env['PAYMASTER_ADMIN_KEY']}"}
        ).json()["data"]
    assert sorted((r["agent"], r["model"], r["status"]) for r in rows) == [
        ("researcher", "gpt-4.1-mini", "ok"),
        ("writer", "claude-sonnet-4-6", "ok"),
    ]
    assert all(r["cost_nanos"] > 0 for r in rows)
