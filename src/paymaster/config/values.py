"""The value types of fleet.yaml: each checks a value, words its error, and gives its JSON Schema.

`Annotated[int, Whole(1, 100)]`, `Usd`, `Seconds`, `EnvVar` …: a check raises `fail("must be …, got 'x'")`; the
error's path comes from where the value sits (errors.py). A secret is never part of a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .model import AGENT_NAME, AGENT_NAME_RULE


def fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("fleet", message.replace("{", "{{").replace("}", "}}"))


def _show(v: Any) -> str:
    return str(v) if isinstance(v, Decimal) else repr(v)


def _number(v: Any) -> Decimal | None:
    """An int, float or exact YAML decimal as a Decimal (None for anything else, booleans included)."""
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        return None
    return v if isinstance(v, Decimal) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _usd(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal | str):
        raise fail(f"must be a dollar amount, got {_show(v)}")
    try:
        d = v if isinstance(v, Decimal) else Decimal(str(v).strip())
    except InvalidOperation:
        raise fail(f"must be a dollar amount, got {_show(v)}") from None
    if not d.is_finite() or d < 0:
        raise fail(f"must be a non-negative dollar amount, got {_show(v)}")
    return d


def _whole(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise fail(f"must be a whole number from {lo} to {hi}, got {_show(v)}")
        return v

    return check


def _seconds(lo_open: bool, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        d = _number(v)
        if d is None or not d.is_finite() or not (d > 0 if lo_open else d >= 0) or d > Decimal(repr(hi)):
            what = "a positive number of seconds" if lo_open else "a number of seconds from 0"
            raise fail(f"must be {what} (at most {hi:g}), got {_show(v)}")
        return float(d)

    return check


def _fraction(v: Any) -> float:
    d = _number(v)
    if d is None or not d.is_finite() or not 0 <= d <= 1:
        raise fail(f"must be a fraction from 0 to 1, got {_show(v)}")
    return float(d)


def _degrade_at(v: Any) -> float:
    x = _fraction(v)
    if x == 0:
        raise fail(
            "must be above 0: 0 would run every auto agent one tier down from its first call "
            "(1: never degrade before the cap)"
        )
    return x


def _threshold(v: Any) -> Decimal:
    try:
        d = Decimal(v.strip()) if isinstance(v, str) else _number(v)
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or not 0 < d <= 1:
        raise fail(f"must be a fraction above 0 and at most 1, got {_show(v)}")
    return d


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise fail(f"must be a non-empty string, got {_show(v)}")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise fail(f"must be true or false, got {_show(v)}")
    return v


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise fail(f"must be one of {', '.join(choices)}, got {_show(v)}")
        return v

    return check


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def looks_like_a_key(value: str) -> bool:
    """A pasted secret rather than a variable name: not a valid name, or long, mixed and digit-bearing."""
    if not ENV_NAME.fullmatch(value):
        return True
    return len(value) >= 32 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def _env_var(v: Any, info: ValidationInfo) -> str:
    """The NAME of an environment variable holding a key; its value is read at start and never echoed."""
    if not isinstance(v, str) or not v.strip():
        raise fail("must name an environment variable, e.g. ANTHROPIC_API_KEY")
    if looks_like_a_key(v):
        raise fail(
            "must name the environment variable that holds the key, not the key itself "
            "(the value given looks like a key and is not shown; set it in the environment and name the variable)"
        )
    env = (info.context or {}).get("env")
    if env is not None and not env.get(v):
        raise fail(f"environment variable {v} is not set")
    return v


def _sha256(v: Any) -> str:
    h = v.lower() if isinstance(v, str) else ""
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise fail("must be 64 hex digits (see `paymaster keys new`)")
    return h


def _timezone(v: Any) -> str:
    name = _text(v)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)") from None
    return name


def _ledger(v: Any, info: ValidationInfo) -> str:
    """A file in a folder that exists, relative to fleet.yaml's folder (":memory:" for a throwaway ledger), or a
    postgresql:// URL (the shared ledger of replicas, with `reservations:`)."""
    ledger = _text(v)
    if ledger == ":memory:" or ledger.startswith(POSTGRES_SCHEMES):
        return ledger
    base = (info.context or {}).get("base")
    p = Path(ledger) if base is None or Path(ledger).is_absolute() else Path(base) / ledger
    if p.is_dir():
        raise fail(f"{p} is a folder; name a file in it, e.g. {p / 'paymaster.db'}")
    if not p.parent.is_dir():
        raise fail(f"the folder {p.parent} does not exist; create it or name another")
    return str(p)


# --- shared store (issue 15): `store: sqlite:///path`, or `reservations: redis://…` with `ledger: postgresql://…` ---
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _store(v: Any, info: ValidationInfo) -> str:
    """`sqlite:///path`: the SQLite ledger, as `ledger: path` names it (checked and resolved the same way)."""
    store = _text(v)
    if not store.startswith("sqlite:///") or store == "sqlite:///":
        raise fail(f"must be sqlite:///path/to/ledger.db, got {store!r}")
    return _ledger(store.removeprefix("sqlite:///"), info)


