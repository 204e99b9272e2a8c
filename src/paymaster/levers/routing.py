"""Model routing: the cheapest sufficient model for every call.

An agent configured with `model: auto` and a tier ladder (light / standard / heavy → models) sends
`model: "auto"`; the router picks the tier, in this order:

1. the task type's tier (`x-paymaster-task`; fleet-wide map, pinned per agent in fleet.yaml);
2. otherwise the complexity classifier's score of the last user turn (in-process, no network),
   against thresholds set by `routing.target_heavy_share` (the share of calls the top tier gets)
   or `routing.min_quality` (the predicted share of strong-model quality to keep);
3. then degrade-before-cutoff: past `routing.degrade_at` of any of its caps, the agent runs one
   tier down (the blackboard shows `degraded`) instead of running on into the hard stop;
4. cache affinity: a conversation whose prefix is cached on one model stays there when moving to
   a cheaper one would save less than the cache does (the first call elsewhere pays the whole
   prefix again).

A request naming a concrete model is not routed. Models that just failed are cooled down for
`routing.cooldown_s`; `fallback` gives the next model of a failed one's ordered fallback list,
never a pricier one unless `routing.allow_pricier_fallback`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..call import Call
from ..config import TIERS, Agent, Config, Task
from ..prefix import prefix_key
from ..pricing import Rates
from ..store.shared import SharedStore, StoreDown
from .base import Answer, Bill, LeverContext, Services, Settlement
from .routing_bandit import Bandit
from .routing_share import ShareKeeper
from .routing_state import Mirror, RoutingState, State, state_path
from .routing_sync import FAILURES, RoutingSync

FEEDBACK = "feedback"  # routing state: call id -> [its latest score, its ts] (one process; replicas: routing_feedback)
PRUNE_S = 60.0  # the ratings of calls past routing.feedback_keep_days are deleted at most this often
# ...and only once their call is this much older still: a rating the endpoint accepted (its call young enough on
# that replica's clock, a moment before) must find the call's earlier rating to take it back, not count twice
PRUNE_GRACE_S = 3600.0
VIEW_SYNC_S = 2.0  # replicas: longest the admin view waits for the fleet's figures before showing its own
AFFINITY_TTL = 300.0  # seconds a cached prefix keeps its conversation on its model (the 5-minute cache TTL)


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    reason: str  # "requested" | "task:<name>" | "classifier:<score>" (+ ", degraded") | "fallback from <m>"
    tier: str | None = None
    baseline: str | None = None  # the model the call would have run on without routing


class Router:
    def __init__(self, config: Config, clock: Callable[[], float], rates: Callable[[str], Rates]) -> None:
        self.config = config
        self.routing = config.routing
        self.clock = clock
        self.rates = rates
        self.cooling: dict[str, float] = {}  # model -> time it may be used again
        self._classifier: Any = None
        self.affinity: dict[str, tuple[str, int, float]] = {}  # prefix key -> (model, cached tokens, expiry)
        self._thresholds: tuple[float, float] | None = None
        self._share = 0.3
        shared = config.shared is not None and self.routing.state is None  # replicas: learnt state in Postgres
        mirror = Mirror() if shared else None
        self.state: State = mirror or RoutingState(state_path(config.ledger, self.routing.state))
        self.shares = ShareKeeper(self.state, self.routing.share_window, self.routing.share_warmup)
        self.bandit = Bandit(self.state, self.routing.feedback_floor, self.routing.feedback_explore)
        self.sync = RoutingSync(self.bandit, self.shares, mirror) if mirror is not None else None
        self.poll_s = config.management.poll_s
        self._pruned = -math.inf  # when the old ratings were last deleted

    async def start(self, store: object) -> None:
        """Replicas: load what the fleet learnt from Postgres, then keep in step with it in the background."""
        if self.sync is not None and isinstance(store, SharedStore):
            await self.sync.start(store.pg.db, store.replica, self.poll_s)

    async def stop(self) -> None:
        if self.sync is not None:
            await self.sync.stop()

    def close(self) -> None:
        self.shares.flush()
        self.bandit.flush()
        self.state.close()

    async def rate(self, call_id: str, ts: float, key: str, tier: str, score: float) -> float | None:
        """Feedback: `call_id` (made at `ts`, run on `tier` for the bandit's `key`) scored `score`; its earlier
        score, taken back, or None. Replicas: one Postgres transaction, so a call rated on two replicas counts
        once. The ratings of calls older than `routing.feedback_keep_days` (and PRUNE_GRACE_S) are deleted (at most
        once a minute)."""
        now = self.clock()
        prune = now - self._pruned >= PRUNE_S
        if prune:
            self._pruned = now
        before = now - self.routing.feedback_keep_days * 86_400 - PRUNE_GRACE_S
        if self.sync is not None:
            try:
                if prune:
                    await self.sync.prune(before)
                return await self.sync.rate(call_id, ts, key, tier, score)
            except (*FAILURES, TimeoutError) as e:
                raise StoreDown(f"the feedback cannot be stored (Postgres): {e}") from e
        if prune:
            self.state.drop_before(FEEDBACK, before)
        stored = self.state.get(FEEDBACK, call_id)
        previous = stored[0] if isinstance(stored, list) else stored  # [score, call's ts]; a bare score before
        self.bandit.record(key, tier, score, undo=previous)
        self.state.put(FEEDBACK, call_id, [score, ts])
        return None if previous is None else float(previous)

    async def fleet_view(self) -> dict[str, Any]:
        """`view`, on replicas after a push and a pull: the fleet's figures, the same on every replica."""
        stale = None
        if self.sync is not None:
            try:
                await self.sync.refresh(timeout=VIEW_SYNC_S)
            except (*FAILURES, TimeoutError) as e:
                stale = f"the fleet's figures could not be read ({e}): this replica's view as of its last sync"
        out = self.view()
        if stale is not None:
            out["stale"] = stale
        return out

    def view(self) -> dict[str, Any]:
        """What routing learnt, for GET /admin/routing: the feedback bandit per agent/task, share windows."""
        self.shares.flush()
        return {
            "feedback_tasks": list(self.routing.feedback_tasks),
            "feedback_floor": self.routing.feedback_floor,
            "target_heavy_share": self._share if self._thresholds is not None else self.routing.target_heavy_share,
            "feedback": self.bandit.view(),
            "share_windows": self.shares.sizes(),
        }

    # -- picking ----------------------------------------------------------------------------------

    def route(
        self, call: Call, agent: Agent, task: Task | None, budget_share: float, prefix: str = "", size: int = 0
    ) -> Route:
        """`prefix`: the conversation's stable-prefix key and `size` its rough token count (cache affinity)."""
        if call.model != "auto":
            return Route(call.model, "requested")
        if not agent.tiers:
            from ..errors import BadRequest

            raise BadRequest(f"agent {agent.name!r} has no tier ladder; name a model (not 'auto')", param="model")
        baseline = agent.tiers[[t for t in TIERS if t in agent.tiers][-1]]
        key = f"{agent.name}/{task.name if task is not None else ''}"
        if task is not None and task.name in self.routing.feedback_tasks:  # learnt from feedback
            tier, reason = self.bandit.choose(key, [t for t in TIERS if t in agent.tiers])
        elif task is not None and task.tier is not None:
            tier, reason = task.tier, f"task:{task.name}"
        else:
            score = self.classifier().score(last_user_text(call.body))
            self.shares.observe(key, score)
            tier, reason = self._tier_for(score, agent, key), f"classifier:{score:.3f}"
        if budget_share >= self.routing.degrade_at:
            lower = _step_down(tier, agent)
            if lower != tier:
                tier, reason = lower, f"{reason}, degraded at {budget_share:.0%} of a cap"
        model = _nearest(tier, agent)
        if self.cooling_down(model):
            for t in _ladder_from(tier, agent):  # a cooling model: the next tier down, else up
                if not self.cooling_down(agent.tiers[t]):
                    model, reason = agent.tiers[t], f"{reason}, {model} cooling down"
                    break
        stay = self._affinity(prefix, size, model)
        if stay is not None:
            model, reason = stay, f"{reason}, cache affinity: prefix cached on {stay}"
        return Route(model, reason, tier, baseline)

    # -- cache affinity ---------------------------------------------------------------------------

    def remember(self, prefix: str, model: str, cached_tokens: int) -> None:
        """A call cached (wrote or read) its prefix on `model`: later turns may stay there."""
        if prefix and cached_tokens:
            self.affinity[prefix] = (model, cached_tokens, self.clock() + AFFINITY_TTL)

    def _affinity(self, prefix: str, size: int, model: str) -> str | None:
        """The model this conversation's prefix is cached on, when staying there costs less than moving to
        `model` would save: a move to a cheaper model pays the whole prefix at full price again."""
        entry = self.affinity.get(prefix) if prefix else None
        if entry is None:
            return None
        cached_on, cached, expires = entry
        if cached_on == model or self.clock() >= expires or self.cooling_down(cached_on):
            return None
        total = max(cached, size)
        here, there = self.rates(cached_on), self.rates(model)
        stay = cached * here.cache_read_rate() + (total - cached) * here.input_rate()
        move = total * there.input_rate()
        if move >= stay and there.input_rate() <= here.input_rate():  # moving down would save less than the cache
            return cached_on
        return None

    def _tier_for(self, score: float, agent: Agent, key: str) -> str:
        """The tier for `score`: the cuts are running quantiles of `key`'s recent scores (routing_share.py),
        the reference-distribution cuts while that window warms up."""
        heavy_ref, standard_ref = self.thresholds()
        share = self._share
        have = [t for t in TIERS if t in agent.tiers]
        if self.shares.above(key, score, share, heavy_ref):
            return have[-1]
        if len(have) == 3 and self.shares.above(key, score, min(1.0, share + (1 - share) / 2), standard_ref):
            return "standard"
        return have[0]

    def thresholds(self) -> tuple[float, float]:
        """Scores at or above which a call goes to the top tier, and (with three tiers) to standard."""
        if self._thresholds is None:
            clf = self.classifier()
            if self.routing.min_quality is not None:
                share = clf.share_for_quality(self.routing.min_quality)
            else:
                share = self.routing.target_heavy_share if self.routing.target_heavy_share is not None else 0.3
            self._share = share
            heavy = clf.threshold_for_share(share)
            standard = clf.threshold_for_share(min(1.0, share + (1 - share) / 2))
            self._thresholds = (heavy, standard)
        return self._thresholds

    def classifier(self) -> Any:
        if self._classifier is None:
            from .classifier import Classifier

            self._classifier = Classifier.load()
        return self._classifier

    # -- failures ---------------------------------------------------------------------------------

    def failed(self, model: str) -> None:
        self.cooling[model] = self.clock() + self.routing.cooldown_s

    def cooling_down(self, model: str) -> bool:
        until = self.cooling.get(model)
        return until is not None and self.clock() < until

    def fallback(
        self, failed: str, tried: set[str], allowed: tuple[str, ...], input_bound: int, out: int
    ) -> str | None:
        """The next model to try after `failed`, or None."""
        chain = self.routing.fallbacks.get(failed)
        if not chain:
            return None
        limit = self.rates(failed).worst_case(input_bound, out)
        for m in chain:
            if m in tried or m not in allowed or self.cooling_down(m):
                continue
            if not self.routing.allow_pricier_fallback and self.rates(m).worst_case(input_bound, out) > limit:
                continue
            return m
        return None


def last_user_text(body: dict[str, Any]) -> str:
    """The text the classifier scores: the last user turn (every API's shape: Responses input items too)."""
    msgs = body.get("messages")
    if msgs is None:
        inp = body.get("input")
        msgs = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp
    for m in reversed(msgs if isinstance(msgs, list) else []):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "\n".join(b.get("text", "") for b in c if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def _nearest(tier: str, agent: Agent) -> str:
    if tier in agent.tiers:
        return agent.tiers[tier]
    for t in _ladder_from(tier, agent):
        return agent.tiers[t]
    raise LookupError(tier)


def _ladder_from(tier: str, agent: Agent) -> list[str]:
    """The agent's other tiers, nearest first, lower before higher."""
    i = TIERS.index(tier)
    order = sorted(
        (t for t in TIERS if t in agent.tiers and t != tier), key=lambda t: (abs(TIERS.index(t) - i), TIERS.index(t))
    )
    return order


def _step_down(tier: str, agent: Agent) -> str:
    lower = [t for t in TIERS[: TIERS.index(tier)] if t in agent.tiers]
    return lower[-1] if lower else tier


# -- the lever: the pipeline's side of routing ---------------------------------------------------------


@dataclass(slots=True)
class RouteNote:
    """What routing did to one call (`ctx.state["routing"]`)."""

    requested: str | None = None  # the model the caller asked for, when routing chose another
    baseline: str | None = None  # the model the call would have run on without routing
    route: str = ""  # why it runs on `call.model`
    prefix: str = ""  # the conversation's stable-prefix key (auto calls: cache affinity)
    size: int = 0  # a rough token count of the request, for affinity estimates


class Routing:
    name = "routing"

    def __init__(self, config: Config, gateway: Services) -> None:
        self.gateway = gateway
        self.models = config.models
        self.router = Router(config, gateway.clock, gateway.rates_of)

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        agent = ctx.agent
        if call.model != "auto":  # a concrete model is not routed (fallbacks may still move it)
            return None
        note = ctx.state[self.name] = RouteNote(prefix=prefix_key(agent.name, call.body))
        note.size = len(orjson.dumps(call.body)) // 4
        share = self.gateway.budget.share(agent.name)  # only auto calls degrade
        route = self.router.route(call, agent, ctx.task, share, note.prefix, note.size)
        escalated = ctx.state.get("cascade")  # no cheaper tier passed the cascade's check (levers/cascade.py)
        if escalated is not None:
            route = Route(escalated.model, f"cascade: {escalated.trail}"[:500], TIERS[-1], route.baseline)
        note.requested, note.baseline = call.model, route.baseline
        route_to(call, note, route.model, route.reason)
        board = self.gateway.board
        st = board.status[agent.name]
        if "degraded" in route.reason and st.state == "active":
            board.degrade(agent.name, route.reason)
        elif "degraded" not in route.reason and st.state == "degraded":
            board.unblock(agent.name, "back under the degrade threshold")
        return None

    async def start(self, store: object) -> None:
        """The gateway starts (its store open): replicas load what the fleet learnt."""
        await self.router.start(store)

    async def stop(self) -> None:
        """The gateway stops, its store still open: replicas write what they learnt since the last sync."""
        await self.router.stop()

    def close(self) -> None:
        """The gateway stops: what routing learnt is written to its state file."""
        self.router.close()

    def fallback(self, call: Call, tried: set[str], max_tokens: int, ctx: LeverContext) -> str | None:
        return self.router.fallback(call.model, tried, ctx.agent.models, call.input_bound, max_tokens)

    def retried(self, call: Call, model: str, why: str, ctx: LeverContext) -> None:
        self.router.failed(call.model)
        note = ctx.state.get(self.name) or ctx.state.setdefault(self.name, RouteNote())
        route_to(call, note, model, f"fallback from {call.model} ({why})")

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        note: RouteNote | None = ctx.state.get(self.name)
        if note is None:  # neither routed nor moved
            return
        if note.requested:
            ctx.ledger["model_requested"] = note.requested
        ctx.ledger["route"] = note.route
        if not outcome.exact:
            return
        u = outcome.usage
        self.router.remember(note.prefix, call.model, u.cache_read_tokens + u.cache_write_tokens)
        baseline = self._baseline(call, note)
        if baseline is not None:
            ctx.ledger["baseline_cost_nanos"] = self.gateway.price(Bill(baseline, u))

    def undo(self, bill: Bill, call: Call, ctx: LeverContext) -> Bill:
        """On the model asked for (for `auto`, the agent's top tier)."""
        note = ctx.state.get(self.name)
        baseline = self._baseline(call, note) if note is not None else None
        return Bill(baseline, bill.usage) if baseline is not None else bill

    def _baseline(self, call: Call, note: RouteNote) -> str | None:
        baseline = note.baseline or note.requested
        if not baseline or baseline == call.model or baseline not in self.models:
            return None
        return baseline


def route_to(call: Call, note: RouteNote, model: str, reason: str) -> None:
    call.model = model
    note.route = reason
    call.body["model"] = model
    call.notes["x-paymaster-model"] = model
    call.notes["x-paymaster-route"] = reason


def make(config: Config, gateway: Services) -> Routing:
    return Routing(config, gateway)
