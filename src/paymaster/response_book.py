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

A conversation grows with every response made in it (its input and output items are appended when the
response completes, `store: false` or not), so while a call naming it is in flight the book cannot know its
size: a second call on it then is bounded by the model's window, and a call that overlapped another on the
same conversation adds its figure to the conversation's instead of replacing it (`begin` / `end` bracket each
call, from reading the book to after its settlement).

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

    OWNER_KEY = "paymaster_agent"  # replicas: the owning agent, in each stored response's own metadata

    def __init__(self, ledger: str) -> None:
        local = local_ledger(ledger)
        self.shared = local is None and ledger != ":memory:"  # replicas: each keeps its own book
        path = ":memory:" if local is None else local + ".responses"
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.flying: dict[str, int] = {}  # conversation → calls naming it in flight
        self.overlapped: set[str] = set()  # conversations two calls were in flight on at once
        self.calls: dict[int, str] = {}  # id(request body) → the conversation it named (begin → end)

    def close(self) -> None:
        self.db.close()

    def owner(self, rid: str) -> tuple[str, str] | None:
        """(agent, model) of a response the gateway served, or None."""
        row = self.db.execute("SELECT agent, model FROM response WHERE id = ?", (rid,)).fetchone()
        return (row[0], row[1]) if row else None

    def stored(self, kind: str, ref: str) -> tuple[str, int | None] | None:
        """(owner, context tokens or None when unknown) of a stored response or conversation, or None when
        the gateway never served it. A conversation with a call in flight is of unknown size."""
        table = "response" if kind == "response" else "conversation"
        row = self.db.execute(f"SELECT agent, tokens FROM {table} WHERE id = ?", (ref,)).fetchone()  # noqa: S608
        if row is None:
            return None
        return row[0], None if kind == "conversation" and ref in self.flying else row[1]

    def record(self, rid: str, agent: str, model: str, tokens: int | None) -> None:
        now = time.time()
        self.db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?, ?)", (rid, agent, model, tokens, now))

    def grown(self, conversation: str, agent: str, tokens: int | None) -> None:
        """A response made in `conversation` settled, having read and written `tokens` (None: unknown)."""
        if tokens is not None and conversation in self.overlapped:
            row = self.db.execute("SELECT tokens FROM conversation WHERE id = ?", (conversation,)).fetchone()
            tokens = row[0] + tokens if row is not None and row[0] is not None else None
        self.db.execute(
            "INSERT OR REPLACE INTO conversation VALUES (?, ?, ?, ?)", (conversation, agent, tokens, time.time())
        )

    def begin(self, body: dict[str, Any]) -> None:
        """A call naming a conversation is about to be admitted: the conversation is in flight until `end`."""
        ref = stored_reference(body)
        if ref is None or ref[0] != "conversation":
            return
        conv = ref[1]
        n = self.flying.get(conv, 0)
        if n:
            self.overlapped.add(conv)
        self.flying[conv] = n + 1
        self.calls[id(body)] = conv

    def stamp(self, body: dict[str, Any], agent: str) -> None:
        """Replicas: write the owning agent into a stored response's metadata (OpenAI keeps it with the response),
        so a replica that did not serve it can check whose it is (`owned_elsewhere`)."""
        if not self.shared or body.get("store") is False:
            return
        meta = body.get("metadata")
        meta = dict(meta) if isinstance(meta, dict) else {}
        if len(meta) < 16 or self.OWNER_KEY in meta:  # the API's limit: 16 pairs
            meta[self.OWNER_KEY] = agent
            body["metadata"] = meta

    def unstamped(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of `body` without the owner stamp (for another provider, which has no use for it)."""
        out = dict(body)
        meta = out.get("metadata")
        if isinstance(meta, dict) and self.OWNER_KEY in meta:
            meta = {k: v for k, v in meta.items() if k != self.OWNER_KEY}
            if meta:
                out["metadata"] = meta
            else:
                del out["metadata"]
        return out

    def adopt(self, rid: str, agent: str, model: str, response: Any) -> tuple[bool, int | None]:
        """A stored response another replica served, as the provider returned it (GET): (whether `agent` owns it —
        by its stamp — and its context tokens from its usage, None when unreadable). Booked here when owned."""
        meta = response.get("metadata") if isinstance(response, dict) else None
        if not isinstance(meta, dict) or meta.get(self.OWNER_KEY) != agent:
            return False, None
        u = response.get("usage")
        tokens = None
        if isinstance(u, dict) and response.get("status") in ("completed", "incomplete"):
            i, o = u.get("input_tokens"), u.get("output_tokens")
            if isinstance(i, int) and isinstance(o, int) and not isinstance(i, bool) and not isinstance(o, bool):
                tokens = i + o if i >= 0 and o >= 0 else None
        self.record(rid, agent, model, tokens)
        return True, tokens

    def in_flight(self, body: dict[str, Any]) -> bool:
        """Whether the conversation `body` names has a call in flight."""
        ref = stored_reference(body)
        return ref is not None and ref[0] == "conversation" and ref[1] in self.flying

    def end(self, body: dict[str, Any]) -> None:
        """The call `begin` saw has settled or was refused (idempotent; nothing for any other call)."""
        conv = self.calls.pop(id(body), None)
        if conv is None:
            return
        n = self.flying[conv] - 1
        if n:
            self.flying[conv] = n
        else:
            del self.flying[conv]
            self.overlapped.discard(conv)

    def forget(self, rid: str) -> None:
        self.db.execute("DELETE FROM response WHERE id = ?", (rid,))

    # -- the pipeline's settled hook (a lever's, without being one) ---------------------------------------

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        if call.api != "responses" or call.target_api != "responses" or outcome.status == "upstream_error":
            return
        u = outcome.usage
        tokens = u.input_tokens + u.output_tokens if outcome.exact else None
        ref = stored_reference(call.body)
        if ref is not None and ref[0] == "conversation":  # its items are appended, stored response or not
            self.grown(ref[1], call.agent, tokens)
        if call.body.get("store") is False:  # no stored response: nothing to own or continue
            return
        rid = call.response_id or response_id(outcome.answer)
        if rid:
            self.record(rid, call.agent, call.model, tokens)


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
