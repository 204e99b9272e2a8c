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
With a shared ledger (replicas on Postgres) the book is in Postgres (`responses`, `conversations`), so every
replica knows every response: its owner (an agent cannot continue or retrieve another agent's response
through any replica) and its context size. Each replica keeps what it has seen in memory in front of it; a
response is written to Postgres in the background as its call settles (a millisecond or so), so a
continuation that reaches another replica a moment later finds it. One that arrives before the write lands
is treated as a response the gateway never served (bounded by the model's window, ownership not enforced).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Protocol

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


log = logging.getLogger("paymaster")


class SharedBook(Protocol):
    """Where replicas keep the book (store/postgres.py `PostgresLedger`)."""

    async def response_record(self, rid: str, agent: str, model: str, tokens: int | None, conv: str | None) -> None:
        """Record one served response (and the conversation it continued)."""

    async def response_lookup(self, kind: str, ref: str) -> tuple[str, str, int | None] | None:
        """(agent, model — "" for a conversation —, tokens) of a stored response or conversation."""

    async def response_forget(self, rid: str) -> None:
        """Drop a deleted response."""


class ResponseBook:
    """Record in `settled` (after each Responses call is booked), read before admission."""

    name = "responses"

    def __init__(self, ledger: str, shared: SharedBook | None = None) -> None:
        self.shared = shared
        self._writes: set[asyncio.Task[None]] = set()
        local = local_ledger(ledger)
        path = ":memory:" if local is None else local + ".responses"
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    async def drain(self) -> None:
        """Wait for the writes to the shared book still under way (at shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def owner(self, rid: str) -> tuple[str, str] | None:
        """(agent, model) of a response this process knows of, or None."""
        row = self.db.execute("SELECT agent, model FROM response WHERE id = ?", (rid,)).fetchone()
        return (row[0], row[1]) if row else None

    async def owner_anywhere(self, rid: str) -> tuple[str, str] | None:
        """`owner`, asking the shared book (replicas) when this process has not seen the response."""
        made = self.owner(rid)
        if made is None and self.shared is not None:
            hit = await self.shared.response_lookup("response", rid)
            if hit is not None:
                self.db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?, ?)", (rid, *hit, time.time()))
                made = hit[0], hit[1]
        return made

    async def stored_anywhere(self, kind: str, ref: str) -> tuple[str, int | None] | None:
        """`stored`, asking the shared book (replicas) when this process has not seen it."""
        hit = self.stored(kind, ref)
        if hit is None and self.shared is not None:
            found = await self.shared.response_lookup(kind, ref)
            if found is not None:
                agent, model, tokens = found
                if kind == "response":
                    row = (ref, agent, model, tokens, time.time())
                    self.db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?, ?)", row)
                hit = agent, tokens
        return hit

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

    async def forget(self, rid: str) -> None:
        self.db.execute("DELETE FROM response WHERE id = ?", (rid,))
        if self.shared is not None:
            await self.shared.response_forget(rid)

    def _share(self, rid: str, agent: str, model: str, tokens: int | None, conversation: str | None) -> None:
        if self.shared is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # settled outside the gateway's loop (a test's direct call): nothing shared to write to
        task = loop.create_task(self._write(rid, agent, model, tokens, conversation))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, rid: str, agent: str, model: str, tokens: int | None, conversation: str | None) -> None:
        assert self.shared is not None
        try:
            await self.shared.response_record(rid, agent, model, tokens, conversation)
        except Exception as e:  # noqa: BLE001 — the call is booked; only other replicas' view of it is late
            log.warning("responses: %s not shared with the other replicas: %s", rid, e)

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
        self._share(rid, call.agent, call.model, tokens, conversation)


async def context_of(book: ResponseBook, agent: str, body: dict[str, Any]) -> tuple[bool, int | None]:
    """(names stored context, its tokens — None when the gateway never served it). Raises LookupError when
    it names another agent's response or conversation."""
    ref = stored_reference(body)
    if ref is None:
        return False, 0
    hit = await book.stored_anywhere(*ref)
    if hit is None:
        return True, None
    if hit[0] != agent:
        raise LookupError(ref)
    return True, hit[1]
