"""Budget caps: reserve a call's worst case before it is sent, settle its exact cost after.

The cap invariant — for every window W that has a cap, at every instant:

        spent(W) + held(W) <= cap(W)

1. `admit` finds the windows that apply (agent daily, agent monthly, fleet daily, fleet monthly;
   days and months in the fleet's timezone) and the call's worst case in nano-dollars, as the cost
   model priced it (`costmodel.Estimate`: every billable input bounded and priced, plus the output
   bound times the output rate; the budget only asks it through `pricing.Priced`). Check and hold
   happen in one synchronous step — no `await` between them — so concurrent calls on the event loop
   can never both take the last dollar.
2. If the worst case does not fit but the tightest window still affords `min_output_tokens`, the
   call's `max_tokens` is lowered until it fits. Otherwise the call is refused (HTTP 402) with
   nothing held. The refusal says which window and why: `call_too_large` when a minimal call
   (`minimal_call`) would still fit once calls in flight settle — only this call is too big, the
   agent is not blocked and no event is sent; `budget_exceeded` when not even a minimal call fits,
   and only then is the agent marked blocked on the blackboard. A blocked agent is unblocked when a
   call is admitted, when its window resets, or when a reconcile gives a minimal call room again.
3. The caller then journals the reservation (`store.reserve`): durable before the call goes upstream.
4. `settle` runs exactly once per admitted call (success, upstream error, timeout, disconnect):
   held -= worst and spent += cost on the same windows; the journal lets go of the reservation once
   the ledger row is committed.
5. On start, spent is summed from the ledger, after calls a crashed process left uncommitted have been
   turned into ledger rows: at their journaled cost if they had settled, at their worst case if they were
   in flight (flagged for reconciliation): over-counted, never under.

A reservation keeps the windows it was made in: a call reserved at 23:59:59 settles in that day.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from . import ids
from .blackboard import Blackboard
from .config import PRICE_PROVIDER, Config
from .pricing import Priced, from_nanos, to_nanos, usd_str
from .store.journal import Reservation
from .store.row import LedgerRow
from .store.shared import SharedStore, StoreDown
from .store.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class Periods:
    day: str  # 2026-11-28 (local)
    month: str  # 2026-11
    day_resets: float  # epoch seconds of the next local midnight
    month_resets: float  # epoch seconds of the next local 1st-of-month midnight


class Calendar:
    """Local days and months in the fleet's timezone, daylight-saving changes included."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._cached: Periods | None = None
        self._valid_from = 0.0

    def periods(self, now: float) -> Periods:
        p = self._cached
        if p is not None and self._valid_from <= now < p.day_resets:
            return p
        local = datetime.fromtimestamp(now, self.tz)
        d = local.date()
        first_next = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        day_start = self._midnight(d)
        p = Periods(d.isoformat(), d.isoformat()[:7], self._midnight(d + timedelta(days=1)), self._midnight(first_next))
        self._cached, self._valid_from = p, day_start
        return p

    def _midnight(self, d: date) -> float:
        return datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp()

    def iso(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).isoformat()


class WindowKey(NamedTuple):
    """A window's identity as data (never a string to parse back: an agent's name may hold any separator)."""

    agent: str | None  # None: the whole fleet
    period: str  # "day" | "month"
    value: str  # "2026-11-28" | "2026-11"


@dataclass(slots=True)
class Window:
    key: WindowKey
    scope: str  # "agent" | "fleet"
    period: str  # "daily" | "monthly"
    cap: int | None  # nano-dollars
    resets: float
    alert_from: float | None = None  # spend (nano-dollars) its lowest alert threshold starts at (`_alerts`)

    @property
    def label(self) -> str:
        return f"{self.scope} {self.period}"


