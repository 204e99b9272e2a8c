"""The configuration the gateway runs on: frozen dataclasses built once from a validated fleet.yaml.

The hot path reads these (plain attribute access); fleet_file.py describes and validates the file itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ..pricing import PriceTable

PROVIDER_KINDS = ("anthropic", "openai", "openai-compatible")
# which genai-prices provider a model of each kind is priced at
PRICE_PROVIDER: dict[str, str | None] = {"anthropic": "anthropic", "openai": "openai", "openai-compatible": None}
TRANSPORTS = ("builtin", "aiohttp")
# OpenAI's service tiers a project can default to (platform.openai.com/docs/api-reference/chat/create: service_tier;
# "fast" is priority's name since July 2026, developers.openai.com/api/docs/guides/fast-mode)
SERVICE_TIERS = ("default", "priority", "fast", "flex", "scale")
# Anthropic's inference geographies a workspace can default to
# (platform.claude.com/docs/en/manage-claude/data-residency)
INFERENCE_GEOS = ("global", "us")


AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
AGENT_NAME_RULE = "1 to 64 characters: letters A-Z a-z, digits, '.', '_', ':' and '-', starting with a letter or digit"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str  # anthropic | openai | openai-compatible
    base_url: str  # without a trailing slash; OpenAI-style URLs end in /v1
    api_key: str = field(repr=False)
    timeout_s: float = 600.0  # read timeout: longest silence from the provider once the request is sent
    # the upstream hop (providers/): see providers/transport.py, proxy.py, tls.py
    ca_bundle: str | None = None  # PEM file trusted instead of the system store (None: system, else certifi)
    proxy: str | None = None  # URL, or "none" to ignore the environment; None: HTTPS_PROXY & co.
    no_proxy: tuple[str, ...] = ()  # hosts/domains that go direct, added to NO_PROXY
    connect_timeout_s: float = 10.0  # TCP + proxy tunnel + TLS handshake
    total_timeout_s: float | None = None  # the whole exchange, answer included
    max_connections: int = 100  # open connections to this provider
    pool_timeout_s: float = 10.0  # longest wait for a free connection (then refused, not billed)
    transport: str = "builtin"  # builtin | aiohttp
    service_tier: str = "default"  # OpenAI: the tier the project serves a request naming none (or "auto")
    inference_geo: str = "global"  # Anthropic: where the workspace runs a request naming no inference_geo
    data_residency: bool = False  # OpenAI: served at a data-residency endpoint (a premium on recent models)

    @property
    def api(self) -> str:
        """The wire format it speaks."""
        return "anthropic" if self.kind == "anthropic" else "openai"


@dataclass(frozen=True)
class Model:
    name: str
    provider: Provider


@dataclass(frozen=True)
class Task:
    """Output control for one task type (`x-paymaster-task`), fleet-wide with per-agent overrides."""

    name: str
    max_tokens: int | None = None  # ceiling for this task type (below the agent's)
    schema: dict[str, Any] | None = None  # structured output: answers must be JSON of this schema
    brevity: str | None = None  # system-prompt addendum, e.g. "Respond in JSON only. No preamble."
    tier: str | None = None  # routing: the tier this task type runs on (light | standard | heavy)
    defer: bool = False  # calls of this type go to the batch API (levers/batch.py)


@dataclass(frozen=True)
class Caching:
    enabled: bool = True
    ttl: str = "5m"  # Anthropic cache entries: 5m | 1h
    # the agent's prompt-cache scope, salted into the start of every prompt it sends so that no other agent
    # can read (or learn of) its cache entries; "" when the fleet shares caches (fleet.caching.share_across_agents)
    scope: str = ""


def cache_scope(agent: str) -> str:
    """A fixed-length tag per agent name: two agents' prompts differ from their first element."""
    return hashlib.sha256(b"paymaster-cache-scope\0" + agent.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ResponseCache:
    enabled: bool = False
    ttl_s: float = 300.0


# --- compression (issue 13): agents.<name>.compression, read by levers/compression --------------------------


@dataclass(frozen=True)
class ToolRule:
    """Per-tool pruning: keep only the values these paths name (`items[*].title`, `data.price`)."""

    keep: tuple[str, ...] = ()
    max_items: int | None = None  # arrays longer than this are cut (None: the agent's prune.max_items)


@dataclass(frozen=True)
class Prune:
    enabled: bool = True
    min_tokens: int = 256  # tool results smaller than this (about 4 bytes a token) are sent as they are
    max_items: int = 20  # arrays longer than this keep their first max_items and say how many were left out
    drop_empty: bool = True  # null, "", [] and {} values go
    noise_keys: frozenset[str] | None = None  # None: the defaults (levers/compression/prune.py NOISE_KEYS)
    extra_noise_keys: frozenset[str] = frozenset()  # added to the defaults
    tools: dict[str, ToolRule] = field(default_factory=dict)  # tool name -> rule


@dataclass(frozen=True)
class Html:
    enabled: bool = True  # HTML tool results → readable text


@dataclass(frozen=True)
class Strip:
    enabled: bool = True
    base64_min_chars: int = 256  # base64 runs this long become "[base64 data omitted: N bytes]"
    boilerplate_min_chars: int = 40  # a line this long said in an earlier tool result is left out


@dataclass(frozen=True)
class Summarise:
    enabled: bool = True
    threshold_tokens: int = 20_000  # a call whose context is above this has its older turns summarised
    keep_turns: int = 4  # the latest messages always sent as they are (a tool call and its result never split)
    keep_tokens: int = 6_000  # … and as many more as fit in this many tokens
    model: str | None = None  # the summariser; None: the agent's light tier, else its cheapest allowed model
    max_tokens: int = 1_024  # the summary's ceiling


@dataclass(frozen=True)
class Compression:
    enabled: bool = False  # a `compression:` block turns it on (each technique on unless it says otherwise)
    prune: Prune = Prune()
    html: Html = Html()
    strip: Strip = Strip()
    summarise: Summarise = Summarise()


# --- end compression -----------------------------------------------------------------------------------------
# -- denial-of-wallet limits and live fleet management (issue 16) --
@dataclass(frozen=True)
class AgentLimits:
    """Per-agent limits (limits.py); None = no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_in_flight: int | None = None
    loop_calls: int | None = None  # near-identical calls within loop_window_s that make a loop
    loop_window_s: float = 60.0
    loop_block: bool = False
    on: bool = field(init=False, compare=False)  # any limit set (read on every call)

    def __post_init__(self) -> None:
        limits = (self.requests_per_minute, self.tokens_per_minute, self.max_in_flight, self.loop_calls)
        object.__setattr__(self, "on", any(v is not None for v in limits))


@dataclass(frozen=True)
class Management:
    key_grace_s: float = 3600.0  # a rotated key's old value keeps working this long
    poll_s: float = 0.25  # a replica looks for fleet changes made elsewhere this often


@dataclass(frozen=True)
class Agent:
    name: str
    key_hash: str = field(repr=False)
    model: str
    models: tuple[str, ...]
    daily_usd: Decimal | None
    monthly_usd: Decimal | None
    max_tokens: int
    caching: Caching = Caching()
    response_cache: ResponseCache = ResponseCache()
    brevity: str | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)  # model: auto — tier -> model
    defer: bool = False  # every call goes to the batch API (levers/batch.py)
    webhook: str | None = None  # finished deferred jobs are POSTed here (batch/service.py)
    webhook_secret: str = field(default="", repr=False)  # signs those POSTs (alerts.sign); "" = unsigned
    compression: Compression = Compression()
    limits: AgentLimits = AgentLimits()


TIERS = ("light", "standard", "heavy")
# task types every fleet knows, and the tier each runs on unless fleet.yaml says otherwise
DEFAULT_TASK_TIERS = {
    "classification": "light",
    "formatting": "light",
    "extraction": "light",
    "summarisation": "standard",
    "summarization": "standard",
    "reasoning": "standard",
    "synthesis": "heavy",
}


@dataclass(frozen=True)
class Routing:
    """How `model: auto` agents pick a tier, and what happens when a model fails."""

    target_heavy_share: float | None = 0.3  # classifier threshold as a share of calls sent to the top tier
    min_quality: float | None = None  # … or as the predicted share of strong-model quality to keep
    fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model -> ordered fallbacks
    cooldown_s: float = 30.0  # a model that failed is skipped this long
    allow_pricier_fallback: bool = False
    degrade_at: float = 0.8  # share of a cap past which an auto agent runs one tier down
    # -- routing on unseen traffic (issue 14; levers/routing_share.py, routing_cascade.py, routing_bandit.py) --
    share_window: int = 1000  # heavy threshold = quantile of this many recent scores per agent x task type
    share_warmup: int = 50  # scores seen before the running quantile replaces the reference threshold
    state: str | None = None  # routing state file (windows, bandit); default: "<ledger>.routing" (replicas: Postgres)
    cascade: tuple[str, ...] = ()  # task types answered light-first, checked, escalated on failure
    feedback_tasks: tuple[str, ...] = ()  # task types whose tier a bandit learns from feedback
    feedback_floor: float = 0.9  # success rate the chosen tier must keep (per agent x task type)
    feedback_explore: float = 0.05  # share of calls the bandit may spend exploring cheaper tiers
    feedback_keep_days: int = 30  # a call older than this cannot be rated; its stored rating is deleted


# -- alerts and webhooks (issue 11; src/paymaster/alerts.py) ----------------------------------------------------
ALERT_EVENTS = ("budget.threshold", "budget.projected", "agent.blocked", "agent.degraded", "ledger.failing")


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str = field(repr=False)  # HMAC-SHA256 key (from secret_env)
    format: str = "json"  # json | slack
    events: tuple[str, ...] = ALERT_EVENTS
    timeout_s: float = 5.0
    retries: int = 5  # attempts after the first
    backoff_s: float = 1.0  # first retry delay, doubled each time (at most 60 s)


@dataclass(frozen=True)
class AlertSettings:
    thresholds: dict[str, tuple[Decimal, ...]] = field(default_factory=dict)  # per agent, over fleet.alert_thresholds
    projected: bool = True  # budget.projected: a window's burn rate reaches its cap before it resets
    check_s: float = 60.0
    webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True)
class Batching:
    """Deferred calls: when a provider/model queue is sent as a batch, and how often batches are polled."""

    flush_count: int = 1000
    flush_bytes: int = 50 * 1024 * 1024
    flush_age_s: float = 60.0
    poll_s: float = 30.0


@dataclass(frozen=True)
class Observability:
    """Issue 11: the access log and /metrics (metrics.py)."""

    access_log: str = "stderr"  # "stderr" | "off" | a file path (resolved against fleet.yaml's folder)
    log_prompts: bool = False  # the fleet opts in to the request body in each access-log line
    metrics_max_series: int = 1000  # (agent, model) pairs /metrics keeps apart; the rest fold into agent="_other"


@dataclass(frozen=True)
class Shared:
    """Replicas sharing one budget (issue 15): live counters in Redis, the ledger in Postgres."""

    redis_url: str  # `reservations:`
    postgres_url: str  # `ledger:`
    lease_s: float = 10.0  # `replica_lease_s:`
    on_outage: str = "refuse"  # `on_store_outage:` refuse | admit_unmetered


@dataclass(frozen=True)
class Config:
    timezone: ZoneInfo
    host: str
    port: int
    ledger: str  # SQLite path
    durability: str  # "process" (WAL, synchronous=NORMAL) | "power" (synchronous=FULL)
    admin_key_hash: str | None = field(repr=False)
    max_body_bytes: int
    min_output_tokens: int
    admission_wait_s: float
    fleet_daily_usd: Decimal | None
    fleet_monthly_usd: Decimal | None
    alert_thresholds: tuple[Decimal, ...]
    providers: dict[str, Provider]
    models: dict[str, Model]
    agents: dict[str, Agent]
    prices: PriceTable
    routing: Routing = Routing()
    batch: Batching = Batching()
    alerts: AlertSettings = AlertSettings()  # issue 11: alerts and webhooks
    observability: Observability = Observability()
    translation: str = "lenient"  # translation.policy: lenient | strict (see config.fleet_file.TranslationFile)
    responses_unknown_context: str = "bound"  # "bound" | "refuse": stored context the gateway did not serve
    shared: Shared | None = None  # replicas: Redis counters + Postgres ledger
    management: Management = Management()
    _by_hash: dict[str, Agent] = field(init=False, repr=False, compare=False)
    _by_key: dict[str, Agent] = field(init=False, repr=False, compare=False)

    def agent_by_key(self, key: str) -> Agent | None:
        known = self._by_key.get(key)  # keys seen before, so a valid key is hashed once per process
        if known is not None:
            return known
        agent = self._by_hash.get(hash_key(key))
        if agent is not None:
            self._by_key[key] = agent
        return agent

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_hash", {a.key_hash: a for a in self.agents.values()})
        object.__setattr__(self, "_by_key", {})
