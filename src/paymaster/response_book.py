"""The responses the gateway served through the Responses API: who owns each, and how much stored context
a later request that names it (`previous_response_id`, `conversation`) brings along.

The provider adds a named response's whole context — its input (which held its own stored context) and
its output — to the next request's input, where the body does not show it. The gateway bounds that from
its own figures: a response's context is its billed input + output tokens (an upper bound: reasoning may
be dropped, and built-in tool rounds bill the context more than once). A response whose usage the
gateway could not read is kept with no figure: a request naming it is bounded as an unknown one (by the
model's context window).

Ownership: an agent sees (retrieves, deletes, lists, cancels, continues) only responses made with its
own key; any other id is "not found" to it.

One small SQLite file next to the ledger (`<ledger>.responses`), so chains and ownership survive a restart.
With a shared ledger (replicas on Postgres) the book is each replica's own, in memory: a response another
replica served is unknown here — bounded by the model's window, and not retrievable through this replica.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from .store import local_ledger
from .wire.responses import response_id, stored_reference

if TYPE_CHECKING:
    from .call import Call
    from .levers.base import LeverContext, Settlement

SCHEMA = """
CREATE TABLE IF NOT EXISTS response (
    id TEXT PRIMARY KEY, agent TEXT NOT NULL, model TEXT NOT NULL, tokens INTEGER, ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS conversation (
    id TEXT PRIMARY KEY, agent TEXT NOT NULL, tokens INTEGER, ts REAL NOT NULL
);
"""


class ResponseBook:
    """Record in `settled` (after each Responses call is booked), read before admission."""

    name = "responses"

    def __init__(self, ledger: str) -> None:
        local = local_ledger(ledger)
        path = ":memory:" if local is None else local + ".responses"
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def owner(self, rid: str) -> tuple[str, str] | None:
        """(agent, model) of a response the gateway served, or None."""
        row = self.db.execute("SELECT agent, model FROM response WHERE id = ?", (rid,)).fetchone()
        return (row[0], row[1]) if row else None

    def stored(self, kind: str, ref: str) -> tuple[str, int | None] | None:
        """(owner, context tokens or None when unknown) of a stored response or conversation, or None when
        the gateway never served it."""
        table = "response" if kind == "response" else "conversation"
        row = self.db.execute(f"SELECT agent, tokens FROM {table} WHERE id = ?", (ref,)).fetchone()  # noqa: S608
        return (row[0], row[1]) if row else None

    def record(self, rid: str, agent: str, model: str, tokens: int | None, conversation: str | None) -> None:
        now = time.time()
        self.db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?, ?)", (rid, agent, model, tokens, now))
        if conversation is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO conversation VALUES (?, ?, ?, ?)", (conversation, agent, tokens, now)
            )

    def forget(self, rid: str) -> None:
        self.db.execute("DELETE FROM response WHERE id = ?", (rid,))

    # -- the pipeline's settled hook (a lever's, without being one) ---------------------------------------

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        if call.api != "responses" or call.target_api != "responses" or outcome.status == "upstream_error":
            return
        if call.body.get("store") is False:  # nothing stored at the provider: nothing to own or continue
            return
        rid = call.response_id or response_id(outcome.answer)
        if not rid:
            return
        u = outcome.usage
        tokens = u.input_tokens + u.output_tokens if outcome.exact else None
        ref = stored_reference(call.body)
        conversation = ref[1] if ref is not None and ref[0] == "conversation" else None
        self.record(rid, call.agent, call.model, tokens, conversation)


def context_of(book: ResponseBook, agent: str, body: dict[str, Any]) -> tuple[bool, int | None]:
    """(names stored context, its tokens — None when the gateway never served it). Raises LookupError when
    it names another agent's response or conversation."""
    ref = stored_reference(body)
    if ref is None:
        return False, 0
    hit = book.stored(*ref)
    if hit is None:
        return True, None
    if hit[0] != agent:
        raise LookupError(ref)
    return True, hit[1]
