"""Call ids: `pm_` and 24 hex digits, the time in milliseconds (11 digits) then 52 random bits (13 digits).

An id that grows with time lands at the right edge of the ledger's unique index on `id` (SQLite and Postgres
alike): a group commit of N rows touches the index's last leaf page or two, where ids drawn at random put each
row on its own leaf page of a large index — N pages written to the WAL per commit, and read back from disk first
once the ledger outgrows the page cache. The random part keeps ids unique across processes and replicas and
unguessable in practice (an id is never a credential: every endpoint that takes one checks whose call it is).
The random bits come from `os.urandom` 512 ids' worth at a time: one system call per 512 ids, not one per id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

_BATCH = 512  # random parts fetched at once


def _random_parts() -> Iterator[str]:
    digits = os.urandom(13 * _BATCH // 2).hex()  # 13 hex digits (52 bits) per id
    return iter([digits[i : i + 13] for i in range(0, len(digits), 13)])


_parts = _random_parts()  # next() on a list iterator is atomic: safe from the batch service's threads too


def call_id() -> str:
    """A new call id: `pm_` + 11 hex digits of Unix time in milliseconds + 13 random hex digits."""
    global _parts
    r = next(_parts, None)
    if r is None:
        _parts = _random_parts()
        r = next(_parts)
    return f"pm_{time.time_ns() // 1_000_000:011x}{r}"
