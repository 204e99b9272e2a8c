"""The reservation journal: an append-only file that makes a reservation durable in one `write`.

A reservation must be durable before its call goes upstream, and it is on the hot path of every
call. A SQLite transaction for it costs ~150 µs of CPU here; one `os.write` of a line costs a few:
once `write` returns, the bytes are in the kernel and survive the gateway process being killed.
(`durability: power` adds an `fdatasync`, which also survives power loss.)

A reservation is done with once its ledger row is *committed* to the ledger (the store tells the
journal then, not before). The journal is split into segments; a segment that is no longer written
to and whose reservations are all done is deleted. On start, every reservation left in a segment
whose id is not in the ledger belonged to a call the gateway never settled: the store books it at
its worst case, flagged for reconciliation.

Line format: the reservation as JSON, one per line. A torn last line (the process died mid-write)
is ignored: its call had not been sent upstream yet, because sending waits for the write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

SEGMENT_LINES = 50_000  # reservations per segment before a new one is started


@dataclass(slots=True)
class Reservation:
    id: str
    agent: str
    created: float
    model: str
    api: str
    day: str
    month: str
    worst_nanos: int


class Journal:
    def __init__(self, base: str, fsync: bool = False) -> None:
        """`base`: the ledger's path; segments are `<base>.reservations.<n>` beside it."""
        self.base = base
        self.fsync = fsync
        self.dir = Path(base).parent
        self.prefix = Path(base).name + ".reservations."
        self.open_by_segment: dict[int, int] = {}  # segment -> reservations not yet done
        self.segment_of: dict[str, int] = {}  # reservation id -> segment
        self.fd = -1
        self.segment = -1
        self.lines = 0

    def segments(self) -> list[Path]:
        found = [p for p in self.dir.glob(self.prefix + "*") if p.name[len(self.prefix) :].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(self.prefix) :]))

    def leftovers(self) -> list[Reservation]:
        """Every reservation in the segments a previous process left (call before `start`)."""
        out = []
        for path in self.segments():
            for line in path.read_bytes().split(b"\n"):
                if not line:
                    continue
                try:
                    out.append(Reservation(**orjson.loads(line)))
                except (orjson.JSONDecodeError, TypeError):
                    continue  # a torn last line
        return out

    def start(self) -> None:
        """Forget old segments (their reservations are in the ledger now) and open a fresh one."""
        last = -1
        for path in self.segments():
            last = max(last, int(path.name[len(self.prefix) :]))
            path.unlink()
        self._open(last + 1)

    def _open(self, n: int) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            if self.open_by_segment.get(self.segment) == 0:
                self._drop(self.segment)
        self.segment, self.lines = n, 0
        self.open_by_segment[n] = 0
        self.fd = os.open(self.dir / f"{self.prefix}{n}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, r: Reservation) -> None:
        """Durable when this returns."""
        if self.lines >= SEGMENT_LINES:
            self._open(self.segment + 1)
        line = orjson.dumps(r) + b"\n"
        if os.write(self.fd, line) != len(line):
            raise OSError(f"short write to the reservation journal {self.segment}")
        if self.fsync:
            os.fdatasync(self.fd)
        self.lines += 1
        self.open_by_segment[self.segment] += 1
        self.segment_of[r.id] = self.segment

    def done(self, reservation_id: str) -> None:
        """The reservation's ledger row is committed."""
        seg = self.segment_of.pop(reservation_id, None)
        if seg is None:
            return
        self.open_by_segment[seg] -= 1
        if self.open_by_segment[seg] == 0 and seg != self.segment:
            self._drop(seg)

    def _drop(self, seg: int) -> None:
        del self.open_by_segment[seg]
        try:
            (self.dir / f"{self.prefix}{seg}").unlink()
        except FileNotFoundError:
            pass

    def open_count(self) -> int:
        return len(self.segment_of)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
