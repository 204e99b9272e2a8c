"""The provider simulator, driven by the official Anthropic and OpenAI SDKs over real HTTP."""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest

import paymaster.sim
from paymaster.costmodel.tokenizer import encoding
from paymaster.server import ServerThread, free_port
from paymaster.sim import Simulator, count_tokens
from paymaster.sim.schema import example
from paymaster.sim.text import MAX_TOKENS, directives, words
from tests.attachments import png_b64

MODEL = "claude-sim"  # not a real model: the SDK warns on deprecated names, and warnings are errors
GPT = "gpt-sim"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "required": ["city", "days", "metric"],
    },
}
CLOCK = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


# -- fixtures: one simulator on a real uvicorn server for the module, reset before each test


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator()
    with ServerThread(sim.app) as srv:
        yield sim, srv.url


@pytest.fixture
def sim(served: tuple[Simulator, str]) -> Simulator:
    served[0].reset()
    return served[0]


@pytest.fixture
def url(served: tuple[Simulator, str], sim: Simulator) -> str:
    return served[1]


@pytest.fixture
def claude(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def gpt(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def raw(
    url: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP call (no SDK), for wire details the SDKs hide."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers=headers or {}, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
OPENAI_HEADERS = {"authorization": "Bearer k", "content-type": "application/json"}


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    out = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        event = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        assert data is not None, block
        out.append((event, data))
    return out


# -- tokens and text


def test_count_tokens_is_about_four_characters_per_token_of_english() -> None:
    text = "The quarterly report shows that revenue grew twelve percent, driven by cloud services. " * 20
    assert 3.5 <= len(text) / count_tokens(text) <= 4.5
    assert count_tokens("") == 0
    assert count_tokens("internationalization") == 5
    assert count_tokens("a b c d e f") == 6  # never fewer tokens than words
    assert count_tokens("Hello, world!") == count_tokens("Hello, world!")


def test_count_tokens_never_exceeds_utf8_bytes() -> None:
    rng = random.Random(1)
    alphabets = ["abc xyz", " \n\t", "éüß", "日本語中文", "🙂🚀", "!?.,;", "\u0000\u00a0\u2028", "ab\ud7ff"]
    samples = ["", " ", "a", "\n\n", "é", "🙂", "日本", "a b", "  x  ", "x" * 1000, "é" * 999]
    for _ in range(2000):
        chars = "".join(rng.choice(alphabets) for _ in range(3))
        samples.append("".join(rng.choice(chars) for _ in range(rng.randint(0, 60))))
    for text in samples:
        assert count_tokens(text) <= len(text.encode()), repr(text)


def test_answer_words_are_one_token_each() -> None:
    for n in (0, 1, 2, 3, 7, 50, 333, 5000):
        text = words(n * 31, n)
        assert count_tokens(text) == n
        assert len(text.split()) == n


def test_directives() -> None:
    said = directives("please [sim:tokens=12] and [sim:stop] [sim:tool=lookup]")
    assert (said.tokens, said.stop, said.tools) == (12, True, ("lookup",))
    assert directives("[sim:tokens=99999999999999999999]").tokens == MAX_TOKENS
    assert directives("[sim:tokens=²]").tokens is None and directives("no directives").tools == ()


def test_schema_example_fills_required_properties_with_typed_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "f": {"type": "number"},
            "b": {"type": "boolean"},
            "e": {"enum": ["red", "green"]},
            "o": {"$ref": "#/$defs/inner"},
            "a": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "opt": {"type": "string"},
        },
        "required": ["s", "i", "f", "b", "e", "o", "a"],
        "$defs": {"inner": {"type": "object", "properties": {"n": {"type": ["null", "integer"]}}, "required": ["n"]}},
    }
    assert example(schema) == {
        "s": "x",
        "i": 1,
        "f": 1,
        "b": True,
        "e": "red",
        "o": {"n": 1},
        "a": ["x", "x"],
    }
    assert example(schema, all_properties=True)["opt"] == "x"


def test_public_names_are_exported() -> None:
    assert sorted(paymaster.sim.__all__) == ["Simulator", "count_tokens", "main"]
    for name in paymaster.sim.__all__:
        assert getattr(paymaster.sim, name)


# -- Anthropic Messages


def test_anthropic_message_default_length_usage_and_headers(claude: anthropic.Anthropic, sim: Simulator) -> None:
    response = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=1000, system="Be brief.", messages=user("Hello there, how are you?")
    )
    message = response.parse()
    assert response.headers["request-id"].startswith("req_")
    assert response.headers["content-type"] == "application/json"
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    [block] = message.content
    assert block.type == "text" and count_tokens(block.text) == 50
    usage = message.usage
    expected_input = count_tokens("Be brief.") + 3 + count_tokens("Hello there, how are you?")
    assert (usage.input_tokens, usage.output_tokens) == (expected_input, 50)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.service_tier == "standard"
    counted = claude.messages.count_tokens(model=MODEL, system="Be brief.", messages=user("Hello there, how are you?"))
    assert counted.input_tokens == expected_input


