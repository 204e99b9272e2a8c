"""fleet.yaml → typed, validated configuration.

    fleet_file.py  the file as pydantic models: every setting's type, default and description (one place)
    values.py      the value types those settings use (Usd, Seconds, EnvVar …): check, message, JSON Schema
    yaml_file.py   YAML reading: duplicate keys refused with their line, decimals exact
    build.py       validated file → Config, resolving models, prices and keys; load() and parse()
    model.py       the frozen dataclasses the gateway reads on the hot path
    errors.py      ConfigError: every problem at once, `path: problem` per line, secrets never echoed
    reference.py   the Markdown config reference, generated from the models

Every problem is reported at start, e.g. `agents.writer.daily_usd: must be a dollar amount, got 'ten'`,
never as a stack trace mid-request.
"""

from .build import _hop as _hop  # the provider-hop check alone (tests of the transports)
from .build import load, parse, validate
from .errors import ConfigError
from .fleet_file import json_schema
from .model import (
    AGENT_NAME,
    AGENT_NAME_RULE,
    ALERT_EVENTS,
    DEFAULT_TASK_TIERS,
    PRICE_PROVIDER,
    PROVIDER_KINDS,
    SERVICE_TIERS,
    TIERS,
    TRANSPORTS,
    Agent,
    AgentLimits,
    AlertSettings,
    Caching,
    Compression,
    Config,
    Html,
    Model,
    Observability,
    Provider,
    Prune,
    ResponseCache,
    Routing,
    Shared,
    Strip,
    Summarise,
    Task,
    ToolRule,
    Webhook,
    cache_scope,
    hash_key,
)

__all__ = [
    "AGENT_NAME",
    "AGENT_NAME_RULE",
    "DEFAULT_TASK_TIERS",
    "PRICE_PROVIDER",
    "PROVIDER_KINDS",
    "SERVICE_TIERS",
    "TIERS",
    "TRANSPORTS",
    "ALERT_EVENTS",
    "Agent",
    "AlertSettings",
    "AgentLimits",
    "Caching",
    "Compression",
    "Config",
    "ConfigError",
    "Html",
    "Model",
    "Observability",
    "Provider",
    "Prune",
    "ResponseCache",
    "Routing",
    "Shared",
    "Strip",
    "Summarise",
    "Task",
    "ToolRule",
    "Webhook",
    "cache_scope",
    "hash_key",
    "json_schema",
    "load",
    "parse",
    "validate",
]
