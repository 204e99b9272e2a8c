"""One writer per ledger: an OS lock on `<ledger>.lock`, held for as long as the gateway runs.

Two gateways on one SQLite ledger would each enforce the caps alone (twice the spend) and each
take the other's journal for a crashed process's. So the writer takes `flock(LOCK_EX | LOCK_NB)` on
a lock file beside the ledger and writes who it is (pid, host, start time) into it; a second
writer — another process, or a second `Gateway` in the same one (flock locks belong to the open
file, not to the process) — is refused with that holder's name. The kernel releases the lock when
the holder exits, however it exits, so a crashed gateway never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime

import orjson

from .errors import LedgerLocked, LedgerUnavailable, cannot_write


class LedgerLock:
    def __init__(self, ledger: str) -> None:
        self.path = ledger + ".lock"
        self.ledger = ledger
        self.fd = -1

    def take(self) -> LedgerLock:
        """Hold the lock, or raise `LedgerLocked` naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise LedgerUnavailable(cannot_write(self.ledger, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise LedgerLocked(
                f"ledger {self.ledger} is in use by another gateway ({holder}); one gateway writes a ledger: "
                "stop that one first, or give this one its own `ledger:`"
            ) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now(UTC).isoformat()}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, orjson.dumps(me) + b"\n")
        except OSError as e:
            os.close(fd)
            raise LedgerUnavailable(cannot_write(self.ledger, e)) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the file drops the lock
            self.fd = -1


def _describe(raw: bytes) -> str:
    try:
        h = orjson.loads(raw)
        return f"pid {h['pid']} on host {h['host']}, started {h['started']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "a process that has not written its name yet"
