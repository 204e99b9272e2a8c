"""pipe_writer: a pipe whose reader stopped reading never blocks the writer; a regular file is written as is."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from paymaster.pipe_writer import MAX_QUEUED, PipeWriter, unblocked


def test_a_stalled_pipe_never_blocks_and_what_overflows_is_dropped_and_counted() -> None:
    r, w = os.pipe()
    out = unblocked(os.fdopen(w, "wb"))
    assert isinstance(out, PipeWriter)
    line = b"x" * 1023 + b"\n"
    n = (MAX_QUEUED + (1 << 20)) // len(line) * 2  # twice what the pipe and the queue hold: no reader yet
    done = threading.Event()

    def write_all() -> None:
        for _ in range(n):
            out.write(line)
        done.set()

    threading.Thread(target=write_all, daemon=True).start()
    assert done.wait(30), "a write waited on the pipe's reader"
    assert out.dropped > 0
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(iter_read(r)), daemon=True)
    reader.start()
    out.close()  # drains what was queued to the reader now reading, then closes the pipe
    reader.join(30)
    assert len(got) + out.dropped == n * len(line) and len(got) % len(line) == 0


def iter_read(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def test_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    f = (tmp_path / "log").open("ab")
    assert unblocked(f) is f
    f.close()
