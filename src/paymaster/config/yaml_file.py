"""Reading fleet.yaml: a second key in one mapping is refused with its line, and decimals stay exact.

PyYAML's safe loader silently keeps the last of two equal keys (a second `writer:` block replaces the first)
and reads `0.1` as the float 0.1000000000000000055…; here a duplicate is a ConfigError naming both lines, and
every YAML float arrives as the Decimal of its text, so `daily_usd: 0.1` is exactly Decimal("0.1").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader with exact decimals and duplicate keys recorded (all of them, reported together)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if first != line:
                self.duplicates.append(f"line {line}: duplicate key {key!r} (first given on line {first})")
        return super().construct_mapping(node, deep=deep)


def _decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "").lower()
    special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
    try:
        return Decimal(special.get(text, text))
    except InvalidOperation:  # YAML 1.1 sexagesimal (1:30.5) and the like: PyYAML's reading, then exact digits
        return Decimal(repr(loader.construct_yaml_float(node)))


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)


def read(text: str, name: str = "fleet.yaml") -> Any:
    """The document in `text`; ConfigError on invalid YAML or a key given twice in one mapping."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: not valid YAML: {e}") from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{name}: {d}" for d in loader.duplicates])
    return data


def read_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return read(text, str(path))
