"""The lever protocol: what every lever is, what it is given, and how the pipeline runs them.

A lever is an object with a `name` and an async `apply(call, ctx)`; the pipeline runs the levers of
`levers.LEVERS` in that order, once per call, on the request in the caller's own API shape. Optional
hooks (a lever defines only those it needs; the pipeline calls only the levers that define them):

    shape(call, ctx)               each attempt, on the request as the provider will get it (translated)
    fallback(call, tried, out, ctx) a model to retry on should this attempt fail retryably, or None
    retried(call, model, why, ctx) the attempt failed retryably: the call moves to `model`
    settled(call, outcome, ctx)    after each settlement, before its ledger row is written
    undo(bill, call, ctx)          savings attribution: the bill as it would have been without this lever

A lever keeps its state across calls on itself (a cache, a router's cooldowns) and its per-call notes in
`ctx.state[self.name]`, never as fields on `Call`. Removing a lever is deleting its module and its line in
`levers.LEVERS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..call import Call, Usage

if TYPE_CHECKING:
    from ..blackboard import Blackboard
    from ..budget import Budget
    from ..config import Agent, Config, Task
    from ..pricing import Rates


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer a lever gives in place of the provider's (the response cache). The pipeline books it at
    zero cost — a ledger row with status `source` — and sends `body` with `headers` and the usual
    x-paymaster-* headers."""

    body: bytes
    model: str  # the model that made the answer
    source: str  # the ledger row's status, e.g. "response_cache"
    usage: Usage  # what making it took (savings attribution: what the call would have cost)
    cost_nanos: int  # what making it cost
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(slots=True)
class Settlement:
    """One attempt, booked: what the provider will bill for it. Read-only for the levers (not frozen:
    one is made for every call, and a frozen dataclass costs several times as much to make)."""

    status: str  # ok | upstream_error | unreachable | timeout | disconnected | cut | bad_upstream_body
    model: str
    usage: Usage  # as reported (the partial counts of an interrupted call)
    cost_nanos: int
    exact: bool  # the cost is the provider's own figures (status ok, nothing booked at the worst case)
    rates: Rates
    answer: bytes | None = None  # a complete non-streamed 200 answer, as the caller receives it


@dataclass(frozen=True, slots=True)
class Bill:
    """A call as it would be billed, for savings attribution: priced with `Services.price`."""

    model: str
    usage: Usage


class Services(Protocol):
    """What the gateway lends levers (through `ctx.gateway`)."""

    config: Config
    board: Blackboard
    budget: Budget
    clock: Callable[[], float]

    def rates_of(self, model: str) -> Rates: ...

    def price(self, bill: Bill) -> int:
        """`bill` in integer nano-dollars."""
        ...

    def ask(self, agent: Agent, api: str, body: dict[str, Any], task: str) -> Awaitable[tuple[int, bytes]]:
        """A call through the whole gateway on `agent`'s budget (admitted, capped, booked with `task` as its
        task type, levers applied): (HTTP status, body) in `api`'s wire format."""
        ...


@dataclass(slots=True)
class LeverContext:
    """One call's context, handed to every hook of every lever."""

    agent: Agent
    task: Task | None  # the declared task type (x-paymaster-task), resolved against the agent's config
    headers: dict[bytes, bytes]  # the caller's request headers
    gateway: Services
    state: dict[str, Any] = field(default_factory=dict)  # per-call notes, keyed by lever name
    ledger: dict[str, Any] = field(default_factory=dict)  # LedgerRow columns levers set (in `settled`)


class Lever(Protocol):
    name: str

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        """May change the request (`call.body`, `call.model`, `call.max_tokens`), say so in `call.notes`
        (response headers) and keep notes in `ctx.state[self.name]`; an Answer ends the call there.
        A lever that only works on the provider's shape (`shape`) may leave `apply` out."""
        ...


# Per call: apply, shape (each attempt), fallback, retried, settled, undo (savings: the bill without the lever;
# credited under the lever's `credit` name when it has one). Per process: `async start(store)` once the store is
# open (load shared state), `async stop()` before it closes (write it back).
HOOKS = ("apply", "shape", "fallback", "retried", "settled", "undo", "start", "stop")


def hooked(levers: list[Any], hook: str) -> tuple[Any, ...]:
    """The levers (in order) that define `hook`: the pipeline calls no hook a lever left out."""
    return tuple(lever for lever in levers if callable(getattr(lever, hook, None)))


__all__ = ["HOOKS", "Answer", "Bill", "Lever", "LeverContext", "Services", "Settlement", "hooked"]
