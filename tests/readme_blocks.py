"""The fenced blocks of README.md and docs/*.md, for the tests that run them (tests/test_readme_*.py), so the
documentation cannot drift from what the code does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository
    line: int  # of the opening fence
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def blocks(*files: str, lang: str | None = None) -> list[Block]:
    """Every fenced block of these files (default: README.md and docs/*.md), in order; `lang` filters."""
    names = files or ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))
    out = []
    for name in names:
        text = (ROOT / name).read_text()
        for m in FENCE.finditer(text):
            if lang is None or m.group(1) == lang:
                out.append(Block(name, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return out


def block_after(marker: str, file: str = "README.md") -> Block:
    """The first fenced block after the line containing `marker`."""
    text = (ROOT / file).read_text()
    at = text.index(marker)
    return next(b for b in blocks(file) if b.line > text.count("\n", 0, at) + 1)
