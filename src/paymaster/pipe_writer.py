"""Writing to a pipe, socket or terminal without the event loop ever waiting on its reader.

A write to a pipe whose reader has stopped reading (a log shipper stalled, a parent process that never
reads the child's stderr) blocks once the pipe's 64 KiB are full; on the event loop that stops every call,
every agent's. `unblocked(out)` gives a regular file back as it is (its writes go to the page cache and
return) and wraps anything else in a `PipeWriter`: writes are queued and a thread does the blocking ones;
past MAX_QUEUED bytes waiting, what comes is dropped (and counted in `dropped`), not waited for.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import deque
from typing import IO, Protocol

MAX_QUEUED = 8 << 20  # bytes waiting for a stalled reader before more are dropped
CLOSE_WAIT_S = 2.0  # how long `close` waits for a stalled reader to take what is queued


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def unblocked(out: IO[bytes], own: bool = True) -> Writable:
    """`out` if it is a regular file, else a PipeWriter around it (`own`: close `out` when it is closed)."""
    try:
        regular = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    except (OSError, ValueError):  # no file descriptor (a test's buffer): written in place
        regular = True
    return out if regular else PipeWriter(out, own)


class PipeWriter:
    def __init__(self, out: IO[bytes], own: bool) -> None:
        self.out = out
        self.own = own
        self.dropped = 0  # bytes dropped while the reader was not reading
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._closing = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="pipe-writer", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        """Queue `data` (never waits); dropped when MAX_QUEUED bytes are already waiting."""
        with self._ready:
            if self._queued + len(data) > MAX_QUEUED:
                self.dropped += len(data)
                return 0
            self._queue.append(data)
            self._queued += len(data)
            self._ready.notify()
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the thread flushes after each write."""

    def close(self) -> None:
        """Let the thread write what is queued (at most CLOSE_WAIT_S), then stop; close `out` if owned."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(CLOSE_WAIT_S)
        if self.own and not self._thread.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.out.close()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                data = b"".join(self._queue)
                self._queue.clear()
                self._queued = 0
            try:
                self.out.write(data)  # blocks while the reader does not read: on this thread only
                self.out.flush()
            except (OSError, ValueError):  # a closed or broken pipe never stops a call
                with self._ready:
                    self.dropped += len(data)
