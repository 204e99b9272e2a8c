"""ConfigError: every problem in fleet.yaml at once, one `path: problem` line each.

    ConfigError(ValueError)
      .problems  ["agents.writer.daily_usd: must be a dollar amount, got 'ten'", "listen.port: …"]

A value that may be a secret (a key pasted where a variable name belongs) never appears in a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ConfigError(ValueError):
    """fleet.yaml is malformed; each line names the field and the problem."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


def path_of(loc: Iterable[str | int]) -> str:
    """('agents', 'writer', 'daily_usd') -> agents.writer.daily_usd; ('fleet', 'alert_thresholds', 0) -> …[0]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "fleet.yaml"


class Problems:
    """Collects problems while a fleet is built, so that all of them are reported together."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")

    def extend(self, error: ConfigError) -> None:
        self.lines.extend(error.problems)

    def raise_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)
