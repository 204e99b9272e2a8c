"""Cross-provider translation (`paymaster.wire.translate`): mappings both ways, refusals, and whole calls
through the provider simulator, the answers read back with the caller SDK's own types and stream parsers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pydantic
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import paymaster.wire.translate as tr
from paymaster.errors import BadRequest, UpstreamFailed
from paymaster.server import ServerThread
from paymaster.sim import Simulator
from paymaster.wire import SSEFrames

GPT = "gpt-4.1-mini"  # what an OpenAI-speaking caller asks for
CLAUDE = "claude-haiku-4-5"  # what an Anthropic-speaking caller asks for
EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
FN = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
JSON_FORMAT = {"format": {"type": "json_schema", "schema": SCHEMA}}


# -- builders


def oa(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """An OpenAI Chat Completions body."""
    return {"model": GPT, "messages": messages, "max_completion_tokens": 100, **kw}


def an(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """An Anthropic Messages body."""
    return {"model": CLAUDE, "max_tokens": 100, "messages": messages, **kw}


def msg(role: str, *content: Any, **kw: Any) -> dict[str, Any]:
    """A message: one string as is, anything else as a list of parts or blocks."""
    body = content[0] if len(content) == 1 and isinstance(content[0], str | None) else list(content)
    return {"role": role, "content": body, **kw}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def image_url(url: str, **kw: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **kw}}


def call(id: str, name: str, arguments: str = "{}") -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_use(id: str, name: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input or {}}


def tool_result(id: str, content: Any = "", **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": content, **kw}


def to_claude(body: dict[str, Any], model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    return tr.openai_request_to_anthropic(copy.deepcopy(body), model)


def to_gpt(body: dict[str, Any], kind: str = "openai") -> dict[str, Any]:
    return tr.anthropic_request_to_openai(copy.deepcopy(body), "gpt-4o", kind)


U = [msg("user", "x")]


# -- requests: what maps


def test_system_prompts_and_turns_both_ways() -> None:
    turns = [msg("user", "Hi"), msg("assistant", "Hello."), msg("system", "Now in French."), msg("user", text("Why?"))]
    body = oa([msg("system", "Be brief."), msg("developer", text("Use metric.")), *turns])
    claude = to_claude(body)
    assert claude == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "system": [text("Be brief."), text("Use metric."), text("Now in French.")],
        "messages": [t for t in turns if t["role"] != "system"],  # a later system message joins the system prompt
    }
    unfolded = [t for t in turns if t["role"] != "system"]
    assert to_gpt(claude)["messages"] == [
        msg("system", text("Be brief."), text("Use metric."), text("Now in French.")),
        *unfolded,
    ]
    single = to_claude(oa([msg("system", "S"), *U]))
    assert single["system"] == "S" and to_gpt(single)["messages"][0] == msg("system", "S")


def test_images_base64_and_url_round_trip() -> None:
    parts = [
        text("What is in these?"),
        image_url(f"data:image/jpeg;base64,{PIXEL}"),
        image_url("https://x.test/cat.jpg"),
    ]
    claude = to_claude(oa([msg("user", *parts)]))
    assert claude["messages"][0]["content"] == [
        text("What is in these?"),
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]
    assert to_gpt(claude)["messages"] == [msg("user", *parts)]
    high = to_claude(oa([msg("user", image_url("https://x.test/cat.jpg", detail="high"))]))
    assert high["messages"][0]["content"] == claude["messages"][0]["content"][2:]


def test_tools_calls_and_results_across_turns_keep_their_ids() -> None:
    paris, oslo = call("call_A1", "get_weather", '{"city":"Paris","days":1}'), call("call_B2", "get_weather", "{}")
    conversation = [
        msg("user", "Weather in Paris and Oslo?"),
        msg("assistant", "Checking.", tool_calls=[paris, oslo]),
        {"role": "tool", "tool_call_id": "call_A1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_B2", "content": [text("4C"), text("rain")]},
        msg("user", "Which is warmer?"),
    ]
    claude = to_claude(oa(conversation, tools=[FN]))
    assert claude["tools"] == [TOOL]
    assert claude["messages"][1:] == [
        msg(
            "assistant",
            text("Checking."),
            tool_use("call_A1", "get_weather", {"city": "Paris", "days": 1}),
            tool_use("call_B2", "get_weather"),
        ),
        # the tool results lead the user turn; the user's text follows in the same turn, as Claude needs
        msg(
            "user",
            tool_result("call_A1", "18C"),
            tool_result("call_B2", [text("4C"), text("rain")]),
            text("Which is warmer?"),
        ),  # noqa: E501
    ]
    back = to_gpt(claude)
    assert back["tools"] == [FN]
    assert back["messages"] == [*conversation[:4], msg("user", text("Which is warmer?"))]


def test_a_tool_without_parameters_and_empty_arguments() -> None:
    body = oa(
        [
            *U,
            msg("assistant", None, tool_calls=[call("c", "now", "")]),
            {"role": "tool", "tool_call_id": "c", "content": "noon"},
        ],  # noqa: E501
        tools=[{"type": "function", "function": {"name": "now"}}],
    )
    claude = to_claude(body)
    assert claude["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert claude["messages"][1] == msg("assistant", tool_use("c", "now"))


TOOL_CHOICES = [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
]


@pytest.mark.parametrize(("choice", "parallel", "claude"), TOOL_CHOICES)
def test_tool_choice_both_ways(choice: Any, parallel: bool | None, claude: dict[str, Any]) -> None:
    extra: dict[str, Any] = {"tool_choice": choice} if choice is not None else {}
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert to_claude(oa(U, tools=[FN], **extra))["tool_choice"] == claude
    back = to_gpt(an(U, tools=[TOOL], tool_choice=claude))
    assert back.get("tool_choice") == (choice or "auto") and back.get("parallel_tool_calls") == parallel


def test_allowed_tools_offer_the_allowed_subset() -> None:
    clock = {"type": "function", "function": {"name": "get_time"}}
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [clock]}}
    got = to_claude(oa(U, tools=[FN, clock], tool_choice=choice))
    assert [t["name"] for t in got["tools"]] == ["get_time"] and got["tool_choice"] == {"type": "any"}


def test_sampling_stop_user_tier_and_limits() -> None:
    asks_nothing = {"n": 1, "logprobs": False, "frequency_penalty": 0, "store": False, "modalities": ["text"]}
    body = oa(
        U,
        stop="END",
        temperature=0.3,
        top_p=0.9,
        user="u-42",
        service_tier="default",
        stream=True,
        stream_options={"include_usage": True},
        prompt_cache_key="k",  # a cache hint: not forwarded
        **asks_nothing,
    )
    claude = to_claude(body)
    assert claude == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": U,
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "metadata": {"user_id": "u-42"},
        "service_tier": "standard_only",
        "stream": True,
    }
    assert to_claude({**body, "max_tokens": 50, "max_completion_tokens": 80})["max_tokens"] == 50
    back = to_gpt({**claude, "cache_control": {"type": "ephemeral"}, "thinking": {"type": "disabled"}})
    assert back == {
        "model": "gpt-4o",
        "messages": U,
        "max_completion_tokens": 100,
        "stop": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "safety_identifier": "u-42",
        "service_tier": "default",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    compatible = to_gpt(claude, "openai-compatible")
    assert compatible["max_tokens"] == 100 and "max_completion_tokens" not in compatible
    assert compatible["user"] == "u-42" and "safety_identifier" not in compatible


def test_cache_hints_are_not_forwarded_to_openai() -> None:
    cached = {"cache_control": {"type": "ephemeral"}}
    body = an([msg("user", {**text("x"), **cached})], system=[{**text("S"), **cached}], tools=[{**TOOL, **cached}])
    got = to_gpt(body)
    assert b"cache" not in orjson.dumps(got)
    assert got["messages"] == [msg("system", text("S")), msg("user", text("x"))]


def test_json_schema_both_ways() -> None:
    claude = to_claude(oa(U, response_format=JSON_SCHEMA))
    assert claude["output_config"] == JSON_FORMAT
    output = {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    assert to_gpt(claude)["response_format"] == output
    assert "output_config" not in to_claude(oa(U, response_format={"type": "text"}))


# -- requests: what is refused, by name

OPENAI_REFUSALS: list[tuple[dict[str, Any], str]] = [
    (oa(U, n=2), "n: Claude returns one choice"),
    (oa(U, n=True), "n: Claude returns one choice"),
    (oa(U, logprobs=True), "logprobs: Claude does not return log probabilities"),
    (oa(U, top_logprobs=3), "top_logprobs: Claude does not return log probabilities"),
    (oa(U, logit_bias={"50256": -100}), "logit_bias: Claude has no logit bias"),
    (oa(U, frequency_penalty=0.5), "frequency_penalty: Claude has no frequency penalty"),
    (oa(U, presence_penalty=0.5), "presence_penalty: Claude has no presence penalty"),
    (oa(U, seed=7), "seed: Claude has no sampling seed"),
    (oa(U, modalities=["text", "audio"]), "modalities: Claude answers in text only"),
    (oa(U, audio={"voice": "alloy", "format": "wav"}), "audio: Claude has no audio output"),
    (oa(U, prediction={"type": "content", "content": "x"}), "prediction: Claude has no predicted outputs"),
    (oa(U, reasoning_effort="low"), "reasoning_effort: answered without thinking"),
    (oa(U, verbosity="low"), "verbosity: Claude has no verbosity"),
    (oa(U, web_search_options={}), "web_search_options: web search is a provider-side tool"),
    (oa(U, functions=[{"name": "f"}]), "functions: the deprecated functions API"),
    (oa(U, store=True), "store: Anthropic keeps no completions"),
    (oa(U, metadata={"k": "v"}), "metadata: tags for stored completions"),
    (oa(U, temperature=1.5), "temperature: Claude's temperature goes from 0 to 1"),
    (
        oa(U, response_format={**JSON_SCHEMA, "json_schema": {"name": "w", "description": "d", "schema": {}}}),
        "description",
    ),  # noqa: E501
    (oa(U, tools=[{"type": "custom", "custom": {"name": "grammar"}}]), "tools[0]: only function tools"),
    (oa(U, service_tier="flex"), "service_tier: Anthropic offers 'auto' and standard"),
    (oa(U, user="a", safety_identifier="b"), "user: differs"),
    (oa(U, brand_new_option=True), "brand_new_option: unknown field"),
    ({"model": GPT, "messages": U}, "max_completion_tokens: is required by Claude"),
    (oa([msg("user", "x", name="bob")]), "messages[].name: one user participant"),
    (
        oa([msg("user", {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})]),
        "content[0]: input_audio",
    ),  # noqa: E501
    (oa([msg("user", {"type": "file", "file": {"file_id": "f"}})]), "messages[0].content[0]: file"),
    (oa([msg("user", image_url("https://x.test/y.png", detail="low"))]), "image_url.detail"),
    (oa([msg("user", image_url("data:image/bmp;base64,AA"))]), "not 'image/bmp'"),
    (oa([*U, msg("assistant", None, refusal="no"), *U]), "messages[1].refusal"),
    (oa([*U, msg("assistant", None, tool_calls=[call("c", "f", "[1]")]), *U]), "arguments: not a JSON object"),
    (oa([{"role": "function", "name": "f", "content": "x"}]), "messages[0].role: 'function'"),
    (oa([msg("system", "only a system prompt")]), "messages: holds only system messages"),
]


@pytest.mark.parametrize(("body", "says"), OPENAI_REFUSALS, ids=[s for _, s in OPENAI_REFUSALS])
def test_openai_request_refusals_name_the_field(body: dict[str, Any], says: str) -> None:
    with pytest.raises(BadRequest) as e:
        to_claude(body)
    assert says in e.value.message
    assert e.value.message.endswith("cannot be translated to the Anthropic Messages API")
    assert e.value.status == 400 and e.value.param and e.value.message.startswith(e.value.param + ": ")


DOCUMENT = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA"}}
THINKING = {"type": "thinking", "thinking": "hm", "signature": "s"}
ANTHROPIC_REFUSALS: list[tuple[dict[str, Any], str]] = [
    (an(U, top_k=40), "top_k: OpenAI has no top-k sampling"),
    (an(U, thinking={"type": "enabled", "budget_tokens": 2048}), "thinking: OpenAI's reasoning is hidden"),
    (an(U, output_config={"effort": "low"}), "output_config.effort"),
    (an(U, mcp_servers=[{"type": "url", "url": "https://m.test", "name": "m"}]), "mcp_servers: OpenAI"),
    (an(U, speed="fast"), "speed: OpenAI has no fast mode"),
    (an(U, max_tokens=0), "max_tokens: must be a positive integer"),
    (an(U, stop_sequences=["a", "b", "c", "d", "e"]), "stop_sequences: OpenAI takes at most 4"),
    (an(U, tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0: server tool 'web_search_2025"),
    (an(U, tools=[{**TOOL, "input_examples": [{"city": "x"}]}]), "tools.0.input_examples"),
    (an(U, metadata={"user_id": "u", "tags": ["a"]}), "metadata.tags"),
    (an(U, future_field=1), "future_field: unknown field"),
    (an([msg("user", DOCUMENT)]), "messages.0.content.0: document"),
    (an([msg("user", {"type": "image", "source": {"type": "file", "file_id": "f"}})]), "messages.0.content.0.source"),
    (an([msg("user", {**text("x"), "citations": [{"type": "char_location"}]})]), "messages.0.content.0.citations"),
    (an([msg("user", {"type": "search_result", "source": "s", "title": "t", "content": []})]), "'search_result'"),
    (an([*U, msg("assistant", THINKING, text("y")), *U]), "messages.1.content.0: thinking blocks"),
    (an([*U, msg("assistant", tool_use("t", "f"), text("after")), *U]), "messages.1.content.1: text after a tool_use"),
    (an([msg("user", tool_result("t", [{"type": "image", "source": {}}]))]), "OpenAI tool messages carry text only"),
    (an([msg("user", text("x"), tool_result("t"))]), "tool_result blocks must come before"),
    (an([*U, msg("assistant", "The answer is")]), "messages.1: is a prefill"),
    (an([{"role": "user", "content": []}]), "messages.0.content: must be a string or a non-empty list"),
]


@pytest.mark.parametrize(("body", "says"), ANTHROPIC_REFUSALS, ids=[s for _, s in ANTHROPIC_REFUSALS])
def test_anthropic_request_refusals_name_the_field(body: dict[str, Any], says: str) -> None:
    with pytest.raises(BadRequest) as e:
        to_gpt(body)
    assert says in e.value.message
    assert e.value.message.endswith("cannot be translated to the OpenAI Chat Completions API")
    assert e.value.status == 400 and e.value.param and e.value.message.startswith(e.value.param + ": ")


# -- answers: content, usage, reasons, ids

CACHED = {"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50, "output_tokens": 20}


def claude_message(content: list[dict[str, Any]], stop: str | None = "end_turn", **usage: Any) -> dict[str, Any]:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {**CACHED, "service_tier": "standard", **usage},
    }


def gpt_completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    usage = {
        "prompt_tokens": 1150,
        "completion_tokens": 20,
        "total_tokens": 1170,
        "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    choice = {"index": 0, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-AbC",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [choice],
        "usage": usage,
    }  # noqa: E501


def test_claude_answer_as_a_chat_completion_with_exact_usage() -> None:
    oslo = tool_use("toolu_1", "get_weather", {"city": "Oslo", "days": 2})
    resp = claude_message([THINKING, text("Checking."), oslo], "tool_use", output_tokens_details={"thinking_tokens": 7})
    got = ChatCompletion.model_validate(tr.anthropic_response_to_openai(resp, GPT))
    assert got.id == "chatcmpl-01XYZ" and got.model == GPT and got.service_tier == "default"
    choice = got.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    made = choice.message.tool_calls[0]
    assert isinstance(made, openai.types.chat.ChatCompletionMessageFunctionToolCall) and made.id == "toolu_1"
    assert made.function.name == "get_weather" and orjson.loads(made.function.arguments) == oslo["input"]
    u = got.usage
    assert u is not None and u.prompt_tokens_details is not None and u.completion_tokens_details is not None
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (1150, 20, 1170)
    assert (u.prompt_tokens_details.cached_tokens, u.prompt_tokens_details.cache_write_tokens) == (1000, 50)
    assert u.completion_tokens_details.reasoning_tokens == 7


def test_gpt_answer_as_a_claude_message_with_exact_usage() -> None:
    resp = gpt_completion(
        {"content": "Checking.", "tool_calls": [call("call_9", "get_weather", '{"days":2}')]}, "tool_calls"
    )  # noqa: E501
    got = Message.model_validate(tr.openai_response_to_anthropic(resp, CLAUDE))
    assert got.id == "msg_AbC" and got.model == CLAUDE and got.stop_reason == "tool_use"
    assert [b.type for b in got.content] == ["text", "tool_use"]
    block = got.content[1]
    assert isinstance(block, ToolUseBlock) and (block.id, block.name, block.input) == (
        "call_9",
        "get_weather",
        {"days": 2},
    )  # noqa: E501
    u = got.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        100,
        1000,
        50,
        20,
    )  # noqa: E501
    again = tr.anthropic_response_to_openai(got.model_dump(), GPT)["usage"]  # and back, exactly
    assert again["prompt_tokens"] == 1150 and again["prompt_tokens_details"]["cached_tokens"] == 1000


@pytest.mark.parametrize(
    ("stop", "finish", "back"),
    [
        ("end_turn", "stop", "end_turn"),
        ("stop_sequence", "stop", "end_turn"),  # OpenAI does not say which: see the module docstring
        ("max_tokens", "length", "max_tokens"),
        ("model_context_window_exceeded", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("refusal", "content_filter", "refusal"),
    ],
)
def test_stop_and_finish_reasons(stop: str, finish: str, back: str) -> None:
    used = stop == "tool_use"
    answer = claude_message([tool_use("t", "f") if used else text("x")], stop)
    assert tr.anthropic_response_to_openai(answer, GPT)["choices"][0]["finish_reason"] == finish
    message = {"content": None, "tool_calls": [call("c", "f")]} if used else {"content": "x"}
    assert tr.openai_response_to_anthropic(gpt_completion(message, finish), CLAUDE)["stop_reason"] == back


def test_a_named_tool_choice_stop_is_tool_use_and_a_refusal_is_refusal() -> None:
    forced = gpt_completion({"content": None, "tool_calls": [call("c", "f")]}, "stop")  # what OpenAI says then
    assert tr.openai_response_to_anthropic(forced, CLAUDE)["stop_reason"] == "tool_use"
    refused = tr.openai_response_to_anthropic(gpt_completion({"content": None, "refusal": "I can't."}), CLAUDE)
    assert refused["stop_reason"] == "refusal" and refused["content"] == [text("I can't.")]


def test_answers_that_cannot_be_expressed_are_refused_not_bent() -> None:
    with pytest.raises(UpstreamFailed, match="pause_turn"):
        tr.anthropic_response_to_openai(claude_message([text("x")], "pause_turn"), GPT)
    with pytest.raises(UpstreamFailed, match="server_tool_use"):
        tr.anthropic_response_to_openai(
            claude_message([{**tool_use("s", "web_search"), "type": "server_tool_use"}]), GPT
        )  # noqa: E501
    with pytest.raises(UpstreamFailed, match="not a JSON object"):
        tr.openai_response_to_anthropic(
            gpt_completion({"tool_calls": [call("c", "f", '{"a": ')]}, "tool_calls"), CLAUDE
        )  # noqa: E501


# -- error bodies, as each caller's SDK reads them


def serving(status: int, body: bytes, stream: bool = False) -> httpx2.Client:
    """An HTTP client whose every answer is `body`: a caller SDK reads translated output through it."""
    kind = "text/event-stream" if stream else "application/json"
    answer = httpx2.Response(status, content=body, headers={"content-type": kind})
    return httpx2.Client(transport=httpx2.MockTransport(lambda _: answer))


def openai_client(status: int, body: bytes, stream: bool = False) -> openai.OpenAI:
    http = serving(status, body, stream)
    return openai.OpenAI(base_url="http://caller.test/v1", api_key="k", max_retries=0, http_client=http)


def anthropic_client(status: int, body: bytes, stream: bool = False) -> anthropic.Anthropic:
    http = serving(status, body, stream)
    return anthropic.Anthropic(base_url="http://caller.test", api_key="k", max_retries=0, http_client=http)


def ask_gpt(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])


def ask_claude(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}])


ERRORS = [
    (400, "invalid_request_error", "invalid_request_error", openai.BadRequestError, anthropic.BadRequestError),
    (401, "authentication_error", "invalid_request_error", openai.AuthenticationError, anthropic.AuthenticationError),
    (404, "not_found_error", "invalid_request_error", openai.NotFoundError, anthropic.NotFoundError),
    (429, "rate_limit_error", "requests", openai.RateLimitError, anthropic.RateLimitError),
    (500, "api_error", "server_error", openai.InternalServerError, anthropic.InternalServerError),
    (529, "overloaded_error", "server_error", openai.InternalServerError, anthropic.InternalServerError),
]


@pytest.mark.parametrize(("status", "claude_type", "gpt_type", "gpt_error", "claude_error"), ERRORS)
def test_error_bodies_both_ways(
    status: int, claude_type: str, gpt_type: str, gpt_error: type, claude_error: type
) -> None:  # noqa: E501
    native = {"type": "error", "error": {"type": claude_type, "message": "it went wrong"}, "request_id": "req_1"}
    as_gpt = tr.anthropic_error_to_openai(orjson.dumps(native))
    assert orjson.loads(as_gpt)["error"]["type"] == gpt_type
    with openai_client(status, as_gpt) as gpt, pytest.raises(gpt_error, match="it went wrong") as e:
        ask_gpt(gpt)
    assert e.value.status_code == status
    as_claude = tr.openai_error_to_anthropic(as_gpt)
    assert orjson.loads(as_claude) == {"type": "error", "error": {"type": claude_type, "message": "it went wrong"}}
    with anthropic_client(status, as_claude) as claude, pytest.raises(claude_error, match="it went wrong"):
        ask_claude(claude)


def test_error_bodies_keep_the_param_and_survive_garbage() -> None:
    err = {"message": "Invalid value.", "type": "invalid_request_error", "param": "messages[0].role", "code": "x"}
    assert orjson.loads(tr.openai_error_to_anthropic(orjson.dumps({"error": err})))["error"] == {
        "type": "invalid_request_error",
        "message": "messages[0].role: Invalid value.",
    }
    html = b"<html>502 Bad Gateway</html>"
    assert orjson.loads(tr.anthropic_error_to_openai(html))["error"]["message"] == html.decode()
    assert orjson.loads(tr.openai_error_to_anthropic(b""))["error"]["type"] == "api_error"


# -- streams, fed frame by frame, read back with each caller's SDK


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def claude_stream() -> list[bytes]:
    """Thinking, text, a tool call in pieces, and a tool call without arguments."""
    start = claude_message([], None, output_tokens=1)

    def event(kind: str, i: int, **kw: Any) -> bytes:
        return sse(kind, {"type": kind, "index": i, **kw})

    def delta(i: int, kind: str, **kw: Any) -> bytes:
        return event("content_block_delta", i, delta={"type": kind, **kw})

    end = {"stop_reason": "tool_use", "stop_sequence": None}
    return [
        sse("message_start", {"type": "message_start", "message": start}),
        event("content_block_start", 0, content_block={"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, "thinking_delta", thinking="hmm"),
        delta(0, "signature_delta", signature="sig"),
        event("content_block_stop", 0),
        event("content_block_start", 1, content_block=text("")),
        sse("ping", {"type": "ping"}),
        delta(1, "text_delta", text="Let me"),
        delta(1, "text_delta", text=" check."),
        event("content_block_stop", 1),
        event("content_block_start", 2, content_block=tool_use("toolu_A", "get_weather")),
        delta(2, "input_json_delta", partial_json=""),
        delta(2, "input_json_delta", partial_json='{"city": "Os'),
        delta(2, "input_json_delta", partial_json='lo", "days": 2}'),
        event("content_block_stop", 2),
        event("content_block_start", 3, content_block=tool_use("toolu_B", "now")),
        event("content_block_stop", 3),
        sse("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": 42}}),
        sse("message_stop", {"type": "message_stop"}),
    ]


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
    obj: dict[str, Any] = {"id": "chatcmpl-S1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    obj["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps({**obj, "usage": usage}) + b"\n\n"


def gpt_stream() -> list[bytes]:
    def calls(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
        first = {"id": id, "type": "function"} if id else {}
        named = {"name": name} if name else {}
        return {"tool_calls": [{"index": index, **first, "function": {**named, "arguments": arguments}}]}

    return [
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "Let me"}),
        chunk({"content": " check."}),
        chunk(calls(0, "", "call_A", "get_weather")),
        chunk(calls(0, '{"city": "Os')),
        chunk(calls(0, 'lo", "days": 2}')),
        chunk(calls(1, "{}", "call_B", "now")),
        chunk({}, "tool_calls"),
        chunk(None, usage=gpt_completion({})["usage"]),
        b"data: [DONE]\n\n",
    ]


def translate(stream: tr.AnthropicToOpenAIStream | tr.OpenAIToAnthropicStream, frames: list[bytes]) -> list[bytes]:
    return [out for f in frames for out in stream.frame(f)] + stream.close()


def test_claude_stream_as_openai_chunks() -> None:
    out = translate(tr.AnthropicToOpenAIStream(GPT, include_usage=True), claude_stream())
    assert out[-1] == b"data: [DONE]\n\n"
    chunks = [ChatCompletionChunk.model_validate_json(f.removeprefix(b"data: ")) for f in out[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert {c.id for c in chunks} == {"chatcmpl-01XYZ"} and {c.model for c in chunks} == {GPT}
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-2:] == [None, "tool_calls"]
    usage = chunks[-1].usage
    assert (
        chunks[-1].choices == [] and usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (1150, 42)
    )  # noqa: E501
    assert all(c.usage is None for c in chunks[:-1])
    with openai_client(200, b"".join(out), stream=True) as client:
        with client.chat.completions.stream(model=GPT, messages=[{"role": "user", "content": "x"}], tools=[FN]) as s:  # noqa: E501
            final = s.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check." and final.choices[0].finish_reason == "tool_calls"
    made = [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in message.tool_calls or ()]
    assert made == [("toolu_A", "get_weather", {"city": "Oslo", "days": 2}), ("toolu_B", "now", {})]
    assert final.usage is not None and final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 1000 and final.usage.total_tokens == 1192


def test_claude_stream_without_the_usage_chunk() -> None:
    out = translate(tr.AnthropicToOpenAIStream(GPT, include_usage=False), claude_stream())
    assert out[-1] == b"data: [DONE]\n\n" and not any(b'"usage"' in f for f in out)


def test_gpt_stream_as_anthropic_events() -> None:
    out = translate(tr.OpenAIToAnthropicStream(CLAUDE), gpt_stream())
    events = [EVENTS.validate_json(f.split(b"data: ", 1)[1]) for f in out]
    names = [f.split(b"\n", 1)[0].removeprefix(b"event: ").decode() for f in out]
    assert names == [e.type for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert [e.index for e in events if e.type == "content_block_start"] == [0, 1, 2]
    assert [e.index for e in events if e.type == "content_block_stop"] == [0, 1, 2]
    with anthropic_client(200, b"".join(out), stream=True) as client:
        with client.messages.stream(model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
    assert final.stop_reason == "tool_use" and final.model == CLAUDE and final.id == "msg_S1"
    said, first, second = final.content
    assert isinstance(said, TextBlock) and said.text == "Let me check."
    assert isinstance(first, ToolUseBlock) and isinstance(second, ToolUseBlock)
    assert (first.id, first.input, second.id, second.input) == ("call_A", {"city": "Oslo", "days": 2}, "call_B", {})
    u = final.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        100,
        1000,
        50,
        20,
    )  # noqa: E501


def test_stream_errors_reach_the_caller_sdk() -> None:
    overloaded = sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    out = translate(tr.AnthropicToOpenAIStream(GPT, include_usage=True), [*claude_stream()[:8], overloaded])
    assert b"[DONE]" not in out[-1]
    with openai_client(200, b"".join(out), stream=True) as gpt, pytest.raises(openai.APIError, match="Overloaded"):
        list(gpt.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}], stream=True))
    limited = (
        b'data: {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}\n\n'
    )
    out = translate(tr.OpenAIToAnthropicStream(CLAUDE), [*gpt_stream()[:3], limited])
    assert out[-1].startswith(b"event: error\n")
    with (
        anthropic_client(200, b"".join(out), stream=True) as claude,
        pytest.raises(anthropic.APIError, match="Rate limit"),
    ):  # noqa: E501
        with claude.messages.stream(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
            s.get_final_message()


def test_a_forced_tool_call_streamed_with_finish_stop_is_tool_use() -> None:
    frames = gpt_stream()
    frames[7] = chunk({}, "stop")  # what OpenAI sends when tool_choice named the function
    out = translate(tr.OpenAIToAnthropicStream(CLAUDE), frames)
    assert b'"stop_reason":"tool_use"' in out[-2]


def test_streamed_refusals_and_text_after_a_tool_call() -> None:
    refusal = [chunk({"role": "assistant", "content": None, "refusal": ""}), chunk({"refusal": "I can't."})]
    out = translate(tr.OpenAIToAnthropicStream(CLAUDE), [*refusal, *gpt_stream()[7:]])
    with anthropic_client(200, b"".join(out), stream=True) as client:
        with client.messages.stream(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
    assert final.stop_reason == "refusal" and [b.model_dump(include={"type", "text"}) for b in final.content] == [
        text("I can't.")
    ]  # noqa: E501
    frames = gpt_stream()
    frames.insert(7, chunk({"content": "Done."}))  # text after the tool calls: a block of its own
    out = translate(tr.OpenAIToAnthropicStream(CLAUDE), frames)
    with anthropic_client(200, b"".join(out), stream=True) as client:
        with client.messages.stream(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use", "text"]
    assert [getattr(b, "text", None) for b in final.content] == ["Let me check.", None, None, "Done."]


def test_close_ends_only_complete_answers() -> None:
    def fed(stream: Any, frames: list[bytes]) -> Any:
        for f in frames:
            stream.frame(f)
        return stream

    claude, gpt = claude_stream(), gpt_stream()
    assert fed(tr.AnthropicToOpenAIStream(GPT, True), claude[:10]).close() == []  # broken off: the gateway says so
    s = fed(tr.AnthropicToOpenAIStream(GPT, True), claude[:-1])  # message_stop never came; the answer did
    assert s.close()[-1] == b"data: [DONE]\n\n" and s.close() == []
    assert fed(tr.OpenAIToAnthropicStream(CLAUDE), gpt[:5]).close() == []
    assert fed(tr.OpenAIToAnthropicStream(CLAUDE), gpt[:-1]).close()[-1] == sse(
        "message_stop", {"type": "message_stop"}
    )  # noqa: E501
    unmetered = translate(tr.OpenAIToAnthropicStream(CLAUDE), [*gpt[:8], gpt[-1]])  # asked without include_usage
    assert unmetered[-1].startswith(b"event: error\n") and b"include_usage" in unmetered[-1]


# -- through the provider simulator: the translated body to the other API, the answer translated back


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(default_output_tokens=12)
    with ServerThread(sim.app) as srv:
        yield sim, srv.url


@pytest.fixture
def sim(served: tuple[Simulator, str]) -> Simulator:
    served[0].reset()
    return served[0]


@pytest.fixture
def url(served: tuple[Simulator, str], sim: Simulator) -> str:
    return served[1]


def post(url: str, body: dict[str, Any]) -> httpx2.Response:
    if body["model"].startswith("claude"):
        return httpx2.post(
            url + "/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
        )  # noqa: E501
    return httpx2.post(url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer k"})


def frames_of(r: httpx2.Response) -> list[bytes]:
    return SSEFrames().feed(r.content)


NAMED = {"type": "function", "function": {"name": "get_weather"}}
OPENAI_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("text", oa([msg("system", "Be brief."), msg("user", "Hi [sim:tokens=7]")]), "stop"),
    ("length", oa([msg("user", "Hi [sim:tokens=500]")], max_tokens=9), "length"),
    ("stop", oa([msg("user", "Count [sim:stop]")], stop=["END"]), "stop"),
    ("tool", oa([msg("user", "Weather? [sim:tool]")], tools=[FN]), "tool_calls"),
    ("forced", oa([msg("user", "Weather?")], tools=[FN], tool_choice=NAMED), "tool_calls"),
    ("json", oa([msg("user", "Weather?")], response_format=JSON_SCHEMA), "stop"),
]


@pytest.mark.parametrize(("name", "body", "finish"), OPENAI_CALLS, ids=[c[0] for c in OPENAI_CALLS])
def test_openai_caller_served_by_claude(url: str, name: str, body: dict[str, Any], finish: str) -> None:
    claude_body = to_claude(body, CLAUDE)
    r = post(url, claude_body)
    assert r.status_code == 200, r.text
    native = r.json()
    got = ChatCompletion.model_validate(tr.anthropic_response_to_openai(native, GPT))
    assert got.choices[0].finish_reason == finish and got.model == GPT
    u, nu = got.usage, native["usage"]
    assert u is not None
    assert u.prompt_tokens == nu["input_tokens"] + nu["cache_read_input_tokens"] + nu["cache_creation_input_tokens"]
    assert u.completion_tokens == nu["output_tokens"] and u.total_tokens == u.prompt_tokens + u.completion_tokens
    message = got.choices[0].message
    if finish == "tool_calls":
        made = (message.tool_calls or [])[0]
        assert message.content is None and isinstance(made, openai.types.chat.ChatCompletionMessageFunctionToolCall)
        assert made.id == native["content"][0]["id"]  # the provider's id, unchanged
        assert orjson.loads(made.function.arguments) == native["content"][0]["input"]
    else:
        assert message.content == native["content"][0]["text"]
        if name == "json":
            assert set(orjson.loads(message.content or "")) == {"city", "days"}

    # the same call streamed, read back through the OpenAI SDK's own stream parser
    out = translate(
        tr.AnthropicToOpenAIStream(GPT, include_usage=True), frames_of(post(url, {**claude_body, "stream": True}))
    )  # noqa: E501
    for f in out[:-1]:
        ChatCompletionChunk.model_validate_json(f.removeprefix(b"data: "))
    with openai_client(200, b"".join(out), stream=True) as client:
        tools = body.get("tools") or openai.omit
        with client.chat.completions.stream(model=GPT, messages=body["messages"], tools=tools) as s:
            if finish == "length":  # the SDK's stream helper will not parse a cut answer, and says so
                with pytest.raises(openai.LengthFinishReasonError) as cut:
                    s.get_final_completion()
                final = cut.value.completion
            else:
                final = s.get_final_completion()
    assert final.choices[0].finish_reason == finish
    assert final.usage is not None and final.usage.prompt_tokens == u.prompt_tokens
    assert final.usage.completion_tokens == u.completion_tokens
    if finish != "tool_calls":
        assert final.choices[0].message.content == message.content


ANTHROPIC_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("text", an([msg("user", "Hi [sim:tokens=7]")], system="Be brief."), "end_turn"),
    ("length", an([msg("user", "Hi [sim:tokens=500]")], max_tokens=9), "max_tokens"),
    ("stop", an([msg("user", "Count [sim:stop]")], stop_sequences=["END"]), "end_turn"),
    ("tool", an([msg("user", "Weather? [sim:tool]")], tools=[TOOL]), "tool_use"),
    ("any", an([msg("user", "Weather?")], tools=[TOOL], tool_choice={"type": "any"}), "tool_use"),
    ("json", an([msg("user", "Weather?")], output_config=JSON_FORMAT), "end_turn"),
]


@pytest.mark.parametrize(("name", "body", "stop"), ANTHROPIC_CALLS, ids=[c[0] for c in ANTHROPIC_CALLS])
@pytest.mark.parametrize("kind", ["openai", "openai-compatible"])
def test_anthropic_caller_served_by_gpt(url: str, name: str, body: dict[str, Any], stop: str, kind: str) -> None:
    gpt_body = to_gpt(body, kind)
    r = post(url, gpt_body)
    assert r.status_code == 200, r.text
    native = r.json()
    got = Message.model_validate(tr.openai_response_to_anthropic(native, CLAUDE))
    assert got.stop_reason == stop and got.model == CLAUDE
    nu = native["usage"]
    assert got.usage.input_tokens + (got.usage.cache_read_input_tokens or 0) == nu["prompt_tokens"]
    assert got.usage.output_tokens == nu["completion_tokens"]
    first = got.content[0]
    if stop == "tool_use":
        made = native["choices"][0]["message"]["tool_calls"][0]
        assert isinstance(first, ToolUseBlock)
        assert first.id == made["id"] and first.input == orjson.loads(made["function"]["arguments"])
    else:
        assert isinstance(first, TextBlock) and first.text == native["choices"][0]["message"]["content"]
        if name == "json":
            assert set(orjson.loads(first.text)) == {"city", "days"}

    # the same call streamed (the gateway asks for stream usage), read back through the Anthropic SDK
    out = translate(
        tr.OpenAIToAnthropicStream(CLAUDE),
        frames_of(post(url, {**gpt_body, "stream": True, "stream_options": {"include_usage": True}})),
    )  # noqa: E501
    for f in out:
        EVENTS.validate_json(f.split(b"data: ", 1)[1])
    with anthropic_client(200, b"".join(out), stream=True) as client:
        with client.messages.stream(model=CLAUDE, max_tokens=100, messages=body["messages"]) as s:
            final = s.get_final_message()
    assert final.stop_reason == stop
    assert (final.usage.input_tokens, final.usage.output_tokens) == (got.usage.input_tokens, got.usage.output_tokens)
    assert [b.type for b in final.content] == [b.type for b in got.content]
    if stop != "tool_use":
        assert [getattr(b, "text", None) for b in final.content] == [getattr(b, "text", None) for b in got.content]


def test_tool_round_trip_through_claude_keeps_the_provider_ids(url: str, sim: Simulator) -> None:
    messages: list[dict[str, Any]] = [msg("user", "Weather in Oslo? [sim:tool]")]
    first = ChatCompletion.model_validate(
        tr.anthropic_response_to_openai(post(url, to_claude(oa(messages, tools=[FN]), CLAUDE)).json(), GPT)
    )  # noqa: E501
    made = (first.choices[0].message.tool_calls or [])[0]
    assert made.id.startswith("toolu_")
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),  # the assistant turn, as the caller keeps it
        {"role": "tool", "tool_call_id": made.id, "content": "4C and rain"},
        msg("user", "Thanks [sim:tokens=3]"),
    ]
    r = post(url, to_claude(oa(messages, tools=[FN]), CLAUDE))
    assert r.status_code == 200, r.text
    sent = sim.requests[-1]["body"]["messages"]
    assert sent[1]["content"][0]["id"] == made.id == sent[2]["content"][0]["tool_use_id"]
    answer = ChatCompletion.model_validate(tr.anthropic_response_to_openai(r.json(), GPT))
    assert answer.choices[0].finish_reason == "stop" and len((answer.choices[0].message.content or "").split()) == 3


def test_tool_round_trip_through_gpt_keeps_the_provider_ids(url: str, sim: Simulator) -> None:
    messages: list[Any] = [msg("user", "Weather in Oslo? [sim:tool]")]
    first = Message.model_validate(
        tr.openai_response_to_anthropic(post(url, to_gpt(an(messages, tools=[TOOL]))).json(), CLAUDE)
    )  # noqa: E501
    block = first.content[0]
    assert isinstance(block, ToolUseBlock) and block.id.startswith("call_")
    turn = first.model_dump(
        include={"role", "content"}, exclude_none=True
    )  # the assistant turn, as the caller keeps it
    messages += [turn, msg("user", tool_result(block.id, "4C"), text("Thanks [sim:tokens=3]"))]
    r = post(url, to_gpt(an(messages, tools=[TOOL])))
    assert r.status_code == 200, r.text
    sent = sim.requests[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == block.id == sent[2]["tool_call_id"]
    assert sent[3] == msg("user", text("Thanks [sim:tokens=3]"))
    answer = Message.model_validate(tr.openai_response_to_anthropic(r.json(), CLAUDE))
    assert answer.stop_reason == "end_turn" and answer.usage.output_tokens == 3


def test_cache_reads_map_to_cached_tokens_and_back(url: str) -> None:
    long = "All work and no play makes Jack a dull boy. " * 900  # past every model's cacheable minimum
    # an OpenAI caller served by Claude, with the breakpoint the gateway's caching lever would place
    body = to_claude(oa([msg("system", long), msg("user", "Hi")]), CLAUDE)
    body["system"] = [{**text(long), "cache_control": {"type": "ephemeral"}}]
    usages = [
        ChatCompletion.model_validate(tr.anthropic_response_to_openai(post(url, body).json(), GPT)).usage for _ in "ab"
    ]  # noqa: E501
    assert usages[0] and usages[1] and usages[0].prompt_tokens_details and usages[1].prompt_tokens_details
    written, read = usages[0].prompt_tokens_details, usages[1].prompt_tokens_details
    assert written.cache_write_tokens and written.cached_tokens == 0
    assert read.cached_tokens == written.cache_write_tokens and read.cache_write_tokens == 0
    assert usages[0].prompt_tokens == usages[1].prompt_tokens > written.cache_write_tokens
    # an Anthropic caller served by GPT, which caches by itself: its cached tokens come back as cache reads
    natives = [post(url, to_gpt(an([msg("user", "Hi")], system=long))).json() for _ in "ab"]
    claude = [Message.model_validate(tr.openai_response_to_anthropic(n, CLAUDE)).usage for n in natives]
    cached = natives[1]["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0 and claude[1].cache_read_input_tokens == cached
    assert claude[1].input_tokens == natives[1]["usage"]["prompt_tokens"] - cached
    assert claude[0].input_tokens == natives[0]["usage"]["prompt_tokens"]


def faulted_claude(url: str) -> httpx2.Response:
    return post(url, to_claude(oa(U), CLAUDE))


def faulted_gpt(url: str) -> httpx2.Response:
    return post(url, to_gpt(an(U)))


@pytest.mark.parametrize(
    ("model", "call_provider", "to_caller", "client", "ask", "error"),
    [
        (CLAUDE, faulted_claude, tr.anthropic_error_to_openai, openai_client, ask_gpt, openai.RateLimitError),
        ("gpt-4o", faulted_gpt, tr.openai_error_to_anthropic, anthropic_client, ask_claude, anthropic.RateLimitError),
    ],
)
def test_provider_faults_reach_the_caller_in_its_own_words(
    url: str,
    sim: Simulator,
    model: str,
    call_provider: Callable[[str], httpx2.Response],
    to_caller: Any,
    client: Any,
    ask: Any,
    error: type,  # noqa: E501
) -> None:
    sim.inject("429", model=model, retry_after=0)
    r = call_provider(url)
    assert r.status_code == 429
    with client(r.status_code, to_caller(r.content)) as c, pytest.raises(error, match="(?i)rate limit"):
        ask(c)


def test_exports_are_complete() -> None:
    public = {name for name in dir(tr) if not name.startswith("_") and callable(getattr(tr, name))}
    assert set(tr.__all__) == public
