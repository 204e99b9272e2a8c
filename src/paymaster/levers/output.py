"""Output token control: every call leaves with a bounded `max_tokens`, and nothing unneeded.

- Ceilings, per agent and per task type: a request above its ceiling is clamped, a request with
  none gets the ceiling (OpenAI makes it optional; without it the worst case of a call would be
  unbounded). Either is said in the `x-paymaster-max-tokens` header.
- Structured output for task types with a `schema`: OpenAI gets `response_format` (strict
  `json_schema` where the model supports it, else `json_object` and the schema in the prompt);
  Anthropic gets a forced tool whose input is the schema, and the tool call is turned back into a
  JSON text answer on the way out (`wire.anthropic.unwrap_structured`), so the caller sees the
  shape it asked for.
- Brevity framing: a system-prompt addendum placed after the stable prefix — the last system block
  on Anthropic, a closing system message on OpenAI — so it never breaks a cached prefix.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..call import Call
from ..config import Agent, Config, Task
from ..wire import responses as wire_responses
from .base import Answer, LeverContext, Services

# models whose OpenAI API has no strict json_schema response format (prefixes)
NO_JSON_SCHEMA = ("gpt-3.5", "gpt-4-", "gpt-4o-2024-05-13", "o1-mini", "o1-preview")


class OutputControl:
    name = "output"

    async def apply(self, call: Call, ctx: LeverContext) -> Answer | None:
        apply(call, ctx.agent, ctx.task)
        return None


def make(config: Config, gateway: Services) -> OutputControl:
    return OutputControl()


def apply(call: Call, agent: Agent, task: Task | None) -> None:
    ceiling = agent.max_tokens
    if task is not None and task.max_tokens is not None:
        ceiling = min(ceiling, task.max_tokens)
    if call.max_tokens is None:
        call.max_tokens = ceiling
        call.notes["x-paymaster-max-tokens"] = f"{ceiling}; set to the ceiling"
    elif call.max_tokens > ceiling:
        call.notes["x-paymaster-max-tokens"] = f"{ceiling}; clamped from {call.max_tokens}"
        call.max_tokens = ceiling

    addendum = (task.brevity if task is not None and task.brevity else None) or agent.brevity
    if task is not None and task.schema is not None:
        addendum = _structured(call, task, addendum)
    if addendum:
        _frame(call, addendum)


def _structured(call: Call, task: Task, addendum: str | None) -> str | None:
    body = call.body
    schema = task.schema
    assert schema is not None
    if call.api == "responses":
        call.notes["x-paymaster-structured"] = wire_responses.structured(body, _name(task.name), schema)
        return addendum
    if call.api == "openai":
        if "response_format" in body:
            call.notes["x-paymaster-structured"] = "caller's response_format kept"
            return addendum
        if call.model.startswith(NO_JSON_SCHEMA):
            body["response_format"] = {"type": "json_object"}
            hint = "Respond with one JSON object matching this JSON schema: " + orjson.dumps(schema).decode()
            call.notes["x-paymaster-structured"] = "json_object"
            return f"{addendum}\n{hint}" if addendum else hint
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _name(task.name), "schema": schema, "strict": True},
        }
        call.notes["x-paymaster-structured"] = "json_schema"
        return addendum
    if body.get("tools") or body.get("tool_choice") or body.get("output_config"):
        call.notes["x-paymaster-structured"] = "skipped: the request has its own tools or output format"
        return addendum
    name = _name(task.name)
    body["tools"] = [{"name": name, "description": f"Give the {task.name} answer.", "input_schema": schema}]
    if call.max_tokens == 0:  # cache pre-warming: the API refuses a forced tool_choice with max_tokens 0,
        call.notes["x-paymaster-structured"] = "tool only (max_tokens 0)"  # and tools alone warm the same prefix
        return addendum
    body["tool_choice"] = {"type": "tool", "name": name}
    call.structured_tool = name
    call.notes["x-paymaster-structured"] = "forced tool"
    return addendum


def _name(task: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in task)[:64] or "answer"


def _frame(call: Call, addendum: str) -> None:
    body = call.body
    if call.api == "anthropic":
        system = body.get("system")
        block: dict[str, Any] = {"type": "text", "text": addendum}
        if system is None or system == "":
            body["system"] = [block]
        elif isinstance(system, str):
            body["system"] = [{"type": "text", "text": system}, block]
        elif isinstance(system, list):
            system.append(block)
        else:
            return
        call.system_tail = 1
    elif call.api == "responses":
        wire_responses.append_instruction(body, addendum)
        call.addendum = addendum
    else:
        body["messages"].append({"role": "system", "content": addendum})
        call.addendum = addendum
    call.notes["x-paymaster-brevity"] = "on"
