"""fleet.yaml's store settings (issue 15): `store: sqlite:///path`, or `reservations: redis://…` with
`ledger: postgresql://…`; every wrong combination is a config error naming the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paymaster.config import ConfigError, Shared, parse

ENV = {"K": "sk-provider", "AGENT": "pm-agent-key-0123456789"}


def raw(**over: Any) -> dict[str, Any]:
    return {
        "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
        "agents": {"a": {"model": "claude-haiku-4-5", "key_env": "AGENT"}},
        **over,
    }


def test_redis_and_postgres_make_a_shared_store():
    c = parse(raw(reservations="redis://r:6379/0", ledger="postgresql://pm@db/pm", replica_lease_s=3), env=ENV)
    assert c.shared == Shared("redis://r:6379/0", "postgresql://pm@db/pm", 3.0, "refuse")
    c = parse(raw(reservations="redis://r/0", ledger="postgres://db/pm", on_store_outage="admit_unmetered"), env=ENV)
    assert c.shared is not None and c.shared.on_outage == "admit_unmetered"


def test_store_sqlite_names_the_ledger_file(tmp_path: Path):
    c = parse(raw(store="sqlite:///ledger.db"), env=ENV, base=tmp_path)
    assert c.ledger == str(tmp_path / "ledger.db") and c.shared is None
    assert parse(raw(), env=ENV, base=tmp_path).shared is None  # the default is unchanged


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"reservations": "redis://r/0"}, "need ledger: postgresql://"),
        ({"ledger": "postgresql://db/pm"}, "needs reservations: redis://"),
        ({"reservations": "http://r/0", "ledger": "postgresql://db/pm"}, "must be a redis:// URL"),
        ({"store": "postgresql://db/pm"}, "must be sqlite:///path"),
        ({"store": "sqlite:///x.db", "reservations": "redis://r/0", "ledger": "postgresql://db/pm"}, "not both"),
        ({"store": "sqlite:///x.db", "ledger": "y.db"}, "not both"),
        ({"reservations": "redis://r/0", "ledger": "postgresql://db/pm", "on_store_outage": "ignore"}, "refuse"),
        ({"reservations": "redis://r/0", "ledger": "postgresql://db/pm", "replica_lease_s": 0}, "positive"),
    ],
)
def test_wrong_store_settings_are_config_errors(tmp_path: Path, over: dict[str, Any], says: str):
    with pytest.raises(ConfigError) as e:
        parse(raw(**over), env=ENV, base=tmp_path)
    assert says in str(e.value)
