"""What every call did, for operators: Prometheus metrics (`GET /metrics`) and the access log.

The hot path only adds to plain integers: `settled` (one per settlement) bumps the call's
(agent, model) series and buckets its upstream time, `end` (one per call request) buckets the
gateway's own overhead, counts refusals and keeps what the call's access-log line needs (the line
is formatted and written with the others at the next flush, once a second: off the call's path).
prometheus-client renders the counters at scrape time through a custom collector, so no
per-call lock or label lookup inside the client library.

Label cardinality is bounded: at most `observability.metrics_max_series` (agent, model) pairs
(default 1,000) are kept apart; calls of any further pair are counted under
agent="_other", model="_other". Refusal and reservation series are per agent, the latency
histograms per model, each under the same bound. A pair carries at most 5 token kinds, 8 statuses
and 2 caches; a model's two histograms 13 and 12 buckets.

Overhead is the request's whole time in the gateway minus the provider's share (from sending the
request to settling the answer, the ledger's `latency_ms`): authentication, body reading, levers,
admission, the journal write and the response's encoding.
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .errors import BudgetBusy, BudgetExceeded, CallTooLarge, GatewayError, RateLimited
from .http import Scope, bearer_or_key, header_map
from .pipe_writer import unblocked
from .store.row import LedgerRow

if TYPE_CHECKING:
    from .app import Gateway
    from .call import Call

CALL_PATHS = frozenset({"/v1/messages", "/v1/chat/completions", "/chat/completions"})
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
OTHER = "_other"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
FLUSH_LINES = 4096  # lines held at most between two flushes (~2 MB)
NANOS = 1e9

REFUSALS = (BudgetExceeded, CallTooLarge, BudgetBusy, RateLimited)  # counted per agent by their code
HTTP_OF_STATUS = {"ok": 200, "response_cache": 200, "timeout": 504, "unreachable": 502, "cut": 200}


class Histogram:
    """Fixed buckets, counts and a sum: what a Prometheus histogram carries, without a lock."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.total += v

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        run = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            run += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), run))
        return out


class Series:
    """One (agent, model) pair's counters."""

    __slots__ = ("calls", "spend", "tokens", "prompt_hits", "response_hits")

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.spend = 0  # nano-dollars
        self.tokens = [0] * len(TOKEN_KINDS)
        self.prompt_hits = 0  # calls that read the provider's prompt cache
        self.response_hits = 0  # calls answered from the gateway's response cache


class Latency:
    """One model's latency histograms (per model only: buckets per agent would multiply the series by 15)."""

    __slots__ = ("upstream", "overhead")

    def __init__(self) -> None:
        self.upstream = Histogram(UPSTREAM_BUCKETS)
        self.overhead = Histogram(OVERHEAD_BUCKETS)


class Trace:
    """One call request as it passes through the gateway."""

    __slots__ = ("start", "path", "rows", "error", "prompt")

    def __init__(self, path: str) -> None:
        self.start = time.perf_counter()
        self.path = path
        self.rows: list[LedgerRow] = []  # one per attempt (a fallback settles the failed one first)
        self.error: BaseException | None = None
        self.prompt: Any = None


_trace: ContextVar[Trace | None] = ContextVar("paymaster_trace", default=None)


class AccessLog:
    """One JSON line per call. The hot path only keeps what the line needs (`add`); the lines are
    formatted and written by `flush` — every second from the gateway's tick, at FLUSH_LINES lines and at stop."""

    def __init__(self, target: str) -> None:
        self._own = target not in ("stderr", "off")
        out: IO[bytes] | None = (
            None if target == "off" else sys.stderr.buffer if target == "stderr" else open(target, "ab")  # noqa: SIM115
        )
        self.out = None if out is None else unblocked(out, self._own)  # a reader that stalls never stops a call
        self._pending: list[Entry] = []

    def add(self, entry: Entry) -> None:
        if self.out is None:
            return
        self._pending.append(entry)
        if len(self._pending) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if self.out is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        data = b"\n".join([orjson.dumps(_line(*e)) for e in pending]) + b"\n"
        try:
            self.out.write(data)
            self.out.flush()
        except (OSError, ValueError):  # a closed or full log never stops a call
            pass

    def close(self) -> None:
        self.flush()
        if self.out is not None and self.out is not sys.stderr.buffer:  # stderr's PipeWriter: drained, kept open
            self.out.close()
            self.out = None


