"""A journal settlement line reads back as the row it was written from (hypothesis): written as the row's
values in field order (store/journal.py), and read in the older form, an object of named fields, too."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.store import queries
from paymaster.store.journal import RESERVATION_FIELDS, ROW_FIELDS, Journal, Reservation, parse, row_values
from paymaster.store.row import LedgerRow

INTS = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
ROWS = st.builds(
    LedgerRow,
    **{
        f.name: {"str": st.text(max_size=12), "int": INTS, "float": FLOATS}[str(f.type)]
        for f in dataclasses.fields(LedgerRow)
    },
)


@settings(max_examples=200, deadline=None)
@given(ROWS)
def test_a_settlement_line_reads_back_as_its_row(row: LedgerRow) -> None:
    line = orjson.dumps({"settled": row_values(row)})
    assert parse(line) == row
    assert parse(orjson.dumps({"settled": row})) == row  # the older line: the row's fields by name


def test_the_journal_writes_the_row_it_was_given(tmp_path: Path) -> None:
    row = LedgerRow("pm_1", 1.5, "a", "anthropic", "p", "m", "m", "ok", "0.000262", 262000, "2026-12-02", "2026-12")
    j = Journal(str(tmp_path / "ledger.db"))
    j.start()
    j.settled(row)
    j.settled(dataclasses.replace(row, id="pm_2"), row_values(dataclasses.replace(row, id="pm_2")))
    j.close()
    scan = j.scan()
    assert not scan.bad and scan.settled == {"pm_1": row, "pm_2": dataclasses.replace(row, id="pm_2")}


def test_a_row_journaled_before_a_field_was_appended_reads_with_its_default() -> None:
    row = LedgerRow("pm_1", 1.5, "a", "anthropic", "p", "m", "m", "ok", "0", 0, "2026-12-02", "2026-12")
    row.savings = '{"x":1}'
    values: list[Any] = list(row_values(row))
    assert parse(orjson.dumps({"settled": values[:-1]})) == dataclasses.replace(row, savings="{}")
    assert parse(orjson.dumps({"settled": [*values, 1]})) is None  # more values than fields: not a row
    assert parse(orjson.dumps({"settled": [*values[:-2], "x", values[-1]]})) is None  # a value of the wrong type


def test_the_ledger_columns_are_the_journal_values_order() -> None:
    assert tuple(queries.LEDGER_COLS) == ROW_FIELDS == tuple(f.name for f in dataclasses.fields(LedgerRow))


def test_a_reservation_line_is_its_values_in_field_order_and_reads_back(tmp_path: Path) -> None:
    r = Reservation("pm_1", "a", 1.5, "claude-haiku-4-5", "anthropic", "2026-12-02", "2026-12", 455000)
    j = Journal(str(tmp_path / "ledger.db"))
    j.start()
    j.append(r)
    j.close()
    (segment,) = j.segments()
    assert orjson.loads(segment.read_bytes()) == {"reserved": [getattr(r, f) for f in RESERVATION_FIELDS]}
    assert j.scan().reservations == {"pm_1": r}
    assert parse(orjson.dumps(r)) == r  # the older line: the reservation's fields by name
    values: list[Any] = [getattr(r, f) for f in RESERVATION_FIELDS]
    assert parse(orjson.dumps({"reserved": values[:-1]})) is None  # a value missing: not a reservation
    assert parse(orjson.dumps({"reserved": [*values[:-1], "455000"]})) is None  # a value of the wrong type
