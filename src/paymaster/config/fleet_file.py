"""fleet.yaml as typed pydantic models: the one place a setting is declared, typed, defaulted and documented.

Adding a setting: a field on the model of its section here (type, default, description), then the line in
build.py that copies it onto the runtime dataclass in model.py (what the hot path reads). Unknown keys are
refused (extra="forbid"); every problem is collected and reported with its path (errors.py). The checks that
need the environment or the file's folder (a variable that is not set, a ledger folder that does not exist)
read them from the validation context: {"env": …, "base": …}.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from ..pricing import OVERRIDE_KEYS
from .model import ALERT_EVENTS, INFERENCE_GEOS, PROVIDER_KINDS, SERVICE_TIERS, TIERS, TRANSPORTS
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
    KeepPath,
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


def _http_url(v: str) -> str:
    if not isinstance(v, str) or not v.startswith(("http://", "https://")):
        raise fail(f"must be an http(s) URL, got {v!r}")
    return v


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
    data_residency: Flag | None = Field(
        None,
        description="OpenAI: the project's requests run at a data-residency endpoint, which bills models released "
        "on or after 2026-03-05 at a 10% uplift (default: whether base_url is one of the regional domains, "
        "us./eu./au./in./jp.api.openai.com)",
    )
    inference_geo: Annotated[str, Choice(*INFERENCE_GEOS)] | None = Field(
        None,
        description="Anthropic: the workspace's default inference geography, where a request naming none runs "
        '(default: global; "us" is priced at its 1.1x premium on the models that take it, Opus 4.6 and later)',
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
    defer: Flag | None = Field(
        None, description="calls of this task type go to the batch API at half price (as x-paymaster-defer: true)"
    )


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


# --- compression (issue 13) ------------------------------------------------------------------------------------


class ToolRuleFile(Part):
    keep: list[KeepPath] = Field(
        default_factory=list, description="paths of the values to keep: data.price, items[*].title, items[0].url"
    )
    max_items: Annotated[int, Whole(1, 100_000)] | None = Field(None, description="array length kept for this tool")


class PruneFile(Part):
    enabled: Flag = Field(True, description="JSON tool results: noise keys, empty values, long arrays, whitespace")
    min_tokens: Annotated[int, Whole(0, 10_000_000)] = Field(
        256, description="tool results smaller than this (about 4 bytes a token) are sent as they are"
    )
    max_items: Annotated[int, Whole(1, 100_000)] = Field(
        20, description="longer arrays keep their first max_items and say how many were omitted"
    )
    drop_empty: Flag = Field(True, description="drop null, empty-string, empty-list and empty-object values")
    noise_keys: list[Text] | None = Field(None, description="keys dropped wherever they are (replaces the defaults)")
    extra_noise_keys: list[Text] = Field(default_factory=list, description="keys dropped, added to the defaults")
    tools: Section[ToolRuleFile] = Field(default_factory=dict, description="per-tool keep-rules, by tool name")


class HtmlFile(Part):
    enabled: Flag = Field(True, description="HTML tool results become readable text")


class StripFile(Part):
    enabled: Flag = Field(True, description="JSON inside strings, base64 blobs, repeated boilerplate lines")
    base64_min_chars: Annotated[int, Whole(16, 10_000_000)] = Field(
        256, description="base64 runs this long become a placeholder with their size"
    )
    boilerplate_min_chars: Annotated[int, Whole(8, 500)] = Field(
        40, description="a line this long said in an earlier tool result of the conversation is left out"
    )


class SummariseFile(Part):
    enabled: Flag = Field(True, description="summarise older turns of long conversations")
    threshold_tokens: Annotated[int, Whole(1, 10_000_000)] = Field(
        20_000, description="summarise when the context as sent by the agent is above this"
    )
    keep_turns: Annotated[int, Whole(1, 10_000)] = Field(4, description="latest messages always kept verbatim")
    keep_tokens: Annotated[int, Whole(0, 10_000_000)] = Field(
        6_000, description="… and as many more as fit in this many tokens"
    )
    model: Text | None = Field(
        None, description="the summariser (one of the agent's models); default: its light tier, else its cheapest"
    )
    max_tokens: Annotated[int, Whole(64, 100_000)] = Field(1_024, description="the summary's output ceiling")


class CompressionFile(Part):
    enabled: Flag = Field(True, description="compression on (the block's presence turns it on)")
    prune: PruneFile = Field(default_factory=PruneFile, description="tool-result pruning")
    html: HtmlFile = Field(default_factory=HtmlFile, description="HTML → text")
    strip: StripFile = Field(default_factory=StripFile, description="verbose-response stripping")
    summarise: SummariseFile = Field(default_factory=SummariseFile, description="conversation summarisation")


# --- end compression -------------------------------------------------------------------------------------------


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
    defer: Flag = Field(False, description="every call of this agent goes to the batch API (as x-paymaster-defer)")
    webhook: Text | None = Field(None, description="URL the gateway POSTs each finished deferred job to (JSON)")
    webhook_secret_env: EnvVar | None = Field(
        None, description="environment variable holding the HMAC-SHA256 secret that signs those POSTs"
    )
    compression: CompressionFile | None = Field(
        None, description="context compression (off without this block; every technique on with it)"
    )
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
    # -- routing on unseen traffic (issue 14; levers/routing_share.py, routing_cascade.py, routing_bandit.py) --
    share_window: Annotated[int, Whole(1, 1_000_000)] = Field(
        1000, description="the heavy threshold is the quantile of this many recent scores per agent x task type"
    )
    share_warmup: Annotated[int, Whole(1, 1_000_000)] = Field(
        50, description="scores seen before the running quantile replaces the reference threshold"
    )
    state: Text | None = Field(
        None,
        description="routing state file (share windows, bandit); default <ledger>.routing, or shared in Postgres by"
        " replicas on a Postgres ledger (a file named here: each replica its own)",
    )
    cascade: list[Text] = Field(
        default_factory=list, description="task types answered light-first, checked, escalated on failure"
    )
    feedback_tasks: list[Text] = Field(
        default_factory=list, description="task types whose tier a bandit learns from POST /v1/paymaster/feedback"
    )
    feedback_floor: Fraction = Field(0.9, description="success rate the learnt tier must keep (0 < x <= 1)")
    feedback_explore: Fraction = Field(0.05, description="most of the calls that may explore a cheaper, unproven tier")
    feedback_keep_days: Annotated[int, Whole(1, 36_500)] = Field(
        30, description="calls older than this many days cannot be rated, and their stored ratings are deleted"
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> RoutingFile:
        if {"target_heavy_share", "min_quality"} <= self.model_fields_set:
            raise fail("give target_heavy_share or min_quality, not both")
        if self.share_warmup > self.share_window:
            raise fail("share_warmup must not exceed share_window")
        if self.feedback_floor <= 0:
            raise fail("feedback_floor must be above 0")
        return self


class BatchFile(Part):
    """Deferred calls (x-paymaster-defer): collected per provider and model, sent as provider batches."""

    flush_count: Annotated[int, Whole(1, 100_000)] = Field(1000, description="send a batch at this many calls")
    flush_mb: Annotated[int, Whole(1, 200)] = Field(50, description="… or at this many MiB of requests")
    flush_age_s: Seconds = Field(60, description="… or when its oldest call has waited this long")
    poll_s: Seconds = Field(30, description="how often the provider's batches are polled")


class WebhookFile(Part):
    url: Annotated[str, PlainValidator(_http_url), WithJsonSchema({"type": "string", "pattern": "^https?://"})] = Field(
        description="where events are POSTed (http or https)"
    )
    secret_env: EnvVar = Field(description="environment variable holding the HMAC-SHA256 signing secret")
    format: Annotated[str, Choice("json", "slack")] = Field(
        "json", description="json: the event; slack: a Slack incoming-webhook message {text}"
    )
    events: list[Text] = Field(list(ALERT_EVENTS), description="event types sent to this webhook")
    timeout_s: Seconds = Field(5, description="per attempt")
    retries: Annotated[int, Whole(0, 20)] = Field(5, description="attempts after the first (failures, 408, 429, 5xx)")
    backoff_s: Seconds = Field(1, description="first retry delay, doubled each retry (waits of at most 60 s)")


class AlertsFile(Part):
    thresholds: Section[list[Threshold]] = Field(
        default_factory=dict, description="agent -> its own alert thresholds (instead of fleet.alert_thresholds)"
    )
    projected: Flag = Field(True, description="budget.projected: a window's burn rate reaches its cap before reset")
    check_s: Seconds = Field(60, description="seconds between projection checks")
    webhooks: list[WebhookFile] = Field(default_factory=list, description="where alert events are POSTed, signed")


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


class ResponsesFile(Part):
    unknown_stored_context: Annotated[str, Choice("bound", "refuse")] = Field(
        "bound",
        description="a previous_response_id, conversation, stored prompt or item_reference the gateway did not "
        "serve: bound (by the model's context window) or refuse (400)",
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
    responses: ResponsesFile = Field(default_factory=ResponsesFile, description="the OpenAI Responses API")
    batch: BatchFile = Field(default_factory=BatchFile, description="deferred calls sent as provider batches")
    alerts: AlertsFile = Field(default_factory=AlertsFile, description="alert thresholds, projections and webhooks")
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
    # the draft named, so an editor reads it as 2020-12 rather than its own default (draft-07)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **FleetFile.model_json_schema(by_alias=True)}
