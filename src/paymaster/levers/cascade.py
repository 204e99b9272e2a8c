"""The verified-cascade lever: for a task type in `routing.cascade`, the cheaper tiers answer first.

Runs before output control, on the caller's own request: each cheaper tier (cheapest first) is asked
through the whole gateway (`ctx.gateway.ask`: admitted against the agent's caps, booked under the task
type, levers applied); the first answer that passes `routing_cascade.check` is the caller's answer
(booked as a zero-cost `cascade` row whose call id the caller gets; the attempt's own row carries its
cost). When none passes, the call goes on to the routing lever, which sends it to the top tier.
Non-streamed auto calls only. `x-paymaster-cascade` says what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..call import Call, Usage
from ..config import TIERS, Config
from ..costmodel import Unbounded, estimate
from ..pricing import to_nanos
from .base import Answer, LeverContext, Services
from .routing_cascade import cascade, ladder_within

__all__ = ["Cascade", "Escalated", "make"]


@dataclass(frozen=True, slots=True)
class Escalated:
    """No cheaper tier passed: the call runs on `model` (`ctx.state["cascade"]`, read by routing)."""

    model: str
    trail: str


class Cascade:
    name = "cascade"

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

        async def ask(body: dict[str, Any]) -> tuple[int, bytes]:
            return await self.gateway.ask(agent, call.api, body, task.name)

        answer, tried = await cascade(call.api, call.body, ladder, ask, task.schema)
        trail = "; ".join(f"{a.model} {'passed' if a.failed is None else 'failed: ' + a.failed}" for a in tried)[:1000]
        if answer is not None:
            return Answer(answer, tried[-1].model, "cascade", Usage(), 0, ((b"x-paymaster-cascade", trail.encode()),))
        call.notes["x-paymaster-cascade"] = trail
        ctx.state[self.name] = Escalated(ladder[-1], trail)
        return None

    def _worst(self, call: Call, model: str, max_tokens: int) -> int | None:
        """The call's coarse worst case on `model` in nano-dollars, as the caller's API shapes it (None: unknown)."""
        body = {**call.body, "model": model}
        rates = self.gateway.rates_of(model)
        try:
            est = estimate(body, call.api, len(orjson.dumps(body)), rates, rates.context_window)
        except (Unbounded, ValueError):
            return None
        return to_nanos(est.worst_case(0, max_tokens * call.choices))


def make(config: Config, gateway: Services) -> Cascade:
    return Cascade(config, gateway)