def test_anthropic_directive_length_and_max_tokens_clip(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=500, messages=user("Write [sim:tokens=123] please"))
    assert message.usage.output_tokens == 123 and message.stop_reason == "end_turn"
    assert count_tokens(message.content[0].text) == 123  # type: ignore[union-attr]
    clipped = claude.messages.create(model=MODEL, max_tokens=40, messages=user("Write [sim:tokens=123] please"))
    assert clipped.usage.output_tokens == 40 and clipped.stop_reason == "max_tokens"
    assert clipped.content[0].text == " ".join(message.content[0].text.split()[:40])  # type: ignore[union-attr]
    empty = claude.messages.create(model=MODEL, max_tokens=5, messages=user("[sim:tokens=0]"))
    assert empty.usage.output_tokens == 0 and empty.content[0].text == ""  # type: ignore[union-attr]


def test_anthropic_answers_are_deterministic(claude: anthropic.Anthropic) -> None:
    def ask(text: str) -> str:
        return claude.messages.create(model=MODEL, max_tokens=99, messages=user(text)).content[0].text  # type: ignore[union-attr]

    assert ask("same question") == ask("same question")
    assert ask("same question") != ask("another question")


def test_anthropic_stop_sequence_needs_the_directive(claude: anthropic.Anthropic) -> None:
    hit = claude.messages.create(
        model=MODEL,
        max_tokens=99,
        stop_sequences=["END", "STOP"],
        messages=user("go [sim:stop] [sim:tokens=7]"),
    )
    assert (hit.stop_reason, hit.stop_sequence, hit.usage.output_tokens) == ("stop_sequence", "END", 7)
    assert "END" not in hit.content[0].text  # type: ignore[union-attr]
    plain = claude.messages.create(model=MODEL, max_tokens=99, stop_sequences=["END"], messages=user("go"))
    assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)


@pytest.mark.parametrize(
    ("choice", "prompt", "name"),
    [
        ({"type": "any"}, "hi", "get_weather"),
        ({"type": "tool", "name": "get_time"}, "hi", "get_time"),
        (None, "hi [sim:tool]", "get_weather"),
        (None, "hi [sim:tool=get_time]", "get_time"),
    ],
)
def test_anthropic_tool_use(claude: anthropic.Anthropic, choice: Any, prompt: str, name: str) -> None:
    extra = {"tool_choice": choice} if choice else {}
    message = claude.messages.create(
        model=MODEL, max_tokens=200, tools=[WEATHER, CLOCK], messages=user(prompt), **extra
    )
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.name == name and block.id.startswith("toolu_")
    assert block.input == ({"city": "x", "days": 1, "metric": True} if name == "get_weather" else {"tz": "x"})
    assert message.usage.output_tokens == count_tokens(name) + count_tokens(
        json.dumps(block.input, separators=(",", ":"))
    )