class Metrics:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        obs = gw.config.observability
        self.max_series = obs.metrics_max_series
        self.log_prompts = obs.log_prompts
        self.series: dict[tuple[str, str], Series] = {}
        self.latency: dict[str, Latency] = {}
        self.refusals: dict[str, dict[str, int]] = {}
        self.settled_count = 0  # the dashboard's live view polls this
        self.log = AccessLog(obs.access_log)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # a custom collector: `collect` below

    # -- the hot path ------------------------------------------------------------------------------

    def begin(self, path: str) -> Trace | None:
        """Start timing a call request (None for any other path)."""
        if path not in CALL_PATHS:
            return None
        t = Trace(path)
        _trace.set(t)
        return t

    def _series(self, agent: str, model: str) -> Series:
        s = self.series.get((agent, model))
        if s is None:
            key = (agent, model) if len(self.series) < self.max_series else (OTHER, OTHER)
            s = self.series.get(key)
            if s is None:
                s = self.series[key] = Series()
        return s

    def _latency(self, model: str) -> Latency:
        h = self.latency.get(model)
        if h is None:
            h = self.latency.setdefault(model if len(self.latency) < self.max_series else OTHER, Latency())
        return h

    def settled(self, call: Call, row: LedgerRow) -> None:
        """A call was booked (an attempt of a request, or a lever's answer such as the response cache)."""
        s = self._series(row.agent, row.model)
        s.calls[row.status] = s.calls.get(row.status, 0) + 1
        s.spend += row.cost_nanos
        t = s.tokens
        t[0] += row.input_tokens
        t[1] += row.output_tokens
        t[2] += row.cache_read_tokens
        t[3] += row.cache_write_tokens - row.cache_write_1h_tokens
        t[4] += row.cache_write_1h_tokens
        if row.status == "response_cache":
            s.response_hits += 1
        else:
            if row.cache_read_tokens:
                s.prompt_hits += 1
            self._latency(row.model).upstream.observe(row.latency_ms / 1000)
        self.settled_count += 1
        trace = _trace.get()
        if trace is not None:
            trace.rows.append(row)
            if self.log_prompts:
                trace.prompt = call.body

    def end(self, trace: Trace, scope: Scope) -> None:
        """The request is answered: its overhead, its refusal if any, its access-log line."""
        total = time.perf_counter() - trace.start
        rows, error = trace.rows, trace.error
        if error is None:
            error = sys.exc_info()[1]  # anything but a GatewayError: on its way out as a 500
        upstream = sum(r.latency_ms for r in rows if r.status != "response_cache") / 1000
        row = rows[-1] if rows else None
        if row is not None:
            agent = row.agent
            self._latency(row.model).overhead.observe(max(0.0, total - upstream))
        else:
            key = bearer_or_key(header_map(scope))  # a refused call: no booking names its agent
            found = self.gw.fleet.known(key) if key else None
            agent = found.name if found is not None else ""
        code = ""
        if error is not None:
            code = getattr(error, "code", None) or getattr(error, "kind", None) or type(error).__name__
            if isinstance(error, REFUSALS) and agent:
                per = self.refusals.get(agent)
                if per is None:
                    per = self.refusals.setdefault(agent if len(self.refusals) < self.max_series else OTHER, {})
                per[code] = per.get(code, 0) + 1
        if self.log.out is not None:  # the line is formatted at the next flush, off the call's path
            ts = row.ts if row is not None else time.time()
            http = None if error is None else _http_status(row, error)  # the error itself is not kept
            status = row.status if row is not None else _unbooked(error)
            self.log.add((ts, row, agent, trace.path, http, status, code, total, upstream, len(rows), trace.prompt))

    # -- the scrape --------------------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        labels = ["agent", "model"]
        calls = CounterMetricFamily("paymaster_calls", "Calls booked, by ledger status", labels=[*labels, "status"])
        spend = CounterMetricFamily("paymaster_spend_usd", "Dollars booked in the ledger", labels=labels)
        tokens = CounterMetricFamily("paymaster_tokens", "Tokens booked, by kind", labels=[*labels, "kind"])
        hits = CounterMetricFamily(
            "paymaster_cache_hits",
            "Calls served from a cache (prompt: the provider's; response: ours)",
            labels=[*labels, "cache"],
        )
        ratio = GaugeMetricFamily(
            "paymaster_cache_hit_ratio", "Share of booked calls that read a cache (prompt or response)", labels=labels
        )
        upstream = HistogramMetricFamily(
            "paymaster_upstream_seconds",
            "Provider time of each call (request sent to answer settled)",
            labels=["model"],
        )
        overhead = HistogramMetricFamily(
            "paymaster_overhead_seconds",
            "The gateway's own time per call request (total minus provider)",
            labels=["model"],
        )
        for (agent, model), s in list(self.series.items()):
            lv = [agent, model]
            n = 0
            for status, c in list(s.calls.items()):  # rendered in a thread while calls settle
                calls.add_metric([*lv, status], c)
                n += c
            spend.add_metric(lv, s.spend / NANOS)
            for kind, v in zip(TOKEN_KINDS, s.tokens, strict=True):
                tokens.add_metric([*lv, kind], v)
            hits.add_metric([*lv, "prompt"], s.prompt_hits)
            hits.add_metric([*lv, "response"], s.response_hits)
            if n:
                ratio.add_metric(lv, (s.prompt_hits + s.response_hits) / n)
        for model, lat in list(self.latency.items()):
            for fam, h in ((upstream, lat.upstream), (overhead, lat.overhead)):
                if any(h.counts):
                    fam.add_metric([model], h.cumulative(), h.total)
        refusals = CounterMetricFamily("paymaster_refusals", "Calls refused by the budget", labels=["agent", "reason"])
        for agent, per in list(self.refusals.items()):
            for reason, c in per.items():
                refusals.add_metric([agent, reason], c)
        open_n = GaugeMetricFamily(
            "paymaster_reservations_outstanding", "Calls admitted, not yet settled", labels=["agent"]
        )
        open_usd = GaugeMetricFamily(
            "paymaster_reserved_usd", "Worst-case dollars held by calls in flight", labels=["agent"]
        )
        held: dict[str, list[int]] = {a: [0, 0] for a in list(self.gw.config.agents)[: self.max_series]}
        for t in list(self.gw.budget.open.values()):
            pair = held.get(t.agent) or held.setdefault(OTHER, [0, 0])
            pair[0] += 1
            pair[1] += t.worst
        for agent, (n, w) in held.items():
            open_n.add_metric([agent], n)
            open_usd.add_metric([agent], w / NANOS)
        yield from (calls, spend, tokens, hits, ratio, upstream, overhead, refusals, open_n, open_usd)


