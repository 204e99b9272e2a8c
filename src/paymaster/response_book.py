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
call, from reading the book to after its settlement). On replicas the count is kept in Redis across replicas
(`join` / `end`, store/redis.py `ConversationFlights`): a call joins before the size is read and leaves once
the size its settlement wrote is in Postgres, so a call through one replica while another is in flight
through another is bounded by the window, and a conversation's size is always read from Postgres (a replica's
memory of it goes stale when another replica grows it).

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
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from .store import local_ledger
from .store.shared import OUTAGES, StoreDown
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

    async def conversation_record(self, conv: str, agent: str, tokens: int | None, add: bool = False) -> None:
        """Record a conversation's size after a response made in it (None: unknown); `add`: add `tokens` to
        the recorded size rather than replace it."""


class Flights(Protocol):
    """Calls in flight per conversation across replicas (store/redis.py `ConversationFlights`)."""

    async def join(self, conv: str) -> int:
        """Count a call in; how many are in flight on `conv` now, this one included."""

    async def overlapped(self, conv: str) -> bool:
        """Whether two calls were in flight on `conv` at once since its count was last zero."""

    async def leave(self, conv: str) -> None:
        """Count a call out."""


class ResponseBook:
    """Record in `settled` (after each Responses call is booked), read before admission."""

    name = "responses"

    def __init__(self, ledger: str, shared: SharedBook | None = None, flights: Flights | None = None) -> None:
        self.shared = shared
        self.flights = flights
        self._writes: set[asyncio.Task[None]] = set()
        self._growing: dict[str, set[asyncio.Task[None]]] = {}  # conversation → its size's writes under way
        self.joined: dict[int, str] = {}  # id(request body) → the conversation it is counted in flight on (replicas)
        local = local_ledger(ledger)
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
        # replicas: a conversation's size is read from the shared book every time (another replica may have grown it)
        hit = None if kind == "conversation" and self.shared is not None else self.stored(kind, ref)
        if hit is None and self.shared is not None:
            found = await self.shared.response_lookup(kind, ref)
            if found is not None:
                agent, model, tokens = found
                if kind == "response":
                    row = (ref, agent, model, tokens, time.time())
                    self.db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?, ?)", row)
                hit = agent, None if kind == "conversation" and ref in self.flying else tokens
        return hit

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

    def grown(self, conversation: str, agent: str, tokens: int | None) -> int | None:
        """A response made in `conversation` settled, having read and written `tokens` (None: unknown); returns
        the conversation's new figure."""
        if tokens is not None and conversation in self.overlapped:
            row = self.db.execute("SELECT tokens FROM conversation WHERE id = ?", (conversation,)).fetchone()
            tokens = row[0] + tokens if row is not None and row[0] is not None else None
        self.db.execute(
            "INSERT OR REPLACE INTO conversation VALUES (?, ?, ?, ?)", (conversation, agent, tokens, time.time())
        )
        return tokens

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

    async def join(self, body: dict[str, Any]) -> bool:
        """Replicas: count the call in flight on the conversation it names, across replicas, before its size is
        read (`end` counts it out once its growth is written). True when another call — through any replica —
        is in flight on it: its size is then unknown. Raises StoreDown when Redis cannot be reached."""
        ref = stored_reference(body) if self.flights is not None else None
        if ref is None or ref[0] != "conversation" or self.flights is None:
            return False
        try:
            n = await self.flights.join(ref[1])
        except OUTAGES as e:
            raise StoreDown(f"the shared store cannot be reached: {e}") from e
        self.joined[id(body)] = ref[1]
        return n > 1

    def in_flight(self, body: dict[str, Any]) -> bool:
        """Whether the conversation `body` names has a call in flight."""
        ref = stored_reference(body)
        return ref is not None and ref[0] == "conversation" and ref[1] in self.flying

    def end(self, body: dict[str, Any]) -> None:
        """The call `begin` saw has settled or was refused (idempotent; nothing for any other call)."""
        joined = self.joined.pop(id(body), None)
        if joined is not None:  # replicas: counted out once the size its settlement wrote is in the shared book
            self._spawn(joined, self._leave(joined, list(self._growing.get(joined, ()))))
        conv = self.calls.pop(id(body), None)
        if conv is None:
            return
        n = self.flying[conv] - 1
        if n:
            self.flying[conv] = n
        else:
            del self.flying[conv]
            self.overlapped.discard(conv)

    async def forget(self, rid: str) -> None:
        self.db.execute("DELETE FROM response WHERE id = ?", (rid,))
        if self.shared is not None:
            await self.shared.response_forget(rid)

    def _share(self, rid: str, agent: str, model: str, tokens: int | None) -> None:
        if self.shared is not None:
            self._spawn(rid, self.shared.response_record(rid, agent, model, tokens, None))

    def _share_conversation(self, conversation: str, agent: str, tokens: int | None) -> None:
        """Replicas: this call's figure (input + output) becomes the conversation's, or is added to it when
        calls overlapped on it (on any replica: every call joins the count in Redis, this one's included)."""
        task = self._spawn(conversation, self._grow(conversation, agent, tokens))
        if task is None:
            return
        growing = self._growing.setdefault(conversation, set())
        growing.add(task)

        def done(t: asyncio.Task[None]) -> None:
            growing.discard(t)
            if not growing and self._growing.get(conversation) is growing:
                del self._growing[conversation]

        task.add_done_callback(done)

    async def _grow(self, conversation: str, agent: str, tokens: int | None) -> None:
        assert self.shared is not None
        overlapped = self.flights is not None and await self.flights.overlapped(conversation)
        await self.shared.conversation_record(conversation, agent, tokens, overlapped)

    async def _leave(self, conversation: str, growing: list[asyncio.Task[None]]) -> None:
        assert self.flights is not None
        if growing:
            await asyncio.gather(*growing, return_exceptions=True)
        await self.flights.leave(conversation)

    def _spawn(self, what: str, write: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            write.close()
            return None  # settled outside the gateway's loop (a test's direct call): nothing shared to write to
        task = loop.create_task(self._write(what, write))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def _write(self, what: str, write: Coroutine[Any, Any, None]) -> None:
        try:
            await write
        except Exception as e:  # noqa: BLE001 — the call is booked; only other replicas' view of it is late
            log.warning("responses: %s not shared with the other replicas: %s", what, e)

    # -- the pipeline's settled hook (a lever's, without being one) ---------------------------------------

    def settled(self, call: Call, outcome: Settlement, ctx: LeverContext) -> None:
        if call.api != "responses" or call.target_api != "responses" or outcome.status == "upstream_error":
            return
        u = outcome.usage
        tokens = u.input_tokens + u.output_tokens if outcome.exact else None
        ref = stored_reference(call.body)
        conversation = ref[1] if ref is not None and ref[0] == "conversation" else None
        if conversation is not None:  # its items are appended, stored response or not
            if self.shared is None:
                self.grown(conversation, call.agent, tokens)
            else:  # replicas read a conversation's size from the shared book only (stored_anywhere)
                self._share_conversation(conversation, call.agent, tokens)
        rid = call.response_id or response_id(outcome.answer)
        if call.body.get("store") is False or not rid:  # no stored response: nothing to own or continue
            return
        self.record(rid, call.agent, call.model, tokens)
        self._share(rid, call.agent, call.model, tokens)


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
