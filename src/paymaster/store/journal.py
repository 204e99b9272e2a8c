"""The journal: an append-only file that makes a reservation durable in one `write`, and a settlement too.

A reservation must be durable before its call goes upstream, and it is on the hot path of every
call. A SQLite transaction for it costs ~150 µs of CPU here; one `os.write` of a line costs a few:
once `write` returns, the bytes are in the kernel and survive the gateway process being killed.
(`durability: power` adds an `fdatasync` per reservation, which also survives power loss.)

When a call settles, its ledger row is appended too (a settlement line), before the row waits for
its group commit. A reservation is done with once its ledger row is *committed* to the ledger (the
store tells the journal then, not before). The journal is split into segments; a segment that is no
longer written to and whose entries are all done is deleted. On start, every entry left in a segment
whose id is not in the ledger belonged to a call whose row a stopped process never committed: a
settled call is booked at its journaled row (its actual cost), and only a reservation with no
settlement — a call truly in flight — at its worst case, flagged for reconciliation.

Line format, one JSON object per line: a reservation (`{"reserved": [its values, in Reservation's field
order]}`) or a settlement (`{"settled": [ledger row values, in LedgerRow's field order]}`); positional because
both are written on every call and a list of values costs a fraction of an object's encoding. The older forms,
a reservation's fields by name (`{"id": …, "worst_nanos": …}`) and `{"settled": {ledger row}}`, read too.
An append is all or nothing: a failed or short write is cut off again (`ftruncate` to the size before
it), so the next line never lands glued to a torn one; when even the cut fails, the segment is left
and the next append starts a new one. So a line without its newline at the end of a segment was never
acknowledged: its call was not sent (sending waits for the write), and recovery drops it with a note.
Any other line that does not parse stops start-up with the file and line named; `paymaster ledger check
--repair` puts it aside (never silently dropped).
"""

from __future__ import annotations

import errno
import operator
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from .row import LedgerRow

SEGMENT_LINES = 50_000  # lines per segment before a new one is started


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


Entry = Reservation | LedgerRow


@dataclass(slots=True)
class BadLine:
    path: Path
    line: int  # 1-based
    data: bytes
    salvaged: tuple[int, Entry] | None = None  # (offset, entry): a whole entry glued behind a torn one

    def where(self) -> str:
        return f"{self.path} line {self.line}"


@dataclass(slots=True)
class Scan:
    """What the segments on disk hold."""

    reservations: dict[str, Reservation] = field(default_factory=dict)
    settled: dict[str, LedgerRow] = field(default_factory=dict)  # call id -> its ledger row
    torn: list[tuple[Path, int, bytes]] = field(default_factory=list)  # (segment, line number, bytes)
    bad: list[BadLine] = field(default_factory=list)

    def add(self, e: Entry) -> None:
        if isinstance(e, Reservation):
            self.reservations[e.id] = e
        else:
            self.settled[e.id] = e


