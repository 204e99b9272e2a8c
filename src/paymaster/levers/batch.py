"""Deferral: a call sent with `x-paymaster-defer: <deadline>` is not forwarded but queued for the provider's
batch API at half price (`paymaster.batch`); the agent gets 202 and a job id at once.

<deadline>: seconds from now ("3600"), a duration ("90m", "24h", "2d"), an ISO 8601 time, or "true" (no
deadline: sent when its queue flushes). The agent's or the task type's `defer: true` defers every call that
does not stream and does not ask for Anthropic's fast mode (not available with the Batch API), as `true` would.
The pipeline sends a call this lever marked to `Batches` after the other levers have run (routing tiers, cache
breakpoints apply to batched requests as in real time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..batch.prices import FAST_IN_BATCH, fast_mode
from ..errors import BadRequest
from .base import Answer, Bill, LeverContext, Services

if TYPE_CHECKING:
    from ..call import Call
    from ..config import Config

HEADER = b"x-paymaster-defer"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


@dataclass(slots=True)
class Deferred:
    deadline: float | None  # epoch seconds; None: whenever the queue flushes


def deadline(value: str, now: float) -> float | None:
    """The epoch deadline a header value names (BadRequest when it names none)."""
    v = value.strip().lower()
    if v in ("true", "yes", ""):
        return None
    m = DURATION.fullmatch(v)
    if m:
        return now + float(m.group(1)) * UNITS[m.group(2) or "s"]
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest(
            f"x-paymaster-defer: {value!r} is not a deadline (seconds, 90m, 24h, 2d, an ISO 8601 time, or true)",
            param="x-paymaster-defer",
        ) from None


class Deferral:
    name = "batch"

    def __init__(self, gateway: Services) -> None:
        self.gateway = gateway

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        v = ctx.headers.get(HEADER)
        if v is None:
            if (
                (ctx.agent.defer or (ctx.task is not None and ctx.task.defer))
                and not call.stream
                and not fast_mode(call)
            ):
                ctx.state[self.name] = Deferred(None)  # by setting (a streamed or fast-mode call stays real-time)
            return None
        if call.stream:
            raise BadRequest("a deferred call cannot stream: drop stream or x-paymaster-defer", param="stream")
        if fast_mode(call):
            raise BadRequest(FAST_IN_BATCH, param="speed")
        ctx.state[self.name] = Deferred(deadline(v.decode("latin-1"), self.gateway.clock()))
        return None

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        # the batch discount is a price, not a change to the bill: the job records its real-time price
        # (batch_jobs.realtime_nanos, the ledger's baseline_cost_nanos) for attribution
        return bill


def make(config: Config, gateway: Services) -> Deferral:
    return Deferral(gateway)