def test_anthropic_tool_choice_none_and_auto_answer_in_text(claude: anthropic.Anthropic) -> None:
    none = claude.messages.create(
        model=MODEL, max_tokens=99, tools=[WEATHER], tool_choice={"type": "none"}, messages=user("[sim:tool]")
    )
    auto = claude.messages.create(model=MODEL, max_tokens=99, tools=[WEATHER], messages=user("hi"))
    assert none.stop_reason == auto.stop_reason == "end_turn"
    assert none.content[0].type == auto.content[0].type == "text"


def test_anthropic_stream_event_sequence_matches_the_api(url: str) -> None:
    body = {"model": MODEL, "max_tokens": 100, "stream": True, "messages": user("[sim:tokens=10]")}
    status, headers, data = raw(url, "/v1/messages", body, ANTHROPIC_HEADERS)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(data)
    names = [e for e, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = [json.loads(d) for _, d in events]
    assert all(p["type"] == n for p, n in zip(payloads, names, strict=True))
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["input_tokens"] > 0
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    assert payloads[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[-2]["usage"]["output_tokens"] == 10


def test_anthropic_stream_with_sdk_equals_the_non_streamed_answer(claude: anthropic.Anthropic) -> None:
    whole = claude.messages.create(model=MODEL, max_tokens=30, messages=user("tell me [sim:tokens=44]"))
    types: list[str] = []
    deltas: list[str] = []
    for event in claude.messages.create(
        model=MODEL, max_tokens=30, messages=user("tell me [sim:tokens=44]"), stream=True
    ):
        types.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            deltas.append(event.delta.text)
        if event.type == "message_delta":
            assert event.delta.stop_reason == "max_tokens" and event.usage.output_tokens == 30
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert len(deltas) == 10 and all(1 <= count_tokens(d) <= 3 for d in deltas)
    assert "".join(deltas) == whole.content[0].text  # type: ignore[union-attr]
    with claude.messages.stream(model=MODEL, max_tokens=30, messages=user("tell me [sim:tokens=44]")) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.stop_reason) == (
        whole.usage.input_tokens,
        30,
        "max_tokens",
    )


def test_anthropic_stream_tool_use(claude: anthropic.Anthropic) -> None:
    delta_types = []
    with claude.messages.stream(
        model=MODEL, max_tokens=99, tools=[WEATHER], tool_choice={"type": "any"}, messages=user("hi")
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                delta_types.append(event.delta.type)
        final = stream.get_final_message()
    assert set(delta_types) == {"input_json_delta"} and len(delta_types) > 1
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {
        "city": "x",
        "days": 1,
        "metric": True,
    }


def test_anthropic_input_tokens_count_tools_images_and_history(claude: anthropic.Anthropic) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": png_b64(200, 100)},
    }
    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is here?"}, image]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {"tz": "UTC"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}]},
    ]
    message = claude.messages.create(model=MODEL, max_tokens=10, tools=[CLOCK], messages=history)
    expected = (
        3 * 3
        + count_tokens("What is here?")
        + 8 * 4  # the vision docs: ceil(200/28) * ceil(100/28) visual tokens
        + count_tokens("get_time")
        + count_tokens('{"tz":"UTC"}')
        + count_tokens("noon")
        + count_tokens(json.dumps([CLOCK], separators=(",", ":")))
    )
    assert message.usage.input_tokens == expected
    assert claude.messages.count_tokens(model=MODEL, tools=[CLOCK], messages=history).input_tokens == expected  # type: ignore[arg-type]


def test_anthropic_image_by_url_costs_the_largest_image(url: str) -> None:
    """The sim cannot fetch a URL: it bills the largest image the model takes (8000 px scaled to
    ~1.15 MP: 1072 x 1072, 39 x 39 visual tokens)."""
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "url", "url": "http://x/a.png"}}],
            }
        ],
    }
    status, _, data = raw(url, "/v1/messages", body, ANTHROPIC_HEADERS)
    assert status == 200
    assert json.loads(data)["usage"]["input_tokens"] == 3 + 39 * 39


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_tokens": -1, "messages": user("hi")}, "max_tokens"),  # 0 is pre-warming
        ({"max_tokens": 10, "messages": []}, "at least one message"),
        ({"max_tokens": 10, "messages": [{"role": "system", "content": "hi"}]}, "messages.0.role"),
        ({"max_tokens": 10, "messages": [{"role": "user"}]}, "messages.0.content"),
    ],
)
def test_anthropic_invalid_requests(claude: anthropic.Anthropic, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=MODEL, **kwargs)
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and needle in body["error"]["message"]
    assert body["request_id"].startswith("req_")


