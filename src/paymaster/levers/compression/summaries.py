"""Conversation summaries by prefix hash: a growing conversation is summarised incrementally.

A summary covers a conversation's first `upto` messages; it is stored under the hash of exactly
those messages (with the agent, API and system prompt), so any later call of the same conversation
finds it by hashing its own prefixes, and one that has moved past it extends it instead of starting
over. One SQLite table in a file of its own beside the ledger; an in-process map in front of it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

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
)
"""


@dataclass(frozen=True, slots=True)
class Summary:
    upto: int  # the number of messages it stands for
    text: str
    model: str = ""
    cost_nanos: int = 0


def path_beside(ledger: str) -> str:
    """`fleet/paymaster.db` → `fleet/paymaster.summaries.db` (":memory:" stays in memory)."""
    if ledger == ":memory:":
        return ledger
    p = Path(ledger)
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


class SummaryStore:
    """`longest(agent, hashes)` → the summary of the longest stored prefix; `put` stores one."""

    def __init__(self, path: str, memory_entries: int = 4096) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.memory: OrderedDict[tuple[str, str], Summary] = OrderedDict()
        self.memory_entries = memory_entries

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:  # opened on first use: agents that never summarise never create the file
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(SCHEMA)
            self._conn = conn
        return self._conn

    def longest(self, agent: str, hashes: list[str]) -> Summary | None:
        best: Summary | None = None
        for h in reversed(hashes):  # the longest this process knows …
            best = self.memory.get((agent, h))
            if best is not None:
                self.memory.move_to_end((agent, h))
                break
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

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
