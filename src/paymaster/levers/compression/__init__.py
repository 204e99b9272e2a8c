"""Context compression: send the model only the tokens it needs.

Runs after output control and before routing and caching, on the request in the caller's API shape:

1. tool-result pruning (`prune.py`, `results.py`): JSON results lose noise keys, null and empty
   values and the tail of long arrays (with an "N more items omitted" marker); per-tool keep-rules
   keep only named fields; whitespace is compacted; HTML results become readable text
   (`html_text.py`);
2. verbose-response stripping (`strip.py`): JSON inside strings unwrapped, base64 blobs replaced by
   a placeholder with their size, boilerplate lines said once per conversation;
3. summarisation (`summarise.py`, `summaries.py`): above `threshold_tokens`, the older messages are
   replaced by a structured summary the agent's light-tier model writes through the gateway (booked
   to the agent with task type `compression`); the system prompt, the latest messages and pinned
   ones (`"paymaster_pin": true` on a message) stay verbatim; summaries are stored by prefix hash and
   extended, not rewritten, as the conversation grows.

Every technique is deterministic on its input, so a conversation's earlier turns compress to the same
bytes on every call and its cached prefix stays cached; a summary moves the cache point once. Any
failure inside compression sends the request as it came and says why in the log and in
`x-paymaster-compression`. What each technique removed (tokens, estimated at 4 bytes a token) is the
call's note in `ctx.state["compression"]`; `undo` hands savings attribution the input without it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ...call import Call, Usage
from .results import Memo, Tally, approx_tokens, compress_results
from .summaries import Summary, SummaryStore, path_beside, prefix_hashes
from .summarise import answer_text, choose_cut, pins_closed, request, sizes, splice, take_pins

if TYPE_CHECKING:
    from ...config import Agent, Config
    from ..base import Answer, Bill, LeverContext, Services, Settlement

log = logging.getLogger("paymaster.compression")

TASK = "compression"  # the task type summarisation calls are booked under
PAUSE_S = 60.0  # after a summariser failure, an agent's calls are pruned but not summarised for this long


@dataclass(slots=True)
class Squeezed:
    """One call's compression: tokens before and after, removed per technique, what the summary cost."""

    before: int
    after: int
    removed: dict[str, int] = field(default_factory=dict)  # prune | html | strip | summarise -> tokens
    summary: str = ""  # "" | "new" | "extended" | "reused"
    summary_model: str = ""
    summary_cost_nanos: int = 0  # the summariser's call, booked on its own ledger row (task "compression")

    @property
    def tokens_removed(self) -> int:
        return sum(self.removed.values())

    def header(self) -> str:
        parts = [f"{k} -{v}" for k, v in self.removed.items() if v]
        if self.summary:
            parts.append(f"summary {self.summary}")
        return f"{self.before} -> {self.after} tokens ({', '.join(parts)})"


class SummaryFailed(Exception):
    """The summariser's call did not give a summary (refused, failed, or empty)."""


