"""Admin endpoints (admin key only): the blackboard and the ledger.

GET /admin/agents            every agent: status, spend, reserved and remaining per window
GET /admin/agents/{name}     one agent
GET /admin/events            Server-Sent Events: agent.blocked / agent.unblocked / budget.threshold
GET /admin/routing           what routing learnt: feedback bandit per agent x task type (tier shares, success per
                             tier, the safe tier), running-quantile windows; replicas: the whole fleet's counts
GET /admin/overview          what the dashboard draws (dashboard/overview.py)
GET /admin/ledger            the ledger, paged (?after=SEQ&limit=N) and filtered
                             (?agent= &status= &model= &since= &until= &reconcile=)
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from . import dashboard
from .batch.prices import batch_rates
from .blackboard import Blackboard
from .budget import Budget
from .call import Usage
from .config import PRICE_PROVIDER, Config, hash_key
from .errors import BadRequest, Forbidden, MethodNotAllowed, NotFound, Unauthorized
from .http import Receive, Scope, Send, bearer_or_key, header_map, json_response, read_json
from .pricing import to_nanos, usd_str
from .query import number, params
from .store.shared import SharedStore
from .store.sqlite import SQLiteStore

KEEPALIVE_S = 15.0
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
MAX_TS = 1e11  # epoch seconds (the year 5138)
MAX_CALL_USD = Decimal(1_000_000)  # a reconciled bill above this for one call is a typo, not a bill


async def _nothing() -> dict[str, Any]:
    return {}


async def _as_is(_agents: Sequence[str]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Admin:
    """What the admin endpoints read and correct: the gateway hands over these, not itself."""

    config: Config
    store: SQLiteStore | SharedStore
    budget: Budget
    board: Blackboard
    clock: Callable[[], float]
    routing: Callable[[], Awaitable[dict[str, Any]]] = _nothing  # what routing learnt (the routing lever's view)
    fleet: Any = None  # fleet/live.py: run-time changes of agents and keys (fleet/admin.py)
    # replicas: the agents' status and windows read from the shared store before a view (store/shared_status.py)
    refresh: Callable[[Sequence[str]], Awaitable[None]] = _as_is


async def handle(gw: Admin, scope: Scope, receive: Receive, send: Send) -> None:
    h = header_map(scope)
    key = bearer_or_key(h)
    if scope["method"] == "GET" and not key and dashboard.signed_in(gw.config, h):  # the dashboard's cookie: reads
        pass
    elif not key:
        raise Unauthorized("missing admin key")
    elif gw.config.admin_key_hash is None or not hmac.compare_digest(hash_key(key), gw.config.admin_key_hash):
        if gw.config.agent_by_key(key) is not None or (gw.fleet is not None and gw.fleet.known(key) is not None):
            raise Forbidden("an agent key cannot read admin endpoints")  # run-time keys (fleet/live.py) too
        raise Unauthorized("invalid admin key")
    path = scope["path"]
    if path.startswith("/admin/ledger/") and path.endswith("/reconcile"):
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{scope['method']} is not allowed on {path}; use POST")
        body, _ = await read_json(receive, h, 1 << 16)
        await json_response(send, reconcile(gw, path.split("/")[3], body))
        return
    if gw.fleet is not None and (scope["method"] != "GET" or path.startswith("/admin/keys")):
        from .fleet.admin import handle as change  # agents added / set / disabled, keys created / rotated / revoked

        await change(gw.fleet, scope, h, receive, send)
        return
    if scope["method"] != "GET":
        raise MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}")
    if path == "/admin/agents":
        await gw.refresh(list(gw.config.agents))
        await json_response(send, {"agents": [agent_view(gw, a) for a in gw.config.agents]})
    elif path.startswith("/admin/agents/"):
        name = path.removeprefix("/admin/agents/")
        if name not in gw.config.agents:
            raise NotFound(f"no agent named {name!r}")
        await gw.refresh([name])
        await json_response(send, agent_view(gw, name))
    elif path == "/admin/ledger":
        await json_response(send, ledger(gw, scope))
    elif path == "/admin/routing":  # what routing learnt: feedback bandit per agent x task, share windows
        await json_response(send, await gw.routing())
    elif path == "/admin/overview":
        await gw.refresh(list(gw.config.agents))
        await json_response(send, dashboard.overview(gw))
    elif path == "/admin/events":
        await events(gw, h, receive, send)
    else:
        raise NotFound(f"no admin route {path}")


def agent_view(gw: Admin, name: str) -> dict[str, Any]:
    a = gw.config.agents[name]
    day, month = gw.budget.remaining(name)
    return {
        "name": name,
        "model": a.model,
        "models": list(a.models),
        "max_tokens": a.max_tokens,
        "status": gw.board.status[name].public(),
        "disabled": gw.fleet is not None and name in gw.fleet.disabled,
        "remaining_daily_usd": usd_str(day) if day is not None else None,
        "remaining_monthly_usd": usd_str(month) if month is not None else None,
        "windows": gw.budget.view(name),
        "savings": {"today": savings(gw, name, "day"), "month": savings(gw, name, "month")},
        "open_calls": sum(1 for t in gw.budget.open.values() if t.agent == name),
        "refused_calls": gw.budget.refused[name],
    }


def savings(gw: Admin, agent: str, period: str) -> dict[str, Any]:
    """What the levers saved this agent, from the ledger's counterfactual costs."""
    p = gw.budget.calendar.periods(gw.clock())
    gw.store.flush()
    s = gw.store.savings(agent, period, p.day if period == "day" else p.month)
    provider_calls = s["calls"] - s["response_cache_hits"]
    return {
        "calls": s["calls"],
        "spent_usd": usd_str(s["cost"]),
        "without_caching_usd": usd_str(s["uncached"]),
        "caching_saved_usd": usd_str(max(0, s["uncached"] - s["cost"])),
        "prompt_cache_hit_rate": round(s["prompt_cache_hits"] / provider_calls, 4) if provider_calls else None,
        "cached_input_share": round(s["cache_read_tokens"] / s["input_tokens"], 4) if s["input_tokens"] else None,
        "response_cache_hits": s["response_cache_hits"],
        "response_cache_saved_usd": usd_str(s["response_cache_saved"]),
        "ceiling_exposure_removed_usd": usd_str(s["exposure_removed"]),
        "calls_without_max_tokens": s["unbounded_requests"],
    }


