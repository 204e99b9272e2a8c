"""Compression's own store: conversation summaries by prefix hash, and what each compressed call removed.

A summary covers a conversation's first `upto` messages; it is stored under the hash of exactly
those messages (with the agent, API and system prompt), so any later call of the same conversation
finds it by hashing its own prefixes, and one that has moved past it extends it instead of starting
over. Every compressed call leaves a row in `compressed_calls`: tokens before and after, removed per
technique, the input it saved priced on the model it ran on, and what a summary it needed cost.
SQLite, in a file of its own beside the ledger (opened on first use); an in-process map in front of
the summaries; call rows written in batches (statistics: a crash may lose the last second of them,
never a dollar — the ledger books money).

Replicas (a Postgres ledger): the summaries are the fleet's, in Postgres (`summaries`, migration
`007_summaries`), so a conversation a load balancer spreads over replicas is summarised once and every
replica sends it with the same summary (the same bytes: the provider's cached prefix is read, whichever
replica the call reaches). A summary is stored insert-if-absent: of two replicas that summarised the same
prefix at once, the first to store it wins and the other uses the winner's (its own summary call stays
booked on the ledger: it was paid). The in-process map stays in front (a hit skips Postgres only for
the prefix it covers: a longer summary another replica wrote is looked for). The compressed-call rows
stay per replica (in memory: statistics, not money).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ...store import local_ledger

if TYPE_CHECKING:
    import asyncpg

SCHEMA = """
CREATE TABLE IF NOT EXISTS summaries (
    agent TEXT NOT NULL,
    prefix TEXT NOT NULL,        -- hash of the messages the summary covers (see prefix_hashes)
    upto INTEGER NOT NULL,       -- how many messages it covers
    summary TEXT NOT NULL,
    model TEXT NOT NULL,         -- who wrote it
    cost_nanos INTEGER NOT NULL, -- what writing it cost the agent
    created REAL NOT NULL,
    PRIMARY KEY (agent, prefix)
);
CREATE TABLE IF NOT EXISTS compressed_calls (
    ts REAL NOT NULL,
    agent TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,             -- the settlement's status
    tokens_before INTEGER NOT NULL,   -- the messages as the agent sent them (4 bytes a token)
    tokens_after INTEGER NOT NULL,    -- as sent to the provider
    prune INTEGER NOT NULL,           -- tokens each technique removed
    html INTEGER NOT NULL,
    strip INTEGER NOT NULL,
    summarise INTEGER NOT NULL,
    summary TEXT NOT NULL,            -- '' | new | extended | reused
    saved_nanos INTEGER NOT NULL,     -- the removed tokens at the model's input rate
    summary_cost_nanos INTEGER NOT NULL  -- the summary this call had written (its own ledger row, task compression)
);
"""
FLUSH_ROWS, FLUSH_S = 100, 1.0
log = logging.getLogger("paymaster.compression")


@dataclass(frozen=True, slots=True)
class Summary:
    upto: int  # the number of messages it stands for
    text: str
    model: str = ""
    cost_nanos: int = 0


def path_beside(ledger: str) -> str:
    """`fleet/paymaster.db` → `fleet/paymaster.summaries.db` (":memory:" stays in memory). Replicas on a
    Postgres ledger keep their summaries in Postgres (`SummaryStore.shared`) and their call rows in memory."""
    local = local_ledger(ledger)
    if local is None:
        return ":memory:"
    p = Path(local)
    return str(p.with_name(p.stem + ".summaries.db"))


def prefix_hashes(seed: Any, messages: list[Any]) -> list[str]:
    """`out[i]` identifies the conversation's first i + 1 messages (after `seed`: agent, API, system).
    `cache_control` markers are left out: agents move them from turn to turn on unchanged messages."""
    h = hashlib.blake2b(orjson.dumps(seed, option=orjson.OPT_SORT_KEYS), digest_size=16)
    out: list[str] = []
    for m in messages:
        h.update(orjson.dumps(_without_cache_marks(m), option=orjson.OPT_SORT_KEYS))
        out.append(h.copy().hexdigest())
    return out


def _without_cache_marks(m: Any) -> Any:
    if not isinstance(m, dict):
        return m
    content = m.get("content")
    if "cache_control" not in m and not (isinstance(content, list) and _marked(content)):
        return m
    out = {k: v for k, v in m.items() if k != "cache_control"}
    if isinstance(content, list):
        out["content"] = [_without_cache_marks(b) for b in content]
    return out


def _marked(blocks: list[Any]) -> bool:
    for b in blocks:
        if isinstance(b, dict) and (
            "cache_control" in b or (isinstance(b.get("content"), list) and _marked(b["content"]))
        ):
            return True
    return False


SHARED_LONGEST = (
    "SELECT upto, summary, model, cost_nanos FROM summaries WHERE agent = $1 AND prefix = ANY($2::text[])"
    " ORDER BY upto DESC LIMIT 1"
)
SHARED_PUT = (  # insert-if-absent (a concurrent insert of the same prefix is waited for, then loses)
    "INSERT INTO summaries VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (agent, prefix) DO NOTHING RETURNING upto"
)
SHARED_GET = "SELECT upto, summary, model, cost_nanos FROM summaries WHERE agent = $1 AND prefix = $2"


class SummaryStore:
    """`longest(agent, hashes)` → the summary of the longest stored prefix; `put` stores one. On replicas
    (`shared`: the Postgres pool) `find` and `keep` use Postgres instead of the SQLite file."""

    def __init__(self, path: str, memory_entries: int = 4096) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.memory: OrderedDict[tuple[str, str], Summary] = OrderedDict()
        self.memory_entries = memory_entries
        self._rows: list[tuple[Any, ...]] = []
        self._oldest = 0.0
        self.shared: asyncpg.Pool | None = None  # replicas: set once the store is open (Compressor.start)

    async def find(self, agent: str, hashes: list[str]) -> Summary | None:
        """The summary of the longest stored prefix of `hashes`: this process's, or any replica's."""
        if self.shared is None:
            return self.longest(agent, hashes)
        best = self._known(agent, hashes)
        rest = hashes[best.upto :] if best is not None else hashes  # anything longer another replica wrote
        if rest:
            row = await self.shared.fetchrow(SHARED_LONGEST, agent, rest)
            if row is not None:
                best = Summary(row["upto"], row["summary"], row["model"], row["cost_nanos"])
                self._remember(agent, hashes[best.upto - 1], best)
        return best

    async def keep(self, agent: str, prefix: str, s: Summary, now: float) -> Summary:
        """Store `s` for `prefix` unless one is stored there already; the summary to use: `s`, or on replicas
        the one another replica stored first (one summary per prefix across the fleet)."""
        if self.shared is None:
            self.put(agent, prefix, s, now)
            return s
        try:
            took = await self.shared.fetchrow(SHARED_PUT, agent, prefix, s.upto, s.text, s.model, s.cost_nanos, now)
            if took is None:
                # another replica's came first: read in a statement of its own (the insert's snapshot predates it)
                row = await self.shared.fetchrow(SHARED_GET, agent, prefix)
                if row is not None:
                    s = Summary(row["upto"], row["summary"], row["model"], row["cost_nanos"])
        except Exception as e:  # Postgres failing: the summary is paid for, so this call uses it all the same
            log.warning("summary for agent %s not stored (%s: %s): used here only", agent, type(e).__name__, e)
        self._remember(agent, prefix, s)
        return s

    def _known(self, agent: str, hashes: list[str]) -> Summary | None:
        """The longest prefix this process has in memory."""
        for h in reversed(hashes):
            best = self.memory.get((agent, h))
            if best is not None:
                self.memory.move_to_end((agent, h))
                return best
        return None

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:  # opened on first use: agents that never summarise never create the file
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    def longest(self, agent: str, hashes: list[str]) -> Summary | None:
        best = self._known(agent, hashes)  # the longest this process knows …
        rest = hashes[best.upto :] if best is not None else hashes  # … and anything longer another one wrote
        if not rest:
            return best
        with self._lock:
            conn = self.conn()
            for i in range(0, len(rest), 900):  # SQLite's bound-variable limit, with room
                chunk = rest[i : i + 900]
                marks = ",".join("?" * len(chunk))
                for upto, summary, model, cost in conn.execute(
                    f"SELECT upto, summary, model, cost_nanos FROM summaries WHERE agent = ? AND prefix IN ({marks})",
                    (agent, *chunk),
                ):
                    if best is None or upto > best.upto:
                        best = Summary(upto, summary, model, cost)
        if best is not None:
            self._remember(agent, hashes[best.upto - 1], best)
        return best

    def put(self, agent: str, prefix: str, s: Summary, now: float) -> None:
        with self._lock:
            self.conn().execute(
                "INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (agent, prefix, s.upto, s.text, s.model, s.cost_nanos, now),
            )
        self._remember(agent, prefix, s)

    def _remember(self, agent: str, prefix: str, s: Summary) -> None:
        self.memory[(agent, prefix)] = s
        self.memory.move_to_end((agent, prefix))
        while len(self.memory) > self.memory_entries:
            self.memory.popitem(last=False)

    def record(self, row: tuple[Any, ...], now: float) -> None:
        """One compressed call's row (`compressed_calls`' columns, in order), written with the next batch."""
        if not self._rows:
            self._oldest = now
            try:  # a quiet gateway still writes its rows within a second or so
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # no loop (a script): the next batch or close() writes them
                pass
        self._rows.append(row)
        if len(self._rows) >= FLUSH_ROWS or now - self._oldest >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            with self._lock:
                self.conn().executemany(f"INSERT INTO compressed_calls VALUES ({','.join('?' * 13)})", rows)

    def calls(self) -> list[dict[str, Any]]:
        self.flush()
        with self._lock:
            cur = self.conn().execute("SELECT * FROM compressed_calls ORDER BY ts")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur]

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
