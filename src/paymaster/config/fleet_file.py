"""fleet.yaml as typed pydantic models: the one place a setting is declared, typed, defaulted and documented.

Adding a setting: a field on the model of its section here (type, default, description), then the line in
build.py that copies it onto the runtime dataclass in model.py (what the hot path reads). Unknown keys are
refused (extra="forbid"); every problem is collected and reported with its path (errors.py). The checks that
need the environment or the file's folder (a variable that is not set, a ledger folder that does not exist)
read them from the validation context: {"env": …, "base": …}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from ..pricing import OVERRIDE_KEYS
from .model import AGENT_NAME, AGENT_NAME_RULE, PROVIDER_KINDS, SERVICE_TIERS, TIERS, TRANSPORTS


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("fleet", message.replace("{", "{{").replace("}", "}}"))


def _show(v: Any) -> str:
    return str(v) if isinstance(v, Decimal) else repr(v)


def _number(v: Any) -> Decimal | None:
    """An int, float or exact YAML decimal as a Decimal (None for anything else, booleans included)."""
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        return None
    return v if isinstance(v, Decimal) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _usd(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal | str):
        raise _fail(f"must be a dollar amount, got {_show(v)}")
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v).strip())
    except InvalidOperation:
        raise _fail(f"must be a dollar amount, got {_show(v)}") from None
    if not d.is_finite() or d < 0:
        raise _fail(f"must be a non-negative dollar amount, got {_show(v)}")
    return d


def _whole(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _fail(f"must be a whole number from {lo} to {hi}, got {_show(v)}")
        return v

    return check


def _seconds(lo_open: bool, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        d = _number(v)
        if d is None or not d.is_finite() or not (d > 0 if lo_open else d >= 0) or d > Decimal(repr(hi)):
            what = "a positive number of seconds" if lo_open else "a number of seconds from 0"
            raise _fail(f"must be {what} (at most {hi:g}), got {_show(v)}")
        return float(d)

    return check


def _fraction(v: Any) -> float:
    d = _number(v)
    if d is None or not d.is_finite() or not 0 <= d <= 1:
        raise _fail(f"must be a fraction from 0 to 1, got {_show(v)}")
    return float(d)


def _degrade_at(v: Any) -> float:
    x = _fraction(v)
    if x == 0:
        raise _fail(
            "must be above 0: 0 would run every auto agent one tier down from its first call "
            "(1: never degrade before the cap)"
        )
    return x


def _threshold(v: Any) -> Decimal:
    try:
        d = Decimal(v.strip()) if isinstance(v, str) else _number(v)
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or not 0 < d < 1:
        raise _fail(f"must be a fraction between 0 and 1, got {_show(v)}")
    return d


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(f"must be a non-empty string, got {_show(v)}")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(f"must be true or false, got {_show(v)}")
    return v


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise _fail(f"must be one of {', '.join(choices)}, got {_show(v)}")
        return v

    return check


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def looks_like_a_key(value: str) -> bool:
    """A pasted secret rather than a variable name: not a valid name, or long, mixed and digit-bearing."""
    if not ENV_NAME.fullmatch(value):
        return True
    return len(value) >= 32 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def _env_var(v: Any, info: ValidationInfo) -> str:
    """The NAME of an environment variable holding a key; its value is read at start and never echoed."""
    if not isinstance(v, str) or not v.strip():
        raise _fail("must name an environment variable, e.g. ANTHROPIC_API_KEY")
    if looks_like_a_key(v):
        raise _fail(
            "must name the environment variable that holds the key, not the key itself "
            "(the value given looks like a key and is not shown; set it in the environment and name the variable)"
        )
    env = (info.context or {}).get("env")
    if env is not None and not env.get(v):
        raise _fail(f"environment variable {v} is not set")
    return v


def _sha256(v: Any) -> str:
    h = v.lower() if isinstance(v, str) else ""
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise _fail("must be 64 hex digits (see `paymaster keys new`)")
    return h


def _timezone(v: Any) -> str:
    name = _text(v)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)") from None
    return name


def _ledger(v: Any, info: ValidationInfo) -> str:
    """A file in a folder that exists, relative to fleet.yaml's folder (":memory:" for a throwaway ledger)."""
    ledger = _text(v)
    if ledger == ":memory:":
        return ledger
    base = (info.context or {}).get("base")
    p = Path(ledger) if base is None or Path(ledger).is_absolute() else Path(base) / ledger
    if p.is_dir():
        raise _fail(f"{p} is a folder; name a file in it, e.g. {p / 'paymaster.db'}")
    if not p.parent.is_dir():
        raise _fail(f"the folder {p.parent} does not exist; create it or name another")
    return str(p)


