"""`paymaster demo`: the reference pipeline's before and after figures, within a tolerance of the published
reference ($0.082 → $0.026 per task, 68 %), and the saving per lever adding up exactly."""

from __future__ import annotations

import tempfile
from decimal import Decimal

import pytest

from paymaster import demo
from paymaster.cli import main


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    lines: list[str] = []
    r = demo.run(tasks=3, keep=False, out=lines.append, folder=tmp_path_factory.mktemp("demo"))
    r.printed = "\n".join(lines)  # type: ignore[attr-defined]
    return r


def test_before_matches_the_reference(result):
    before = result.per_task(result.before.cost())
    assert abs(before - demo.REFERENCE_BEFORE) <= Decimal("0.05") * demo.REFERENCE_BEFORE
    assert {r["model"] for rows in result.before.rows.values() for r in rows} == {demo.HEAVY}
    assert all(r["cache_read_tokens"] == 0 and r["cache_write_tokens"] == 0 for r in result.before.rows["outline"])


def test_after_runs_every_lever(result):
    after = result.after.rows
    assert {r["model"] for r in after["classify"]} == {demo.LIGHT}
    assert {r["model"] for r in after["validate"]} == {demo.LIGHT}
    assert {r["model"] for r in after["draft"]} == {demo.HEAVY}
    assert all(r["cache_read_tokens"] > 0 for r in after["outline"][1:])  # the style guide is read from the cache
    for task in ("draft", "validate"):  # structured output: shorter than the prose before
        assert sum(r["output_tokens"] for r in after[task]) < sum(r["output_tokens"] for r in result.before.rows[task])
    assert all(r["status"] == "ok" for rows in after.values() for r in rows)


def test_saving_per_lever_adds_up_exactly(result):
    assert sum(result.by_lever.values()) == result.before.cost() - result.after.cost()
    assert result.by_lever["routing"] > 0 and result.by_lever["output"] > 0
    assert "saved per task, by lever" in result.printed and "published reference" in result.printed


def test_after_matches_the_reference(result):
    if not result.compression:
        pytest.skip("no compression lever in this build: the research step's search results are not pruned")
    after = result.per_task(result.after.cost())
    assert abs(after - demo.REFERENCE_AFTER) <= Decimal("0.15") * demo.REFERENCE_AFTER
    assert abs(result.reduction - demo.REFERENCE_REDUCTION) <= 5
    assert result.by_lever["compression"] > 0


def test_the_command_runs_once_with_exit(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the ledgers it keeps
    assert main(["demo", "--exit", "--tasks", "1"]) == 0
    out = capsys.readouterr().out
    assert "per task" in out and "serving until Ctrl-C" not in out
