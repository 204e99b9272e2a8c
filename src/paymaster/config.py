"""fleet.yaml → typed, validated configuration.

Every problem is reported as `ConfigError("agents.writer.daily_usd: must be a positive number, got 'ten'")`
at start, never as a stack trace mid-request.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .pricing import OVERRIDE_KEYS, PriceTable, UnknownModel

PROVIDER_KINDS = ("anthropic", "openai", "openai-compatible")
# which genai-prices provider a model of each kind is priced at
PRICE_PROVIDER = {"anthropic": "anthropic", "openai": "openai", "openai-compatible": None}


class ConfigError(ValueError):
    """fleet.yaml is malformed; the message names the field and the problem."""


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
    # -- responses (issue 17): the Responses API ----------------------------------------------------
    # responses.unknown_stored_context: a previous_response_id / conversation the gateway never served:
    # "bound" (by the model's context window) or "refuse" (400)
    responses_unknown_context: str = "bound"
    # -- end responses ---------------------------------------------------------------------------------

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


# -- reading ---------------------------------------------------------------------------------------


def _mapping(v: Any, path: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{path}: must be a mapping, got {type(v).__name__}")
    return v


def _unknown(m: Mapping[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(m) - allowed)
    if extra:
        raise ConfigError(f"{path}.{extra[0]}: unknown field (expected one of: {', '.join(sorted(allowed))})")


def _usd(v: Any, path: str) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ConfigError(f"{path}: must be a dollar amount, got {v!r}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ConfigError(f"{path}: must be a dollar amount, got {v!r}") from None
    if not d.is_finite() or d < 0:
        raise ConfigError(f"{path}: must be a non-negative dollar amount, got {v!r}")
    return d


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{path}: must be a whole number from {lo} to {hi}, got {v!r}")
    return v


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{path}: must be a non-empty string, got {v!r}")
    return v


def _secret(m: Mapping[str, Any], path: str, env: Mapping[str, str], *, hashed: bool) -> str | None:
    """A key given as `key_env: VAR` (read from the environment) or, for hashed keys, `key_sha256: hex`."""
    if "key_sha256" in m and hashed:
        h = _str(m["key_sha256"], f"{path}.key_sha256").lower()
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise ConfigError(f"{path}.key_sha256: must be 64 hex digits (see `paymaster keys new`)")
        return h
    var_field = "key_env" if hashed else "api_key_env"
    if var_field in m:
        var = _str(m[var_field], f"{path}.{var_field}")
        value = env.get(var)
        if not value:
            raise ConfigError(f"{path}.{var_field}: environment variable {var} is not set")
        return hash_key(value) if hashed else value
    return None


def _ledger_path(p: Path) -> None:
    """The ledger is a file in a folder that exists (whether both can be written is checked when it is opened)."""
    if p.is_dir():
        raise ConfigError(f"ledger: {p} is a folder; name a file in it, e.g. {p / 'paymaster.db'}")
    if not p.parent.is_dir():
        raise ConfigError(f"ledger: the folder {p.parent} does not exist; create it or name another")


def _opt_str(v: Any, path: str) -> str | None:
    return None if v is None else _str(v, path)


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: must be true or false, got {v!r}")
    return v


def _caching(v: Any, path: str, scope: str = "") -> Caching:
    m = _mapping(v, path)
    _unknown(m, {"enabled", "ttl"}, path)
    ttl = m.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise ConfigError(f"{path}.ttl: must be 5m or 1h, got {ttl!r}")
    return Caching(_bool(m.get("enabled", True), f"{path}.enabled"), ttl, scope)


def _response_cache(v: Any, path: str) -> ResponseCache:
    m = _mapping(v, path)
    _unknown(m, {"enabled", "ttl_s"}, path)
    ttl = m.get("ttl_s", 300)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 86400 * 30:
        raise ConfigError(f"{path}.ttl_s: must be a number of seconds from 1 to 2592000, got {ttl!r}")
    return ResponseCache(_bool(m.get("enabled", False), f"{path}.enabled"), float(ttl))


def _task(name: str, v: Any, path: str, base: Task | None) -> Task:
    m = _mapping(v, path)
    _unknown(m, {"max_tokens", "schema", "brevity", "tier"}, path)
    tier = m.get("tier", base.tier if base else DEFAULT_TASK_TIERS.get(name))
    if tier is not None and tier not in TIERS:
        raise ConfigError(f"{path}.tier: must be one of {', '.join(TIERS)}, got {tier!r}")
    schema = m.get("schema", base.schema if base else None)
    if schema is not None and (not isinstance(schema, Mapping) or schema.get("type") != "object"):
        raise ConfigError(f"{path}.schema: must be a JSON schema of an object (type: object)")
    mt = m.get("max_tokens")
    return Task(
        name=name,
        max_tokens=_int(mt, f"{path}.max_tokens", 1, 1_000_000)
        if mt is not None
        else (base.max_tokens if base else None),
        schema=dict(schema) if schema is not None else None,
        brevity=_opt_str(m["brevity"], f"{path}.brevity") if "brevity" in m else (base.brevity if base else None),
        tier=tier,
    )


def _agent_tasks(fleet_tasks: dict[str, Task], v: Any, path: str) -> dict[str, Task]:
    out = {name: Task(name, tier=tier) for name, tier in DEFAULT_TASK_TIERS.items()}
    out.update(fleet_tasks)
    for name, tv in _mapping(v, path).items():
        out[name] = _task(name, tv, f"{path}.{name}", fleet_tasks.get(name))
    return out


def _tiers(v: Any, path: str, auto: bool) -> dict[str, str]:
    m = _mapping(v, path)
    for k in m:
        if k not in TIERS:
            raise ConfigError(f"{path}.{k}: not a tier (use {', '.join(TIERS)})")
    tiers = {k: _str(m[k], f"{path}.{k}") for k in TIERS if k in m}
    if auto and len(tiers) < 2:
        raise ConfigError(f"{path}: model: auto needs at least two tiers, e.g. light: claude-haiku-4-5, heavy: …")
    if tiers and not auto:
        raise ConfigError(f"{path}: tiers are for model: auto")
    return tiers


PROVIDER_HOP_FIELDS = {
    "timeout_s",
    "connect_timeout_s",
    "total_timeout_s",
    "ca_bundle",
    "proxy",
    "no_proxy",
    "max_connections",
    "pool_timeout_s",
    "transport",
}
TRANSPORTS = ("builtin", "aiohttp")
# OpenAI's service tiers a project can default to (platform.openai.com/docs/api-reference/chat/create: service_tier)
SERVICE_TIERS = ("default", "priority", "flex", "scale")


def _seconds(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 86400:
        raise ConfigError(f"{path}: must be a positive number of seconds (at most 86400), got {v!r}")
    return float(v)


def _hop(pv: Mapping[str, Any], path: str, base: Path | None) -> dict[str, Any]:
    """providers.<name>: how the gateway reaches it (TLS trust, proxy, timeouts, pool, transport)."""
    from .providers.proxy import ProxyURLError, parse_proxy

    out: dict[str, Any] = {
        "timeout_s": _seconds(pv.get("timeout_s", 600), f"{path}.timeout_s"),
        "connect_timeout_s": _seconds(pv.get("connect_timeout_s", 10), f"{path}.connect_timeout_s"),
        "pool_timeout_s": _seconds(pv.get("pool_timeout_s", 10), f"{path}.pool_timeout_s"),
        "max_connections": _int(pv.get("max_connections", 100), f"{path}.max_connections", 1, 100_000),
    }
    if pv.get("total_timeout_s") is not None:
        out["total_timeout_s"] = _seconds(pv["total_timeout_s"], f"{path}.total_timeout_s")
    if pv.get("ca_bundle") is not None:
        ca = Path(_str(pv["ca_bundle"], f"{path}.ca_bundle")).expanduser()
        if not ca.is_absolute() and base is not None:
            ca = base / ca
        try:
            ssl.create_default_context(cafile=str(ca))
        except FileNotFoundError:
            raise ConfigError(f"{path}.ca_bundle: no such file: {ca}") from None
        except (ssl.SSLError, OSError, ValueError) as e:
            raise ConfigError(f"{path}.ca_bundle: not a PEM file of CA certificates: {ca} ({e})") from None
        out["ca_bundle"] = str(ca)
    if pv.get("proxy") is not None:
        proxy = _str(pv["proxy"], f"{path}.proxy")
        if proxy.strip().lower() != "none":
            try:
                parse_proxy(proxy, f"{path}.proxy")
            except ProxyURLError as e:
                raise ConfigError(str(e)) from None
        out["proxy"] = proxy
    if pv.get("no_proxy") is not None:
        hosts = pv["no_proxy"]
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigError(f"{path}.no_proxy: must be a list of hosts or domains, got {pv['no_proxy']!r}")
        out["no_proxy"] = tuple(hosts)
    transport = pv.get("transport", "builtin")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{path}.transport: must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    if transport == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"{path}.transport: aiohttp is not installed (pip install 'paymaster[aiohttp]')"
            ) from None
    out["transport"] = transport
    return out


def _routing(v: Any) -> Routing:
    m = _mapping(v, "routing")
    _unknown(
        m,
        {"target_heavy_share", "min_quality", "fallbacks", "cooldown_s", "allow_pricier_fallback", "degrade_at"},
        "routing",
    )

    def fraction(key: str, default: float | None) -> float | None:
        x = m.get(key, default)
        if x is None:
            return None
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= 1:
            raise ConfigError(f"routing.{key}: must be a fraction from 0 to 1, got {x!r}")
        return float(x)

    if "target_heavy_share" in m and "min_quality" in m:
        raise ConfigError("routing: give target_heavy_share or min_quality, not both")
    fallbacks: dict[str, tuple[str, ...]] = {}
    for model, chain in _mapping(m.get("fallbacks"), "routing.fallbacks").items():
        if not isinstance(chain, list) or not chain:
            raise ConfigError(f"routing.fallbacks.{model}: must be a non-empty list of model names")
        fallbacks[model] = tuple(_str(x, f"routing.fallbacks.{model}[{i}]") for i, x in enumerate(chain))
    cooldown = m.get("cooldown_s", 30)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or cooldown < 0:
        raise ConfigError(f"routing.cooldown_s: must be a number of seconds, got {cooldown!r}")
    return Routing(
        target_heavy_share=fraction("target_heavy_share", None if "min_quality" in m else 0.3),
        min_quality=fraction("min_quality", None),
        fallbacks=fallbacks,
        cooldown_s=float(cooldown),
        allow_pricier_fallback=_bool(m.get("allow_pricier_fallback", False), "routing.allow_pricier_fallback"),
        degrade_at=fraction("degrade_at", 0.8) or 0.8,
    )


def _routing_models(routing: Routing, models: dict[str, Model], resolve: Any) -> Routing:
    """Fallback models must be priced and served like any other."""
    for model, chain in routing.fallbacks.items():
        for i, m in enumerate((model, *chain)):
            if m not in models:
                models[m] = resolve(m, f"routing.fallbacks.{model}" + (f"[{i - 1}]" if i else ""))
    return routing


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse(raw, env=env, base=p.parent)


def parse(raw: Any, env: Mapping[str, str] | None = None, base: Path | None = None) -> Config:
    env = os.environ if env is None else env
    top = _mapping(raw, "fleet.yaml")
    _unknown(
        top,
        {
            "timezone",
            "listen",
            "ledger",
            "durability",
            "admin",
            "limits",
            "defaults",
            "fleet",
            "providers",
            "models",
            "agents",
            "tasks",
            "routing",
            "responses",
        },
        "fleet.yaml",
    )

    tz_name = top.get("timezone", "UTC")
    try:
        tz = ZoneInfo(_str(tz_name, "timezone"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown time zone {tz_name!r} (use an IANA name like Europe/Berlin)") from None

    listen = _mapping(top.get("listen"), "listen")
    _unknown(listen, {"host", "port"}, "listen")
    host = _str(listen.get("host", "127.0.0.1"), "listen.host")
    port = _int(listen.get("port", 8080), "listen.port", 0, 65535)

    ledger = _str(top.get("ledger", "paymaster.db"), "ledger")
    if base is not None and ledger != ":memory:" and not Path(ledger).is_absolute():
        ledger = str(base / ledger)
    if ledger != ":memory:":
        _ledger_path(Path(ledger))
    durability = top.get("durability", "process")
    if durability not in ("process", "power"):
        raise ConfigError(f"durability: must be 'process' or 'power', got {durability!r}")

    admin = _mapping(top.get("admin"), "admin")
    _unknown(admin, {"key_env", "key_sha256"}, "admin")
    admin_hash = _secret(admin, "admin", env, hashed=True)

    limits = _mapping(top.get("limits"), "limits")
    _unknown(limits, {"max_body_mb"}, "limits")
    max_body = _int(limits.get("max_body_mb", 32), "limits.max_body_mb", 1, 1024) * 1024 * 1024

    defaults = _mapping(top.get("defaults"), "defaults")
    _unknown(defaults, {"max_tokens", "min_output_tokens", "admission_wait_s"}, "defaults")
    default_max = _int(defaults.get("max_tokens", 4096), "defaults.max_tokens", 1, 1_000_000)
    min_out = _int(defaults.get("min_output_tokens", 64), "defaults.min_output_tokens", 1, 1_000_000)
    wait = defaults.get("admission_wait_s", 30)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 3600:
        raise ConfigError(f"defaults.admission_wait_s: must be a number of seconds from 0 to 3600, got {wait!r}")

    fleet = _mapping(top.get("fleet"), "fleet")
    _unknown(fleet, {"daily_usd", "monthly_usd", "alert_thresholds", "caching"}, "fleet")
    fleet_caching = _mapping(fleet.get("caching"), "fleet.caching")
    _unknown(fleet_caching, {"share_across_agents"}, "fleet.caching")
    share_caches = _bool(fleet_caching.get("share_across_agents", False), "fleet.caching.share_across_agents")
    thresholds_raw = fleet.get("alert_thresholds", [0.5, 0.8, 0.95])
    if not isinstance(thresholds_raw, list):
        raise ConfigError("fleet.alert_thresholds: must be a list of fractions like [0.5, 0.8]")
    thresholds = []
    for i, t in enumerate(thresholds_raw):
        d = _usd(t, f"fleet.alert_thresholds[{i}]")
        if d is None or not 0 < d < 1:
            raise ConfigError(f"fleet.alert_thresholds[{i}]: must be a fraction between 0 and 1, got {t!r}")
        thresholds.append(d)

    providers: dict[str, Provider] = {}
    for name, pv in _mapping(top.get("providers"), "providers").items():
        path = f"providers.{name}"
        pv = _mapping(pv, path)
        _unknown(pv, {"kind", "base_url", "api_key_env", "service_tier", *PROVIDER_HOP_FIELDS}, path)
        kind = pv.get("kind", name if name in PROVIDER_KINDS else None)
        if kind not in PROVIDER_KINDS:
            raise ConfigError(f"{path}.kind: must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
        default_url = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}.get(kind)
        url = _str(pv.get("base_url", default_url), f"{path}.base_url").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.base_url: must start with http:// or https://, got {url!r}")
        if "api_key_env" not in pv:
            raise ConfigError(f"{path}.api_key_env: required (the environment variable holding the key)")
        key = _secret(pv, path, env, hashed=False)
        assert key is not None
        tier = pv.get("service_tier", "default")
        if kind == "anthropic" and "service_tier" in pv:
            raise ConfigError(f"{path}.service_tier: only for OpenAI-style providers (a project's default tier)")
        if not isinstance(tier, str) or tier not in SERVICE_TIERS:
            raise ConfigError(f"{path}.service_tier: must be one of {', '.join(SERVICE_TIERS)}, got {tier!r}")
        providers[name] = Provider(name, kind, url, key, **_hop(pv, path, base), service_tier=tier)
    if not providers:
        raise ConfigError("providers: at least one provider is required")

    overrides: dict[str, dict[str, Any]] = {}
    explicit: dict[str, str] = {}
    for name, mv in _mapping(top.get("models"), "models").items():
        path = f"models.{name}"
        mv = _mapping(mv, path)
        _unknown(mv, {"provider", "price", "context_window"}, path)
        if "provider" in mv:
            pname = _str(mv["provider"], f"{path}.provider")
            if pname not in providers:
                raise ConfigError(f"{path}.provider: no provider named {pname!r} under providers")
            explicit[name] = pname
        if "price" in mv:
            price = _mapping(mv["price"], f"{path}.price")
            _unknown(price, set(OVERRIDE_KEYS), f"{path}.price")
            if "input_mtok" not in price or "output_mtok" not in price:
                raise ConfigError(f"{path}.price: input_mtok and output_mtok are required")
            ov: dict[str, Any] = {k: _usd(v, f"{path}.price.{k}") for k, v in price.items()}
            if "context_window" in mv:
                ov["context_window"] = _int(mv["context_window"], f"{path}.context_window", 1, 100_000_000)
            overrides[name] = ov

    prices = PriceTable(overrides)

    def resolve(model: str, path: str) -> Model:
        if model in explicit:
            prov = providers[explicit[model]]
            if prov.kind == "openai-compatible" and model not in overrides:
                raise ConfigError(
                    f"models.{model}.price: required for a model on an openai-compatible provider "
                    "(input_mtok and output_mtok, in USD per million tokens)"
                )
            try:
                prices.rates(model, PRICE_PROVIDER[prov.kind])
            except UnknownModel as e:
                raise ConfigError(f"{path}: {e}") from None
            return Model(model, prov)
        for prov in providers.values():
            pid = PRICE_PROVIDER[prov.kind]
            if pid is not None and prices.in_table(model, pid):
                return Model(model, prov)
        if model in overrides:
            raise ConfigError(f"models.{model}.provider: required (genai-prices does not say who serves {model!r})")
        raise ConfigError(
            f"{path}: model {model!r} is not priced for any configured provider "
            f"({', '.join(providers)}); name its provider and price under `models:`"
        )

    models: dict[str, Model] = {}
    for name in explicit:
        models[name] = resolve(name, f"models.{name}")

    tasks = {name: _task(name, tv, f"tasks.{name}", None) for name, tv in _mapping(top.get("tasks"), "tasks").items()}
    routing = _routing(top.get("routing"))
    agents: dict[str, Agent] = {}
    seen_hashes: dict[str, str] = {}
    for name, av in _mapping(top.get("agents"), "agents").items():
        path = f"agents.{name}"
        if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
            raise ConfigError(f"agents: {name!r} is not an agent name (agent names are {AGENT_NAME_RULE})")
        av = _mapping(av, path)
        _unknown(
            av,
            {
                "key_env",
                "key_sha256",
                "model",
                "models",
                "daily_usd",
                "monthly_usd",
                "max_tokens",
                "caching",
                "response_cache",
                "brevity",
                "tasks",
                "tiers",
            },
            path,
        )
        key_hash = _secret(av, path, env, hashed=True)
        if key_hash is None:
            raise ConfigError(f"{path}: needs key_sha256 (see `paymaster keys new`) or key_env")
        if key_hash in seen_hashes or key_hash == admin_hash:
            other = seen_hashes.get(key_hash, "admin")
            raise ConfigError(f"{path}: same key as {other}; every agent needs its own key")
        seen_hashes[key_hash] = path
        model = _str(av.get("model"), f"{path}.model")
        tiers = _tiers(av.get("tiers"), f"{path}.tiers", auto=model == "auto")
        allowed_raw = av.get("models", [] if tiers else [model])
        if not isinstance(allowed_raw, list) or not (allowed_raw or tiers):
            raise ConfigError(f"{path}.models: must be a non-empty list of model names")
        allowed = tuple(_str(m, f"{path}.models[{i}]") for i, m in enumerate(allowed_raw))
        if model not in allowed and model != "auto":
            allowed = (model, *allowed)
        allowed = (*allowed, *(m for m in tiers.values() if m not in allowed))
        for i, m in enumerate(allowed):
            if m not in models:
                where = (
                    f"{path}.model" if m == model else (f"{path}.models[{i}]" if m in allowed_raw else f"{path}.tiers")
                )
                models[m] = resolve(m, where)
        agents[name] = Agent(
            name=name,
            key_hash=key_hash,
            model=model,
            models=allowed,
            daily_usd=_usd(av.get("daily_usd"), f"{path}.daily_usd"),
            monthly_usd=_usd(av.get("monthly_usd"), f"{path}.monthly_usd"),
            max_tokens=_int(av.get("max_tokens", default_max), f"{path}.max_tokens", 1, 1_000_000),
            caching=_caching(av.get("caching"), f"{path}.caching", "" if share_caches else cache_scope(name)),
            response_cache=_response_cache(av.get("response_cache"), f"{path}.response_cache"),
            brevity=_opt_str(av.get("brevity"), f"{path}.brevity"),
            tasks=_agent_tasks(tasks, av.get("tasks"), f"{path}.tasks"),
            tiers=tiers,
        )
    if not agents:
        raise ConfigError("agents: at least one agent is required")

    return Config(
        timezone=tz,
        host=host,
        port=port,
        ledger=ledger,
        durability=durability,
        admin_key_hash=admin_hash,
        max_body_bytes=max_body,
        min_output_tokens=min_out,
        admission_wait_s=float(wait),
        fleet_daily_usd=_usd(fleet.get("daily_usd"), "fleet.daily_usd"),
        fleet_monthly_usd=_usd(fleet.get("monthly_usd"), "fleet.monthly_usd"),
        alert_thresholds=tuple(sorted(thresholds)),
        providers=providers,
        models=models,
        agents=agents,
        prices=prices,
        routing=_routing_models(routing, models, resolve),
        responses_unknown_context=_responses(top.get("responses")),
    )


# -- responses (issue 17) -------------------------------------------------------------------------------
def _responses(v: Any) -> str:
    section = _mapping(v, "responses")
    _unknown(section, {"unknown_stored_context"}, "responses")
    policy = section.get("unknown_stored_context", "bound")
    if policy not in ("bound", "refuse"):
        raise ConfigError(f"responses.unknown_stored_context: must be 'bound' or 'refuse', got {policy!r}")
    return str(policy)