def test_anthropic_missing_fields_and_headers(url: str) -> None:
    status, _, data = raw(url, "/v1/messages", {"model": "m", "messages": user("x")}, ANTHROPIC_HEADERS)
    assert status == 400 and json.loads(data)["error"]["message"] == "max_tokens: Field required"
    status, _, data = raw(
        url,
        "/v1/messages",
        {"model": "m", "max_tokens": 1, "messages": user("x")},
        {"content-type": "application/json"},
    )
    assert status == 401 and json.loads(data)["error"]["type"] == "authentication_error"
    status, _, data = raw(
        url, "/v1/messages", {"model": "m", "max_tokens": 1, "messages": user("x")}, {"x-api-key": "k"}
    )
    assert status == 400 and "anthropic-version" in json.loads(data)["error"]["message"]
    request = urllib.request.Request(url + "/v1/messages", data=b"{not json", headers=ANTHROPIC_HEADERS, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    status, _, data = raw(url, "/v1/nowhere", {"a": 1}, ANTHROPIC_HEADERS)
    assert status == 404 and json.loads(data)["error"]["type"] == "not_found_error"


def test_anthropic_models_list_pages_and_retrieve(claude: anthropic.Anthropic) -> None:
    first = claude.models.list(limit=2)
    assert len(first.data) == 2 and first.has_more and first.first_id == first.data[0].id
    every = [m.id for m in claude.models.list(limit=2)]  # the SDK follows has_more / last_id
    assert len(every) == len(set(every)) == 6 and every[:2] == [m.id for m in first.data]
    model = claude.models.retrieve("claude-haiku-4-5-20251001")
    assert model.type == "model" and model.display_name == "Claude Haiku 4.5" and model.created_at.year == 2025
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("claude-nonexistent")


# -- OpenAI Chat Completions


def test_openai_completion_fields_usage_and_headers(gpt: openai.OpenAI) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    response = gpt.chat.completions.with_raw_response.create(model=GPT, messages=messages)
    completion = response.parse()
    assert response.headers["x-request-id"]
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == GPT and completion.created > 0
    assert completion.system_fingerprint and completion.service_tier == "default"
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop" and choice.logprobs is None
    assert choice.message.role == "assistant" and choice.message.refusal is None and choice.message.annotations == []
    assert count_tokens(choice.message.content or "") == 50
    usage = completion.usage
    assert usage is not None
    o200k = encoding("o200k_base").encode_ordinary  # OpenAI bills a prompt by its public tokenizer
    prompt = 3 + 3 + len(o200k("Be brief.")) + 3 + len(o200k("Hello there"))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (prompt, 50, prompt + 50)
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0


def test_openai_lengths_and_limits(gpt: openai.OpenAI) -> None:
    long = gpt.chat.completions.create(model=GPT, messages=user("[sim:tokens=700]"))
    assert long.usage and long.usage.completion_tokens == 700 and long.choices[0].finish_reason == "stop"
    capped = gpt.chat.completions.create(model=GPT, messages=user("[sim:tokens=700]"), max_tokens=20)
    assert capped.usage and capped.usage.completion_tokens == 20 and capped.choices[0].finish_reason == "length"
    capped = gpt.chat.completions.create(model=GPT, messages=user("[sim:tokens=700]"), max_completion_tokens=21)
    assert capped.usage and capped.usage.completion_tokens == 21 and capped.choices[0].finish_reason == "length"
    stop = gpt.chat.completions.create(model=GPT, messages=user("[sim:tokens=9] [sim:stop]"), stop=["\n\n"])
    assert stop.usage and stop.usage.completion_tokens == 9 and stop.choices[0].finish_reason == "stop"


def test_openai_stream_chunks_and_usage(gpt: openai.OpenAI, url: str) -> None:
    whole = gpt.chat.completions.create(model=GPT, messages=user("[sim:tokens=12] go"))
    chunks = list(
        gpt.chat.completions.create(
            model=GPT,
            messages=user("[sim:tokens=12] go"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first, *middle, final, usage_chunk = chunks
    assert first.object == "chat.completion.chunk" and first.model == GPT
    assert (first.choices[0].delta.role, first.choices[0].delta.content) == ("assistant", "")
    assert [c.choices[0].finish_reason for c in middle] == [None] * 4
    assert final.choices[0].finish_reason == "stop" and final.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1]) and usage_chunk.choices == []
    assert usage_chunk.usage and usage_chunk.usage.completion_tokens == 12
    assert usage_chunk.usage.prompt_tokens == whole.usage.prompt_tokens  # type: ignore[union-attr]
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == whole.choices[0].message.content
    body = {"model": GPT, "stream": True, "messages": user("[sim:tokens=4]")}
    status, headers, data = raw(url, "/v1/chat/completions", body, OPENAI_HEADERS)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(data)
    assert events[-1] == (None, "[DONE]")
    assert all("usage" not in json.loads(d) for _, d in events[:-1])  # absent without include_usage


def test_openai_tool_calls(gpt: openai.OpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": WEATHER["name"], "parameters": WEATHER["input_schema"]}},
        {"type": "function", "function": {"name": CLOCK["name"], "parameters": CLOCK["input_schema"]}},
    ]
    for choice, prompt, name in [
        ("required", "hi", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, "hi", "get_time"),
        ("auto", "hi [sim:tool]", "get_weather"),
    ]:
        completion = gpt.chat.completions.create(model=GPT, messages=user(prompt), tools=tools, tool_choice=choice)
        assert completion.choices[0].finish_reason == "tool_calls"
        message = completion.choices[0].message
        assert message.content is None and message.tool_calls
        [call] = message.tool_calls
        assert call.type == "function" and call.id.startswith("call_") and call.function.name == name
        assert json.loads(call.function.arguments) == (
            {"city": "x", "days": 1, "metric": True} if name == "get_weather" else {"tz": "x"}
        )
    plain = gpt.chat.completions.create(model=GPT, messages=user("hi [sim:tool]"), tools=tools, tool_choice="none")
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None
    pieces, ids, names = [], set(), set()
    stream = gpt.chat.completions.create(
        model=GPT, messages=user("hi"), tools=tools, tool_choice="required", stream=True
    )
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or ():
            assert delta.index == 0
            ids.add(delta.id)
            names.add(delta.function and delta.function.name)
            pieces.append(delta.function.arguments if delta.function else "")
        last = chunk.choices[0].finish_reason
    assert last == "tool_calls" and len(pieces) > 2 and len(ids - {None}) == 1 and names - {None} == {"get_weather"}
    assert json.loads("".join(p or "" for p in pieces)) == {"city": "x", "days": 1, "metric": True}


class Invoice(pydantic.BaseModel):
    number: str
    total: float
    paid: bool
    lines: list[str]


def test_openai_structured_output(gpt: openai.OpenAI) -> None:
    parsed = gpt.chat.completions.parse(model=GPT, messages=user("extract"), response_format=Invoice)
    assert parsed.choices[0].message.parsed == Invoice(number="x", total=1, paid=True, lines=[])
    plain = gpt.chat.completions.create(
        model=GPT, messages=user("[sim:tokens=5]"), response_format={"type": "json_object"}
    )
    content = plain.choices[0].message.content or ""
    assert count_tokens(json.loads(content)["answer"]) == 5
    assert plain.usage and plain.usage.completion_tokens == count_tokens(content)


def test_openai_errors(gpt: openai.OpenAI, url: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gpt.chat.completions.create(model=GPT, messages=[])
    assert caught.value.body == {
        "message": "Invalid 'messages': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "empty_array",
    }
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        gpt.chat.completions.create(model=GPT, messages=user("x"), max_tokens=0)
    status, headers, data = raw(
        url,
        "/v1/chat/completions",
        {"model": GPT, "messages": user("x")},
        {"content-type": "application/json"},
    )
    assert status == 401 and json.loads(data)["error"]["code"] == "invalid_api_key" and headers["x-request-id"]
    with pytest.raises(openai.NotFoundError):
        gpt.models.retrieve("no-such-model")


def test_openai_models(gpt: openai.OpenAI) -> None:
    ids = [m.id for m in gpt.models.list()]
    assert "gpt-4o-mini" in ids and all(m.object == "model" for m in gpt.models.list())
    assert gpt.models.retrieve("gpt-4o").owned_by == "system"


# -- faults


def test_rate_limit_fault_with_retry_after(claude: anthropic.Anthropic, gpt: openai.OpenAI, sim: Simulator) -> None:
    sim.inject("429", count=2, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model=MODEL, max_tokens=5, messages=user("x"))
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as caught_oai:
        gpt.chat.completions.create(model=GPT, messages=user("x"))
    assert caught_oai.value.response.headers["retry-after"] == "7" and caught_oai.value.code == "rate_limit_exceeded"
    assert claude.messages.create(model=MODEL, max_tokens=5, messages=user("x")).stop_reason == "max_tokens"


def test_server_faults_raise_the_sdk_exceptions(
    claude: anthropic.Anthropic, gpt: openai.OpenAI, sim: Simulator
) -> None:
    sim.inject("500")
    sim.inject("529")
    with pytest.raises(anthropic.InternalServerError) as e500:
        claude.messages.create(model=MODEL, max_tokens=5, messages=user("x"))
    assert e500.value.status_code == 500 and e500.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.OverloadedError) as e529:
        claude.messages.create(model=MODEL, max_tokens=5, messages=user("x"))
    assert e529.value.status_code == 529 and e529.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    sim.inject("500")
    sim.inject("529")
    with pytest.raises(openai.InternalServerError) as o500:
        gpt.chat.completions.create(model=GPT, messages=user("x"))
    assert o500.value.status_code == 500 and o500.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as o503:
        gpt.chat.completions.create(model=GPT, messages=user("x"))
    assert o503.value.status_code == 503


def test_faults_match_models_fifo_and_sdk_retries_through_them(url: str, sim: Simulator) -> None:
    sim.inject("500", model="claude-a")
    sim.inject("429", model="claude-b", retry_after=0)
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    assert client.messages.create(model="claude-c", max_tokens=5, messages=user("x")).model == "claude-c"
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="claude-b", max_tokens=5, messages=user("x"))
    retrying = anthropic.Anthropic(base_url=url, api_key="k", max_retries=1)
    before = len(sim.requests)
    assert retrying.messages.create(model="claude-a", max_tokens=5, messages=user("x")).model == "claude-a"
    assert len(sim.requests) == before + 2


def test_timeout_fault_holds_until_the_client_gives_up(
    claude: anthropic.Anthropic, gpt: openai.OpenAI, sim: Simulator
) -> None:
    sim.inject("timeout", count=2)
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.5).messages.create(model=MODEL, max_tokens=5, messages=user("x"))
    with pytest.raises(openai.APITimeoutError):
        gpt.with_options(timeout=0.5).chat.completions.create(model=GPT, messages=user("x"))
    assert 1.0 <= time.monotonic() - started < 5
    assert claude.messages.create(model=MODEL, max_tokens=5, messages=user("x")).stop_reason == "max_tokens"