Entry = tuple[float, "LedgerRow | None", str, str, "int | None", str, str, float, float, int, Any]
"""What an access-log line is made of, kept per call until the flush: (ts, row, agent, path, HTTP status
when the call failed, status, error code, seconds in the gateway, seconds upstream, attempts, the request
when prompts are logged)."""


def _line(
    ts: float,
    row: LedgerRow | None,
    agent: str,
    path: str,
    http: int | None,
    status: str,
    code: str,
    total: float,
    upstream: float,
    attempts: int,
    prompt: Any,
) -> dict[str, Any]:
    """One access-log line (epoch seconds and whole microseconds)."""
    over = total - upstream if total > upstream else 0.0
    line: dict[str, Any]
    if row is not None:
        line = {
            "ts": ts,
            "call_id": row.id,
            "agent": agent,
            "path": path,
            "http_status": http if http is not None else _http_status(row, None),
            "status": status,
            "model_requested": row.model_requested,
            "model": row.model,
            "route": row.route,
            "task": row.task,
            "stream": row.stream,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cache_read_tokens": row.cache_read_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "cost_usd": row.cost_usd,
            "reserved_nanos": row.worst_nanos,
            "reconcile": row.reconcile,
            "duration_us": int(total * 1e6),
            "upstream_us": int(upstream * 1e6),
            "overhead_us": int(over * 1e6),
            "upstream_request_id": row.upstream_request_id,
        }
        if row.error:
            line["detail"] = row.error
    else:
        line = {
            "ts": ts,
            "call_id": None,
            "agent": agent or None,
            "path": path,
            "http_status": http if http is not None else 200,
            "status": status,
            "duration_us": int(total * 1e6),
            "overhead_us": int(over * 1e6),
        }
    if http is not None:
        line["error"] = code
    if attempts > 1:
        line["attempts"] = attempts
    if prompt is not None:
        line["request"] = prompt
    return line


def _unbooked(error: BaseException | None) -> str:
    """The access log's status of a call that was never booked."""
    if isinstance(error, REFUSALS):
        return "refused"  # by the budget
    if isinstance(error, GatewayError) and error.status < 500:
        return "rejected"  # the caller's mistake: bad input, unknown key or model
    return "failed"


def _http_status(row: LedgerRow | None, error: BaseException | None) -> int:
    if isinstance(error, GatewayError):
        return error.status
    if error is not None:
        return 500
    if row is None:
        return 200
    if row.status == "upstream_error" and row.error[:3].isdigit():
        return int(row.error[:3])
    return HTTP_OF_STATUS.get(row.status, 200)
