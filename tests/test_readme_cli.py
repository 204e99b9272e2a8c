"""Every `paymaster …` command README.md and docs/ show names a command and flags the CLI has (parsed, not run:
the other tests run them)."""

from __future__ import annotations

import itertools
import re
import shlex

import pytest

from paymaster.cli import parser
from paymaster.sim.runner import parser as sim_parser
from tests.readme_blocks import ROOT, blocks

PLACEHOLDERS = {  # what a reader types for the documents' placeholders
    "NAME": "writer",
    "X": "writer",
    "M": "claude-haiku-4-5",
    "S": "60",
    "KEY": "pm-key",
    "KEY_ID": "key_0123",
    "FILE": "out.jsonl",
    "<id>": "msgbatch_0123",
    "ISO-TIME": "2026-11-30T12:00:00",
    "limits={…}": 'limits={"requests_per_minute": 60}',
    "limits={...}": 'limits={"requests_per_minute": 60}',
}


def documented() -> list[str]:
    """Inline `paymaster …` commands and command lines of shell blocks, as written."""
    names = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
    found = []
    for name in names:
        text = (ROOT / name).read_text()
        found += re.findall(r"`(?:\.venv/bin/)?(paymaster [a-z][^`]*)`", text)
    lines = [line for b in blocks() if b.lang in ("sh", "") for line in b.text.splitlines()]
    for i, line in enumerate(lines):  # a usage line may go on, indented, on the next ones
        if re.match(r"(\$ )?paymaster [a-z]", line):
            more = itertools.takewhile(lambda s: s.startswith(" ") and s.strip().startswith("["), lines[i + 1 :])
            found.append(" ".join([line.removeprefix("$ "), *(s.strip() for s in more)]))
    return sorted(set(found))


def spelled_out(command: str) -> list[list[str]]:
    """The argument lists a usage line stands for: optional parts in, each `a|b` alternative on its own."""
    command = re.split(r"\s+(?:#|>)\s", command)[0]
    command = command.replace("[,…]", "")
    command = re.sub(r"\[([^\[\]]*?) \| [^\[\]]*\]", r"\1", command)  # [--config f | --ledger F]: the first
    command = command.replace("[", "").replace("]", "")
    words = shlex.split(command)[1:]
    words = [PLACEHOLDERS.get(w, w) for w in words]
    words = [re.sub(r"^limits=\{(…|\.\.\.)\}$", PLACEHOLDERS["limits={…}"], w) for w in words]
    options = [w.split("|") if "|" in w and not w.startswith("{") else [w] for w in words]
    return [list(argv) for argv in itertools.product(*options)]


COMMANDS = documented()


def test_the_documents_show_commands() -> None:
    assert len(COMMANDS) > 20 and any(c.startswith("paymaster report [") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_documented_command_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each spelled-out form parses; a mention of a command without its arguments (`paymaster batch
    submit|status|results`) need only name commands and flags that exist."""
    for argv in spelled_out(command):
        try:
            args, rest = parser().parse_known_args(argv)
            if args.cmd == "sim":
                sim_parser().parse_args(rest)
            else:
                assert not rest, f"{command}: no such flag {rest}"
        except SystemExit:
            error = capsys.readouterr().err.strip().splitlines()[-1]
            assert "the following arguments are required" in error, f"{command}: {argv}: {error}"
