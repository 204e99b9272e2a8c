"""fleet.yaml as typed pydantic models: the one place a setting is declared, typed, defaulted and documented.

Adding a setting: a field on the model of its section here (type, default, description), then the line in
build.py that copies it onto the runtime dataclass in model.py (what the hot path reads). Unknown keys are
refused (extra="forbid"); every problem is collected and reported with its path (errors.py). The checks that
need the environment or the file's folder (a variable that is not set, a ledger folder that does not exist)
read them from the validation context: {"env": …, "base": …}.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..pricing import OVERRIDE_KEYS
from .model import PROVIDER_KINDS, SERVICE_TIERS, TIERS, TRANSPORTS
from .values import (
    POSTGRES_SCHEMES,
    AdmissionWait,
    AgentName,
    CacheSeconds,
    Choice,
    Cooldown,
    DegradeAt,
    EnvVar,
    Flag,
    Fraction,
    Hosts,
    Ledger,
    ModelList,
    ObjectSchema,
    Price,
    RedisUrl,
    Seconds,
    Section,
    Sha256,
    Store,
    Text,
    Threshold,
    Timezone,
    Usd,
    Whole,
    fail,
    none_is_empty,
)


class Part(BaseModel):
    """A section of fleet.yaml: unknown keys refused; an empty section (`listen:` alone) means all defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, v: Any) -> Any:
        return none_is_empty(v)


# -- the sections -----------------------------------------------------------------------------------------------


class Listen(Part):
    host: Text = Field("127.0.0.1", description="address the gateway listens on")
    port: Annotated[int, Whole(0, 65535)] = Field(8080, description="TCP port (0: any free port)")


class Admin(Part):
    key_env: EnvVar | None = Field(None, description="environment variable holding the admin key")
    key_sha256: Sha256 | None = Field(None, description="SHA-256 of the admin key (`paymaster keys new`)")
    key_grace_s: Cooldown = Field(3600, description="how long a rotated agent key's old value keeps working (0: none)")
    poll_s: Seconds = Field(0.25, description="how often a replica looks for fleet changes made on another")


class Limits(Part):
    max_body_mb: Annotated[int, Whole(1, 1024)] = Field(32, description="largest request body accepted, in MiB")


# -- denial-of-wallet limits and live fleet management (issue 16) --
class AgentLimitsFile(Part):
    requests_per_minute: Annotated[int, Whole(1, 10_000_000)] | None = Field(
        None, description="calls per minute (a bucket refilled evenly; bursts up to the minute's worth)"
    )
    tokens_per_minute: Annotated[int, Whole(1, 10_000_000_000)] | None = Field(
        None, description="tokens (input + output) per minute, counted as calls settle"
    )
    max_in_flight: Annotated[int, Whole(1, 1_000_000)] | None = Field(None, description="calls open at once")
    loop_calls: Annotated[int, Whole(2, 1_000_000)] | None = Field(
        None, description="near-identical calls within loop_window_s that make a loop (agent.looping event)"
    )
    loop_window_s: Seconds = Field(60, description="the loop detector's window")
    loop_block: Flag = Field(False, description="refuse (429) the looping call while the loop lasts")


class Defaults(Part):
    max_tokens: Annotated[int, Whole(1, 1_000_000)] = Field(
        4096, description="an agent's output ceiling unless it sets its own"
    )
    min_output_tokens: Annotated[int, Whole(1, 1_000_000)] = Field(
        64, description="smallest max_tokens a call is shrunk to before it is refused for budget"
    )
    admission_wait_s: AdmissionWait = Field(30, description="longest a call waits for budget held by calls in flight")
    limits: AgentLimitsFile = Field(
        default_factory=AgentLimitsFile, description="denial-of-wallet limits of every agent that sets none"
    )


class FleetCaching(Part):
    share_across_agents: Flag = Field(False, description="agents may read each other's prompt-cache entries")


