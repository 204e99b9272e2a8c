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

from ..call import Call, Usage
from ..config import TIERS, Config
from .base import Answer, LeverContext, Services
from .routing_cascade import cascade

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
        ladder = [agent.tiers[t] for t in TIERS if t in agent.tiers]

        async def ask(body: dict[str, Any]) -> tuple[int, bytes]:
            return await self.gateway.ask(agent, call.api, body, task.name)

        answer, tried = await cascade(call.api, call.body, ladder, ask, task.schema)
        trail = "; ".join(f"{a.model} {'passed' if a.failed is None else 'failed: ' + a.failed}" for a in tried)[:1000]
        if answer is not None:
            return Answer(answer, tried[-1].model, "cascade", Usage(), 0, ((b"x-paymaster-cascade", trail.encode()),))
        call.notes["x-paymaster-cascade"] = trail
        ctx.state[self.name] = Escalated(ladder[-1], trail)
        return None


def make(config: Config, gateway: Services) -> Cascade:
    return Cascade(config, gateway)
