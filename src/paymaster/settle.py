"""Settlement: book each attempt exactly once, at what the provider will bill.

A finished call costs its reported usage; a call the provider refused or never received costs nothing.
A finished call whose answer carried no usable usage (`usage` None: missing, a count missing or
malformed, inconsistent), or reported a billable field nothing can price (`usage.unpriced`), is booked
at its reserved worst case (never below what its usage prices at) and flagged for reconciliation: never
at zero, never dropped. An interrupted one (timeout, cut stream, agent gone) may have been billed for
every output token it was allowed, so it is booked so, on the input the provider reported (`partial`)
or, when none was, at the full worst case — and flagged for reconciliation.

The levers' `settled` hooks run between pricing and booking (they may set ledger columns); one that
raises is logged and skipped — a lever's bug never loses a booking.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import savings
from .budget import LEDGER_INT_MAX, Budget, Periods, Refusal
from .call import Call, Usage
from .costmodel import data
from .costmodel import responses as responses_cost
from .ids import call_id
from .levers.base import Answer, Bill, Settlement
from .pricing import Rates, from_nanos, plain_tokens, to_nanos
from .store.row import LedgerRow
from .store.shared import SharedStore
from .store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from .exchange import Exchange

log = logging.getLogger("paymaster")


@dataclass(slots=True)
class Charge:
    """What an attempt costs under the settlement rules."""

    cost_usd: Decimal
    usage: Usage
    reconcile: int
    error: str


def price(
    call: Call,
    rates: Rates,
    worst_nanos: int,
    max_tokens: int,
    status: str,
    usage: Usage | None,
    error: str,
    partial: Usage | None,
    ran: tuple[str, str] = ("", ""),
) -> Charge:
    """The settlement rules (see the module docstring) for one attempt; `ran` is the (speed, geography) the
    request runs at (`modifiers_of`), for an interrupted call whose reported input does not say."""
    reconcile = 0
    if status == "ok":
        if usage is not None and call.target_api == "openai" and "web_search_options" in call.body:
            # a search model searches once per request and reports it nowhere in usage
            # (developers.openai.com/api/docs/guides/tools-web-search, Chat Completions)
            usage.server_tool_uses.setdefault("web_search", 1)
        try:
            cost_usd = rates.cost(usage) if usage is not None else from_nanos(worst_nanos)
            if usage is not None and call.target_api == "openai":
                cost_usd += search_fee_shortfall(rates, usage)
            elif usage is not None and call.target_api == "responses":
                cost_usd += responses_cost.tool_fees(rates, usage.server_tool_uses, call.body)
        except ValueError as e:  # counts that contradict each other: no bill can be read from them
            cost_usd, usage, error = from_nanos(worst_nanos), None, f"{e}; "
        if usage is None:
            reconcile, error = 1, error + "the provider reported no usable usage: booked at the worst case"
        elif unpriced := (*usage.unpriced, *unpriceable(rates, usage)):
            reconcile, cost_usd = 1, max(cost_usd, from_nanos(worst_nanos))
            error = f"usage fields with no price ({', '.join(unpriced)}): booked at the worst case"
    elif status in ("upstream_error", "unreachable"):
        cost_usd = Decimal(0)
    else:
        reconcile, cost_usd = 1, from_nanos(worst_nanos)
        # server tools (web search, web fetch) and server-side compaction run after the first counts were
        # sent: the searches made, the results they added and the compaction step are unknown, so such a
        # call stays at its worst case
        if partial is not None and partial.input_tokens and not partial.unpriced and not later_steps(call):
            partial.output_tokens = max_tokens * call.choices
            # message_start's usage need not say where or how fast the call runs; the final usage would
            partial.speed, partial.inference_geo = partial.speed or ran[0], partial.inference_geo or ran[1]
            with contextlib.suppress(ValueError):
                if not unpriceable(rates, partial):
                    cost_usd = rates.cost(partial)
    usage = usage if usage is not None and status == "ok" else (partial or Usage())
    return Charge(cost_usd, usage, reconcile, error)


class Settler:
    """Prices an attempt, lets the levers see it, and books it through the budget."""

    def __init__(
        self,
        budget: Budget,
        settled_hooks: tuple[Any, ...],
        booked: Callable[[Call, LedgerRow], None] | None = None,
        undoers: tuple[Any, ...] = (),
        price_bill: Callable[[Bill], int] | None = None,
    ) -> None:
        self.budget = budget
        self.hooks = settled_hooks  # the levers that define `settled`, in list order
        self.booked = booked  # told of every row booked (metrics, the access log)
        self.undos = savings.undos_of(undoers)  # the levers' `undo` hooks (savings attribution), in list order
        self.price_bill = price_bill

    def __call__(
        self,
        x: Exchange,
        status: str,
        usage: Usage | None,
        error: str,
        rid: str,
        partial: Usage | None = None,
        answer: bytes | None = None,
    ) -> int:
        """Book the attempt; returns its cost in nano-dollars (what the answer's cost header shows)."""
        call, rates, t, ctx = x.call, x.rates, x.ticket, x.ctx
        ran = modifiers_of(call, rates, x.up.provider.inference_geo) if partial is not None else ("", "")
        p = price(call, rates, t.worst, t.max_tokens, status, usage, error, partial, ran)
        usage = p.usage
        nanos = to_nanos(p.cost_usd)
        exact = status == "ok" and not p.reconcile  # the cost comes from the provider's own figures
        uncached = nanos
        if exact and not plain_tokens(usage):  # what it would have cost with no prompt caching
            plain = Usage(usage.input_tokens, usage.output_tokens, speed=usage.speed, inference_geo=usage.inference_geo)
            uncached = to_nanos(rates.cost(plain))
        exposure = 0
        if call.max_tokens_requested and call.max_tokens_requested > t.max_tokens:
            cut = (call.max_tokens_requested - t.max_tokens) * call.choices
            exposure = to_nanos(cut * rates.output_rate(call.input_bound))
        over = nanos > t.worst
        if over:  # the bound missed a billable part: booked in full, flagged, and the agent stopped if it is spent
            log.warning("call %s cost %s above its reserved worst case %s", t.id, nanos, t.worst)
            p.reconcile = 1
            p.error = (
                f"billed ${from_nanos(nanos)} above its reserved worst case ${from_nanos(t.worst)}: booked in full; "
                + p.error
            )
        if self.hooks:
            outcome = Settlement(status, call.model, usage, nanos, exact, rates, answer if exact else None)
            for lever in self.hooks:
                try:
                    lever.settled(call, outcome, ctx)
                except Exception:  # noqa: BLE001 — the booking below must happen whatever a lever does
                    log.exception("lever %s failed after settling call %s", lever.name, t.id)
        columns = ctx.ledger
        baseline, by_lever = nanos, "{}"
        if exact and self.undos and self.price_bill is not None:
            priced = None if usage.server_tool_uses else nanos  # the booked cost is the bill's price but for fees
            saved = savings.of_undos(
                self.undos, self.price_bill, Bill(call.model, usage), nanos, call, ctx, priced=priced
            )
            baseline, by_lever = saved.baseline_nanos, saved.json()
        row = LedgerRow(
            id=t.id,
            ts=t.created,
            agent=call.agent,
            api=call.api,
            provider=x.up.provider.name,
            model_requested=columns.get("model_requested") or call.model,
            model=call.model,
            status=status,
            stream=int(call.stream),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            max_tokens=t.max_tokens,
            cost_usd=str(p.cost_usd),
            cost_nanos=nanos,
            worst_nanos=t.worst,
            day=t.day,
            month=t.month,
            reconcile=p.reconcile,
            latency_ms=round((time.perf_counter() - x.started) * 1000, 3),
            upstream_request_id=rid,
            error=p.error,
            task=call.task or "",
            max_tokens_requested=call.max_tokens_requested or 0,
            uncached_cost_nanos=uncached,
            exposure_removed_nanos=exposure,
            route=columns.get("route", ""),
            baseline_cost_nanos=baseline,
            savings=by_lever,
        )
        self.budget.settle(t, row)
        if over:
            self.budget.block_if_spent(call.agent)
        if self.booked is not None:
            self.booked(call, row)
        return nanos


def unpriceable(rates: Rates, u: Usage) -> list[str]:
    """What the call reported that the price table has no price for, so `Rates.cost` would leave it out:
    server-tool uses without a per-use fee (the cost model's data says which tools are free), a
    service tier, speed or inference geography the table does not price."""
    out = []
    if u.server_tool_uses:
        tools = data()["anthropic"]["server_tools"]
        for name, n in u.server_tool_uses.items():
            free = name in tools and Decimal(tools[name]["fee_usd"]) == 0
            if n and not free and rates.fee(name) is None and name not in responses_cost.priced_items():
                out.append(f"server_tool_use.{name}")
    if u.service_tier and not rates.prices_tier(u.service_tier):
        out.append(f"service_tier={u.service_tier}")
    if u.speed or u.inference_geo:
        out += [f"{param}={value}" for param, value in rates.unpriced_modifiers(u.speed, u.inference_geo)]
    if u.input_audio_tokens and not rates.input_audio:  # audio has its own rate; text's is far below it
        out.append("input audio tokens")
    if u.output_audio_tokens and not rates.output_audio:
        out.append("output audio tokens")
    return out


def modifiers_of(call: Call, rates: Rates, workspace_geo: str) -> tuple[str, str]:
    """(speed, inference geography) an Anthropic request runs at, "" for standard: what it names, else the
    workspace's geography on the models that take one — the cost model's rule (costmodel.anthropic)."""
    if call.target_api != "anthropic":
        return "", ""
    speed = call.body.get("speed")
    geo = call.body.get("inference_geo", workspace_geo if workspace_geo in rates.geos else None)
    return (
        speed if isinstance(speed, str) and speed != "standard" else "",
        geo if isinstance(geo, str) and geo != "global" else "",
    )


def later_steps(call: Call) -> bool:
    """Whether the request as sent can run steps only the final counts tell of: server tools (their uses and
    results) or Anthropic's server-side compaction (a `compact_*` context-management edit or a top-level
    `compaction`: its step is billed in the final usage's `iterations`, platform.claude.com …/compaction)."""
    if call.target_api == "openai":
        return "web_search_options" in call.body
    if call.target_api == "responses":
        return bool(responses_cost.server_tools(call.body))
    tools = call.body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "max_uses" in t for t in tools):
        return True
    if call.body.get("compaction") is not None:
        return True
    cm = call.body.get("context_management")
    edits = cm.get("edits") if isinstance(cm, dict) else None
    return any(
        isinstance(e, dict) and isinstance(e.get("type"), str) and e["type"].startswith("compact_")
        for e in (edits if isinstance(edits, list) else ())
    )


