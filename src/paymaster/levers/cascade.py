"""The verified-cascade lever: for a task type in `routing.cascade`, the cheaper tiers answer first.

Runs before output control, on the caller's own request: each cheaper tier (cheapest first) is asked
through the whole gateway (`ctx.gateway.ask`: admitted against the agent's caps, booked under the task
type, levers applied); the first answer that passes `routing_cascade.check` is the caller's answer
(booked as a zero-cost `cascade` row whose call id the caller gets; the attempt's own row carries its
cost). When none passes, the call goes on to the routing lever, which sends it to the top tier.
Non-streamed auto calls only. `x-paymaster-cascade` says what was tried.

Savings (credited to routing, savings.ORDER): each attempt is judged as it settles, by the same check. The
attempt that passed is attributed like a routed call — its baseline is the top tier's price for its usage, so
it is credited the difference; an attempt that failed has no counterfactual (without the cascade it would not
have been made): its baseline is nothing and its whole cost is a negative saving. Summed over a cascade, the
saving is the top tier's price for the answer less every attempt; when no cheaper tier passes, it is minus
what the failed attempts cost.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

from ..call import Call, Usage
from ..config import TIERS, Config
from ..costmodel import Unbounded, estimate
from ..pricing import to_nanos
from .base import Answer, Bill, LeverContext, Services, Settlement
from .routing_cascade import cascade, ladder_within, verdict

__all__ = ["Cascade", "Escalated", "make"]


@dataclass(frozen=True, slots=True)
class Escalated:
    """No cheaper tier passed: the call runs on `model` (`ctx.state["cascade"]`, read by routing)."""

    model: str
    trail: str


@dataclass(slots=True)
class Trying:
    """The attempt in flight in this task (`IN_FLIGHT`): how its settlement is judged."""

    model: str
    task: str
    request: dict[str, Any]  # the caller's request, which the answer is checked against
    schema: Any
    top: str  # the tier the cascade saves against
    judged: bytes | None = None  # the answer `settled` checked (an exactly booked 200), `why` its verdict
    why: str | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """An attempt's verdict, on its own context (read by `undo`)."""

    top: str
    passed: bool


IN_FLIGHT: ContextVar[Trying | None] = ContextVar("paymaster_cascade_attempt", default=None)


class Cascade:
    name = "cascade"
    credit = "routing"  # savings attribution: a cascade is model routing (savings.ORDER)

    def __init__(self, config: Config, gateway: Services) -> None:
        self.tasks = frozenset(config.routing.cascade)
        self.gateway = gateway

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        task, agent = ctx.task, ctx.agent
        if call.model != "auto" or call.stream or task is None or task.name not in self.tasks or not agent.tiers:
            return None  # an attempt names its model: never cascaded again
        if call.api not in ("anthropic", "openai"):
            return None  # the check reads Messages and Chat Completions answers only
        ladder = [agent.tiers[t] for t in TIERS if t in agent.tiers]
        left = [r for r in self.gateway.budget.remaining(agent.name) if r is not None]
        tried_ladder = ladder_within(
            ladder, lambda m: self._worst(call, m, call.max_tokens or agent.max_tokens), min(left) if left else None
        )
        if len(tried_ladder) == 1:  # only the top tier is sure to fit: no cheaper attempt first
            trail = f"cheaper tiers skipped: what is left fits {ladder[-1]}'s worst case, not theirs as well"
            call.notes["x-paymaster-cascade"] = trail
            ctx.state[self.name] = Escalated(ladder[-1], trail)
            return None

        attempts: list[Trying] = []

        async def ask(body: dict[str, Any]) -> tuple[int, bytes]:
            attempts.append(Trying(body["model"], task.name, call.body, task.schema, ladder[-1]))
            token = IN_FLIGHT.set(attempts[-1])
            try:
                return await self.gateway.ask(agent, call.api, body, task.name)
            finally:
                IN_FLIGHT.reset(token)

        def judge(raw: bytes) -> str | None:  # the settlement hook's verdict when it checked this very answer
            last = attempts[-1]
            return last.why if last.judged == raw else verdict(call.api, call.body, raw, task.schema)

        answer, tried = await cascade(call.api, call.body, ladder, ask, task.schema, judge)
        trail = "; ".join(f"{a.model} {'passed' if a.failed is None else 'failed: ' + a.failed}" for a in tried)[:1000]
        if answer is not None:
            return Answer(answer, tried[-1].model, "cascade", Usage(), 0, ((b"x-paymaster-cascade", trail.encode()),))
        call.notes["x-paymaster-cascade"] = trail
        ctx.state[self.name] = Escalated(ladder[-1], trail)
        return None

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        """An attempt of a cascade (not a call a lever makes within it) settled: judge it as `cascade` will."""
        trying = IN_FLIGHT.get()
        if trying is None or call.model != trying.model or call.task != trying.task:
            return
        why: str | None = "not answered"
        if outcome.status == "ok" and outcome.answer is not None:
            why = verdict(call.api, trying.request, outcome.answer, trying.schema)
            trying.judged, trying.why = outcome.answer, why
        ctx.state[self.name] = Judged(trying.top, why is None)

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        """A passing attempt: the call on the top tier; a failing one: no call at all."""
        judged = ctx.state.get(self.name)
        if not isinstance(judged, Judged):
            return bill
        return Bill(judged.top, bill.usage) if judged.passed else Bill(bill.model, Usage())

    def _worst(self, call: Call, model: str, max_tokens: int) -> int | None:
        """The call's coarse worst case on `model` in nano-dollars, as the caller's API shapes it (None: unknown),
        where its provider runs a call naming none: the project's default service tier, the workspace's default
        inference geography (as admission prices it)."""
        body = {**call.body, "model": model}
        rates = self.gateway.rates_of(model)
        spec = self.gateway.config.models.get(model)
        tier, geo = (spec.provider.service_tier, spec.provider.inference_geo) if spec is not None else ("", "")
        try:
            est = estimate(
                body, call.api, len(orjson.dumps(body)), rates, rates.context_window, default_tier=tier, default_geo=geo
            )
        except (Unbounded, ValueError):
            return None
        return to_nanos(est.worst_case(0, max_tokens * call.choices))


def make(config: Config, gateway: Services) -> Cascade:
    return Cascade(config, gateway)
