"""The frameworks issue 17 names, on their Responses API paths, through the gateway against the simulator:
LangChain's ChatOpenAI(use_responses_api=True) and pydantic-ai's OpenAIResponsesModel — plain, streamed,
a two-tool loop and structured output. Each model turn is a /v1/responses call, booked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

SAY = "Say hello [sim:tokens=7]"
LOOP = "Weather and time in Oslo? [sim:tool=get_weather] [sim:tool=get_time] [sim:tokens=9]"


class Weather(BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny, 21 C"


def get_time(city: str) -> str:
    """The local time in a city."""
    return "14:05"


def booked(gw: Any, n: int) -> None:
    rows = gw.ledger("olivia")
    assert len(rows) == n and {(r["api"], r["status"]) for r in rows} == {("responses", "ok")}


def test_langchain_use_responses_api(gateway: Any) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    gw = gateway()
    chat = ChatOpenAI(
        model="gpt-4.1-mini", base_url=gw.url + "/v1", api_key=gw.keys["olivia"], max_retries=0, use_responses_api=True
    )
    assert len(chat.invoke(SAY).text.split()) == 7
    assert len("".join(c.text for c in chat.stream(SAY)).split()) == 7
    by_name = {f.__name__: tool(f) for f in (get_weather, get_time)}
    llm = chat.bind_tools(list(by_name.values()))
    messages: list[Any] = [HumanMessage(LOOP)]
    names = []
    for _ in range(5):
        ai = llm.invoke(messages)
        messages.append(ai)
        if not ai.tool_calls:
            break
        for call in ai.tool_calls:
            names.append(call["name"])
            messages.append(ToolMessage(by_name[call["name"]].invoke(call["args"]), tool_call_id=call["id"]))
    assert names == ["get_weather", "get_time"] and len(ai.text.split()) == 9
    out = chat.with_structured_output(Weather).invoke("Weather in Oslo as JSON")
    assert isinstance(out, Weather)
    booked(gw, 6)


def test_pydantic_ai_responses_model(gateway: Any) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    gw = gateway()
    model = OpenAIResponsesModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=gw.url + "/v1", api_key=gw.keys["olivia"])
    )
    assert len(str(Agent(model).run_sync(SAY).output).split()) == 7

    async def stream() -> str:
        async with Agent(model).run_stream(SAY) as result:
            return "".join([d async for d in result.stream_text(delta=True)])

    assert len(asyncio.run(stream()).split()) == 7
    assert len(str(Agent(model, tools=[get_weather, get_time]).run_sync(LOOP).output).split()) == 9
    assert isinstance(Agent(model, output_type=Weather).run_sync("Weather in Oslo").output, Weather)
    booked(gw, 6)
