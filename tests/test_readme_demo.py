"""README "Set up": `make demo` prints what the README shows, its figures are the ledgers' (which stay for
`paymaster report`), and Ctrl-C ends it cleanly whenever it comes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from paymaster import demo
from paymaster.cli import main
from paymaster.pricing import usd_str
from tests.readme_blocks import block_after

TASKS = 6  # what the README's figures are for
CLI = [sys.executable, "-c", "import sys; from paymaster.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[demo.Result, str, Path]:
    folder = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = demo.run(tasks=TASKS, keep=False, out=lines.append, folder=folder)
    return result, "\n".join(lines), folder


def test_the_readme_shows_what_the_demo_prints(ran):
    _, printed, folder = ran
    shown = block_after("`.venv/bin/paymaster demo --exit` (6 tasks):").text
    assert printed.replace(str(folder), "/tmp/paymaster-demo-…") + "\n" == shown


def report(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["report", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_printed_figures_are_the_ledgers(ran, capsys):
    """Each run's ledger, read by `paymaster report` as the printed hint says, holds what the table prints:
    spend per step (agent) and in all, per task."""
    result, printed, folder = ran
    hint = f"`paymaster report --ledger {folder / 'after.db'}`"
    assert hint in printed
    for name, run, column in (("before.db", result.before, 2), ("after.db", result.after, 4)):
        got = report(capsys, "--ledger", str(folder / name), "--by", "agent")
        assert got["totals"]["spend_nanos"] == run.cost()
        assert got["totals"]["calls"] == TASKS * len(demo.STEPS)
        per_agent = {g["agent"]: g["spend_nanos"] for g in got["groups"]}
        table = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
        for step in demo.STEPS:
            assert per_agent[step.agent] == run.cost(step.task)
            assert table[step.task][column] == usd_str(Decimal(per_agent[step.agent]) / 10**9 / TASKS)
        assert table["per"][{2: 2, 4: 3}[column]] == usd_str(Decimal(run.cost()) / 10**9 / TASKS)


def demo_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`paymaster demo` as a terminal runs it: Ctrl-C delivers SIGINT (whatever this process ignores)."""
    return subprocess.Popen(
        [*CLI, "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "TMPDIR": str(tmp_path)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_while_serving_ends_the_demo_and_keeps_the_ledgers(tmp_path):
    p = demo_process(tmp_path, "--tasks", "1")
    assert p.stdout is not None
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("serving until Ctrl-C"):
            break
    else:
        pytest.fail(f"the demo ended without serving: {''.join(seen)} {p.stderr.read() if p.stderr else ''}")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    (folder,) = tmp_path.glob("paymaster-demo-*")
    assert f"ledgers kept in {folder}" in "".join(seen)
    for name in ("before.db", "after.db"):
        assert main(["report", "--ledger", str(folder / name)]) == 0


def test_ctrl_c_mid_run_stops_cleanly(tmp_path):
    p = demo_process(tmp_path, "--tasks", "500")  # long enough to be interrupted in the middle
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("paymaster-demo-*/before.db")):  # the before gateway is up: calls are going
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the demo did not start its first gateway"
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert err.strip() == "paymaster demo: interrupted", err
