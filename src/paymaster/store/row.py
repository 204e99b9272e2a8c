"""A ledger row: one call, booked. The ledger's table and the journal's settlement lines carry the same fields.

The journal writes a row as its values in field order (store/journal.py): a new field is appended, with a
default, never inserted or reordered, so that rows journaled before it still read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LedgerRow:
    id: str
    ts: float
    agent: str
    api: str
    provider: str
    model_requested: str
    model: str
    status: str  # ok | upstream_error | unreachable | timeout | disconnected | cut | crashed | response_cache
    cost_usd: str
    cost_nanos: int
    day: str
    month: str
    worst_nanos: int = 0
    stream: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    max_tokens: int = 0
    reconcile: int = 0
    latency_ms: float = 0.0
    upstream_request_id: str = ""
    error: str = ""
    task: str = ""
    max_tokens_requested: int = 0  # 0: the caller set none
    uncached_cost_nanos: int = 0  # what the call would have cost with no prompt or response caching
    exposure_removed_nanos: int = 0  # worst case the max_tokens ceiling took off this call
    route: str = ""  # why the call ran on `model` (routing, fallback)
    baseline_cost_nanos: int = 0  # the counterfactual: its cost with no lever (savings.py says how)
    savings: str = "{}"  # JSON {lever: nano-dollars}: baseline − cost split by lever, summing exactly
