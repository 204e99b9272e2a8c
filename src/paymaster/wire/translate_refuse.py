"""Refusing what cannot cross between the two wire formats, by name (see `wire.translate`).

Each direction walks the caller's body through a table of the fields it knows: a field it maps is
rewritten, a field whose value asks for nothing (None, the API's default) passes, a field whose
dropping cannot change the answer's meaning goes to `Drops` (left out with a note, or refused when
the fleet's translation policy is strict), and anything else — any field it does not know included —
raises BadRequest naming the field and saying why.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ..errors import BadRequest

TO_ANTHROPIC = "the Anthropic Messages API"
TO_OPENAI = "the OpenAI Chat Completions API"

Unmappable = dict[str, tuple[tuple[Any, ...], str]]
"""field: (values that ask for nothing, why any other value cannot be carried)"""


class Drops:
    """What a translation left out because dropping it cannot change the answer's meaning, as notes for
    the caller (`x-paymaster-dropped`); under the strict policy each one is refused instead."""

    __slots__ = ("strict", "notes")

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.notes: list[str] = []

    def drop(self, field: str, why: str, to: str) -> None:
        if self.strict:
            refuse(field, f"{why} (dropping it is allowed only under the lenient translation policy)", to)
        self.notes.append(f"{field} ({why})")

    def header(self) -> str | None:
        return "; ".join(self.notes) or None


def refuse(field: str, why: str, to: str) -> NoReturn:
    raise BadRequest(f"{field}: {why}; it cannot be translated to {to}", param=field)


def asks_nothing(value: Any, neutral: tuple[Any, ...]) -> bool:
    return value is None or any(value == v and type(value) is not bool or value is v for v in neutral)


def check_fields(
    body: dict[str, Any], mapped: frozenset[str], unmappable: Unmappable, to: str, unsent: frozenset[str] = frozenset()
) -> None:
    """Refuse the body's unknown fields, and the unmappable ones that ask for something. `unsent`: fields
    known to change nothing the caller can observe (cache hints), which are not forwarded."""
    for key, value in body.items():
        if key in unmappable:
            neutral, why = unmappable[key]
            if not asks_nothing(value, neutral):
                refuse(key, why, to)
        elif key not in mapped and key not in unsent:
            refuse(key, "unknown field", to)


def only(obj: dict[str, Any], keys: set[str], where: str, to: str, hints: tuple[str, ...] = ()) -> None:
    """Refuse any key of `obj` outside `keys` whose value asks for something (cache hints excepted)."""
    for key, value in obj.items():
        if key not in keys and key not in hints and value not in (None, [], {}):
            refuse(f"{where}.{key}", "has no counterpart", to)


def number(body: dict[str, Any], key: str, to: str, most: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= most:
        refuse(key, f"must be a number from 0 to {most:g}", to)
    return value
