"""Output token control: every call leaves with a bounded `max_tokens`.

A request above the agent's ceiling is clamped, a request with none gets the ceiling (OpenAI makes
it optional; without it the worst case of a call would be unbounded). Either is said in a header.
"""

from __future__ import annotations

from ..call import Call
from ..config import Agent


def apply(call: Call, agent: Agent) -> None:
    ceiling = agent.max_tokens
    if call.max_tokens is None:
        call.max_tokens = ceiling
        call.notes["x-paymaster-max-tokens"] = f"{ceiling}; set to the agent's ceiling"
    elif call.max_tokens > ceiling:
        call.notes["x-paymaster-max-tokens"] = f"{ceiling}; clamped from {call.max_tokens}"
        call.max_tokens = ceiling