class Compressor:
    name = "compression"

    def __init__(self, config: Config, gateway: Services) -> None:
        self.gateway = gateway
        self.memo = Memo()
        self.store = SummaryStore(path_beside(config.ledger))
        self._writing: dict[tuple[str, str], asyncio.Future[Summary]] = {}  # summaries being written
        self._paused: dict[str, float] = {}  # agent -> when its summaries may be asked for again

    async def start(self, store: object) -> None:
        """Replicas: summaries in Postgres, shared by every replica (summaries.py)."""
        from ...store.shared import SharedStore

        if isinstance(store, SharedStore):
            self.store.shared = store.pg.db

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        body = call.body
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        messages, pinned = take_pins(messages)  # the pin key never reaches a provider, compression on or off
        if messages is not body["messages"]:
            body["messages"] = messages
        s = ctx.agent.compression
        if not s.enabled or call.task == TASK:
            return None
        try:
            note = await self.compress(call, ctx.agent, messages, pinned)
        except Exception as e:  # never break a call: it goes as it came
            log.warning("compression skipped for agent %s: %s: %s", call.agent, type(e).__name__, e)
            self._paused[call.agent] = self.gateway.clock() + PAUSE_S  # no summariser call per call meanwhile
            body["messages"] = messages
            call.notes["x-paymaster-compression"] = f"skipped ({type(e).__name__})"
            return None
        if note is not None:
            ctx.state[self.name] = note
            call.notes["x-paymaster-compression"] = note.header()
        return None

    async def compress(self, call: Call, agent: Agent, messages: list[Any], pinned: set[int]) -> Squeezed | None:
        """`call.body["messages"]` compressed by the agent's techniques; the note, or None if nothing changed."""
        s = agent.compression
        api = call.api
        tally = Tally()
        out = messages
        if s.prune.enabled or s.html.enabled or s.strip.enabled:
            out = compress_results(messages, api, s, self.memo, tally)
        before_size = sizes(messages)
        size = before_size if out is messages else sizes(out)
        note = Squeezed(
            before=sum(before_size), after=sum(size), removed=_shares(tally.removed, sum(before_size) - sum(size))
        )
        extra = _system_tokens(call.body, api)
        # the threshold is on the context as the agent sent it; a summary is kept while the request it
        # makes (compressed) stays under the threshold, then extended
        if (
            s.summarise.enabled
            and note.before + extra > s.summarise.threshold_tokens
            and self._paused.get(call.agent, 0.0) <= self.gateway.clock()
        ):
            spliced = await self.summarise(call, agent, out, size, pinned, extra, note)
            after = sum(sizes(spliced)) if spliced is not None else note.after
            if spliced is not None and after < note.after:
                note.removed["summarise"] = note.after - after
                note.after, out = after, spliced
            elif spliced is not None:  # a summary longer than the turns it stands for is not sent
                note.summary += " (not sent: no shorter)"
        if out is messages:
            return None
        call.body["messages"] = out
        return note

    async def summarise(
        self,
        call: Call,
        agent: Agent,
        messages: list[Any],
        size: list[int],
        pinned: set[int],
        extra: int,
        note: Squeezed,
    ) -> list[Any] | None:
        s = agent.compression.summarise
        api = call.api
        hashes = prefix_hashes([agent.name, api, call.body.get("system")], messages)
        found = await self.store.find(agent.name, hashes)
        start = found.upto if found is not None and found.upto < len(messages) else 0
        if start:
            assert found is not None
            kept = pins_closed(messages, pinned, start, api)
            with_it = extra + approx_tokens(len(found.text.encode())) + sum(size[i] for i in kept) + sum(size[start:])
            if with_it <= s.threshold_tokens:
                note.summary = "reused"
                return splice(messages, start, found.text, kept, api)
        cut = choose_cut(messages, size, api, s.keep_turns, s.keep_tokens, start)
        if cut is not None and sum(size[start:cut]) <= 2 * s.max_tokens:
            cut = None  # too little to summarise: a summary up to max_tokens long would save little or nothing
        if cut is None:
            if not start:
                return None
            assert found is not None
            note.summary = "reused"
            return splice(messages, start, found.text, pins_closed(messages, pinned, start, api), api)
        summary, paid = await self.written(call, agent, messages, start, cut, found if start else None, hashes[cut - 1])
        note.summary = "extended" if start else "new"
        if paid is not None:  # the summary this call had written (booked on its own ledger row) …
            note.summary_model, note.summary_cost_nanos = paid.model, paid.cost_nanos
        else:  # … or one another call of the conversation had written at the same time
            note.summary = "reused"
        return splice(messages, cut, summary.text, pins_closed(messages, pinned, cut, api), api)

    async def written(
        self, call: Call, agent: Agent, messages: list[Any], start: int, cut: int, previous: Summary | None, key: str
    ) -> tuple[Summary, Summary | None]:
        """The summary of messages [0, cut), written once even when several calls need it at the same time,
        and the one this call paid for (None when another call wrote it). On replicas, of two written at
        once for the same prefix the first stored is used by both: the other was paid all the same."""
        pending = self._writing.get((agent.name, key))
        if pending is not None:
            return await asyncio.shield(pending), None
        fut: asyncio.Future[Summary] = asyncio.get_running_loop().create_future()
        self._writing[(agent.name, key)] = fut
        try:
            paid = await self.write(agent, messages[start:cut], previous, cut, call.api)
            summary = await self.store.keep(agent.name, key, paid, self.gateway.clock())
            fut.set_result(summary)
            return summary, paid
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: a waiter re-raises it, nobody else needs to
            raise
        finally:
            del self._writing[(agent.name, key)]

    async def write(self, agent: Agent, messages: list[Any], previous: Summary | None, upto: int, api: str) -> Summary:
        """Ask the agent's summariser, through the gateway, on the agent's budget."""
        model = summariser(agent, self.gateway)
        provider = self.gateway.config.models[model].provider
        target = provider.api
        ceiling = agent.compression.summarise.max_tokens
        body = request(target, model, previous.text if previous else None, messages, ceiling, api, provider.kind)
        status, data = await self.gateway.ask(agent, target, body, TASK)
        if status != 200:
            raise SummaryFailed(f"the summariser ({model}) answered {status}: {data[:200].decode('utf-8', 'replace')}")
        answer = orjson.loads(data)
        text = answer_text(target, answer)
        return Summary(upto, text, model, self._cost(model, target, answer))

    def _cost(self, model: str, api: str, answer: Any) -> int:
        """What the summary cost, from its answer's usage (its own ledger row has the exact booking)."""
        from ..base import Bill

        u = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(u, dict):
            return 0
        if api == "anthropic":
            inp = sum(
                int(u.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            usage = Usage(inp, int(u.get("output_tokens") or 0))
        else:
            usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        return self.gateway.price(Bill(model, usage))

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        """Record what compression removed from this call and what that saved on the model it ran on."""
        note = ctx.state.get(self.name)
        if note is None:
            return
        from ..base import Bill

        saved = self.gateway.price(Bill(outcome.model, Usage(input_tokens=note.tokens_removed)))
        r = note.removed
        row = (self.gateway.clock(), call.agent, outcome.model, outcome.status, note.before, note.after,
               r.get("prune", 0), r.get("html", 0), r.get("strip", 0), r.get("summarise", 0), note.summary,
               saved, note.summary_cost_nanos)  # fmt: skip
        self.store.record(row, self.gateway.clock())
        note.summary_cost_nanos = 0  # a retry's row does not count the summary twice

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        """The call as it would have been billed uncompressed: its input plus the tokens removed."""
        note = ctx.state.get(self.name)
        if note is None or not note.tokens_removed:  # most calls: before the imports below, which cost more
            return bill
        from copy import copy

        from ..base import Bill

        u = copy(bill.usage)
        u.input_tokens += note.tokens_removed
        return Bill(bill.model, u)


def summariser(agent: Agent, gateway: Services) -> str:
    """The model that writes an agent's summaries: its configured one, its light tier, else the
    cheapest model it may call (by input rate)."""
    s = agent.compression.summarise
    if s.model is not None:
        return s.model
    if "light" in agent.tiers:
        return agent.tiers["light"]
    return min(agent.models, key=lambda m: (gateway.rates_of(m).input_rate(), m))


def _shares(tallied: dict[str, int], measured: int) -> dict[str, int]:
    """The tokens the request lost (`measured`, in the request's own terms: escaped JSON) split over the
    techniques in proportion to what each removed from the texts it touched; they add up exactly."""
    total = sum(tallied.values())
    if total <= 0 or measured <= 0:
        return {k: 0 for k in tallied} | ({"prune": measured} if measured > 0 else {})
    out = {k: measured * v // total for k, v in tallied.items()}
    top = max(tallied, key=lambda k: tallied[k])
    out[top] += measured - sum(out.values())
    return out


def _system_tokens(body: dict[str, Any], api: str) -> int:
    """Tokens outside `messages` that count toward the threshold: the Anthropic system prompt, tools."""
    n = 0
    if api == "anthropic" and body.get("system") is not None:
        n += len(orjson.dumps(body["system"]))
    if body.get("tools") is not None:
        n += len(orjson.dumps(body["tools"]))
    return approx_tokens(n)


def make(config: Config, gateway: Services) -> Compressor:
    return Compressor(config, gateway)


__all__ = ["TASK", "Compressor", "Squeezed", "make", "summariser"]