def ledger(gw: Admin, scope: Scope) -> dict[str, Any]:
    q = params(scope)
    known = {"agent", "status", "model", "since", "until", "reconcile", "after", "limit"}
    for k in q:
        if k not in known:
            raise BadRequest(f"unknown ledger filter {k!r} (use: {', '.join(sorted(known))})", param=k)

    limit = number(q, "limit", int, 100, 1, 1000)
    reconcile = q.get("reconcile")
    if reconcile not in (None, "true", "false", "1", "0"):
        raise BadRequest("reconcile: must be true or false", param="reconcile")
    gw.store.flush()  # include settlements committed this loop turn
    rows = gw.store.ledger(
        agent=q.get("agent"),
        status=q.get("status"),
        model=q.get("model"),
        since=number(q, "since", float, None, 0, MAX_TS),
        until=number(q, "until", float, None, 0, MAX_TS),
        reconcile=None if reconcile is None else reconcile in ("true", "1"),
        after=number(q, "after", int, 0, 0, MAX_SEQ),
        limit=limit,
    )
    return {"data": rows, "next_after": rows[-1]["seq"] if len(rows) == limit else None}


def reconcile(gw: Admin, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
    gw.store.flush()
    row = gw.store.row(call_id)
    if row is None:
        raise NotFound(f"no ledger row {call_id!r}")
    if not row["reconcile"]:
        raise BadRequest(f"ledger row {call_id!r} is not flagged for reconciliation")
    if ("cost_usd" in body) == ("usage" in body):
        raise BadRequest('give either "cost_usd" (the provider\'s bill) or "usage" (its token counts)')
    if "cost_usd" in body:
        try:
            cost = Decimal(str(body["cost_usd"]))
        except InvalidOperation:
            raise BadRequest(f"cost_usd: not a dollar amount: {body['cost_usd']!r}", param="cost_usd") from None
        if not cost.is_finite() or cost < 0 or isinstance(body["cost_usd"], bool):
            raise BadRequest("cost_usd: must be a non-negative dollar amount", param="cost_usd")
    else:
        cost = _usage_cost(gw, row["model"], body)
    if cost > MAX_CALL_USD:
        given = "cost_usd" if "cost_usd" in body else "usage"
        raise BadRequest(f"{given}: ${cost} for one call is not a bill (at most ${MAX_CALL_USD})", param=given)
    nanos = to_nanos(cost)
    gw.store.reconcile(call_id, str(cost), nanos, time.time())
    gw.budget.rebook(row["agent"], row["day"], row["month"], nanos - row["cost_nanos"])
    gw.board.publish(
        "ledger.reconciled", agent=row["agent"], call_id=call_id, booked_usd=row["cost_usd"], cost_usd=str(cost)
    )
    return gw.store.row(call_id) or {}


RECONCILE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "cache_audio_read_tokens",
    "output_audio_tokens",
)
RECONCILE_MODES = ("service_tier", "speed", "inference_geo")  # how the provider says it ran the call


