"""fleet.yaml → Config: validate the file's shape (fleet_file.py), then resolve what crosses sections.

Two passes, each reporting every problem it finds: the shape (types, ranges, unknown keys, variables not set),
then the references (a model's provider, its price, an agent's tiers, keys shared between agents, TLS files).
"""

from __future__ import annotations

import os
import ssl
import types
import typing
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from ..pricing import OVERRIDE_KEYS, SPEED_KEYS, PriceTable, UnknownModel, data_residency_hosts, data_residency_uplift
from .errors import ConfigError, Problems, path_of
from .fleet_file import AgentFile, AgentLimitsFile, CompressionFile, FleetFile, ProviderFile, RoutingFile, TaskFile
from .model import (
    DEFAULT_TASK_TIERS,
    PRICE_PROVIDER,
    TIERS,
    Agent,
    AgentLimits,
    AlertSettings,
    Batching,
    Caching,
    Compression,
    Config,
    Html,
    Management,
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
from .yaml_file import read_file

DEFAULT_URL = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    return parse(read_file(p), env=env, base=p.parent)


def parse(raw: Any, env: Mapping[str, str] | None = None, base: Path | None = None) -> Config:
    env = os.environ if env is None else env
    return _build(validate(raw, env=env, base=base), env, base)


def validate(raw: Any, env: Mapping[str, str] | None = None, base: Path | None = None) -> FleetFile:
    """The file's shape, every problem at once (env None: variables are not looked up)."""
    if not isinstance(raw, Mapping) and raw is not None:
        raise ConfigError(f"fleet.yaml: must be a mapping, got {type(raw).__name__}")
    try:
        return FleetFile.model_validate(raw or {}, context={"env": env, "base": base})
    except ValidationError as e:
        raise ConfigError([_line(err) for err in e.errors(include_input=False, include_url=False)]) from None


def _line(err: Any) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        expected = _fields_at(loc[:-1])
        return f"{path_of(loc)}: unknown field (expected one of: {', '.join(expected)})"
    if kind == "missing":
        return f"{path_of(loc)}: required"
    if kind in ("dict_type", "model_type"):
        return f"{path_of(loc)}: must be a mapping"
    if kind == "list_type":
        return f"{path_of(loc)}: must be a list"
    if kind == "too_short":
        return f"{path_of(loc)}: must not be empty"
    return f"{path_of(loc)}: {err['msg']}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` (aliases, as written in the file)."""
    t: Any = FleetFile
    for part in loc:
        t = _unwrap(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            field = next((f for n, f in t.model_fields.items() if part in (n, f.alias)), None)
            t = field.annotation if field else None
        elif typing.get_origin(t) is dict:
            t = typing.get_args(t)[1]
    t = _unwrap(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return sorted(f.alias or n for n, f in t.model_fields.items())
    return []


def _unwrap(t: Any) -> Any:
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        else:
            return t


# -- the second pass: references between sections -------------------------------------------------------------


def _build(f: FleetFile, env: Mapping[str, str], base: Path | None) -> Config:
    problems = Problems()
    admin_hash = _key_hash(f.admin.key_sha256, f.admin.key_env, env)

    providers: dict[str, Provider] = {}
    for name, pf in f.providers.items():
        try:
            providers[name] = _provider(name, pf, env, base)
        except ConfigError as e:
            problems.extend(e)
    if not f.providers:
        problems.add("providers", "at least one provider is required")

    overrides: dict[str, dict[str, Any]] = {}
    explicit: dict[str, str] = {}
    for name, mf in f.models.items():
        path = f"models.{name}"
        if mf.provider is not None:
            if mf.provider not in f.providers:
                problems.add(f"{path}.provider", f"no provider named {mf.provider!r} under providers")
            explicit[name] = mf.provider
        if mf.price is not None:
            unknown = sorted(set(mf.price) - OVERRIDE_KEYS)
            for k in unknown:
                problems.add(
                    f"{path}.price.{k}", f"unknown field (expected one of: {', '.join(sorted(OVERRIDE_KEYS))})"
                )
            if "input_mtok" not in mf.price or "output_mtok" not in mf.price:
                problems.add(f"{path}.price", "input_mtok and output_mtok are required")
            for fast_in, fast_out in SPEED_KEYS.values():
                if (fast_in in mf.price) != (fast_out in mf.price):
                    problems.add(f"{path}.price", f"{fast_in} and {fast_out} go together")
            ov: dict[str, Any] = dict(mf.price)
            if mf.context_window is not None:
                ov["context_window"] = mf.context_window
            overrides[name] = ov
    problems.raise_any()  # the models below are resolved against these providers and prices

    prices = PriceTable(overrides)
    models: dict[str, Model] = {}

    def resolve(model: str, path: str) -> None:
        if model in models:
            return
        try:
            models[model] = _resolve(model, path, providers, explicit, overrides, prices)
        except ConfigError as e:
            problems.extend(e)

    for name in explicit:
        resolve(name, f"models.{name}")

    tasks = {name: _task(name, tf, None) for name, tf in f.tasks.items()}
    agents: dict[str, Agent] = {}
    seen_hashes: dict[str, str] = {}
    for name, af in f.agents.items():
        path = f"agents.{name}"
        key_hash = _key_hash(af.key_sha256, af.key_env, env)
        if key_hash is None:
            problems.add(path, "needs key_sha256 (see `paymaster keys new`) or key_env")
            continue
        if key_hash in seen_hashes or key_hash == admin_hash:
            problems.add(path, f"same key as {seen_hashes.get(key_hash, 'admin')}; every agent needs its own key")
        seen_hashes.setdefault(key_hash, path)
        try:
            agents[name] = _agent(name, af, key_hash, f, tasks, resolve)
            if af.webhook_secret_env:
                if af.webhook is None:
                    problems.add(f"{path}.webhook_secret_env", "signs the agent's webhook: set webhook too")
                elif not env.get(af.webhook_secret_env):
                    problems.add(
                        f"{path}.webhook_secret_env", f"environment variable {af.webhook_secret_env} is not set"
                    )
                agents[name] = replace(agents[name], webhook_secret=env.get(af.webhook_secret_env, ""))
        except ConfigError as e:
            problems.extend(e)
    if not f.agents:
        problems.add("agents", "at least one agent is required")

    alerts = _alerts(f, env, problems)
    routing = _routing(f.routing, base)
    for model, chain in routing.fallbacks.items():
        for i, m in enumerate((model, *chain)):
            resolve(m, f"routing.fallbacks.{model}" + (f"[{i - 1}]" if i else ""))
    problems.raise_any()
    uplifts = {  # a data-residency endpoint's premium is part of the model's prices there
        served.name: factor
        for served in models.values()
        if served.provider.data_residency and (factor := data_residency_uplift(served.name, "")) is not None
    }
    if uplifts:
        prices = PriceTable(overrides, uplifts)

    return Config(
        timezone=ZoneInfo(f.timezone),
        host=f.listen.host,
        port=f.listen.port,
        ledger=f.store or f.ledger,
        durability=f.durability,
        admin_key_hash=admin_hash,
        max_body_bytes=f.limits.max_body_mb * 1024 * 1024,
        min_output_tokens=f.defaults.min_output_tokens,
        admission_wait_s=f.defaults.admission_wait_s,
        fleet_daily_usd=f.fleet.daily_usd,
        fleet_monthly_usd=f.fleet.monthly_usd,
        alert_thresholds=tuple(sorted(f.fleet.alert_thresholds)),
        providers=providers,
        models=models,
        agents=agents,
        prices=prices,
        routing=routing,
        batch=Batching(f.batch.flush_count, f.batch.flush_mb * 1024 * 1024, f.batch.flush_age_s, f.batch.poll_s),
        alerts=alerts,
        management=Management(f.admin.key_grace_s, f.admin.poll_s),
        observability=_observability(f, base),
        translation=f.translation.policy,
        responses_unknown_context=f.responses.unknown_stored_context,
        shared=Shared(f.reservations, f.ledger, f.replica_lease_s, f.on_store_outage) if f.reservations else None,
    )


def _alerts(f: FleetFile, env: Mapping[str, str], problems: Problems) -> AlertSettings:
    """`alerts:` (issue 11): per-agent thresholds, the projection check, webhooks with their secrets."""
    for name in f.alerts.thresholds:
        if name not in f.agents:
            problems.add(f"alerts.thresholds.{name}", "no such agent")
    hooks = tuple(
        Webhook(w.url, env.get(w.secret_env, ""), w.format, tuple(w.events), w.timeout_s, w.retries, w.backoff_s)
        for w in f.alerts.webhooks
    )
    thresholds = {n: tuple(sorted(t)) for n, t in f.alerts.thresholds.items()}
    return AlertSettings(thresholds, f.alerts.projected, f.alerts.check_s, hooks)


def _observability(f: FleetFile, base: Path | None) -> Observability:
    o = f.observability
    log = o.access_log
    if log not in ("stderr", "off") and base is not None and not Path(log).is_absolute():
        log = str(base / log)
    return Observability(log, o.log_prompts, o.metrics_max_series)


def _key_hash(sha256: str | None, var: str | None, env: Mapping[str, str]) -> str | None:
    if sha256 is not None:
        return sha256
    return hash_key(env[var]) if var is not None else None


def _provider(name: str, pf: ProviderFile, env: Mapping[str, str], base: Path | None) -> Provider:
    path = f"providers.{name}"
    problems = Problems()
    kind = pf.kind or (name if name in PRICE_PROVIDER else None)
    if kind is None:
        raise ConfigError(f"{path}.kind: must be one of {', '.join(PRICE_PROVIDER)}, got None")
    url = (pf.base_url or DEFAULT_URL.get(kind) or "").rstrip("/")
    if not url:
        problems.add(f"{path}.base_url", "required for an openai-compatible provider")
    elif not url.startswith(("http://", "https://")):
        problems.add(f"{path}.base_url", f"must start with http:// or https://, got {url!r}")
    if kind == "anthropic" and pf.service_tier is not None:
        problems.add(f"{path}.service_tier", "only for OpenAI-style providers (a project's default tier)")
    if kind != "openai" and pf.data_residency is not None:
        problems.add(f"{path}.data_residency", "only for OpenAI providers (their regional endpoints' premium)")
    if kind != "anthropic" and pf.inference_geo is not None:
        problems.add(
            f"{path}.inference_geo", "only for Anthropic providers (a workspace's default inference geography)"
        )
    try:
        hop = _hop_of(pf, path, base)
    except ConfigError as e:
        problems.extend(e)
    problems.raise_any()
    regional = pf.data_residency
    if regional is None:
        regional = kind == "openai" and urlsplit(url).hostname in data_residency_hosts()
    return Provider(
        name, kind, url, env[pf.api_key_env], **hop, service_tier=pf.service_tier or "default",
        inference_geo=pf.inference_geo or "global", data_residency=regional,
    )  # fmt: skip


def _hop(pv: Mapping[str, Any], path: str, base: Path | None) -> dict[str, Any]:
    """providers.<name>'s hop settings as a mapping (the provider's key is not looked at)."""
    try:
        pf = ProviderFile.model_validate({"api_key_env": "UNCHECKED", **pv})
    except ValidationError as e:
        raise ConfigError(
            [f"{path}.{_line(err)}" for err in e.errors(include_input=False, include_url=False)]
        ) from None
    return _hop_of(pf, path, base)


def _hop_of(pf: ProviderFile, path: str, base: Path | None) -> dict[str, Any]:
    """How the gateway reaches a provider (TLS trust, proxy, timeouts, pool, transport)."""
    from ..providers.proxy import ProxyURLError, parse_proxy

    problems = Problems()
    out: dict[str, Any] = {
        "timeout_s": pf.timeout_s,
        "connect_timeout_s": pf.connect_timeout_s,
        "pool_timeout_s": pf.pool_timeout_s,
        "max_connections": pf.max_connections,
        "total_timeout_s": pf.total_timeout_s,
        "no_proxy": pf.no_proxy,
        "transport": pf.transport,
    }
    if pf.ca_bundle is not None:
        ca = Path(pf.ca_bundle).expanduser()
        if not ca.is_absolute() and base is not None:
            ca = base / ca
        try:
            ssl.create_default_context(cafile=str(ca))
            out["ca_bundle"] = str(ca)
        except FileNotFoundError:
            problems.add(f"{path}.ca_bundle", f"no such file: {ca}")
        except (ssl.SSLError, OSError, ValueError) as e:
            problems.add(f"{path}.ca_bundle", f"not a PEM file of CA certificates: {ca} ({e})")
    if pf.proxy is not None:
        if pf.proxy.strip().lower() != "none":
            try:
                parse_proxy(pf.proxy, f"{path}.proxy")
            except ProxyURLError as e:
                problems.lines.append(_without_password(str(e), pf.proxy))
        out["proxy"] = pf.proxy
    if pf.transport == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            problems.add(f"{path}.transport", "aiohttp is not installed (pip install 'paymaster[aiohttp]')")
    problems.raise_any()
    return out


def _without_password(message: str, url: str) -> str:
    """`message` with the user:password of `url` (a proxy's credentials) masked."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (sep and at):
        return message
    return message.replace(url, f"{scheme}://***@{host}").replace(userinfo, "***")


def _resolve(
    model: str,
    path: str,
    providers: dict[str, Provider],
    explicit: dict[str, str],
    overrides: dict[str, dict[str, Any]],
    prices: PriceTable,
) -> Model:
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


def _task(name: str, tf: TaskFile, base: Task | None) -> Task:
    given = tf.model_fields_set
    return Task(
        name=name,
        max_tokens=tf.max_tokens if tf.max_tokens is not None else (base.max_tokens if base else None),
        schema=tf.json_schema if "json_schema" in given else (base.schema if base else None),
        brevity=tf.brevity if "brevity" in given else (base.brevity if base else None),
        tier=tf.tier if "tier" in given else (base.tier if base else DEFAULT_TASK_TIERS.get(name)),
        defer=bool(tf.defer) if tf.defer is not None else (base.defer if base else False),
    )


def _agent(name: str, af: AgentFile, key_hash: str, f: FleetFile, tasks: dict[str, Task], resolve: Any) -> Agent:
    path = f"agents.{name}"
    model = af.model
    auto = model == "auto"
    tiers = {k: v for k in TIERS if (v := getattr(af.tiers, k)) is not None}
    if auto and len(tiers) < 2:
        raise ConfigError(f"{path}.tiers: model: auto needs at least two tiers, e.g. light: claude-haiku-4-5, heavy: …")
    if tiers and not auto:
        raise ConfigError(f"{path}.tiers: tiers are for model: auto")
    allowed_raw = af.models if af.models is not None else ([] if tiers else [model])
    if not (allowed_raw or tiers):
        raise ConfigError(f"{path}.models: must be a non-empty list of model names")
    allowed = tuple(allowed_raw)
    if model not in allowed and not auto:
        allowed = (model, *allowed)
    allowed = (*allowed, *(m for m in tiers.values() if m not in allowed))
    for i, m in enumerate(allowed):
        where = f"{path}.model" if m == model else (f"{path}.models[{i}]" if m in allowed_raw else f"{path}.tiers")
        resolve(m, where)
    agent_tasks = {n: Task(n, tier=tier) for n, tier in DEFAULT_TASK_TIERS.items()}
    agent_tasks.update(tasks)
    for tname, tf in af.tasks.items():
        agent_tasks[tname] = _task(tname, tf, tasks.get(tname))
    share = f.fleet.caching.share_across_agents
    return Agent(
        name=name,
        key_hash=key_hash,
        model=model,
        models=allowed,
        daily_usd=af.daily_usd,
        monthly_usd=af.monthly_usd,
        max_tokens=af.max_tokens if af.max_tokens is not None else f.defaults.max_tokens,
        caching=Caching(af.caching.enabled, af.caching.ttl, "" if share else cache_scope(name)),
        response_cache=ResponseCache(af.response_cache.enabled, af.response_cache.ttl_s),
        brevity=af.brevity,
        tasks=agent_tasks,
        tiers=tiers,
        defer=af.defer,
        webhook=af.webhook,
        compression=_compression(
            CompressionFile() if af.compression is None and "compression" in af.model_fields_set else af.compression,
            path,
            allowed,
        ),  # `compression:` alone (null) is the block with its defaults, like every other section
        limits=_limits(af.limits if af.limits is not None else f.defaults.limits),
    )


def _compression(c: CompressionFile | None, path: str, allowed: tuple[str, ...]) -> Compression:
    """agents.<name>.compression → the lever's settings (issue 13); off without the block."""
    if c is None:
        return Compression()
    if c.summarise.model is not None and c.summarise.model not in allowed:
        raise ConfigError(f"{path}.compression.summarise.model: {c.summarise.model!r} is not one of the agent's models")
    p, st, su = c.prune, c.strip, c.summarise

    def keys(names: list[str]) -> frozenset[str]:
        return frozenset(k.lower().replace("-", "_") for k in names)

    return Compression(
        enabled=c.enabled,
        prune=Prune(
            enabled=p.enabled,
            min_tokens=p.min_tokens,
            max_items=p.max_items,
            drop_empty=p.drop_empty,
            noise_keys=keys(p.noise_keys) if p.noise_keys is not None else None,
            extra_noise_keys=keys(p.extra_noise_keys),
            tools={name: ToolRule(tuple(t.keep), t.max_items) for name, t in p.tools.items()},
        ),
        html=Html(c.html.enabled),
        strip=Strip(st.enabled, st.base64_min_chars, st.boilerplate_min_chars),
        summarise=Summarise(su.enabled, su.threshold_tokens, su.keep_turns, su.keep_tokens, su.model, su.max_tokens),
    )


def _limits(lf: AgentLimitsFile) -> AgentLimits:
    return AgentLimits(lf.requests_per_minute, lf.tokens_per_minute, lf.max_in_flight, lf.loop_calls,
                       lf.loop_window_s, lf.loop_block)  # fmt: skip


def _routing(r: RoutingFile, base: Path | None) -> Routing:
    share = r.target_heavy_share if r.target_heavy_share is not None else (None if r.min_quality is not None else 0.3)
    return Routing(
        target_heavy_share=share,
        min_quality=r.min_quality,
        fallbacks={m: tuple(chain) for m, chain in r.fallbacks.items()},
        cooldown_s=r.cooldown_s,
        allow_pricier_fallback=r.allow_pricier_fallback,
        degrade_at=r.degrade_at,
        share_window=r.share_window,
        share_warmup=r.share_warmup,
        state=str(base / r.state) if r.state is not None and base is not None else r.state,  # beside fleet.yaml
        cascade=tuple(r.cascade),
        feedback_tasks=tuple(r.feedback_tasks),
        feedback_floor=r.feedback_floor,
        feedback_explore=r.feedback_explore,
        feedback_keep_days=r.feedback_keep_days,
    )