def test_reset_releases_held_requests(url: str, sim: Simulator) -> None:
    sim.inject("timeout")
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=30)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.messages.create(model=MODEL, max_tokens=5, messages=user("x"))
        except anthropic.APIConnectionError as e:
            outcome.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    sim.reset()
    thread.join(timeout=5)
    assert not thread.is_alive() and outcome


def test_cut_fault_drops_streams_mid_way(claude: anthropic.Anthropic, gpt: openai.OpenAI, sim: Simulator) -> None:
    sim.inject("cut", count=3)
    seen: list[str] = []
    # the Anthropic SDK lets the transport's error out of a stream that breaks mid-way
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        for event in claude.messages.create(model=MODEL, max_tokens=50, messages=user("x"), stream=True):
            seen.append(event.type)
    assert seen[0] == "message_start" and "message_stop" not in seen and "message_delta" not in seen
    contents: list[str | None] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in gpt.chat.completions.create(model=GPT, messages=user("x"), stream=True):
            contents.append(chunk.choices[0].delta.content)
    assert contents[0] == "" and len(contents) == 2
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model=MODEL, max_tokens=50, messages=user("x"))
    assert claude.messages.create(model=MODEL, max_tokens=5, messages=user("x")).stop_reason == "max_tokens"


def test_malformed_requests_get_4xx_never_a_crash(served: tuple[Simulator, str], sim: Simulator) -> None:
    """Random corruptions of valid requests: every answer is a 200 or a 4xx in the API's shape."""
    anthropic_body = {
        "model": "m",
        "max_tokens": 9,
        "system": [{"type": "text", "text": "s"}],
        "stop_sequences": ["x"],
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    openai_body = {
        "model": "m",
        "max_tokens": 9,
        "stop": ["x"],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "object"}},
        },
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    junk: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], [1], {}, {"type": 1}, [{"type": "text"}]]
    rng = random.Random(7)
    host, port = served[1].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)

    def mutate(value: Any) -> Any:
        value = copy.deepcopy(value)
        node = value
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                return value
            key = rng.choice(keys)
            child = node[key]
            if isinstance(child, dict | list) and child and rng.random() < 0.6:
                node = child
                continue
            if isinstance(node, dict) and rng.random() < 0.2:
                del node[key]
            else:
                node[key] = rng.choice(junk)
            return value

    cases = [("/v1/messages", anthropic_body, ANTHROPIC_HEADERS)] * 2
    cases += [("/v1/messages/count_tokens", anthropic_body, ANTHROPIC_HEADERS)]
    cases += [("/v1/chat/completions", openai_body, OPENAI_HEADERS)] * 2
    statuses = set()
    for _ in range(300):
        path, body, headers = rng.choice(cases)
        for stream in (False, True):
            sent = mutate(body) | ({"stream": True} if stream and path != "/v1/messages/count_tokens" else {})
            connection.request("POST", path, json.dumps(sent), headers)
            response = connection.getresponse()
            data = response.read()
            statuses.add(response.status)
            assert response.status in (200, 400), (sent, data)
            if response.status == 400:
                error = json.loads(data)
                assert (error["error"]["type"] if "type" not in error else error["type"]) in (
                    "error",
                    "invalid_request_error",
                )
    assert statuses == {200, 400}
    connection.close()