def _redis_url(v: Any) -> str:
    url = _text(v)
    if not url.startswith(REDIS_SCHEMES):
        raise fail(f"must be a redis:// URL (the live counters replicas share), got {url!r}")
    return url


# --- end of the shared store block ---


def _agent_name(v: Any) -> str:
    if not isinstance(v, str) or not AGENT_NAME.fullmatch(v):
        raise fail(f"{v!r} is not an agent name (agent names are {AGENT_NAME_RULE})")
    return v


def _json_schema(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("type") != "object":
        raise fail("must be a JSON schema of an object (type: object)")
    return {k: _plain(x) for k, x in v.items()}


def _plain(v: Any) -> Any:
    """A schema's numbers as JSON numbers (YAML decimals become int or float), so it serialises as written."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() and "." not in str(v) else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _hosts(v: Any) -> tuple[str, ...]:
    hosts = [h.strip() for h in v.split(",") if h.strip()] if isinstance(v, str) else v
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise fail(f"must be a list of hosts or domains, got {_show(v)}")
    return tuple(hosts)


_KEEP_PATH = re.compile(r"(?:\[(?:\*|\d+)\]|[^.\[\]]+)(?:\.[^.\[\]]+|\[(?:\*|\d+)\])*")


def _keep_path(v: Any) -> str:
    """compression keep-rules: `name` / `[*]` / `[3]` steps joined by dots (levers/compression/prune.py)."""
    if not isinstance(v, str) or not _KEEP_PATH.fullmatch(v.strip()):
        raise fail(f"must be a path like items[*].title or data.price, got {_show(v)}")
    return v.strip()


def none_is_empty(v: Any) -> Any:
    return {} if v is None else v


def _model_list(v: Any) -> list[str]:
    if not isinstance(v, list):
        raise fail("must be a non-empty list of model names")
    return v


SECONDS = {"type": "number", "exclusiveMinimum": 0}
Usd = Annotated[Decimal, PlainValidator(_usd), WithJsonSchema({"type": ["number", "string"], "minimum": 0})]
Fraction = Annotated[float, PlainValidator(_fraction), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
Text = Annotated[str, PlainValidator(_text), WithJsonSchema({"type": "string", "minLength": 1})]
Flag = Annotated[bool, PlainValidator(_flag), WithJsonSchema({"type": "boolean"})]
EnvVar = Annotated[
    str, PlainValidator(_env_var), WithJsonSchema({"type": "string", "pattern": f"^{ENV_NAME.pattern}$"})
]
Sha256 = Annotated[str, PlainValidator(_sha256), WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})]
Seconds = Annotated[float, PlainValidator(_seconds(True, 86400)), WithJsonSchema({**SECONDS, "maximum": 86400})]
AgentName = Annotated[
    str, PlainValidator(_agent_name), WithJsonSchema({"type": "string", "pattern": f"^{AGENT_NAME.pattern}$"})
]


class Whole:
    """`Annotated[int, Whole(lo, hi)]`: a whole number in [lo, hi] (booleans refused), schema included."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_whole(self.lo, self.hi))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


class Choice:
    """`Annotated[str, Choice("a", "b")]`: one of the given strings, schema included (an editor offers them)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_one_of(*self.choices))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"enum": list(self.choices)}


T = TypeVar("T")
Section = Annotated[dict[str, T], BeforeValidator(none_is_empty)]  # names -> sections; `key:` alone is {}


Price = Annotated[dict[str, Usd], BeforeValidator(none_is_empty)]
ModelList = Annotated[list[Text], BeforeValidator(_model_list)]
AdmissionWait = Annotated[
    float, PlainValidator(_seconds(False, 3600)), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 3600})
]
Cooldown = Annotated[float, PlainValidator(_seconds(False, 86400)), WithJsonSchema({"type": "number", "minimum": 0})]
CacheSeconds = Annotated[
    float, PlainValidator(_seconds(True, 86400 * 30)), WithJsonSchema({**SECONDS, "maximum": 86400 * 30})
]
Threshold = Annotated[
    Decimal,
    PlainValidator(_threshold),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
]
DegradeAt = Annotated[
    float, PlainValidator(_degrade_at), WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1})
]
Hosts = Annotated[
    tuple[str, ...], PlainValidator(_hosts), WithJsonSchema({"type": ["array", "string"], "items": {"type": "string"}})
]
ObjectSchema = Annotated[dict[str, Any], PlainValidator(_json_schema), WithJsonSchema({"type": "object"})]
KeepPath = Annotated[str, PlainValidator(_keep_path), WithJsonSchema({"type": "string", "minLength": 1})]
Timezone = Annotated[str, PlainValidator(_timezone), WithJsonSchema({"type": "string"})]
Ledger = Annotated[str, PlainValidator(_ledger), WithJsonSchema({"type": "string"})]
Store = Annotated[str, PlainValidator(_store), WithJsonSchema({"type": "string", "pattern": "^sqlite:///."})]
RedisUrl = Annotated[
    str, PlainValidator(_redis_url), WithJsonSchema({"type": "string", "pattern": "^(rediss?|unix)://"})
]
