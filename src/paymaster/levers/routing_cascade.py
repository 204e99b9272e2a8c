"""Verified cascades: the light tier answers first, the gateway checks the answer, escalates on failure.

    reason = check(api, request_body, answer_body)     # None = the answer passes; else why it fails
    answer, tried = await cascade(api, body, ["claude-haiku-4-5", "claude-opus-4-8"], ask)
    # answer: the first passing answer (bytes) of a model before the last, or None: run the last model
    # tried: every attempt, (model, HTTP status, why it failed or None)

A router that only reads the prompt cannot know whether the cheap answer was good enough; for a task
with a validator the gateway can. An answer fails the check when it is
- cut off: Anthropic `stop_reason: "max_tokens"`, OpenAI `finish_reason: "length"`;
- a refusal: Anthropic `stop_reason: "refusal"`, OpenAI `message.refusal` set or
  `finish_reason: "content_filter"`;
- not the JSON the request asked for: Anthropic `output_config.format` (and the beta `output_format`)
  of type `json_schema`, OpenAI `response_format` `json_schema` (validated against the schema) or
  `json_object` (any JSON object);
- a tool call that does not parse against its tool's input schema (Anthropic `tools[].input_schema`,
  OpenAI `tools[].function.parameters`), names no declared tool, or is missing when `tool_choice`
  requires one (Anthropic `any` / `tool`, OpenAI `required` / a named function).

Schemas are validated with `jsonschema` (Draft 2020-12 unless the schema names its own), never by
generating code from a caller's schema. Only non-streamed answers are checked: a streamed answer has
reached the caller before it could be judged. Each attempt is a call of its own: admitted, booked and
attributed as usual; the caller sees only the answer that passed (or the last tier's, unchecked).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = ["Attempt", "cascade", "check", "ladder_within", "schema_errors", "verdict"]


@dataclass(frozen=True, slots=True)
class Attempt:
    model: str
    status: int
    failed: str | None  # why the answer did not pass, None when it did


async def cascade(
    api: str,
    body: dict[str, Any],
    models: Sequence[str],
    ask: Callable[[dict[str, Any]], Awaitable[tuple[int, bytes]]],
    schema: Any = None,
    judge: Callable[[bytes], str | None] | None = None,
) -> tuple[bytes | None, list[Attempt]]:
    """Ask each of `models` but the last, cheapest first, for an answer to `body` (`ask` sends a copy naming
    the model and returns (status, body)); the first 200 answer that passes is the answer. None when none
    did: the caller runs `body` on the last model as an ordinary call (its answer is not checked). `judge`
    says why an answer fails, or None (default: `verdict` against `body` and `schema`); the lever passes the
    verdict its settlement hook already reached, so an answer is checked once."""
    tried: list[Attempt] = []
    for model in models[:-1]:
        status, raw = await ask({**body, "model": model})
        why = f"HTTP {status}" if status != 200 else judge(raw) if judge else verdict(api, body, raw, schema)
        tried.append(Attempt(model, status, why))
        if why is None:
            return raw, tried
    return None, tried


def verdict(api: str, request: dict[str, Any], raw: bytes, schema: Any = None) -> str | None:
    """`check` of a raw answer body: why it fails, or None when it passes."""
    try:
        return check(api, request, json.loads(raw), schema)
    except ValueError:
        return "the answer is not a JSON response body"


def ladder_within(ladder: Sequence[str], worst: Callable[[str], int | None], left: int | None) -> list[str]:
    """The tiers a cascade may try with `left` nano-dollars (None: no cap): all of them, unless `left` covers the
    top tier's worst case but not every tier's together — then the top tier alone. A cheaper attempt that fails
    after spending up to its worst case could leave too little for the top tier, and the call, which the agent
    can afford on the top tier, would be refused. `worst(model)`: the call's worst case there (None: unknown)."""
    if left is None or len(ladder) < 2:
        return list(ladder)
    costs = [worst(m) for m in ladder]
    if any(c is None for c in costs):
        return list(ladder)
    top, total = costs[-1], sum(c for c in costs if c is not None)
    assert top is not None
    return [ladder[-1]] if top <= left < total else list(ladder)


def check(api: str, request: dict[str, Any], answer: dict[str, Any], schema: Any = None) -> str | None:
    """Why `answer` (a non-streamed response body of `api`: "anthropic" | "openai") fails, or None.

    `schema`: the task type's output schema (output control's structured output), when the gateway, not
    the request, asks for JSON: the answer's text must then be JSON matching it."""
    why = _check_anthropic(request, answer) if api == "anthropic" else _check_openai(request, answer)
    if why is None and isinstance(schema, dict):
        why = _json_against(_text(api, answer), schema)
    return why