def test_inject_rejects_unknown_faults(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sim.inject("418")
    with pytest.raises(ValueError, match="count"):
        sim.inject("500", count=0)


# -- recording and the control API


def test_requests_are_recorded(claude: anthropic.Anthropic, gpt: openai.OpenAI, sim: Simulator) -> None:
    claude.messages.create(model=MODEL, max_tokens=5, messages=user("first"))
    gpt.chat.completions.create(model=GPT, messages=user("second"))
    first, second = sim.requests
    assert first["api"] == "anthropic" and first["path"] == "/v1/messages"
    # anthropic 2.x sends its key as a bearer token (x-api-key, which raw clients use, works too)
    assert first["headers"]["authorization"] == "Bearer sk-ant-test" and "anthropic-version" in first["headers"]
    assert first["body"]["messages"] == user("first") and first["body"]["max_tokens"] == 5
    assert second["api"] == "openai" and second["path"] == "/v1/chat/completions"
    assert second["headers"]["authorization"] == "Bearer sk-test" and second["body"]["model"] == GPT
    sim.reset()
    assert len(sim.requests) == 0


def test_control_api_over_http(url: str, claude: anthropic.Anthropic, sim: Simulator) -> None:
    status, _, data = raw(url, "/_sim/faults", {"fault": "529", "count": 1, "model": MODEL})
    assert status == 200 and json.loads(data)["pending"] == [
        {"fault": "529", "count": 1, "model": MODEL, "retry_after": None}
    ]
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(model=MODEL, max_tokens=5, messages=user("x"))
    status, _, data = raw(url, "/_sim/requests")
    assert status == 200 and [r["body"]["model"] for r in json.loads(data)] == [MODEL]
    assert raw(url, "/_sim/faults", {"fault": "nope"})[0] == 400
    raw(url, "/_sim/faults", {"fault": "500"})
    assert raw(url, "/_sim/reset", {})[0] == 200
    assert json.loads(raw(url, "/_sim/requests")[2]) == [] and json.loads(raw(url, "/_sim/faults")[2])["pending"] == []


# -- configured simulators: keys, latency, token pacing, concurrency, the runner


def test_api_keys_are_enforced() -> None:
    with ServerThread(Simulator(api_keys={"good"}).app) as srv:
        ok = anthropic.Anthropic(base_url=srv.url, api_key="good", max_retries=0)
        assert ok.messages.create(model=MODEL, max_tokens=5, messages=user("x")).type == "message"
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=srv.url, api_key="bad", max_retries=0).messages.create(
                model=MODEL, max_tokens=5, messages=user("x")
            )
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=srv.url + "/v1", api_key="bad", max_retries=0).chat.completions.create(
                model=GPT, messages=user("x")
            )
        assert caught.value.code == "invalid_api_key"
        assert openai.OpenAI(base_url=srv.url + "/v1", api_key="good").models.list().data