class Journal:
    def __init__(self, base: str, fsync: bool = False) -> None:
        """`base`: the ledger's path; segments are `<base>.reservations.<n>` beside it."""
        self.base = base
        self.fsync = fsync
        self.dir = Path(base).parent
        self.prefix = Path(base).name + ".reservations."
        self.rejected = Path(base + ".journal-rejected")  # lines taken out of the journal, with why
        self.live: dict[int, int] = {}  # segment -> its entries whose ledger rows are not committed yet
        self.where: dict[str, int] = {}  # call id -> segment of its first entry
        self.also: dict[str, int] = {}  # call id -> segment of its settlement, when that is another one
        self.fd = -1
        self.segment = -1
        self.lines = 0
        self.size = 0  # bytes in the open segment: where a failed append is cut back to

    def _path(self, n: int) -> Path:
        return self.dir / f"{self.prefix}{n}"

    def segments(self) -> list[Path]:
        found = [p for p in self.dir.glob(self.prefix + "*") if p.name[len(self.prefix) :].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(self.prefix) :]))

    # -- reading (start-up, `ledger check`) ---------------------------------------------------------

    def scan(self) -> Scan:
        """Every entry in the segments on disk, every torn last line and every line that does not parse."""
        out = Scan()
        for path in self.segments():
            lines = path.read_bytes().split(b"\n")
            tail = lines.pop()  # what follows the last newline: nothing, unless the last write was torn
            if tail:
                out.torn.append((path, len(lines) + 1, tail))
            for i, line in enumerate(lines, 1):
                if not line:
                    continue
                entry = parse(line)
                if entry is None:
                    out.bad.append(BadLine(path, i, line, salvage(line)))
                else:
                    out.add(entry)
        return out

    def put_aside(self, path: Path, line: int, data: bytes, why: str) -> None:
        """Keep a line taken out of the journal in `<ledger>.journal-rejected`, with where it was and why."""
        note = {
            "at": time.time(),
            "segment": path.name,
            "line": line,
            "why": why,
            "text": data.decode("utf-8", "backslashreplace"),
        }
        with self.rejected.open("ab") as f:
            f.write(orjson.dumps(note) + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def repair(self, scan: Scan) -> list[str]:
        """Rewrite the segments without their torn and unreadable lines, which are put aside; a whole entry
        found behind a torn one is kept. Only with no gateway running (the caller holds the ledger lock)."""
        notes = []
        todo: dict[Path, set[int]] = {}
        for path, n, data in scan.torn:
            self.put_aside(path, n, data, "torn last line (never acknowledged: its call was not sent)")
            todo.setdefault(path, set()).add(n)
            notes.append(f"{path} line {n}: torn last line of {len(data)} bytes dropped (its call was not sent)")
        keep: dict[tuple[Path, int], bytes] = {}
        for b in scan.bad:
            todo.setdefault(b.path, set()).add(b.line)
            if b.salvaged is not None:
                at, entry = b.salvaged
                keep[(b.path, b.line)] = b.data[at:]
                self.put_aside(b.path, b.line, b.data[:at], "torn entry glued in front of a whole one (kept)")
                notes.append(f"{b.where()}: a torn entry was put aside; the whole entry behind it ({entry.id}) is kept")
            else:
                self.put_aside(b.path, b.line, b.data, "not a journal entry")
                notes.append(f"{b.where()}: unreadable line put aside in {self.rejected}")
        for path, lines in todo.items():
            old = path.read_bytes().split(b"\n")
            new = []
            for i, line in enumerate(old, 1):
                if i in lines:
                    if (path, i) in keep:
                        new.append(keep[(path, i)] + b"\n")
                elif line:
                    new.append(line + b"\n")
            tmp = path.with_name(path.name + ".repair")
            tmp.write_bytes(b"".join(new))
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return notes

    # -- writing (the gateway) ----------------------------------------------------------------------

    def start(self) -> None:
        """Forget old segments (their entries are in the ledger now) and open a fresh one."""
        last = -1
        for path in self.segments():
            last = max(last, int(path.name[len(self.prefix) :]))
            path.unlink()
        self._open(last + 1)

    def _open(self, n: int) -> None:
        fd = os.open(self._path(n), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        old = self.segment
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.segment, self.lines, self.size = fd, n, 0, os.fstat(fd).st_size
        self.live.setdefault(n, 0)
        if old >= 0 and old != n and self.live.get(old) == 0:
            self._drop(old)

    def _write(self, line: bytes, sync: bool) -> None:
        """Append one whole line, or nothing: a failed or short write is cut back off before raising."""
        if self.fd < 0 or self.lines >= SEGMENT_LINES:
            self._open(self.segment + 1)
        try:
            n = os.write(self.fd, line)
            if n != len(line):
                raise OSError(errno.ENOSPC, f"short write to the journal ({n} of {len(line)} bytes)")
            if sync:
                os.fdatasync(self.fd)
        except OSError:
            self._cut()
            raise
        self.size += n
        self.lines += 1

    def _cut(self) -> None:
        try:
            os.ftruncate(self.fd, self.size)
        except OSError:  # cannot cut it off: leave this segment (its torn tail was never acknowledged)
            os.close(self.fd)
            self.fd = -1

    def append(self, r: Reservation) -> None:
        """Durable when this returns (or raises OSError, having written nothing)."""
        self._write(orjson.dumps({"reserved": reservation_values(r)}, option=orjson.OPT_APPEND_NEWLINE), self.fsync)
        self.live[self.segment] += 1
        self.where[r.id] = self.segment

    def settled(self, row: LedgerRow, values: tuple[Any, ...] | None = None) -> None:
        """Record a call's ledger row before it waits for its group commit: a crash in between books the
        call at this row, not at its worst case. Not fsynced: losing it to a power cut only over-counts.
        `values`: the row's values in ROW_FIELDS order, when the caller has them already."""
        line = {"settled": values if values is not None else row_values(row)}
        self._write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE), False)  # one buffer, no copies
        seg = self.where.get(row.id)
        if seg is None:  # a row with no reservation (a call the gateway answered itself)
            self.where[row.id] = self.segment
        elif seg != self.segment:
            self.also[row.id] = self.segment
        else:
            return
        self.live[self.segment] += 1

    def done(self, call_id: str) -> None:
        """The call's ledger row is committed."""
        seg = self.where.pop(call_id, None)
        if seg is None:
            return
        self._release(seg)
        if self.also:
            extra = self.also.pop(call_id, None)
            if extra is not None:
                self._release(extra)

    def _release(self, seg: int) -> None:
        self.live[seg] -= 1
        if self.live[seg] == 0 and seg != self.segment:
            self._drop(seg)

    def _drop(self, seg: int) -> None:
        del self.live[seg]
        try:
            self._path(seg).unlink()
        except FileNotFoundError:
            pass

    def open_count(self) -> int:
        return len(self.where)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- parsing ----------------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _shape(cls: type) -> dict[str, tuple[type, ...]]:
    """Each field's accepted JSON types (a field typed otherwise accepts any value)."""
    return {f.name: _TYPES.get(str(f.type), (object,)) for f in fields(cls)}