def _text(api: str, answer: dict[str, Any]) -> str:
    if api == "anthropic":
        return "".join(
            b.get("text", "") for b in answer.get("content") or [] if isinstance(b, dict) and b.get("type") == "text"
        )
    choices = [c for c in answer.get("choices") or [] if isinstance(c, dict)]
    msg = _obj(choices[0].get("message")) if choices else {}
    return _str(msg.get("content"))


def schema_errors(schema: Any, value: Any) -> str | None:
    """The first way `value` breaks `schema` (a short message), or None when it conforms."""
    if not isinstance(schema, dict):
        return None  # no schema: anything goes
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except jsonschema.SchemaError:
        return None  # the provider accepted the schema; we do not judge it stricter than the provider does
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:200]}"


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


# -- Anthropic Messages -----------------------------------------------------------------------------


def _check_anthropic(request: dict[str, Any], answer: dict[str, Any]) -> str | None:
    stop = answer.get("stop_reason")
    if stop == "max_tokens":
        return "cut off at max_tokens"
    if stop == "refusal":
        return "refusal"
    content = [b for b in answer.get("content") or [] if isinstance(b, dict)]
    tools = {t.get("name"): t.get("input_schema") for t in request.get("tools") or [] if isinstance(t, dict)}
    calls = [b for b in content if b.get("type") == "tool_use"]
    for b in calls:
        if b.get("name") not in tools:
            return f"tool call to an undeclared tool {b.get('name')!r}"
        why = schema_errors(tools[b.get("name")], b.get("input"))
        if why is not None:
            return f"tool {b.get('name')!r} input does not match its input_schema: {why}"
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool") and not calls:
        return "tool_choice requires a tool call and there is none"
    if isinstance(choice, dict) and choice.get("type") == "tool" and calls[0].get("name") != choice.get("name"):
        return f"tool_choice requires {choice.get('name')!r}"
    fmt = (request.get("output_config") or {}).get("format") or request.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not calls:
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        return _json_against(text, fmt.get("schema"))
    return None


# -- OpenAI Chat Completions ------------------------------------------------------------------------


def _check_openai(request: dict[str, Any], answer: dict[str, Any]) -> str | None:
    choices = [c for c in answer.get("choices") or [] if isinstance(c, dict)]
    if not choices:
        return "no choices"
    for c in choices:  # every choice the caller asked for (n > 1) must pass
        why = _check_openai_choice(request, c)
        if why is not None:
            return why if len(choices) == 1 else f"choice {c.get('index', '?')}: {why}"
    return None


def _check_openai_choice(request: dict[str, Any], choice: dict[str, Any]) -> str | None:
    finish = choice.get("finish_reason")
    if finish == "length":
        return "cut off at max_tokens"
    if finish == "content_filter":
        return "refusal (content filter)"
    msg = _obj(choice.get("message"))
    if msg.get("refusal"):
        return "refusal"
    tools = dict(_openai_tools(request))
    calls = [t for t in msg.get("tool_calls") or [] if isinstance(t, dict)]
    for t in calls:
        fn = _obj(t.get("function"))
        name = fn.get("name")
        if name not in tools:
            return f"tool call to an undeclared tool {name!r}"
        try:
            args = json.loads(fn.get("arguments") or "")
        except (TypeError, ValueError):
            return f"tool {name!r} arguments are not JSON"
        why = schema_errors(tools[name], args)
        if why is not None:
            return f"tool {name!r} arguments do not match its parameters: {why}"
    choice_req = request.get("tool_choice")
    forced = choice_req == "required" or (isinstance(choice_req, dict) and choice_req.get("type") == "function")
    if forced and not calls:
        return "tool_choice requires a tool call and there is none"
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and not calls:
        text = _str(msg.get("content"))
        if fmt.get("type") == "json_schema":
            spec = _obj(fmt.get("json_schema"))
            return _json_against(text, spec.get("schema"))
        if fmt.get("type") == "json_object":
            why = _json_against(text, None)
            if why is None and not isinstance(json.loads(text), dict):
                return "the answer is JSON but not an object"
            return why
    return None


def _openai_tools(request: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    for t in request.get("tools") or []:
        if isinstance(t, dict) and isinstance(t.get("function"), dict):
            yield t["function"].get("name"), t["function"].get("parameters")


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _json_against(text: str, schema: Any) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return "the answer is not JSON"
    why = schema_errors(schema, value)
    return None if why is None else f"the answer does not match the schema: {why}"
