"""The config reference as a Markdown table, generated from the models so it cannot drift from them.

`paymaster config schema --markdown` prints it; every key of fleet.yaml with its type, default and meaning.
"""

from __future__ import annotations

import json
from typing import Any

from .fleet_file import json_schema


def markdown() -> str:
    schema = json_schema()
    rows: list[tuple[str, str, str, str]] = []
    _walk(schema, schema["$defs"], "", rows)
    out = ["| key | type | default | what it does |", "|---|---|---|---|"]
    out += [f"| `{k}` | {t} | {d} | {w} |" for k, t, d, w in rows]
    return "\n".join(out)


def _walk(node: dict[str, Any], defs: dict[str, Any], prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    required = set(node.get("required", ()))
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        target = _section(prop, defs)
        mapping = _mapping_of(prop, defs)
        if target is not None:
            rows.append((key, "section", "", _desc(prop, target)))
            _walk(target, defs, key + ".", rows)
        elif mapping is not None:
            rows.append((f"{key}.<name>", "section", "", _desc(prop, mapping)))
            _walk(mapping, defs, f"{key}.<name>.", rows)
        else:
            default = "required" if name in required else _show(prop.get("default"))
            rows.append((key, _type(prop), default, _desc(prop, {})))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return defs[ref.rsplit("/", 1)[1]] if isinstance(ref, str) else node


def _options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]


def _section(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    for o in _options(prop):
        r = _resolve(o, defs)
        if "properties" in r:
            return r
    return None


def _mapping_of(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    for o in _options(prop):
        values = [o.get("additionalProperties"), *o.get("patternProperties", {}).values()]
        for v in values:
            if o.get("type") == "object" and isinstance(v, dict) and "properties" in _resolve(v, defs):
                return _resolve(v, defs)
    return None


def _type(prop: dict[str, Any]) -> str:
    parts = []
    for o in _options(prop):
        if "enum" in o:
            parts.append(" \\| ".join(f"`{e}`" for e in o["enum"]))
            continue
        t = o.get("type", "any")
        t = " or ".join(t) if isinstance(t, list) else t
        lo = o.get("minimum", o.get("exclusiveMinimum"))
        hi = o.get("maximum", o.get("exclusiveMaximum"))
        if t == "array":
            t = f"list of {_type(o.get('items', {}))}"
        elif t == "object" and isinstance(o.get("additionalProperties"), dict):
            t = f"map of name → {_type(o['additionalProperties'])}"
        if lo is not None or hi is not None:
            t += f" ({'' if lo is None else lo}…{'' if hi is None else hi})"
        parts.append(t)
    nullable = any(o.get("type") == "null" for o in prop.get("anyOf", ()))
    return " or ".join(parts) + (" or null" if nullable else "")


def _desc(prop: dict[str, Any], target: dict[str, Any]) -> str:
    return str(prop.get("description") or target.get("description") or "").replace("|", "\\|").replace("\n", " ")


def _show(v: Any) -> str:
    return "—" if v is None else f"`{json.dumps(v)}`"
