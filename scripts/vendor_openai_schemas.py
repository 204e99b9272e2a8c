"""Vendor the part of OpenAI's published OpenAPI specification that the gateway's answers must match.

    python scripts/vendor_openai_schemas.py PATH/TO/openapi.json COMMIT > tests/data/openai_schemas.json

PATH is `openapi.json` from github.com/openai/openai-openapi at COMMIT. The answer schemas (chat
completion, stream chunk, error, model, model list, Responses answer and
stream events, embeddings, batch and file objects) and everything they reference are kept, as JSON
Schema (2020-12) `$defs`: `#/components/schemas/X` becomes `#/$defs/X`, and the specification's
OpenAPI 3.0 `nullable: true` becomes a `null` alternative, so a plain JSON Schema validator reads it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ErrorResponse",
    "ListModelsResponse",
    "Model",
    "Response",  # the Responses API: the answer, its stream's events, stored input items
    "ResponseStreamEvent",
    "ResponseItemList",
    "CreateEmbeddingResponse",
    "Batch",  # the Batch API and its files
    "ListBatchesResponse",
    "OpenAIFile",
)
PREFIX = "#/components/schemas/"


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> list[str]:
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo += refs(schemas[name])
    return sorted(seen)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"][len(PREFIX) :]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def plain(node: Any, name: str = "") -> Any:
    """OpenAPI 3.0 idioms as JSON Schema: local refs into $defs, `nullable` as a null alternative, and a
    schema's draft 2019-09 self-reference (`$recursiveAnchor` + `$recursiveRef: "#"`) as a `$ref` to itself."""
    if isinstance(node, list):
        return [plain(v, name) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("$recursiveRef") == "#":
        return {"$ref": "#/$defs/" + name}
    out = {k: plain(v, name) for k, v in node.items() if k not in ("nullable", "$recursiveAnchor")}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = "#/$defs/" + out["$ref"][len(PREFIX) :]
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def main() -> None:
    path, commit = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec = json.load(f)
    schemas = spec["components"]["schemas"]
    vendored = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "source": {
            "repository": "https://github.com/openai/openai-openapi",
            "file": "openapi.json",
            "commit": commit,
            "spec_version": spec["info"]["version"],
            "roots": list(ROOTS),
        },
        "$defs": {name: plain(schemas[name], name) for name in closure(schemas, ROOTS)},
    }
    json.dump(vendored, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
