"""Build a small value that satisfies a JSON schema: tool-call inputs and structured answers.

Strings are "x", numbers and integers 1, booleans true, arrays empty (or one item when
`minItems` asks for it), objects filled from their properties; `enum`/`const` win, `anyOf`/`oneOf`
/`allOf` take the first branch, local `$ref`s into `$defs`/`definitions` are followed.
"""

from __future__ import annotations

from typing import Any

_SCALARS: dict[str, Any] = {"string": "x", "integer": 1, "number": 1, "boolean": True, "null": None}
_MAX_DEPTH = 8


def example(schema: Any, *, all_properties: bool = False) -> Any:
    """A value for `schema`: only required properties, or all of them (strict structured output)."""
    root = schema if isinstance(schema, dict) else {}
    return _value(root, root, all_properties, 0)


def _value(schema: dict[str, Any], root: dict[str, Any], every: bool, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _value(_resolve(ref, root), root, every, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches and isinstance(branches[0], dict):
            return _value(branches[0], root, every, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k != "null"), "null")
    if not isinstance(kind, str):
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        names = list(props) if every else [n for n in required if isinstance(n, str)]
        return {n: _value(p if isinstance(p := props.get(n), dict) else {}, root, every, depth + 1) for n in names}
    if kind == "array":
        items, least = schema.get("items"), schema.get("minItems")
        if isinstance(items, dict) and isinstance(least, int) and least > 0:
            return [_value(items, root, every, depth + 1)] * min(least, 64)
        return []
    return _SCALARS.get(kind, "x")


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    if not ref.startswith("#/"):
        return {}
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}