_RESERVATION = _shape(Reservation)
_ROW = _shape(LedgerRow)
ROW_FIELDS = tuple(_ROW)  # LedgerRow's fields, in order: a settlement line's values (fields are only appended)
row_values: Callable[[LedgerRow], tuple[Any, ...]] = operator.attrgetter(*ROW_FIELDS)
RESERVATION_FIELDS = tuple(_RESERVATION)  # a reservation line's values, in order
reservation_values: Callable[[Reservation], tuple[Any, ...]] = operator.attrgetter(*RESERVATION_FIELDS)


def _build(cls: type, shape: dict[str, tuple[type, ...]], obj: Any) -> Any:
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        types = shape.get(k)
        if types is None or not isinstance(v, types) or (isinstance(v, bool) and types in ((int,), (int, float))):
            return None
    try:
        return cls(**obj)
    except TypeError:  # a required field is missing
        return None


def parse(line: bytes) -> Entry | None:
    """A journal line's entry, or None when the line is not one."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and len(obj) == 1 and "reserved" in obj:
        values = obj["reserved"]
        if not isinstance(values, list) or len(values) != len(RESERVATION_FIELDS):  # its fields are never added to
            return None
        held: Reservation | None = _build(Reservation, _RESERVATION, dict(zip(RESERVATION_FIELDS, values, strict=True)))
        return held
    if isinstance(obj, dict) and len(obj) == 1 and "settled" in obj:
        values = obj["settled"]
        if isinstance(values, list):  # positional: a row written before a field was appended lacks its value
            values = dict(zip(ROW_FIELDS, values, strict=False)) if len(values) <= len(ROW_FIELDS) else None
        row: LedgerRow | None = _build(LedgerRow, _ROW, values)
        return row
    res: Reservation | None = _build(Reservation, _RESERVATION, obj)
    return res


def salvage(line: bytes) -> tuple[int, Entry] | None:
    """Where a whole entry starts at the end of a line that begins with a torn one, and that entry (a
    journal written before appends were all or nothing glued the next entry onto a torn line)."""
    i = line.find(b'{"', 1)
    while i > 0:
        e = parse(line[i:])
        if e is not None:
            return i, e
        i = line.find(b'{"', i + 1)
    return None