def _usage_cost(gw: Admin, model_name: str, body: dict[str, Any]) -> Decimal:
    """The bill of a reconciled call from the provider's usage: its counts (`input_tokens` the total input,
    cache reads and writes included), the per-use fees of server tools, the service tier, speed and
    inference geography it ran at, and `"batch": true` for a call the provider ran in a batch — each priced
    as settlement prices them, so a call run in fast mode or at a priority tier is not reconciled at the
    standard rates."""
    u = body["usage"]
    shape = (
        f"usage: an object of non-negative integers among {', '.join(RECONCILE_COUNTS)}, strings among "
        f"{', '.join(RECONCILE_MODES)}, and server_tool_uses (tool name: number of uses)"
    )
    if not isinstance(u, dict) or set(u) - {*RECONCILE_COUNTS, *RECONCILE_MODES, "server_tool_uses"}:
        raise BadRequest(shape, param="usage")
    tools = u.get("server_tool_uses", {})
    if (
        not all(_count(u.get(f, 0)) for f in RECONCILE_COUNTS)
        or not all(isinstance(u.get(f, ""), str) and len(u.get(f, "")) <= 64 for f in RECONCILE_MODES)
        or not isinstance(tools, dict)
        or not all(isinstance(k, str) and _count(v) for k, v in tools.items())
    ):
        raise BadRequest(shape, param="usage")
    batch = body.get("batch", False)
    if not isinstance(batch, bool):
        raise BadRequest("batch: true or false", param="batch")
    if set(body) - {"usage", "batch"}:
        raise BadRequest(f"unknown fields: {', '.join(sorted(set(body) - {'usage', 'batch'}))}")
    if model_name not in gw.config.models:
        raise BadRequest(f"model {model_name!r} of that call is no longer configured")
    provider = PRICE_PROVIDER[gw.config.models[model_name].provider.kind]
    rates = batch_rates(gw.config, model_name) if batch else gw.config.prices.rates(model_name, provider)
    usage = Usage(**{k: v for k, v in u.items() if k != "server_tool_uses"}, server_tool_uses=dict(tools))
    speed, geo = usage.speed, usage.inference_geo
    if (speed or geo) and rates.modified(speed, geo) is None:
        raise BadRequest(
            f"usage: no price for {model_name} at speed {speed or 'standard'!r}, inference_geo {geo or 'global'!r}; "
            'give "cost_usd" (the provider\'s bill) instead',
            param="usage",
        )
    try:
        return rates.cost(usage)
    except ValueError as e:
        raise BadRequest(str(e), param="usage") from None


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**12


async def events(gw: Admin, h: dict[bytes, bytes], receive: Receive, send: Send) -> None:
    last = h.get(b"last-event-id", b"0")
    since = int(last) if last.isdigit() and len(last) <= 18 else 0
    if last.isdigit() and len(last) > 18:  # beyond any event's id (and, past 4,300 digits, what int() reads)
        since = MAX_SEQ
    q = gw.board.subscribe(since)
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()
        q.put_nowait((0, b""))

    watcher = asyncio.create_task(watch())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    try:
        await send({"type": "http.response.body", "body": b": paymaster events\n\n", "more_body": True})
        while not gone.is_set():
            try:
                _, frame = await asyncio.wait_for(q.get(), KEEPALIVE_S)
            except TimeoutError:
                frame = b": keep-alive\n\n"
            if frame:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
    finally:
        watcher.cancel()
        gw.board.unsubscribe(q)