def _agent_name(v: Any) -> str:
    if not isinstance(v, str) or not AGENT_NAME.fullmatch(v):
        raise _fail(f"{v!r} is not an agent name (agent names are {AGENT_NAME_RULE})")
    return v


def _json_schema(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("type") != "object":
        raise _fail("must be a JSON schema of an object (type: object)")
    return {k: _plain(x) for k, x in v.items()}


def _plain(v: Any) -> Any:
    """A schema's numbers as JSON numbers (YAML decimals become int or float), so it serialises as written."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and "." not in str(v) else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _hosts(v: Any) -> tuple[str, ...]:
    hosts = [h.strip() for h in v.split(",") if h.strip()] if isinstance(v, str) else v
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise _fail(f"must be a list of hosts or domains, got {_show(v)}")
    return tuple(hosts)


def _none_is_empty(v: Any) -> Any:
    return {} if v is None else v


def _model_list(v: Any) -> list[str]:
    if not isinstance(v, list):
        raise _fail("must be a non-empty list of model names")
    return v


SECONDS = {"type": "number", "exclusiveMinimum": 0}
Usd = Annotated[Decimal, PlainValidator(_usd), WithJsonSchema({"type": ["number", "string"], "minimum": 0})]
Fraction = Annotated[float, PlainValidator(_fraction), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
Text = Annotated[str, PlainValidator(_text), WithJsonSchema({"type": "string", "minLength": 1})]
Flag = Annotated[bool, PlainValidator(_flag), WithJsonSchema({"type": "boolean"})]
EnvVar = Annotated[
    str, PlainValidator(_env_var), WithJsonSchema({"type": "string", "pattern": f"^{ENV_NAME.pattern}$"})
]
Sha256 = Annotated[str, PlainValidator(_sha256), WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})]
Seconds = Annotated[float, PlainValidator(_seconds(True, 86400)), WithJsonSchema({**SECONDS, "maximum": 86400})]
AgentName = Annotated[
    str, PlainValidator(_agent_name), WithJsonSchema({"type": "string", "pattern": f"^{AGENT_NAME.pattern}$"})
]


class Whole:
    """`Annotated[int, Whole(lo, hi)]`: a whole number in [lo, hi] (booleans refused), schema included."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_whole(self.lo, self.hi))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


class Choice:
    """`Annotated[str, Choice("a", "b")]`: one of the given strings, schema included (an editor offers them)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_one_of(*self.choices))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"enum": list(self.choices)}


T = TypeVar("T")
Section = Annotated[dict[str, T], BeforeValidator(_none_is_empty)]  # names -> sections; `key:` alone is {}


class Part(BaseModel):
    """A section of fleet.yaml: unknown keys refused; an empty section (`listen:` alone) means all defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, v: Any) -> Any:
        return _none_is_empty(v)


# -- the sections -----------------------------------------------------------------------------------------------


class Listen(Part):
    host: Text = Field("127.0.0.1", description="address the gateway listens on")
    port: Annotated[int, Whole(0, 65535)] = Field(8080, description="TCP port (0: any free port)")


class Admin(Part):
    key_env: EnvVar | None = Field(None, description="environment variable holding the admin key")
    key_sha256: Sha256 | None = Field(None, description="SHA-256 of the admin key (`paymaster keys new`)")


class Limits(Part):
    max_body_mb: Annotated[int, Whole(1, 1024)] = Field(32, description="largest request body accepted, in MiB")


class Defaults(Part):
    max_tokens: Annotated[int, Whole(1, 1_000_000)] = Field(
        4096, description="an agent's output ceiling unless it sets its own"
    )
    min_output_tokens: Annotated[int, Whole(1, 1_000_000)] = Field(
        64, description="smallest max_tokens a call is shrunk to before it is refused for budget"
    )
    admission_wait_s: Annotated[
        float, PlainValidator(_seconds(False, 3600)), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 3600})
    ] = Field(30, description="longest a call waits for budget held by calls in flight")


