"""Where the gateway keeps what it must not lose: the ledger, the journal, shared counters (see the modules)."""

from __future__ import annotations


def local_ledger(ledger: str) -> str | None:
    """The SQLite ledger's file, beside which small state files of their own sit (routing's learnt state,
    compression's summaries, the Responses book); None when there is no such file — a ledger in memory, or
    a database URL (replicas on Postgres), where each process keeps that state in memory."""
    ledger = ledger.removeprefix("sqlite:///")  # `store: sqlite:///path` names the same file
    return None if ledger == ":memory:" or "://" in ledger else ledger