@dataclass(slots=True)
class Ticket:
    """An admitted call's hold on its windows."""

    id: str
    agent: str
    keys: tuple[WindowKey, ...]
    worst: int  # nano-dollars held
    day: str
    month: str
    created: float
    max_tokens: int  # the bound the worst case was computed with (per choice)
    fitted: bool  # max_tokens was lowered to fit the budget
    settled: bool = False
    unmetered: bool = False  # admitted while the shared store was down (`on_outage: admit_unmetered`)


class Wait:
    """Not now: in-flight reservations hold the budget this call needs."""


# A minimal call: this many input tokens (a short prompt of a few sentences, its chat-template overhead
# included) and `defaults.min_output_tokens` of output, at the worst-case rates of the cheapest model
# the agent may call. An agent is `blocked` when not even that fits.
MINIMAL_INPUT_TOKENS = 256


LEDGER_INT_MAX = 2**63 - 1  # the largest integer the ledger, its journal and Postgres' bigint hold
HOLD_MAX = 2**53  # the largest hold of an agent with no cap ($9M): the shared counters add many of them


def holdable(worst: int, ws: Sequence[Window]) -> int:
    """`worst`, or HOLD_MAX when it is larger and no window is capped: such a hold limits nothing (a call of an
    agent with no cap is never refused), but must be written (journal, pending row, Redis counters), where a
    figure past 2**63 failed the call (a 500, or on replicas a 503). With a capped window the figure stays."""
    if worst > HOLD_MAX and all(w.cap is None for w in ws):
        return HOLD_MAX
    return worst


@dataclass(frozen=True, slots=True)
class Refusal:
    agent: str
    window: str  # "agent daily", "fleet monthly", ...
    spent: int
    held: int
    cap: int
    needed: int
    resets_at: str
    too_large: bool = False  # only this call cannot fit: a minimal call still does (the agent is not blocked)

    def message(self) -> str:
        figures = (
            f"cap ${usd_str(self.cap)}, spent ${usd_str(self.spent)}, in flight ${usd_str(self.held)}, "
            f"this call needs up to ${usd_str(self.needed)}"
        )
        if self.too_large:
            return (
                f"call too large: this call cannot fit in the {self.window} window of agent {self.agent!r} "
                f"({figures}); smaller calls still fit: send less input, a lower max_tokens or use a cheaper model"
            )
        return (
            f"budget exceeded: the {self.window} cap for agent {self.agent!r} is reached ({figures}); not even a "
            f"minimal call fits until it resets at {self.resets_at}"
        )


