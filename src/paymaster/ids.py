"""Call ids: `pm_` and 24 hex digits, the time in milliseconds (11 digits) then 52 random bits (13 digits).

An id that grows with time lands at the right edge of the ledger's unique index on `id` (SQLite and Postgres
alike): a group commit of N rows touches the index's last leaf page or two, where ids drawn at random put each
row on its own leaf page of a large index — N pages written to the WAL per commit, and read back from disk first
once the ledger outgrows the page cache. The random part keeps ids unique across processes and replicas and
unguessable in practice (an id is never a credential: every endpoint that takes one checks whose call it is).
The random bits come from `os.urandom` a few kilobytes at a time: one system call per ~580 ids, not one per id.
"""

from __future__ import annotations

import os
import threading
import time

_POOL = 4096  # bytes of randomness fetched at once
_lock = threading.Lock()  # ids are made on the event loop, and by the batch service's threads
_bytes = b""
_at = _POOL


def call_id() -> str:
    """A new call id: `pm_` + 11 hex digits of Unix time in milliseconds + 13 random hex digits."""
    global _bytes, _at
    with _lock:
        if _at > _POOL - 7:
            _bytes, _at = os.urandom(_POOL), 0
        r = int.from_bytes(_bytes[_at : _at + 7], "big") >> 4  # 52 bits
        _at += 7
    return f"pm_{int(time.time() * 1000):011x}{r:013x}"