class Fleet(Part):
    daily_usd: Usd | None = Field(None, description="cap on the whole fleet's spend per day")
    monthly_usd: Usd | None = Field(None, description="cap on the whole fleet's spend per month")
    alert_thresholds: list[Threshold] = Field(
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
    no_proxy: Hosts = Field((), description="hosts or domains that go direct (added to NO_PROXY)")
    transport: Annotated[str, Choice(*TRANSPORTS)] = Field("builtin", description="HTTP client for this provider")


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
    json_schema: ObjectSchema | None = Field(
        None, alias="schema", description="structured output: answers are JSON of this object schema"
    )
    brevity: Text | None = Field(None, description="system-prompt addendum, e.g. 'Respond in JSON only.'")
    tier: Annotated[str, Choice(*TIERS)] | None = Field(None, description="routing: the tier this task type runs on")


class CachingFile(Part):
    enabled: Flag = Field(True, description="mark stable prompt prefixes for the provider's prompt cache")
    ttl: Annotated[str, Choice("5m", "1h")] = Field("5m", description="Anthropic cache entry lifetime")


class ResponseCacheFile(Part):
    enabled: Flag = Field(False, description="answer an identical deterministic request from the gateway's cache")
    ttl_s: CacheSeconds = Field(300, description="how long a cached answer is served")


class Tiers(Part):
    light: Text | None = None
    standard: Text | None = None
    heavy: Text | None = None


class AgentFile(Part):
    key_env: EnvVar | None = Field(None, description="environment variable holding the agent's key")
    key_sha256: Sha256 | None = Field(None, description="SHA-256 of the agent's key (`paymaster keys new`)")
    model: Text = Field(description="default model, or auto (routing picks among tiers)")
    models: ModelList | None = Field(None, description="models the agent may call (default: just model)")
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
    limits: AgentLimitsFile | None = Field(
        None, description="denial-of-wallet limits (default: defaults.limits): rate, tokens, in flight, loops"
    )


class RoutingFile(Part):
    target_heavy_share: Fraction | None = Field(
        None, description="classifier threshold as a share of calls sent to the top tier (default 0.3)"
    )
    min_quality: Fraction | None = Field(None, description="… or the predicted share of strong-model quality to keep")
    fallbacks: Section[Annotated[ModelList, Field(min_length=1)]] = Field(
        default_factory=dict, description="model -> ordered fallback models"
    )
    cooldown_s: Cooldown = Field(30, description="a model that failed is skipped this long")
    allow_pricier_fallback: Flag = Field(False, description="fall back to a model that costs more")
    degrade_at: DegradeAt = Field(
        0.8, description="share of a cap past which an auto agent runs one tier down (0 < x <= 1; 1: never)"
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> RoutingFile:
        if {"target_heavy_share", "min_quality"} <= self.model_fields_set:
            raise fail("give target_heavy_share or min_quality, not both")
        return self


class ObservabilityFile(Part):
    access_log: Text = Field(
        "stderr", description="one JSON line per call: stderr, off, or a file (relative to fleet.yaml), appended to"
    )
    log_prompts: Flag = Field(False, description="each access-log line also carries the request body")
    metrics_max_series: Annotated[int, Whole(1, 100_000)] = Field(
        1000, description="(agent, model) pairs /metrics keeps apart; the rest are counted as agent=_other"
    )


class TranslationFile(Part):
    """Translation between the two APIs (compat, issue 18)."""

    policy: Annotated[str, Choice("lenient", "strict")] = Field(
        "lenient",
        description="a field whose dropping cannot change the answer's meaning (store, metadata tags, image detail, "
        "one-participant names): lenient leaves it out and names it in x-paymaster-dropped; strict refuses the call",
    )


class FleetFile(Part):
    """fleet.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, title="Paymaster fleet.yaml")

    timezone: Timezone = Field("UTC", description="IANA time zone of the daily and monthly cap boundaries")
    listen: Listen = Field(default_factory=Listen, description="where the gateway serves")
    ledger: Ledger = Field(
        "paymaster.db",
        validate_default=True,
        description="SQLite file (relative to fleet.yaml), or :memory:; with reservations, a postgresql:// URL",
    )
    # -- shared store (issue 15) --
    store: Store | None = Field(None, description="sqlite:///path: the SQLite ledger (the same as ledger: path)")
    reservations: RedisUrl | None = Field(
        None, description="redis:// URL: live counters shared by replicas (with ledger: postgresql://…)"
    )
    replica_lease_s: Seconds = Field(10.0, description="a replica silent this long is gone: its calls are booked")
    on_store_outage: Annotated[str, Choice("refuse", "admit_unmetered")] = Field(
        "refuse", description="Redis or Postgres down: refuse calls (503), or admit them unmetered and flagged"
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
    agents: Annotated[dict[AgentName, AgentFile], BeforeValidator(none_is_empty)] = Field(
        default_factory=dict,
        description="agents by name (at least one): key, models, caps",
        json_schema_extra={"additionalProperties": False},  # a name outside the pattern is flagged by editors
    )
    tasks: Section[TaskFile] = Field(default_factory=dict, description="task types (x-paymaster-task), fleet-wide")
    routing: RoutingFile = Field(default_factory=RoutingFile, description="model: auto tiers, fallbacks")
    observability: ObservabilityFile = Field(
        default_factory=ObservabilityFile, description="the access log and /metrics"
    )
    translation: TranslationFile = Field(
        default_factory=TranslationFile, description="calls served by the other API's models"
    )

    @model_validator(mode="after")
    def _one_store(self) -> FleetFile:
        shared_ledger = self.ledger.startswith(POSTGRES_SCHEMES)
        if self.store is not None and (self.reservations is not None or "ledger" in self.model_fields_set):
            raise fail("give store (SQLite) or ledger, or reservations + ledger (Redis + Postgres), not both")
        if self.reservations is not None and not shared_ledger:
            raise fail("reservations (Redis) need ledger: postgresql://… (the ledger every replica shares)")
        if shared_ledger and self.reservations is None:
            raise fail("ledger: postgresql://… needs reservations: redis://… (the live counters replicas share)")
        return self


def json_schema() -> dict[str, Any]:
    """JSON Schema of fleet.yaml, for editors (yaml-language-server) and `paymaster config schema`."""
    return FleetFile.model_json_schema(by_alias=True)