class Budget:
    def __init__(
        self, config: Config, store: SQLiteStore | SharedStore, board: Blackboard, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.store = store
        self.shared = store if isinstance(store, SharedStore) else None  # counters in Redis, across replicas
        self.board = board
        self.clock = clock
        self.calendar = Calendar(config.timezone)
        self.counters: dict[WindowKey, list[int]] = {}  # window -> [spent, held]
        self.open: dict[str, Ticket] = {}
        self.refused: dict[str, int] = dict.fromkeys(config.agents, 0)
        self._alerted: set[tuple[WindowKey, Decimal]] = set()
        self._spent_before: dict[WindowKey, int] = {}  # a window's spend when this process first read it
        self._caps = {name: (_nanos(a.daily_usd), _nanos(a.monthly_usd)) for name, a in config.agents.items()}
        self._fleet_caps = (_nanos(config.fleet_daily_usd), _nanos(config.fleet_monthly_usd))
        self._windows: dict[str, tuple[Periods, list[Window]]] = {}
        self._settled: asyncio.Event | None = (
            None  # set (and replaced) at every settlement  # per agent, for the current day
        )

    def reconfigure(self, config: Config) -> None:
        """Caps changed at run time (fleet/live.py): new windows from the next call; a blocked agent a raised
        cap makes room for is unblocked (agent.unblocked), and calls waiting for budget look again."""
        self.config = config
        caps = {name: (_nanos(a.daily_usd), _nanos(a.monthly_usd)) for name, a in config.agents.items()}
        self._caps = {**self._caps, **caps}  # an agent taken out keeps its windows for its calls in flight
        self._fleet_caps = (_nanos(config.fleet_daily_usd), _nanos(config.fleet_monthly_usd))
        self._windows.clear()
        for name in config.agents:
            self.refused.setdefault(name, 0)
        self._unblock_if_room("a cap was raised")
        self._wake()

    # -- windows -----------------------------------------------------------------------------------

    def windows(self, agent: str, now: float) -> list[Window]:
        p = self.calendar.periods(now)
        hit = self._windows.get(agent)
        if hit is not None and hit[0] is p:
            return hit[1]
        day_cap, month_cap = self._caps[agent]
        fday, fmonth = self._fleet_caps
        ws = [
            Window(WindowKey(agent, "day", p.day), "agent", "daily", day_cap, p.day_resets),
            Window(WindowKey(agent, "month", p.month), "agent", "monthly", month_cap, p.month_resets),
            Window(WindowKey(None, "day", p.day), "fleet", "daily", fday, p.day_resets),
            Window(WindowKey(None, "month", p.month), "fleet", "monthly", fmonth, p.month_resets),
        ]
        self._windows[agent] = (p, ws)
        return ws

    def _counter(self, key: WindowKey) -> list[int]:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = [self.store.spend(key.agent, key.period, key.value), 0]
            self._spent_before[key] = c[0]  # thresholds this spend reached were crossed (and alerted) before a start
        return c

    # -- admit / settle ----------------------------------------------------------------------------

    def admit(
        self, agent: str, rates: Priced, input_bound: int, max_tokens: int, choices: int = 1
    ) -> Ticket | Refusal | Wait:
        """Hold the call's worst case on every window, or say why not.

        `Wait` means the call does not fit now but would once calls in flight settle: their
        reservations, not spent money, stand in the way, so refusing would be a false 402.
        """
        now = self.clock()
        ws = self.windows(agent, now)
        worst = holdable(to_nanos(rates.worst_case(input_bound, max_tokens * choices)), ws)
        verdict = self._fits(agent, ws, rates, input_bound, max_tokens, choices, worst)
        if not isinstance(verdict, tuple):
            return verdict
        max_tokens, fitted, worst = verdict
        for w in ws:
            self._counter(w.key)[1] += worst
        return self._ticket(agent, ws, worst, now, max_tokens, fitted, ids.call_id())

    def _fits(
        self, agent: str, ws: list[Window], rates: Priced, input_bound: int, max_tokens: int, choices: int, worst: int
    ) -> tuple[int, bool, int] | Refusal | Wait:
        """(max_tokens, fitted, worst) the call can hold on the windows as the counters stand, or why not."""
        free_now = free_settled = math.inf
        for w in ws:
            if w.cap is None:
                continue
            spent, held = self._counter(w.key)
            free_now = min(free_now, w.cap - spent - held)
            free_settled = min(free_settled, w.cap - spent)
        if worst <= free_now:
            return max_tokens, False, worst
        if worst <= free_settled:
            return Wait()
        fit = self._fit(rates, input_bound, choices, int(free_now))
        if fit is None or fit >= max_tokens:
            if self._fit(rates, input_bound, choices, int(free_settled)) is not None and free_settled > free_now:
                return Wait()
            return self._refuse(agent, ws, worst)
        return fit, True, to_nanos(rates.worst_case(input_bound, fit * choices))

    def _ticket(
        self, agent: str, ws: list[Window], worst: int, now: float, max_tokens: int, fitted: bool, call_id: str
    ) -> Ticket:
        p = self.calendar.periods(now)
        t = Ticket(call_id, agent, tuple(w.key for w in ws), worst, p.day, p.month, now, max_tokens, fitted)
        self.open[t.id] = t
        if self.board.status[agent].state == "blocked":
            self.board.unblock(agent, "a call was admitted")
        return t

    async def _admit_shared(
        self, agent: str, rates: Priced, input_bound: int, max_tokens: int, choices: int, timeout: float, model: str,
        api: str,
    ) -> Ticket | Refusal | Wait:  # fmt: skip
        """`admit_waiting` across replicas: the pending row, then one Redis script holds the worst case on
        every window or holds nothing and returns the windows' figures, from which a refusal, a wait or a
        lower `max_tokens` is decided as on one replica (`_fits`) — then tried again."""
        assert self.shared is not None
        now = self.clock()
        ws = self.windows(agent, now)
        p = self.calendar.periods(now)
        worst, fitted = holdable(to_nanos(rates.worst_case(input_bound, max_tokens * choices)), ws), False
        if worst > HOLD_MAX:  # capped, and past what the stores may hold (Postgres bigint): fitted or refused first
            verdict = self._fits(agent, ws, rates, input_bound, max_tokens, choices, worst)
            if not isinstance(verdict, tuple):
                return verdict  # (a store failing on the figure was an outage: admitted unmetered, past the cap)
            max_tokens, fitted, worst = verdict
        call_id = ids.call_id()
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + timeout, 0.02
        spec = [(w.key.agent, w.key.period, w.key.value, w.cap) for w in ws]
        try:
            await self.shared.hold(Reservation(call_id, agent, now, model, api, p.day, p.month, worst))
            for _ in range(1000):
                out = await self.shared.take(call_id, spec, worst)
                for i, w in enumerate(ws):
                    self.counters[w.key] = [out[1 + 2 * i], out[2 + 2 * i]]
                if out[0] == 1:
                    return self._ticket(agent, ws, worst, now, max_tokens, fitted, call_id)
                verdict = self._fits(agent, ws, rates, input_bound, max_tokens, choices, worst)
                if isinstance(verdict, Refusal):
                    self.shared.drop(call_id)
                    return verdict
                if isinstance(verdict, Wait):
                    if loop.time() + pause > deadline:
                        break
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.5)
                    continue
                max_tokens, fitted, lower = verdict
                if lower != worst:
                    worst = lower
                    await self.shared.hold(Reservation(call_id, agent, now, model, api, p.day, p.month, worst))
        except StoreDown:
            self.shared.drop(call_id)  # whatever was written goes once the stores answer again
            if self.config.shared is None or self.config.shared.on_outage != "admit_unmetered":
                raise
            t = self._ticket(agent, ws, worst, now, max_tokens, fitted, call_id)
            t.unmetered = True
            return t
        except BaseException:
            self.shared.drop(call_id)
            raise
        self.shared.drop(call_id)
        return Wait()

    def _refuse(self, agent: str, ws: list[Window], worst: int) -> Refusal:
        """Say why the call cannot fit; block the agent only when not even a minimal call can."""
        minimal = self.minimal_call(agent)
        too_large = minimal <= self._room(ws)  # what the windows leave once the calls in flight settle
        tight, cap, spent, held = self._tightest(ws, minimal)
        refusal = Refusal(agent, tight.label, spent, held, cap, worst, self.calendar.iso(tight.resets), too_large)
        if not refusal.too_large:
            self.board.block(agent, refusal.message(), tight.label, refusal.resets_at, tight.resets)
        self.refused[agent] += 1
        return refusal

    def block_if_spent(self, agent: str) -> None:
        """Block an agent whose settled spend no longer leaves room for a minimal call: a call billed above
        its reserved worst case (the bound missed something) must not let the agent's next call find out."""
        if agent not in self.config.agents:
            return
        ws = self.windows(agent, self.clock())
        minimal = self.minimal_call(agent)
        if minimal <= self._room(ws):  # room: infinite when no window is capped
            return
        tight, cap, spent, held = self._tightest(ws, minimal)  # the window a refused call names (`_refuse`)
        refusal = Refusal(agent, tight.label, spent, held, cap, minimal, self.calendar.iso(tight.resets))
        self.board.block(agent, refusal.message(), tight.label, refusal.resets_at, tight.resets)

    def _tightest(self, ws: list[Window], minimal: int) -> tuple[Window, int, int, int]:
        """(window, cap, spent, held) a refusal names: the first capped window that leaves less than a minimal
        call once its calls in flight settle, else the one leaving the least room now."""
        capped: list[tuple[Window, int, int, int]] = []
        for w in ws:
            if w.cap is not None:
                spent_w, held_w = self._counter(w.key)
                capped.append((w, w.cap, spent_w, held_w))
        blocking = [c for c in capped if c[1] - c[2] < minimal]
        return blocking[0] if blocking else min(capped, key=lambda c: c[1] - c[2] - c[3])

    def _room(self, ws: list[Window]) -> float:
        """Nano-dollars the tightest capped window leaves once the calls in flight settle (spent alone)."""
        return min((w.cap - self._counter(w.key)[0] for w in ws if w.cap is not None), default=math.inf)

    def minimal_call(self, agent: str) -> int:
        """Nano-dollars of a minimal call (MINIMAL_INPUT_TOKENS in, `min_output_tokens` out) on the cheapest
        model the agent may call, at worst-case rates where its provider runs a call naming no tier or
        geography (the project's default service tier, the workspace's inference geography), as admission
        prices such a call."""
        cfg = self.config

        def nanos(m: str) -> int:
            p = cfg.models[m].provider
            rates = cfg.prices.rates(m, PRICE_PROVIDER[p.kind]).served(p.service_tier, p.inference_geo)
            return to_nanos(rates.worst_case(MINIMAL_INPUT_TOKENS, cfg.min_output_tokens))

        return min(nanos(m) for m in cfg.agents[agent].models)

    def _unblock_if_room(self, why: str) -> None:
        """Unblock every blocked agent a minimal call fits again (spent went down: a reconcile)."""
        now = self.clock()
        for agent, st in self.board.status.items():
            if (
                st.state == "blocked"
                and agent in self.config.agents  # not one taken out of the fleet at run time
                and self.minimal_call(agent) <= self._room(self.windows(agent, now))
            ):
                self.board.unblock(agent, why)

    async def admit_waiting(
        self,
        agent: str,
        rates: Priced,
        input_bound: int,
        max_tokens: int,
        choices: int,
        timeout: float,
        model: str = "",
        api: str = "",
    ) -> Ticket | Refusal | Wait:
        """`admit`, waiting (up to `timeout` seconds) while only in-flight reservations stand in the way."""
        if self.shared is not None:
            return await self._admit_shared(agent, rates, input_bound, max_tokens, choices, timeout, model, api)
        verdict = self.admit(agent, rates, input_bound, max_tokens, choices)
        if not isinstance(verdict, Wait):
            return verdict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while isinstance(verdict, Wait):
            left = deadline - loop.time()
            if left <= 0:
                return verdict
            if self._settled is None:
                self._settled = asyncio.Event()
            try:
                await asyncio.wait_for(self._settled.wait(), left)
            except TimeoutError:
                return verdict
            verdict = self.admit(agent, rates, input_bound, max_tokens, choices)
        return verdict

    def _fit(self, rates: Priced, input_bound: int, choices: int, free: int) -> int | None:
        """The largest max_tokens (per choice) whose worst case fits in `free`, if it is still useful."""
        rate = rates.output_rate(input_bound) * choices
        base = rates.worst_case(input_bound, 0)
        room = from_nanos(free) - base
        if room <= 0:
            return None
        out = int(room / rate) if rate > 0 else self.config.min_output_tokens
        while out > 0 and to_nanos(rates.worst_case(input_bound, out * choices)) > free:
            out -= 1
        return out if out >= self.config.min_output_tokens else None

    def journal(self, t: Ticket, model: str, api: str) -> Reservation:
        return Reservation(t.id, t.agent, t.created, model, api, t.day, t.month, t.worst)

    def settle(self, t: Ticket, row: LedgerRow, booked: bool = False) -> None:
        """Release the hold and book the actual cost, exactly once. `booked`: the caller has already written
        the ledger row and let go of the pending row in one transaction of its own (the batch queue on
        replicas); only the shared counters' hold is left to release."""
        if t.settled:
            raise RuntimeError(f"call {t.id} settled twice")
        t.settled = True
        self.open.pop(t.id, None)
        cost = row.cost_nanos
        for key in t.keys:
            c = self._counter(key)
            c[1] -= t.worst
            c[0] += cost
        if t.unmetered:  # nothing was held: book it flagged (the counters are rebuilt to include it)
            row.reconcile = 1
            row.error = "unmetered: admitted while the shared store was down; " + row.error
            self.store.book(row)
        elif booked and self.shared is not None:
            self.shared.release(t.id, cost)
        else:
            self.store.settle(t.id, row)
        self._alerts(t.agent, t.keys)
        self._wake()

    def rebook(self, agent: str, day: str, month: str, delta: int) -> None:
        """Correct settled spend by `delta` nano-dollars on the windows a past call was booked in."""
        for key in (
            WindowKey(agent, "day", day),
            WindowKey(agent, "month", month),
            WindowKey(None, "day", day),
            WindowKey(None, "month", month),
        ):
            if key in self.counters:
                self.counters[key][0] += delta
        if delta < 0:
            self._unblock_if_room("a reconcile made room in its window")
        self._wake()

    def _wake(self) -> None:
        """Let calls waiting on in-flight reservations try again."""
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def release_unsent(self, t: Ticket) -> None:
        """Drop a hold whose reservation never became durable (nothing was sent upstream); on replicas its
        pending row and its hold in Redis go too."""
        if not t.settled:
            t.settled = True
            self.open.pop(t.id, None)
            for key in t.keys:
                self._counter(key)[1] -= t.worst
            if self.shared is not None and not t.unmetered:
                self.shared.drop(t.id)
            self._wake()

    def unheld(self, agent: str, rates: Priced, input_bound: int, max_tokens: int, choices: int) -> Ticket:
        """The ticket a call's worst case would be held under, nothing held yet (nor counted here): one request of
        an agent's batch on replicas, held with the rest of the batch in one step (batch/holds.py)."""
        now = self.clock()
        p = self.calendar.periods(now)
        ws = self.windows(agent, now)
        worst = holdable(to_nanos(rates.worst_case(input_bound, max_tokens * choices)), ws)
        keys = tuple(w.key for w in ws)
        return Ticket(ids.call_id(), agent, keys, worst, p.day, p.month, now, max_tokens, False)

    def hand_off(self, t: Ticket) -> None:
        """The hold now belongs to a durable queue that outlives this process (the batch queue on replicas:
        its pending row and Redis record moved to the queue's owner): whichever replica settles it makes the
        ticket again (`hold_again`), so this one forgets it without releasing anything."""
        self.open.pop(t.id, None)

    def hold_again(
        self, call_id: str, agent: str, day: str, month: str, worst: int, created: float, max_tokens: int
    ) -> Ticket:
        """The ticket of a hold made before (a queued batch job after a restart, or one another replica
        admitted). Counted again on this process's counters; on replicas the hold never left Redis and the
        Postgres pending row, so only the ticket is made."""
        keys = (
            WindowKey(agent, "day", day), WindowKey(agent, "month", month),
            WindowKey(None, "day", day), WindowKey(None, "month", month),
        )  # fmt: skip
        t = Ticket(call_id, agent, keys, worst, day, month, created, max_tokens, False)
        if self.shared is None:
            for k in keys:
                self._counter(k)[1] += worst
            self.open[t.id] = t
        return t

    def _thresholds(self, agent: str, w: Window) -> tuple[Decimal, ...]:
        """The alert thresholds of a window: the agent's own (alerts.thresholds) for its own windows, if it
        has them, else the fleet's."""
        own = self.config.alerts.thresholds.get(agent)
        return own if own is not None and w.scope == "agent" else self.config.alert_thresholds

    def _alerts(self, agent: str, keys: tuple[WindowKey, ...]) -> None:
        for w in self.windows(agent, self.clock()):
            first = w.alert_from
            if first is None:  # once per window (windows are made again when caps or thresholds change)
                ths = self._thresholds(agent, w)
                first = w.alert_from = math.ceil(min(ths) * w.cap) if w.cap and ths else math.inf
            if first == math.inf or w.key not in keys:
                continue
            if self.counters[w.key][0] < first:  # under every threshold (most settlements): no Decimal share
                continue
            assert w.cap is not None
            ths = self._thresholds(agent, w)
            share = Decimal(self.counters[w.key][0]) / w.cap
            for th in ths:
                if share >= th and (w.key, th) not in self._alerted:
                    self._alerted.add((w.key, th))
                    if self._spent_before.get(w.key, 0) >= th * w.cap:
                        continue  # crossed before this process started: published then
                    self.board.publish(
                        "budget.threshold",
                        once=f"budget.threshold:{w.key.period}:{w.key.value}:{th}:{w.key.agent or ''}",
                        agent=agent if w.scope == "agent" else None,
                        window=w.label,
                        threshold=float(th),
                        spent_usd=usd_str(self.counters[w.key][0]),
                        cap_usd=usd_str(w.cap),
                    )

    # -- views -------------------------------------------------------------------------------------

    def remaining(self, agent: str) -> tuple[int | None, int | None]:
        """Nano-dollars an agent can still commit today and this month (agent and fleet caps), None = no cap."""
        day: int | None = None
        month: int | None = None
        for w in self.windows(agent, self.clock()):  # one pass: it runs twice per call (admission, headers)
            if w.cap is None:
                continue
            spent, held = self._counter(w.key)
            free = w.cap - spent - held
            if w.period == "daily":
                day = free if day is None else min(day, free)
            else:
                month = free if month is None else min(month, free)
        return (None if day is None else max(0, day)), (None if month is None else max(0, month))

    def share(self, agent: str) -> float:
        """The largest share of any of the agent's own caps already committed (spent + in flight)."""
        top = 0.0
        for w in self.windows(agent, self.clock()):
            if w.scope == "agent" and w.cap:
                spent, held = self._counter(w.key)
                top = max(top, (spent + held) / w.cap)
        return top

    def view_keys(self, agents: Sequence[str]) -> list[WindowKey]:
        """The windows the views of `agents` show (each once)."""
        now = self.clock()
        return list(dict.fromkeys(w.key for a in agents for w in self.windows(a, now)))

    def seen(self, keys: Sequence[WindowKey], figures: Sequence[int]) -> None:
        """The shared counters' current figures ([spent₁, held₁, …] for `keys`) replace this replica's copy."""
        for i, key in enumerate(keys):
            self._spent_before.setdefault(key, figures[2 * i])
            self.counters[key] = [figures[2 * i], figures[2 * i + 1]]

    def view(self, agent: str) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for w in self.windows(agent, self.clock()):
            spent, held = self._counter(w.key)
            rows.append(
                {
                    "window": w.label,
                    "cap_usd": usd_str(w.cap) if w.cap is not None else None,
                    "spent_usd": usd_str(spent),
                    "reserved_usd": usd_str(held),
                    "remaining_usd": usd_str(max(0, w.cap - spent - held)) if w.cap is not None else None,
                    "resets_at": self.calendar.iso(w.resets),
                }
            )
        return rows


def _nanos(usd: Decimal | None) -> int | None:
    return None if usd is None else to_nanos(usd)