class FleetCaching(Part):
    share_across_agents: Flag = Field(False, description="agents may read each other's prompt-cache entries")


class Fleet(Part):
    daily_usd: Usd | None = Field(None, description="cap on the whole fleet's spend per day")
    monthly_usd: Usd | None = Field(None, description="cap on the whole fleet's spend per month")
    alert_thresholds: list[
        Annotated[
            Decimal,
            PlainValidator(_threshold),
            WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
        ]
    ] = Field(
        [0.5, 0.8, 0.95],
        validate_default=True,
        description="shares of a cap at which an alert is posted",
    )
    caching: FleetCaching = Field(default_factory=FleetCaching, description="prompt caching across the fleet")


class ProviderFile(Part):
    kind: Annotated[str, Choice(*PROVIDER_KINDS)] | None = Field(
        None, description="wire format and pricing; defaults to the provider's name if that is a kind"
    )
    base_url: Text | None = Field(None, description="default: the provider's public API (OpenAI-style ends in /v1)")
    api_key_env: EnvVar = Field(description="environment variable holding the provider key")
    service_tier: Annotated[str, Choice(*SERVICE_TIERS)] | None = Field(
        None, description="OpenAI: the tier the project bills a request naming none (default: default)"
    )
    timeout_s: Seconds = Field(600, description="longest silence from the provider once the request is sent")
    connect_timeout_s: Seconds = Field(10, description="TCP + proxy tunnel + TLS handshake")
    total_timeout_s: Seconds | None = Field(None, description="the whole exchange, answer included")
    pool_timeout_s: Seconds = Field(10, description="longest wait for a free connection (then refused, not billed)")
    max_connections: Annotated[int, Whole(1, 100_000)] = Field(100, description="open connections to this provider")
    ca_bundle: Text | None = Field(None, description="PEM file of CAs trusted instead of the system store")
    proxy: Text | None = Field(None, description='proxy URL, or "none" to ignore HTTPS_PROXY & co.')
    no_proxy: Annotated[
        tuple[str, ...],
        PlainValidator(_hosts),
        WithJsonSchema({"type": ["array", "string"], "items": {"type": "string"}}),
    ] = Field((), description="hosts or domains that go direct (added to NO_PROXY)")
    transport: Annotated[str, Choice(*TRANSPORTS)] = Field("builtin", description="HTTP client for this provider")


Price = Annotated[dict[str, Usd], BeforeValidator(_none_is_empty)]


class ModelFile(Part):
    provider: Text | None = Field(None, description="the provider (under providers:) that serves it")
    price: Price | None = Field(
        None,
        description=f"USD per million tokens overriding genai-prices; input_mtok and output_mtok required; "
        f"keys: {', '.join(sorted(OVERRIDE_KEYS))}",
    )
    context_window: Annotated[int, Whole(1, 100_000_000)] | None = Field(None, description="tokens; with price")


class TaskFile(Part):
    max_tokens: Annotated[int, Whole(1, 1_000_000)] | None = Field(
        None, description="output ceiling for this task type"
    )
    json_schema: Annotated[dict[str, Any], PlainValidator(_json_schema), WithJsonSchema({"type": "object"})] | None = (
        Field(None, alias="schema", description="structured output: answers are JSON of this object schema")
    )
    brevity: Text | None = Field(None, description="system-prompt addendum, e.g. 'Respond in JSON only.'")
    tier: Annotated[str, Choice(*TIERS)] | None = Field(None, description="routing: the tier this task type runs on")


class CachingFile(Part):
    enabled: Flag = Field(True, description="mark stable prompt prefixes for the provider's prompt cache")
    ttl: Annotated[str, Choice("5m", "1h")] = Field("5m", description="Anthropic cache entry lifetime")


class ResponseCacheFile(Part):
    enabled: Flag = Field(False, description="answer an identical deterministic request from the gateway's cache")
    ttl_s: Annotated[
        float, PlainValidator(_seconds(True, 86400 * 30)), WithJsonSchema({**SECONDS, "maximum": 86400 * 30})
    ] = Field(300, description="how long a cached answer is served")


class Tiers(Part):
    light: Text | None = None
    standard: Text | None = None
    heavy: Text | None = None


