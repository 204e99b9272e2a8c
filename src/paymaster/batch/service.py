"""Deferred calls and batches: admitted at batch prices, queued durably, sent as provider batches, settled
per request when the results arrive.

    defer    the call is shaped (translation, the levers' `shape` hooks), its worst case at batch prices
             admitted against every cap (402 for this call alone when it does not fit), written to the queue,
             answered 202 with its job id
    flush    every tick: each provider/model queue that reached flush_count, flush_bytes or flush_age_s is
             sent, split to the provider's limits
    poll     every poll_s: each open provider batch; once ended, each result is settled at the batch price
             (errored, expired, canceled: nothing billed, the hold released) with the real-time price beside
             it (the batch saving), and the answer stored in the caller's API shape
    restore  at start: open jobs hold their worst case again (or, when their ledger row was booked before a
             crash, are marked settled); polling resumes

On replicas (Redis + Postgres) the queue is in Postgres (pg_queue.py): a job's hold passes from the admitting
replica to the queue as the job is written, so it stays in the shared budget whatever becomes of that replica;
one replica at a time (a lease) flushes and polls; settlement is one Postgres transaction per batch of results,
then the Redis release. A job claimed for sending by a replica that died before the provider answered is booked
at its worst case, flagged for reconciliation — it may be running at the provider, and is never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..budget import Ticket
from ..call import Call, Usage
from ..errors import BadRequest, BudgetBusy, BudgetExceeded, CallTooLarge, GatewayError, UpstreamFailed
from ..ids import call_id
from ..levers.base import LeverContext
from ..pricing import from_nanos, to_nanos
from ..settle import price
from ..store.row import LedgerRow
from ..store.shared import BATCH_OWNER, SharedStore, StoreDown
from ..wire import translate
from ..wire.openai import choices
from . import holds, upstream
from .pg_queue import PgQueue, Settlement
from .prices import FAST_IN_BATCH, batch_rates, fast_mode
from .queue import CLAIM, Job, Queue, claim_id
from .webhook import post

if TYPE_CHECKING:
    from ..app import Gateway
    from ..call import Call
    from ..config import Agent
    from ..costmodel import Estimate
    from ..providers import Upstream
    from ..wire import Wire

log = logging.getLogger("paymaster")

WINDOW_S = 86400  # the providers' completion window: a job whose deadline is nearer is sent at once
IN_BATCH_SKIPS = ("batch", "response_cache")  # deferral itself; an answer from the cache has no batch to join


class Batches:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        store = gw.store
        self.shared = store if isinstance(store, SharedStore) else None
        self.queue: Queue = (
            PgQueue(store.pg.url, store.replica, store.lease_s) if isinstance(store, SharedStore) else Queue(store.conn)
        )  # beside the ledger: its SQLite file, or the replicas' Postgres
        self.settings = gw.config.batch
        self.tickets: dict[str, Ticket] = {}  # holds of this process (one process: every open job's)
        self._polled = 0.0
        self._posts: set[asyncio.Task[bool]] = set()
        self.restored = self.restore() if self.shared is None else 0  # replicas: the holds never left Redis

    def close(self) -> None:
        self.queue.close()

    # -- admission

    async def admit(self, call: Call, ctx: LeverContext, source: dict[str, Any], deadline: float | None,
                    grp: str = "", custom_id: str = "") -> Job:  # fmt: skip
        """Shape, bound at batch prices and hold the call's worst case; the job (not yet durable)."""
        gw = self.gw
        wire, up, worst = self.shaped(call, ctx, source)
        if grp:  # one request of an agent's batch: the batch fits whole, at its own max_tokens, or not at all
            ticket = await self.admit_whole(call, worst, up, ctx)
        else:
            ticket = await gw.admission.admit(call, worst, up, ctx.headers)  # 402 when over a cap
        if ticket.unmetered:  # `on_outage: admit_unmetered` is for real-time calls: a job must be held
            gw.budget.release_unsent(ticket)
            raise StoreDown("deferred calls and batches need the shared store, which cannot be reached: retry later")
        if ticket.fitted:
            wire.set_max_tokens(call.body, ticket.max_tokens, up.provider.kind)
            call.notes["x-paymaster-max-tokens"] = f"{ticket.max_tokens}; fitted to budget"
        self.tickets[ticket.id] = ticket
        return self.job(call, ctx, source, up.provider.name, ticket, deadline, grp, custom_id)

    def shaped(self, call: Call, ctx: LeverContext, source: dict[str, Any]) -> tuple[Wire, Upstream, Estimate]:
        """(wire, upstream, worst case at batch prices) of the call shaped for its provider."""
        gw = self.gw
        wire, _, up = gw.shape(call, ctx, source)
        worst, _ = gw.admission.bound(orjson.dumps(call.body), call, batch_rates(gw.config, call.model), ctx.headers)
        return wire, up, worst

    async def unheld(self, call: Call, ctx: LeverContext, gid: str, custom_id: str) -> Job:
        """One request of an agent's batch on replicas, bounded but not yet held: `holds.hold_batch` holds the
        batch whole once every request is read."""
        gw = self.gw
        _, up, worst = self.shaped(call, ctx, call.body)
        worst = await gw.admission.refine(call, worst, up, ctx.headers)
        assert call.max_tokens is not None
        t = gw.budget.unheld(call.agent, worst, call.input_bound, call.max_tokens, call.choices)
        return self.job(call, ctx, call.body, up.provider.name, t, None, gid, custom_id)

    def job(self, call: Call, ctx: LeverContext, source: dict[str, Any], provider: str, ticket: Ticket,
            deadline: float | None, grp: str, custom_id: str) -> Job:  # fmt: skip
        body = call.body
        body.pop("stream", None)
        if call.target_api == "openai":
            body.pop("stream_options", None)
        return Job(
            id=ticket.id, agent=call.agent, api=call.api, target_api=call.target_api, provider=provider,
            model=call.model, model_requested=ctx.ledger.get("model_requested") or str(source.get("model", call.model)),
            body=orjson.dumps(body), status="queued",
            worst_nanos=ticket.worst, max_tokens=ticket.max_tokens, day=ticket.day, month=ticket.month,
            created=ticket.created, deadline=deadline, task=call.task or "", grp=grp, custom_id=custom_id,
        )  # fmt: skip

    async def admit_whole(self, call: Call, worst: Any, up: Any, ctx: LeverContext) -> Ticket:
        """Hold one request of a batch with no waiting and no fitting: the batch's earlier requests are what
        holds the budget, so a request that does not fit now means the whole batch does not fit."""
        gw = self.gw
        assert call.max_tokens is not None
        worst = await gw.admission.refine(call, worst, up, ctx.headers)
        verdict = await gw.budget.admit_waiting(  # no waiting: timeout 0
            call.agent, worst, call.input_bound, call.max_tokens, call.choices, 0, call.model, call.api
        )
        if isinstance(verdict, Ticket) and (not verdict.fitted or verdict.unmetered):
            return verdict
        if isinstance(verdict, Ticket):
            gw.budget.release_unsent(verdict)
        raise CallTooLarge(
            f"batch too large: its worst case at batch prices does not fit what agent {call.agent!r} has left "
            "(the whole batch is refused; nothing was sent): send fewer requests, lower max_tokens, or wait"
        )

    async def intake(self, api: str, agent: Agent, h: dict[bytes, bytes], gid: str,
                     items: list[tuple[str, Any]]) -> list[Job]:  # fmt: skip
        """An agent's batch (batch APIs): each (custom_id, request body or GatewayError) decoded, the levers
        applied as in real time, admitted at batch prices. A request that cannot be read becomes an errored
        job on its own (no hold, never sent); a batch whose worst case does not fit is refused whole, before
        anything is sent. Durable on return."""
        from ..app import WIRES, decode, task_of

        wire = WIRES[api]
        jobs: list[Job] = []
        try:
            for n, (custom_id, body) in enumerate(items, 1):
                try:
                    if isinstance(body, GatewayError):
                        raise body
                    if not isinstance(body, dict):
                        raise BadRequest("the request must be a JSON object")
                    call = decode(wire, agent, body, h, len(orjson.dumps(body)))
                    if call.stream:
                        raise BadRequest("stream: batched requests cannot stream", param="stream")
                    if fast_mode(call):
                        raise BadRequest(FAST_IN_BATCH, param="speed")
                    ctx = LeverContext(agent, task_of(agent, call), h, self.gw)
                    for lever in self.gw.appliers:
                        if lever.name not in IN_BATCH_SKIPS:
                            await lever.apply(call, ctx)
                    if call.max_tokens is None:
                        call.max_tokens = agent.max_tokens
                    if call.model not in self.gw.config.models:
                        raise BadRequest(f"model {call.model!r} needs the routing lever")
                    if self.shared is not None:  # replicas: held whole below, in one step
                        jobs.append(await self.unheld(call, ctx, gid, custom_id))
                    else:
                        jobs.append(await self.admit(call, ctx, call.body, None, gid, custom_id))
                except (BudgetExceeded, CallTooLarge, BudgetBusy):
                    raise
                except GatewayError as e:
                    jobs.append(refused(e, wire, api, agent.name, gid, custom_id))
                if n % holds.PACE == 0:
                    await asyncio.sleep(0)  # a large batch's reading: real-time calls are served in between
        except BaseException:
            self.release(jobs)
            raise
        if self.shared is not None:
            await self.accept(agent.name, jobs)
        else:
            self.commit(jobs)
        return jobs

    async def accept(self, agent: str, jobs: list[Job]) -> None:
        """Replicas: hold an agent's batch whole and make its jobs durable, never waiting on the event loop
        (holds.py); on failure nothing stays held, unless the commit's answer was lost (then over-counted)."""
        assert self.shared is not None and isinstance(self.queue, PgQueue)
        queued = [j for j in jobs if j.status == "queued"]
        await holds.hold_batch(self.shared, self.gw.budget, agent, queued)
        try:
            await self.queue.accept(self.shared.pg.db, jobs)
        except Exception as e:
            if not self.unwritten(jobs):  # the commit's answer was lost: keep the holds, over-counted at worst
                raise UpstreamFailed(f"could not confirm the batch was recorded: {e}", status=503) from e
            self.shared.drop_many([j.id for j in queued])
            raise UpstreamFailed(f"could not record the batch: {e}", status=503) from e

    def commit(self, jobs: list[Job]) -> None:
        """Make admitted jobs durable; on failure their holds are dropped (nothing was sent). On replicas the
        holds pass to the queue with the jobs (pg_queue.py), and this replica forgets them."""
        try:
            self.queue.add(jobs)
        except Exception as e:
            if not self.unwritten(jobs):  # the commit's answer was lost: keep the holds, over-counted at worst
                raise UpstreamFailed(f"could not confirm the deferred call was recorded: {e}", status=503) from e
            self.release(jobs)
            raise UpstreamFailed(f"could not record the deferred call: {e}", status=503) from e
        if self.shared is not None:
            held = [j.id for j in jobs if j.id in self.tickets]
            for i in held:
                self.gw.budget.hand_off(self.tickets.pop(i))
            self.shared.adopt(held, BATCH_OWNER)

    def unwritten(self, jobs: list[Job]) -> bool:
        """Whether a failed `add` certainly wrote nothing (SQLite: its transaction rolled back)."""
        if self.shared is None or not jobs:
            return True
        try:
            return self.queue.job(jobs[0].id) is None
        except GatewayError:
            return False

    def release(self, jobs: list[Job]) -> None:
        """Drop the holds of admitted jobs that will not be queued."""
        for j in jobs:
            t = self.tickets.pop(j.id, None)
            if t is not None:
                self.gw.budget.release_unsent(t)

    async def cancel(self, gid: str) -> None:
        """Cancel an agent's batch: queued requests are canceled at once (holds released), submitted ones
        are canceled at the provider and settle as its results say."""
        self.queue.cancel_group(gid)
        self.settle([(j, "canceled", None) for j in self.queue.jobs("grp = ? AND status = 'queued'", (gid,))])
        submitted = self.queue.jobs("grp = ? AND status = 'submitted'", (gid,))
        subs = {(j.submission, j.provider) for j in submitted if not j.submission.startswith(CLAIM)}
        for sub, provider in subs:  # jobs still being sent (claimed): canceled by the sender once it has the id
            await self.cancel_upstream(self.gw.upstreams[provider], sub.removeprefix("sub_"))

    async def cancel_upstream(self, up: Any, batch_id: str) -> None:
        try:
            await upstream.cancel(up, batch_id)
        except upstream.BatchFailed as e:
            log.warning("batch: canceling %s failed: %s", batch_id, e)

    def canceled(self, gid: str, agent: str) -> bool:
        g = self.queue.group(gid, agent)
        return g is not None and bool(g[2])

    # -- the loop

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.settings.flush_age_s / 4, self.settings.poll_s))
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 — the loop keeps going; the next tick retries
                log.exception("batch: tick failed")

    async def tick(self, force: bool = False) -> None:
        """Send what is due and read what has ended — on replicas only the one holding the lease does."""
        if not self.queue.lead():
            return
        self.settle([(j, "lost", None) for j in self.queue.lost_claims()])
        await self.flush(force)
        now = time.time()
        if force or now - self._polled >= self.settings.poll_s:
            self._polled = now
            await self.poll()
            if self.shared is not None:  # holds a replica stopped before releasing, after their ledger rows
                await self.shared.sweep(BATCH_OWNER)

    async def flush(self, force: bool = False) -> None:
        queued = self.queue.jobs("status = 'queued'")
        groups: dict[tuple[str, str, str], list[Job]] = {}
        for j in queued:
            groups.setdefault((j.provider, j.model, j.grp), []).append(j)
        now = time.time()
        s = self.settings
        for (provider, _, grp), jobs in groups.items():
            size = sum(len(j.body) for j in jobs)
            due = force or grp or len(jobs) >= s.flush_count or size >= s.flush_bytes
            due = due or now - jobs[0].created >= s.flush_age_s
            due = due or any(j.deadline is not None and j.deadline - WINDOW_S <= now for j in jobs)
            if not due:
                continue
            up = self.gw.upstreams[provider]
            for chunk in upstream.split(jobs, up.provider.api, s.flush_count if not grp else 10**9, s.flush_bytes):
                claim = claim_id(self.queue.replica)
                claimed = set(self.queue.claim([j.id for j in chunk], claim))  # a cancel leaves them alone now
                chunk = [j for j in chunk if j.id in claimed]
                if not chunk:
                    continue
                try:
                    batch_id, file_id = await upstream.submit(up, chunk)
                except upstream.BatchFailed as e:
                    log.warning("batch: submitting %d jobs to %s failed: %s", len(chunk), provider, e)
                    self.queue.unclaim(claim)
                    break
                self.queue.submitted(claim, "sub_" + batch_id, provider, batch_id, file_id)
                if grp and self.canceled(grp, chunk[0].agent):  # the agent canceled while it was being sent
                    await self.cancel_upstream(up, batch_id)

    async def poll(self) -> None:
        for sub, provider, batch_id in self.queue.open_submissions():
            up = self.gw.upstreams[provider]
            try:
                results = await upstream.poll(up, batch_id)
            except upstream.BatchFailed as e:
                log.warning("batch: polling %s at %s failed: %s", batch_id, provider, e)
                continue
            if results is None:
                continue
            jobs = {j.id: j for j in self.queue.jobs("submission = ? AND status = 'submitted'", (sub,))}
            done: list[tuple[Job, str, Any]] = []
            for custom_id, outcome, body in results:
                if custom_id == "*":  # the whole batch failed: every job errored
                    done += [(failed, "errored", body) for failed in jobs.values()]
                    jobs.clear()
                if custom_id in jobs:
                    done.append((jobs.pop(custom_id), outcome, body))
            none = {"message": "the provider's batch returned no result for this request"}
            done += [(j, "errored", none) for j in jobs.values()]  # the provider returned nothing for it: not billed
            self.settle(done)
            self.queue.close_submission(sub)

    # -- settlement

    def settle(self, outcomes: list[tuple[Job, str, Any]]) -> None:
        """Book jobs (each as read from the queue, its outcome and the provider's body) exactly once. One
        process: the ledger row first, the job marked after. Replicas: both in one transaction, and only for
        jobs still in the state they were read in (another replica may have settled or claimed one since)."""
        if not outcomes:
            return
        gw = self.gw
        if self.shared is None:
            for j, outcome, body in outcomes:
                row = self.outcome(j, outcome, body)
                ticket = self.tickets.pop(j.id, None) or self.hold(j)
                gw.budget.settle(ticket, row)
                self.queue.finish(j)
                self.notify(j)
            return
        assert isinstance(self.queue, PgQueue)
        done: list[Settlement] = []
        for j, outcome, body in outcomes:
            status, submission = j.status, j.submission
            done.append((j, self.outcome(j, outcome, body), status, submission))
        booked = self.queue.settle(done)
        for j, row, _, _ in done:
            if j.id in booked:
                row.cost_nanos = booked[j.id]
                gw.budget.settle(self.hold(j), row, booked=True)
                self.notify(j)

    def outcome(self, j: Job, outcome: str, body: Any) -> LedgerRow:
        """The job's ledger row for an outcome (the job updated to it): succeeded at the batch price of its
        usage; errored, expired, canceled at zero; lost (sent or not, nobody knows) at its worst case, flagged."""
        gw = self.gw
        rates = batch_rates(gw.config, j.model)
        cost, usage, reconcile, error = 0, Usage(), 0, ""
        if outcome == "succeeded":
            wire = gw_wire(j.target_api)
            got = wire.answer_usage(body)
            if got is not None:
                got.service_tier = ""  # "batch": priced by the batch rates themselves
            # the real-time settlement rules: fees (search, built-in tools), and a usage that is missing, malformed
            # or carries a field nothing can price is booked at the worst case and flagged, never below the bill
            sent = orjson.loads(j.body)
            call = Call(api=j.api, agent=j.agent, body=sent, model=j.model, stream=False, max_tokens=j.max_tokens,
                        choices=choices(sent) if j.target_api == "openai" else 1, target_api=j.target_api)  # fmt: skip
            charge = price(call, rates, j.worst_nanos, j.max_tokens, "ok", got, "", None)
            cost, usage, reconcile, error = to_nanos(charge.cost_usd), charge.usage, charge.reconcile, charge.error
            if got is not None and not reconcile:
                j.realtime_nanos = to_nanos(gw.rates_of(j.model).cost(usage))
            answer = body
            if j.api != j.target_api and isinstance(body, dict):
                answer = translate.answer_for(j.api, body, j.model)
            j.result = orjson.dumps(answer)
        elif outcome == "lost":
            cost, reconcile = j.worst_nanos, 1
            error = (
                "the replica sending this job stopped before the provider answered: it may have run, so it is "
                "booked at its worst case until reconciled"
            )
            j.result = orjson.dumps({"message": error})
        else:
            j.result = orjson.dumps(body) if body is not None else None
            error = f"batch request {outcome}"
        status = {"succeeded": "ok", "errored": "upstream_error", "lost": "crashed"}.get(outcome, outcome)
        # the batch discount is the batch lever's saving (savings.py: batch puts back the real-time price)
        saved = orjson.dumps({"batch": j.realtime_nanos - cost}).decode() if j.realtime_nanos else "{}"
        row = LedgerRow(
            id=j.id, ts=j.created, agent=j.agent, api=j.api, provider=j.provider, model_requested=j.model_requested,
            model=j.model, status=status, cost_usd=str(from_nanos(cost)), cost_nanos=cost, day=j.day, month=j.month,
            worst_nanos=j.worst_nanos, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens, max_tokens=j.max_tokens, reconcile=reconcile,
            error=error, task=j.task, uncached_cost_nanos=cost, baseline_cost_nanos=j.realtime_nanos or cost,
            route="batch", savings=saved,
        )  # fmt: skip
        if cost > j.worst_nanos:
            log.warning("batch job %s cost %s above its reserved worst case %s", j.id, cost, j.worst_nanos)
        j.status = "errored" if outcome == "lost" else outcome
        j.cost_nanos, j.error, j.finished = cost, error, time.time()
        return row

    def notify(self, j: Job) -> None:
        """POST a finished deferred job to its agent's webhook, off the event loop; at most once (the job stays
        readable at GET /v1/paymaster/jobs/{id} whatever becomes of the POST)."""
        agent = self.gw.config.agents.get(j.agent)
        if agent is None or not agent.webhook or j.grp:
            return
        body = orjson.dumps(job_view(j))
        send = asyncio.to_thread(post, agent.webhook, body, agent.webhook_secret, j.id)
        task = asyncio.get_running_loop().create_task(send)
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    # -- restart

    def hold(self, j: Job) -> Ticket:
        """A job's hold on its windows, made again (after a restart; on replicas, by whichever settles it)."""
        return self.gw.budget.hold_again(j.id, j.agent, j.day, j.month, j.worst_nanos, j.created, j.max_tokens)

    def restore(self) -> int:
        """Open jobs after a start: booked before a crash → marked; else held again. Returns how many are held."""
        n = 0
        for j in self.queue.jobs("status IN ('queued', 'submitted')"):
            row = self.gw.store.row(j.id)
            if row is not None:
                j.status = "succeeded" if row["status"] == "ok" else row["status"]
                j.cost_nanos, j.finished = row["cost_nanos"], time.time()
                self.queue.finish(j)
                continue
            self.tickets[j.id] = self.hold(j)
            n += 1
        return n


