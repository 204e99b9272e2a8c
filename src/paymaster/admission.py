"""Admission: a request's worst case as it will be sent, tightened when the coarse bound would not fit
what the agent has left, and held against every cap it falls under (402 when it does not fit)."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from .budget import Budget, Refusal, Ticket, Wait
from .call import Call
from .config import Config
from .costmodel import Estimate, Unbounded, estimate
from .costmodel.anthropic import bound_server_tools, count_tokens_body
from .costmodel.responses import bound_tool_calls
from .errors import BadRequest, BudgetBusy, BudgetExceeded, CallTooLarge
from .pricing import Rates, to_nanos, usd_str
from .providers import Upstream, UpstreamError
from .settle import refused


class Admission:
    def __init__(self, config: Config, budget: Budget, rates_of: Callable[[str], Rates]) -> None:
        self.config = config
        self.budget = budget
        self.rates_of = rates_of

    def bound(
        self, payload: bytes, call: Call, rates: Rates, h: dict[bytes, bytes], stored: int | None = 0
    ) -> tuple[Estimate, bytes]:
        """The request's worst case as it will be sent (levers included), from the cost model; and the
        payload, re-encoded when a server tool was given its configured `max_uses` or content limit
        (Responses: `max_tool_calls`). `stored`: the tokens of the stored context a Responses request names
        (None: unknown)."""
        try:
            if call.target_api == "anthropic":
                if notes := bound_server_tools(call.body):
                    call.notes.update(notes)
                    payload = orjson.dumps(call.body)
            elif call.target_api == "responses" and (n := bound_tool_calls(call.body)) is not None:
                call.notes["x-paymaster-max-tool-calls"] = f"{n}; set by the gateway"
                payload = orjson.dumps(call.body)
            long_context = b"context-1m" in h.get(b"anthropic-beta", b"")
            cap = None if long_context else rates.context_window
            provider = self.config.models[call.model].provider
            worst = estimate(
                call.body, call.target_api, len(payload), rates, cap, default_tier=provider.service_tier, stored=stored,
                default_geo=provider.inference_geo,
            )  # fmt: skip
        except Unbounded as e:
            raise BadRequest(str(e), param=e.param) from e
        call.input_bound = worst.tokens
        return worst, payload

    async def refine(
        self, call: Call, worst: Estimate, up: Upstream, h: dict[bytes, bytes], stored: int | None = 0
    ) -> Estimate:
        """A tighter worst case, when the coarse one would not fit what the agent has left: OpenAI text
        counted with its public tokenizer (OpenAI's models only: an openai-compatible server tokenizes its
        own way); Claude's from the provider's count_tokens (plus a margin).
        Anything going wrong keeps the coarse bound, which is always safe."""
        assert call.max_tokens is not None
        left = [r for r in self.budget.remaining(call.agent) if r is not None]
        if not left or to_nanos(worst.worst_case(0, call.max_tokens * call.choices)) <= min(left):
            return worst
        if up.provider.kind == "openai-compatible":
            return worst  # its tokenizer is the served model's, not one we can count with: bytes bound it
        rates = self.rates_of(call.model)
        cap = None if b"context-1m" in h.get(b"anthropic-beta", b"") else rates.context_window
        if call.target_api in ("openai", "responses", "embeddings"):
            tier = up.provider.service_tier
            tight = estimate(call.body, call.target_api, 0, rates, cap, exact=True, default_tier=tier, stored=stored)
        else:
            try:
                resp = await up.post(up.count_tokens_path, orjson.dumps(count_tokens_body(call.body)), up.headers(h))
                data = await resp.read()
                counted = orjson.loads(data)["input_tokens"] if resp.status == 200 else None
            except (UpstreamError, ValueError, KeyError, TypeError):
                counted = None
            if not isinstance(counted, int) or isinstance(counted, bool) or counted < 0:
                return worst
            payload = orjson.dumps(call.body)
            tight = estimate(
                call.body, "anthropic", len(payload), rates, cap, counted=counted, default_geo=up.provider.inference_geo
            )
        if tight.worst_case(0, 1) < worst.worst_case(0, 1):
            call.input_bound = tight.tokens
            return tight
        return worst

    async def admit(
        self, call: Call, worst: Estimate, up: Upstream, h: dict[bytes, bytes], stored: int | None = 0
    ) -> Ticket:
        assert call.max_tokens is not None, "the pipeline bounds max_tokens"
        worst = await self.refine(call, worst, up, h, stored)
        verdict = await self.budget.admit_waiting(  # a shared store that cannot be reached: StoreDown (503)
            call.agent, worst, call.input_bound, call.max_tokens, call.choices, self.config.admission_wait_s,
            call.model, call.api,
        )  # fmt: skip
        if isinstance(verdict, Wait):
            raise BudgetBusy(
                f"the budget this call needs is held by agent {call.agent!r}'s calls in flight; retry shortly",
                extra={"retry_after_s": 1},
            )
        if isinstance(verdict, Refusal):  # 402: budget_exceeded (the agent is blocked) or call_too_large
            now = self.budget.clock()
            refused(call, verdict, self.budget.store, now, self.budget.calendar.periods(now))
            raise (CallTooLarge if verdict.too_large else BudgetExceeded)(
                verdict.message(),
                extra={
                    "window": verdict.window,
                    "spent_usd": usd_str(verdict.spent),
                    "reserved_usd": usd_str(verdict.held),
                    "cap_usd": usd_str(verdict.cap),
                    "needed_usd": usd_str(verdict.needed),
                    "resets_at": verdict.resets_at,
                },
            )
        return verdict
