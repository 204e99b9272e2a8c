"""The compatibility matrix (issue 18): real agent frameworks, each through the gateway against the
simulator, on an OpenAI model and on a Claude model (the latter translated for OpenAI-speaking
frameworks, and the other way round for LangChain's ChatAnthropic) — invoke, stream, a two-tool agent
loop, structured output.

The tool loop is scripted in the prompt (`[sim:tool=get_weather] [sim:tool=get_time]`, see
`paymaster.sim.text`): the model calls one tool, then the other, then answers in text; the
framework runs both tools itself and the gateway books every model call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.server import ServerThread
from paymaster.sim import Simulator
from tests.conftest import PROVIDER_KEY, Running, fleet

GPT, CLAUDE = "gpt-4.1-mini", "claude-haiku-4-5"
MODELS = [GPT, CLAUDE]
AGENTS = {"olivia": {"model": GPT, "models": [GPT, CLAUDE], "daily_usd": 5, "max_tokens": 400}}
LOOP = "Weather and time in Oslo? [sim:tool=get_weather] [sim:tool=get_time] [sim:tokens=5]"
SAY = "Say something. [sim:tokens=9]"


class Weather(BaseModel):
    city: str
    temp_c: int


class Tools:
    """The two tools, recording their calls."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def get_weather(self, city: str) -> str:
        """Current weather for a city."""
        self.called.append("get_weather")
        return f"4C and rain in {city}"

    def get_time(self, tz: str) -> str:
        """Current time in a time zone."""
        self.called.append("get_time")
        return "12:00"


# -- each framework: invoke, stream, the tool loop, structured output ---------------------------------


class LangChain:
    def __init__(self, url: str, key: str, model: str, api: str) -> None:
        if api == "openai":
            from langchain_openai import ChatOpenAI

            self.chat: Any = ChatOpenAI(model=model, base_url=url + "/v1", api_key=key, max_retries=0, max_tokens=200)
        else:
            from langchain_anthropic import ChatAnthropic

            self.chat = ChatAnthropic(model=model, base_url=url, api_key=key, max_retries=0, max_tokens=200)

    def invoke(self) -> str:
        return str(self.chat.invoke(SAY).text)

    def stream(self) -> str:
        return "".join(str(chunk.text) for chunk in self.chat.stream(SAY))

    def loop(self, tools: Tools) -> str:
        from langchain_core.messages import HumanMessage, ToolMessage
        from langchain_core.tools import tool

        by_name = {f.__name__: tool(f) for f in (tools.get_weather, tools.get_time)}
        llm = self.chat.bind_tools(list(by_name.values()))
        messages: list[Any] = [HumanMessage(LOOP)]
        for _ in range(5):
            ai = llm.invoke(messages)
            messages.append(ai)
            if not ai.tool_calls:
                return str(ai.text)
            for call in ai.tool_calls:
                messages.append(ToolMessage(by_name[call["name"]].invoke(call["args"]), tool_call_id=call["id"]))
        raise AssertionError("the tool loop did not end")

    def structured(self) -> Weather:
        out = self.chat.with_structured_output(Weather).invoke("Weather in Oslo as JSON")
        assert isinstance(out, Weather)
        return out


class PydanticAI:
    def __init__(self, url: str, key: str, model: str, api: str) -> None:
        if api == "openai":
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai import OpenAIProvider

            self.model: Any = OpenAIChatModel(model, provider=OpenAIProvider(base_url=url + "/v1", api_key=key))
        else:
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            self.model = AnthropicModel(model, provider=AnthropicProvider(base_url=url, api_key=key))

    def agent(self, **kw: Any) -> Any:
        from pydantic_ai import Agent
        from pydantic_ai.settings import ModelSettings

        return Agent(self.model, model_settings=ModelSettings(max_tokens=200), **kw)

    def invoke(self) -> str:
        return str(self.agent().run_sync(SAY).output)

    def stream(self) -> str:
        async def run() -> str:
            async with self.agent().run_stream(SAY) as result:
                return "".join([delta async for delta in result.stream_text(delta=True)])

        return asyncio.run(run())

    def loop(self, tools: Tools) -> str:
        return str(self.agent(tools=[tools.get_weather, tools.get_time]).run_sync(LOOP).output)

    def structured(self) -> Weather:
        out = self.agent(output_type=Weather).run_sync("Weather in Oslo")
        assert isinstance(out.output, Weather)
        return out.output


