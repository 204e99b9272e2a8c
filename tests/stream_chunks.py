"""Reading OpenAI chat.completion.chunk streams in tests."""

from __future__ import annotations

from typing import Any


def call_names(chunks: list[Any]) -> dict[int, str]:
    """The tool calls a stream opened: index → function name."""
    return {
        d.index: d.function.name
        for c in chunks
        if c.choices
        for d in c.choices[0].delta.tool_calls or []
        if d.function and d.function.name
    }
