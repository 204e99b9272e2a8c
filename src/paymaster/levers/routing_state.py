"""What the router learns, kept across restarts: a small key → JSON table in its own SQLite file.

    state = RoutingState("paymaster.db.routing")   # None or ":memory:" → kept in memory only
    state.get("share", "agent-a/extract")          # the stored value or None
    state.put("share", "agent-a/extract", [...])   # written at once (callers write every N updates)
    state.items("bandit")                          # every (key, value) of one kind

A separate file beside the ledger, not a ledger table: the ledger has one writer with its own commit
loop (store/sqlite.py), and this state is not money — losing the last few updates in a crash only
makes the running quantile and the bandit a little less warm, never changes anyone's spend.

Replicas on a Postgres ledger (no `routing.state` file named) share it instead: `Mirror` is their local
copy, filled from Postgres at start and pushed back in the background (routing_sync.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Protocol

from ..store import local_ledger

__all__ = ["Mirror", "RoutingState", "State", "state_path"]


class State(Protocol):
    """Where the share windows and the bandit keep what they learnt: kind → key → a JSON value."""

    def get(self, kind: str, key: str) -> Any: ...

    def put(self, kind: str, key: str, value: Any) -> None: ...

    def items(self, kind: str) -> list[tuple[str, Any]]: ...

    def drop_before(self, kind: str, ts: float) -> None:
        """Delete the values of `kind` that are [..., t] lists with t < ts (the feedback of old calls)."""

    def close(self) -> None: ...


def state_path(ledger: str, configured: str | None) -> str | None:
    """The state file: `routing.state` when set, else `<ledger>.routing` (in memory for a ledger in memory; replicas
    on a Postgres ledger share theirs in Postgres instead, routing_sync.py, unless `routing.state` names a file)."""
    if configured is not None:
        return configured
    local = local_ledger(ledger)
    return None if local is None else local + ".routing"


class RoutingState:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS routing_state (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
            " PRIMARY KEY (kind, key))"
        )

    def get(self, kind: str, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM routing_state WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, kind: str, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO routing_state (kind, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                (kind, key, text),
            )

    def items(self, kind: str) -> list[tuple[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM routing_state WHERE kind = ? ORDER BY key", (kind,))
            return [(k, json.loads(v)) for k, v in rows.fetchall()]

    def drop_before(self, kind: str, ts: float) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM routing_state WHERE kind = ? AND json_type(value) = 'array'"
                " AND json_extract(value, '$[#-1]') < ?",
                (kind, ts),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Mirror:
    """A replica's copy of the shared state (routing_sync.py): values in memory, the keys written since the last
    push remembered, so the background sync sends only those."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.dirty: set[tuple[str, str]] = set()

    def get(self, kind: str, key: str) -> Any:
        return self.values.get((kind, key))

    def put(self, kind: str, key: str, value: Any) -> None:
        self.values[(kind, key)] = value
        self.dirty.add((kind, key))

    def items(self, kind: str) -> list[tuple[str, Any]]:
        return sorted((k, v) for (c, k), v in self.values.items() if c == kind)

    def drop_before(self, kind: str, ts: float) -> None:
        for k, v in list(self.values.items()):
            if k[0] == kind and isinstance(v, list) and v and v[-1] < ts:
                del self.values[k]
                self.dirty.discard(k)

    def close(self) -> None:
        """Nothing to close: the sync writes the last changes at stop."""
