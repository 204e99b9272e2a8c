"""The openai-agents SDK, with its defaults (the Responses API, a two-tool agent loop), through the gateway
against the simulator: every model turn is a /v1/responses call, admitted, booked and answered in the shape
the SDK expects."""

from __future__ import annotations

from typing import Any

import pytest

agents = pytest.importorskip("agents")


def test_two_tool_agent_loop_runs_through_the_gateway(gateway: Any) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # traces would go to OpenAI's own servers
    gw = gateway()
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(f"weather:{city}")
        return "sunny, 21 C"

    @function_tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        calls.append(f"time:{city}")
        return "14:05"

    agent = Agent(
        name="assistant",
        instructions="Answer with the tools.",
        tools=[get_weather, get_time],
        model=OpenAIResponsesModel(model="gpt-4.1-mini", openai_client=gw.async_openai()),
    )
    result = Runner.run_sync(
        agent, "Weather and time in Oslo? [sim:tool=get_weather] [sim:tool=get_time] [sim:tokens=20]"
    )
    assert [c.split(":")[0] for c in calls] == ["weather", "time"]
    assert len(str(result.final_output).split()) == 20
    rows = gw.ledger("olivia")
    assert [(r["api"], r["status"]) for r in rows] == [("responses", "ok")] * 3
    assert all(0 < r["cost_nanos"] <= r["worst_nanos"] for r in rows)


def test_agent_loop_on_claude_through_the_responses_api(gateway: Any) -> None:
    """The same loop on a Claude model: each stateless turn (store: false) is translated, function calls and
    their outputs included, and booked on Claude."""
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    gw = gateway(agents={"olivia": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5"], "daily_usd": 5}})
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append("weather")
        return "sunny, 21 C"

    @function_tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        calls.append("time")
        return "14:05"

    agent = Agent(
        name="assistant",
        instructions="Answer with the tools.",
        tools=[get_weather, get_time],
        model=OpenAIResponsesModel(model="claude-haiku-4-5", openai_client=gw.async_openai()),
        model_settings=ModelSettings(store=False),
    )
    result = Runner.run_sync(agent, "Weather and time? [sim:tool=get_weather] [sim:tool=get_time] [sim:tokens=11]")
    assert calls == ["weather", "time"]
    assert len(str(result.final_output).split()) == 11
    rows = gw.ledger("olivia")
    assert [(r["api"], r["model"], r["status"]) for r in rows] == [("responses", "claude-haiku-4-5", "ok")] * 3