class AgentFile(Part):
    key_env: EnvVar | None = Field(None, description="environment variable holding the agent's key")
    key_sha256: Sha256 | None = Field(None, description="SHA-256 of the agent's key (`paymaster keys new`)")
    model: Text = Field(description="default model, or auto (routing picks among tiers)")
    models: Annotated[list[Text], BeforeValidator(_model_list)] | None = Field(
        None, description="models the agent may call (default: just model)"
    )
    daily_usd: Usd | None = Field(None, description="hard cap per day (timezone)")
    monthly_usd: Usd | None = Field(None, description="hard cap per calendar month")
    max_tokens: Annotated[int, Whole(1, 1_000_000)] | None = Field(
        None, description="output ceiling (default: defaults.max_tokens)"
    )
    caching: CachingFile = Field(default_factory=CachingFile, description="the provider's prompt cache")
    response_cache: ResponseCacheFile = Field(
        default_factory=ResponseCacheFile, description="the gateway's own cache of whole answers"
    )
    brevity: Text | None = Field(None, description="system-prompt addendum for every call")
    tasks: Section[TaskFile] = Field(default_factory=dict, description="per-task overrides of the fleet's tasks")
    tiers: Tiers = Field(default_factory=Tiers, description="model: auto — the model of each tier")


class RoutingFile(Part):
    target_heavy_share: Fraction | None = Field(
        None, description="classifier threshold as a share of calls sent to the top tier (default 0.3)"
    )
    min_quality: Fraction | None = Field(None, description="… or the predicted share of strong-model quality to keep")
    fallbacks: Section[Annotated[list[Text], BeforeValidator(_model_list), Field(min_length=1)]] = Field(
        default_factory=dict, description="model -> ordered fallback models"
    )
    cooldown_s: Annotated[
        float, PlainValidator(_seconds(False, 86400)), WithJsonSchema({"type": "number", "minimum": 0})
    ] = Field(30, description="a model that failed is skipped this long")
    allow_pricier_fallback: Flag = Field(False, description="fall back to a model that costs more")
    degrade_at: Annotated[
        float,
        PlainValidator(_degrade_at),
        WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
    ] = Field(0.8, description="share of a cap past which an auto agent runs one tier down (0 < x <= 1; 1: never)")

    @model_validator(mode="after")
    def _one_threshold(self) -> RoutingFile:
        if {"target_heavy_share", "min_quality"} <= self.model_fields_set:
            raise _fail("give target_heavy_share or min_quality, not both")
        return self


class FleetFile(Part):
    """fleet.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, title="Paymaster fleet.yaml")

    timezone: Annotated[str, PlainValidator(_timezone), WithJsonSchema({"type": "string"})] = Field(
        "UTC", description="IANA time zone of the daily and monthly cap boundaries"
    )
    listen: Listen = Field(default_factory=Listen, description="where the gateway serves")
    ledger: Annotated[str, PlainValidator(_ledger), WithJsonSchema({"type": "string"})] = Field(
        "paymaster.db", validate_default=True, description="SQLite file (relative to fleet.yaml), or :memory:"
    )
    durability: Annotated[str, Choice("process", "power")] = Field(
        "process", description="process: survives a crash of the gateway; power: also a power cut (slower)"
    )
    admin: Admin = Field(default_factory=Admin, description="the admin API's key (key_env or key_sha256)")
    limits: Limits = Field(default_factory=Limits, description="request limits")
    defaults: Defaults = Field(default_factory=Defaults, description="what agents get unless they say otherwise")
    fleet: Fleet = Field(default_factory=Fleet, description="caps and alerts over the whole fleet")
    providers: Section[ProviderFile] = Field(
        default_factory=dict, description="upstreams by name (at least one); the name anthropic/openai sets kind"
    )
    models: Section[ModelFile] = Field(
        default_factory=dict, description="models by name: provider and price overrides (genai-prices otherwise)"
    )
    agents: Annotated[dict[AgentName, AgentFile], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict,
        description="agents by name (at least one): key, models, caps",
        json_schema_extra={"additionalProperties": False},  # a name outside the pattern is flagged by editors
    )
    tasks: Section[TaskFile] = Field(default_factory=dict, description="task types (x-paymaster-task), fleet-wide")
    routing: RoutingFile = Field(default_factory=RoutingFile, description="model: auto tiers, fallbacks")


def json_schema() -> dict[str, Any]:
    """JSON Schema of fleet.yaml, for editors (yaml-language-server) and `paymaster config schema`."""
    return FleetFile.model_json_schema(by_alias=True)
