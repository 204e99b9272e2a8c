"""Why the ledger cannot be used. The CLI prints these as one line and exits non-zero.

LedgerError
 ├── LedgerLocked        another gateway holds the ledger (one writer per ledger)
 ├── LedgerUnavailable   the ledger or its folder cannot be opened or written
 └── JournalCorrupt      a journal line cannot be read: start-up stops (`paymaster ledger check`)

LedgerFailing (an OSError)  a reservation refused while ledger commits fail (the call gets a 503)
"""

from __future__ import annotations

import os


class LedgerError(Exception):
    """The ledger cannot be used; the message says which file, why, and what to do."""


class LedgerLocked(LedgerError):
    pass


class LedgerUnavailable(LedgerError):
    pass


class JournalCorrupt(LedgerError):
    pass


class LedgerFailing(OSError):
    """Ledger commits are failing: no new call is admitted until one succeeds."""


def cannot_write(ledger: str, e: BaseException) -> str:
    """The one-line reason a ledger cannot be opened for writing."""
    folder = os.path.dirname(os.path.abspath(ledger))
    why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return f"ledger {ledger}: cannot be opened for writing ({why}); its folder {folder} must exist and be writable"