def test_latency_and_token_delay() -> None:
    with ServerThread(Simulator(latency_ms=150, token_delay_ms=20).app) as srv:
        client = anthropic.Anthropic(base_url=srv.url, api_key="k", max_retries=0)
        started = time.monotonic()
        client.messages.create(model=MODEL, max_tokens=50, messages=user("[sim:tokens=10]"))
        assert time.monotonic() - started >= 0.15
        started = time.monotonic()
        stamps = []
        for event in client.messages.create(model=MODEL, max_tokens=50, messages=user("[sim:tokens=12]"), stream=True):
            stamps.append((event.type, time.monotonic() - started))
        assert stamps[0][1] >= 0.15  # first byte after latency
        assert stamps[-1][1] >= 0.15 + 12 * 0.02  # then paced per token


def test_async_clients_run_concurrently_beside_a_held_request(url: str, sim: Simulator) -> None:
    sim.inject("timeout", model="slow-model")

    async def main() -> list[int]:
        claude = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
        gpt = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        slow = asyncio.ensure_future(
            claude.with_options(timeout=30).messages.create(model="slow-model", max_tokens=5, messages=user("x"))
        )
        answers = await asyncio.gather(
            *(
                claude.messages.create(model=MODEL, max_tokens=99, messages=user(f"q{i} [sim:tokens={i}]"))
                for i in range(10)
            ),
            *(gpt.chat.completions.create(model=GPT, messages=user(f"q{i} [sim:tokens={i}]")) for i in range(10)),
        )
        assert not slow.done()  # still held while twenty others were answered
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await claude.close()
        await gpt.close()
        tokens = [
            a.usage.output_tokens if isinstance(a, anthropic.types.Message) else a.usage.completion_tokens
            for a in answers
        ]
        return tokens

    assert asyncio.run(main()) == list(range(10)) * 2


def test_runner_serves_from_the_command_line() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "paymaster.sim", "--port", str(port), "--default-output-tokens", "7"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        deadline = time.monotonic() + 15
        while True:
            try:
                completion = client.chat.completions.create(model=GPT, messages=user("hi"))
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert completion.usage and completion.usage.completion_tokens == 7
    finally:
        server.terminate()
        server.wait(timeout=10)