def refused(e: GatewayError, wire: Any, api: str, agent: str, gid: str, custom_id: str) -> Job:
    """A request of an agent's batch that could not be read: errored at once, never sent, nothing held."""
    now = time.time()
    return Job(
        id=call_id(), agent=agent, api=api, target_api=api, provider="", model="",
        model_requested="", body=b"", status="errored", worst_nanos=0, max_tokens=0, day="", month="",
        created=now, grp=gid, custom_id=custom_id, result=wire.error_body(e), error=e.message, finished=now,
    )  # fmt: skip


def gw_wire(api: str) -> Any:
    from ..app import WIRES

    return WIRES[api]


def job_view(j: Job) -> dict[str, Any]:
    """A job as GET /v1/paymaster/jobs/{id} shows it; `response` is the answer in the caller's API shape."""
    result = orjson.loads(j.result) if j.result else None
    return {
        "id": j.id,
        "object": "paymaster.job",
        "status": j.status,
        "model": j.model,
        "created_at": int(j.created),
        "deadline": int(j.deadline) if j.deadline else None,
        "finished_at": int(j.finished) if j.finished else None,
        "reserved_usd": str(from_nanos(j.worst_nanos)),
        "cost_usd": str(from_nanos(j.cost_nanos)) if j.status not in ("queued", "submitted") else None,
        "realtime_cost_usd": str(from_nanos(j.realtime_nanos)) if j.realtime_nanos else None,
        "response": result if j.status == "succeeded" else None,
        "error": result if j.status == "errored" else (j.error or None),
    }