def search_fee_shortfall(rates: Rates, u: Usage) -> Decimal:
    """What an OpenAI search call's documented per-search fee adds over the price table's, when the
    table has a lower one (data/costmodel.yaml `openai.web_search`); the table's own is in `Rates.cost`."""
    n, fee = u.server_tool_uses.get("web_search", 0), rates.fee("web_search")
    if not n or fee is None:
        return Decimal(0)
    return n * max(Decimal(0), Decimal(str(data()["openai"]["web_search"]["fee_usd"])) - fee)


def answered(
    call: Call,
    answer: Answer,
    store: SQLiteStore | SharedStore,
    budget: Budget,
    now: float,
    booked: Callable[[Call, LedgerRow], None] | None = None,
    saved: savings.Attribution | None = None,
) -> str:
    """Book a call a lever answered in the provider's place (the response cache): zero cost, a ledger row
    saying where the answer came from and what making it cost. Returns the call's id."""
    row = free_row(call, answer.source, answer.model, now, budget.calendar.periods(now))
    row.max_tokens = call.max_tokens or 0
    row.uncached_cost_nanos = answer.cost_nanos
    if saved is not None:
        row.baseline_cost_nanos, row.savings = saved.baseline_nanos, saved.json()
    store.book(row)
    if booked is not None:
        booked(call, row)
    return row.id


def refused(call: Call, verdict: Refusal, store: SQLiteStore | SharedStore, now: float, periods: Periods) -> None:
    """A refused call is a ledger row too (status `refused`, cost 0, why in `error`), so reports count
    refusals from the ledger alone; `GET /admin/ledger` lists them only when asked for by status."""
    row = free_row(call, "refused", call.model, now, periods)
    row.worst_nanos = min(verdict.needed, LEDGER_INT_MAX)  # a worst case past any ledger integer: the largest
    row.error = f"{'call_too_large' if verdict.too_large else 'budget_exceeded'}: {verdict.window}"
    store.book(row)


def free_row(call: Call, status: str, model: str, now: float, periods: Periods) -> LedgerRow:
    """The ledger row of a call no provider was paid for (answered by the gateway, or refused)."""
    return LedgerRow(
        id=call_id(),
        ts=now,
        agent=call.agent,
        api=call.api,
        provider="gateway",
        model_requested=call.model,
        model=model,
        status=status,
        cost_usd="0",
        cost_nanos=0,
        day=periods.day,
        month=periods.month,
        task=call.task or "",
        max_tokens_requested=call.max_tokens_requested or 0,
    )