class OpenAIAgents:
    """The openai-agents SDK in chat-completions mode (OpenAIChatCompletionsModel); OpenAI callers only."""

    def __init__(self, url: str, key: str, model: str, api: str) -> None:
        from agents import OpenAIChatCompletionsModel, set_tracing_disabled
        from openai import AsyncOpenAI

        set_tracing_disabled(True)  # its traces would go to OpenAI
        self.client = AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        self.model = OpenAIChatCompletionsModel(model=model, openai_client=self.client)

    def run(self, prompt: str, **kw: Any) -> Any:
        from agents import Agent, ModelSettings, Runner

        agent = Agent(
            name="matrix",
            instructions="Be brief.",
            model=self.model,
            model_settings=ModelSettings(max_tokens=200),
            **kw,
        )
        return asyncio.run(Runner.run(agent, prompt)).final_output

    def invoke(self) -> str:
        return str(self.run(SAY))

    def stream(self) -> str:
        from agents import Agent, ModelSettings, Runner
        from openai.types.responses import ResponseTextDeltaEvent

        async def run() -> str:
            agent = Agent(name="matrix", model=self.model, model_settings=ModelSettings(max_tokens=200))
            result = Runner.run_streamed(agent, SAY)
            out = []
            async for event in result.stream_events():
                if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                    out.append(event.data.delta)
            return "".join(out)

        return asyncio.run(run())

    def loop(self, tools: Tools) -> str:
        from agents import function_tool

        return str(self.run(LOOP, tools=[function_tool(tools.get_weather), function_tool(tools.get_time)]))

    def structured(self) -> Weather:
        out = self.run("Weather in Oslo", output_type=Weather)
        assert isinstance(out, Weather)
        return out


FRAMEWORKS: dict[str, tuple[Callable[..., Any], str]] = {
    "langchain-openai": (LangChain, "openai"),
    "langchain-anthropic": (LangChain, "anthropic"),
    "pydantic-ai-openai": (PydanticAI, "openai"),
    "pydantic-ai-anthropic": (PydanticAI, "anthropic"),
    "openai-agents": (OpenAIAgents, "openai"),
}


@pytest.fixture(scope="module")
def gw(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One gateway for the matrix (each test reads only the ledger rows its own calls added)."""
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    raw = fleet(sim.url, keys, tmp_path_factory.mktemp("matrix"), agents=AGENTS)  # type: ignore[attr-defined]
    config = parse(raw, env={"SIM_KEY": PROVIDER_KEY})
    gateway = Gateway(config)
    srv = ServerThread(gateway).start()
    yield Running(srv.url, gateway, keys, config, srv, raw)
    srv.stop()


@pytest.fixture
def framework(request: pytest.FixtureRequest, gw: Running) -> Any:
    name, model = request.param
    make, api = FRAMEWORKS[name]
    fw = make(gw.url, gw.keys["olivia"], model, api)
    seen = len(gw.ledger("olivia"))
    fw.booked = lambda: gw.ledger("olivia")[seen:]
    return fw


CASES = [(name, model) for name in FRAMEWORKS for model in MODELS]
IDS = [f"{name}-{'gpt' if model == GPT else 'claude'}" for name, model in CASES]
each = pytest.mark.parametrize("framework", CASES, ids=IDS, indirect=True)


@each
def test_invoke(framework: Any) -> None:
    assert len(framework.invoke().split()) == 9
    assert [r["output_tokens"] for r in framework.booked()] == [9]


@each
def test_stream(framework: Any) -> None:
    assert len(framework.stream().split()) == 9
    assert [r["status"] for r in framework.booked()] == ["ok"]


@each
def test_two_tool_loop(framework: Any) -> None:
    tools = Tools()
    answer = framework.loop(tools)
    assert tools.called == ["get_weather", "get_time"]
    assert len(answer.split()) == 5
    assert [r["status"] for r in framework.booked()] == ["ok"] * 3  # three model calls, each booked


@each
def test_structured_output(framework: Any) -> None:
    out = framework.structured()
    assert out == Weather(city="x", temp_c=1)  # the simulator fills a schema with "x" and 1


@pytest.mark.parametrize("model", MODELS, ids=["gpt", "claude"])
def test_claude_code_style_loop(gw: Running, model: str) -> None:
    """What Claude Code sends: the Anthropic SDK streaming, system blocks and tools with cache_control, a tool
    result marked is_error, the loop driven until the model answers in text."""
    import anthropic

    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.keys["olivia"], max_retries=0)
    schema = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
    tools: Any = [
        {"name": "get_weather", "description": "Weather.", "input_schema": schema},
        {"name": "get_time", "description": "Time.", "input_schema": schema, "cache_control": {"type": "ephemeral"}},
    ]
    system: Any = [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}]
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": LOOP}]}]
    called = []
    for _ in range(5):
        with client.messages.stream(model=model, max_tokens=300, system=system, tools=tools, messages=messages) as s:
            final = s.get_final_message()
        if final.stop_reason != "tool_use":
            break
        uses = [b for b in final.content if b.type == "tool_use"]
        called += [u.name for u in uses]
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]})
        results = [
            {"type": "tool_result", "tool_use_id": u.id, "content": "exit 1", "is_error": len(called) == 1}
            for u in uses
        ]
        messages.append({"role": "user", "content": results})
    assert called == ["get_weather", "get_time"]
    assert final.stop_reason == "end_turn" and len(final.content[0].text.split()) == 5  # type: ignore[union-attr]
