"""The simulator's prompt caches, driven by the official SDKs over real HTTP on an injected clock.

Texts of the form "abcd" * n are exactly n tokens for the sim's tokenizer, so every expected
number below is arithmetic: a message costs 3 tokens of overhead plus its content.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from paymaster.costmodel.tokenizer import encoding
from paymaster.prompt_cache import (
    MAX_BREAKPOINTS,
    OPENAI_MIN_TOKENS,
    OPENAI_STEP,
    min_cacheable_tokens,
)
from paymaster.server import ServerThread
from paymaster.sim import Simulator
from paymaster.sim.anthropic import input_tokens, measure
from paymaster.sim.cache import Automatic
from paymaster.sim.tokens import count_json, count_json_items, count_tokens
from tests.attachments import png_b64


def o200k(text: str) -> int:
    """OpenAI bills a prompt's text by its public tokenizer, and so does the simulator."""
    return len(encoding("o200k_base").encode_ordinary(text))


SONNET = "claude-sonnet-4-6"  # caches prefixes of 2,048+ tokens
HAIKU = "claude-haiku-4-5"  # 4,096+
GPT = "gpt-4.1-mini"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, Clock, str]]:
    clock = Clock()
    sim = Simulator(clock=clock)
    with ServerThread(sim.app) as srv:
        yield sim, clock, srv.url


@pytest.fixture
def sim(served: tuple[Simulator, Clock, str]) -> Simulator:
    served[0].reset()
    return served[0]


@pytest.fixture
def clock(served: tuple[Simulator, Clock, str], sim: Simulator) -> Clock:
    return served[1]


@pytest.fixture
def claude(served: tuple[Simulator, Clock, str], sim: Simulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served[2], api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def gpt(served: tuple[Simulator, Clock, str], sim: Simulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[2] + "/v1", api_key="sk-test", max_retries=0)


def text(n: int) -> str:
    """Exactly n tokens."""
    return "abcd" * n


def cached(n: int, ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {"type": "text", "text": text(n), "cache_control": control}


def usage(message: Any) -> tuple[int, int, int, int, int]:
    """(read, written, written 5m, written 1h, input)."""
    u = message.usage
    return (
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.cache_creation.ephemeral_5m_input_tokens,
        u.cache_creation.ephemeral_1h_input_tokens,
        u.input_tokens,
    )


def ask(claude: anthropic.Anthropic, model: str = SONNET, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", [{"role": "user", "content": "hi"}])
    return claude.messages.create(model=model, max_tokens=5, **kwargs)


# -- the shared table


def test_the_shared_table() -> None:
    assert MAX_BREAKPOINTS == 4 and (OPENAI_MIN_TOKENS, OPENAI_STEP) == (1024, 128)
    assert min_cacheable_tokens("claude-haiku-4-5-20251001") == 4096
    assert min_cacheable_tokens("claude-opus-4-6") == min_cacheable_tokens("claude-opus-4-5") == 4096
    assert min_cacheable_tokens("claude-opus-4-7") == 2048 and min_cacheable_tokens("claude-opus-4-8") == 1024
    assert min_cacheable_tokens("claude-opus-4-20250514") == min_cacheable_tokens("claude-opus-4-1-20250805") == 1024
    assert min_cacheable_tokens("claude-sonnet-4-6") == 1024 == min_cacheable_tokens("claude-sonnet-4-5")
    assert min_cacheable_tokens("claude-opus-5") == 512
    assert min_cacheable_tokens("claude-3-haiku-20240307") == min_cacheable_tokens("claude-3-5-haiku-latest") == 2048
    assert min_cacheable_tokens("us.anthropic.claude-haiku-4-5-20251001-v1:0") == 4096
    assert min_cacheable_tokens("claude-sim") == 1024


def test_json_items_apportion_the_array_tokens_exactly() -> None:
    rng = random.Random(7)
    pieces = ["word ", "é", "日本", "\u2028", "\xa0", "x y z", "1", "\n", "{}"]
    for _ in range(2000):
        items = [
            {f"k{j}": "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20))) for j in range(rng.randint(0, 3))}
            for _ in range(rng.randint(1, 5))
        ]
        parts = count_json_items(items)
        assert sum(parts) == count_json(items) and min(parts) >= 0
        for i in range(len(items)):  # a prefix of the array costs what a prefix of its text does
            prefix = orjson.dumps(items[: i + 1]).decode()
            assert sum(parts[: i + 1]) == count_tokens(prefix if i == len(items) - 1 else prefix[:-1])


# -- Anthropic: explicit breakpoints


def test_first_call_writes_second_reads(claude: anthropic.Anthropic) -> None:
    system = [cached(3000)]
    assert usage(ask(claude, system=system)) == (0, 3000, 3000, 0, 4)
    assert usage(ask(claude, system=system)) == (3000, 0, 0, 0, 4)


def test_a_longer_conversation_reads_the_prefix_and_pays_for_the_rest(claude: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are terse."}, cached(3000)]
    ask(claude, system=system)
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Tell me more about it."},
    ]
    head = count_tokens("You are terse.") + 3000
    rest = 3 * 3 + count_tokens("hi") + count_tokens("Hello.") + count_tokens("Tell me more about it.")
    assert usage(ask(claude, system=system, messages=turns)) == (head, 0, 0, 0, rest)
    total = claude.messages.count_tokens(model=SONNET, system=system, messages=turns)  # type: ignore[arg-type]
    assert total.input_tokens == head + rest


def test_a_prefix_below_the_model_minimum_is_not_cached(claude: anthropic.Anthropic) -> None:
    system = [cached(3000)]  # above Sonnet 4.6's 2,048, below Haiku 4.5's 4,096
    for _ in range(2):
        assert usage(ask(claude, HAIKU, system=system)) == (0, 0, 0, 0, 3004)
    assert usage(ask(claude, SONNET, system=system))[:2] == (0, 3000)
    assert usage(ask(claude, HAIKU, system=[cached(4096)]))[:2] == (0, 4096)  # the minimum itself caches


def test_models_do_not_share_entries(claude: anthropic.Anthropic) -> None:
    system = [cached(5000)]
    assert usage(ask(claude, SONNET, system=system))[:2] == (0, 5000)
    assert usage(ask(claude, HAIKU, system=system))[:2] == (0, 5000)
    assert usage(ask(claude, HAIKU, system=system))[:2] == (5000, 0)


def test_one_hour_writes_are_reported_as_such(claude: anthropic.Anthropic) -> None:
    assert usage(ask(claude, system=[cached(3000, "1h")])) == (0, 3000, 0, 3000, 4)


def test_mixed_ttls_bill_each_stretch_at_its_own_rate(claude: anthropic.Anthropic) -> None:
    """One-hour writes: up to the last 1h breakpoint; five-minute writes: from there to the last one."""
    tools = [
        {"name": "lookup", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    tool_tokens = count_json([{"name": "lookup", "input_schema": {"type": "object"}}])
    system = [cached(2500, "1h")]
    messages = [{"role": "user", "content": [cached(500), {"type": "text", "text": "and?"}]}]
    first = ask(claude, tools=tools, system=system, messages=messages)
    assert usage(first) == (0, tool_tokens + 2500 + 503, 503, tool_tokens + 2500, count_tokens("and?"))
    messages[0]["content"][0] = cached(600)  # the system prompt is read, the new turn written
    assert usage(ask(claude, tools=tools, system=system, messages=messages)) == (
        tool_tokens + 2500,
        603,
        603,
        0,
        count_tokens("and?"),
    )


def test_entries_expire_after_their_ttl(claude: anthropic.Anthropic, clock: Clock) -> None:
    short, long = [cached(3000)], [cached(3100, "1h")]
    ask(claude, system=short)
    ask(claude, system=long)
    clock.t += 301
    assert usage(ask(claude, system=short))[:2] == (0, 3000)  # gone: written again
    assert usage(ask(claude, system=long))[:2] == (3100, 0)
    clock.t += 3601
    assert usage(ask(claude, system=long))[:2] == (0, 3100)


def test_a_hit_refreshes_the_ttl(claude: anthropic.Anthropic, clock: Clock) -> None:
    system = [cached(3000)]
    ask(claude, system=system)
    for _ in range(5):  # 20 minutes of hits, each within 5 minutes of the last
        clock.t += 240
        assert usage(ask(claude, system=system))[:2] == (3000, 0)
    clock.t += 301
    assert usage(ask(claude, system=system))[:2] == (0, 3000)


def test_an_earlier_entry_is_found_by_looking_back_up_to_20_blocks(claude: anthropic.Anthropic) -> None:
    """The breakpoint's own position counts as the first of the 20 looked at."""

    def turn(blocks: int) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": text(3000)}]
        content += [{"type": "text", "text": f"note {i}"} for i in range(blocks - 1)]
        content[-1] = {**content[-1], "cache_control": {"type": "ephemeral"}}
        return [{"role": "user", "content": content}]

    ask(claude, messages=turn(1))  # writes at block 0
    assert usage(ask(claude, messages=turn(20)))[:2] == (3003, 19 * 2)  # looks at blocks 19…0: a hit at 0
    assert usage(ask(claude, messages=turn(40)))[:2] == (0, 3003 + 39 * 2)  # 39…20 hold nothing, 19 is too far
    assert usage(ask(claude, messages=turn(21)))[:2] == (3003 + 19 * 2, 2)  # 20…1: the entry at 19


def test_automatic_caching_moves_the_breakpoint_forward(claude: anthropic.Anthropic) -> None:
    conversation: list[dict[str, Any]] = [{"role": "user", "content": text(3000)}]
    first = ask(claude, messages=conversation, cache_control={"type": "ephemeral"})
    assert usage(first) == (0, 3003, 3003, 0, 0)
    conversation += [{"role": "assistant", "content": "Fine."}, {"role": "user", "content": "Go on."}]
    second = ask(claude, messages=conversation, cache_control={"type": "ephemeral"})
    grown = 3 + count_tokens("Fine.") + 3 + count_tokens("Go on.")
    assert usage(second) == (3003, grown, grown, 0, 0)


def test_automatic_caching_skips_blocks_it_cannot_target(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": text(3000)}, {"type": "text", "text": ""}]}]
    assert usage(ask(claude, messages=messages, cache_control={"type": "ephemeral", "ttl": "1h"})) == (
        0,
        3003,
        0,
        3003,
        0,
    )


def test_automatic_caching_on_an_explicit_breakpoint(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": [cached(3000)]}]
    assert usage(ask(claude, messages=messages, cache_control={"type": "ephemeral"}))[:2] == (0, 3003)  # no-op
    with pytest.raises(anthropic.BadRequestError, match="Top-level cache_control has ttl='1h' but the target"):
        ask(claude, messages=messages, cache_control={"type": "ephemeral", "ttl": "1h"})


@pytest.mark.parametrize(
    ("system", "top", "needle"),
    [
        ([cached(10) for _ in range(5)], None, "A maximum of 4 blocks with cache_control may be provided. Found 5."),
        ([cached(10) for _ in range(4)], {"type": "ephemeral"}, "A maximum of 4 blocks with cache_control"),
        (
            [cached(10), cached(10, "1h")],
            None,
            "system.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control "
            "block. Note that blocks are processed in the following order: `tools`, `system`, `messages`.",
        ),
        ([cached(10)], {"type": "ephemeral", "ttl": "1h"}, "a ttl='1h' cache_control block must not come after"),
        ([{**cached(10), "cache_control": {"type": "ephemeral", "ttl": "2h"}}], None, "ttl: Input should be"),
        ([{**cached(10), "cache_control": {"type": "persistent"}}], None, "type: Input should be 'ephemeral'"),
        ([{**cached(10), "cache_control": {"type": "ephemeral", "ttl": []}}], None, "ttl: Input should be"),
        ([{**cached(10), "cache_control": "yes"}], None, "system.0.cache_control: Input should be a valid dictionary"),
        ([{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}], None, "empty text blocks"),
    ],
)
def test_invalid_breakpoints_are_refused(
    claude: anthropic.Anthropic, system: list[dict[str, Any]], top: Any, needle: str
) -> None:
    extra = {} if top is None else {"cache_control": top}
    with pytest.raises(anthropic.BadRequestError, match=re.escape(needle)):
        ask(claude, system=system, **extra)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.count_tokens(model=SONNET, system=system, messages=[{"role": "user", "content": "hi"}], **extra)


def test_thinking_blocks_take_no_breakpoint(claude: anthropic.Anthropic) -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "s", "cache_control": {"type": "ephemeral"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "Yes."}]},
        {"role": "user", "content": "ok"},
    ]
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.1\.content\.0\.thinking\.cache_control"):
        ask(claude, messages=messages)


def test_streams_report_the_same_numbers(claude: anthropic.Anthropic) -> None:
    request: Any = {
        "model": SONNET,
        "max_tokens": 5,
        "system": [cached(3000)],
        "messages": [{"role": "user", "content": "hi"}],
    }
    for expected in [(0, 3000, 3000, 0, 4), (3000, 0, 0, 0, 4)]:
        events = list(claude.messages.create(**request, stream=True))
        start = next(e for e in events if e.type == "message_start")
        delta = next(e for e in events if e.type == "message_delta")
        assert usage(start.message) == expected
        u = delta.usage
        read, written, *_, rest = expected
        assert (u.cache_read_input_tokens, u.cache_creation_input_tokens, u.input_tokens) == (read, written, rest)
    with claude.messages.stream(**request) as s:
        assert usage(s.get_final_message()) == (3000, 0, 0, 0, 4)


def test_count_tokens_matches_what_a_call_reports(claude: anthropic.Anthropic) -> None:
    tool = {"name": "lookup", "description": "Look it up " * 50, "input_schema": {"type": "object"}}
    bodies: list[dict[str, Any]] = [
        {"tools": [tool, {**tool, "name": "find", "cache_control": {"type": "ephemeral"}}], "system": "Be brief."},
        {
            "system": [cached(2500)],
            "messages": [{"role": "user", "content": [cached(100), {"type": "text", "text": "why"}]}],
        },
        {"messages": [{"role": "user", "content": text(2100)}], "cache_control": {"type": "ephemeral"}},
        {"system": "Explain cache_control to me.", "messages": [{"role": "user", "content": '"cache_control"'}]},
    ]
    for body in bodies:
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        for _ in range(2):
            read, written, _, _, rest = usage(ask(claude, **body))
            counted = claude.messages.count_tokens(model=SONNET, **body).input_tokens
            assert read + written + rest == counted


def test_cached_tokens_keep_to_the_byte_bound(claude: anthropic.Anthropic) -> None:
    """Images cost their documented tokens, cached or not (100 x 100 px: 4 x 4 visual tokens)."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_b64(100, 100)}}
    content = [{"type": "text", "text": text(3000)}, *[image] * 19, {**image, "cache_control": {"type": "ephemeral"}}]
    read, written, _, _, rest = usage(ask(claude, messages=[{"role": "user", "content": content}]))
    assert read == rest == 0 and written == 3003 + 20 * 16
    assert usage(ask(claude, messages=[{"role": "user", "content": content}]))[:2] == (written, 0)


def test_both_ways_of_counting_agree() -> None:
    """Requests that mention cache_control are laid out block by block; the total is the same."""
    rng = random.Random(11)
    words = ["hello", "cache_control", "日本", "a b c", "x" * 40, ""]

    def blocks() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["text", "tool_use", "tool_result", "image", "search_result"])
            if kind == "text":
                out.append({"type": "text", "text": " ".join(rng.choices(words, k=rng.randint(1, 9)))})
            elif kind == "tool_use":
                out.append({"type": "tool_use", "id": "t", "name": "f", "input": {"q": rng.choice(words)}})
            elif kind == "tool_result":
                out.append({"type": "tool_result", "tool_use_id": "t", "content": rng.choice(words)})
            elif kind == "image":
                out.append(
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x" * 9000}}
                )
            else:
                out.append({"type": "search_result", "source": "s", "title": rng.choice(words), "content": []})
        return out

    for _ in range(500):
        body: dict[str, Any] = {"model": SONNET, "max_tokens": 5, "messages": []}
        for i in range(rng.randint(1, 4)):
            content: Any = rng.choice([" ".join(rng.choices(words, k=4)), blocks()])
            body["messages"].append({"role": ("user", "assistant")[i % 2], "content": content})
        if rng.random() < 0.5:
            body["system"] = rng.choice(["Be brief.", blocks()])
        if rng.random() < 0.5:
            body["tools"] = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            body["output_config"] = {"format": {"type": "json_schema", "schema": {"type": "object"}}}
        raw = orjson.dumps(body) + b' "cache_control"'
        assert measure(body, raw)[0] == input_tokens(body, len(raw))


def test_caching_changes_no_answer(claude: anthropic.Anthropic) -> None:
    plain = ask(
        claude, system=[{"type": "text", "text": text(3000)}], messages=[{"role": "user", "content": "[sim:tokens=9]"}]
    )
    marked = ask(claude, system=[cached(3000)], messages=[{"role": "user", "content": "[sim:tokens=9]"}])
    assert marked.content[0].text == plain.content[0].text


def test_failed_calls_write_nothing_and_reset_clears(claude: anthropic.Anthropic, sim: Simulator) -> None:
    system = [cached(3000)]
    sim.inject("529", model=SONNET)
    with pytest.raises(anthropic.APIStatusError):
        ask(claude, system=system)
    assert usage(ask(claude, system=system))[:2] == (0, 3000)
    assert usage(ask(claude, system=system))[:2] == (3000, 0)
    sim.reset()
    assert usage(ask(claude, system=system))[:2] == (0, 3000)


# -- OpenAI: automatic prefix caching


def chat(gpt: openai.OpenAI, system: int, question: str = "hi", **kwargs: Any) -> tuple[int, int]:
    """(prompt_tokens, cached_tokens) of a call whose system message is `system` tokens."""
    messages = [{"role": "system", "content": text(system)}, {"role": "user", "content": question}]
    u = gpt.chat.completions.create(model=kwargs.pop("model", GPT), messages=messages, **kwargs).usage  # type: ignore[arg-type]
    assert u is not None and u.prompt_tokens_details is not None
    return u.prompt_tokens, u.prompt_tokens_details.cached_tokens or 0


def test_short_prompts_are_never_cached(gpt: openai.OpenAI) -> None:
    for _ in range(3):
        assert chat(gpt, 1000) == (1000 + 3 + 3 + 1 + 3, 0)


@pytest.mark.parametrize(
    ("shared", "expected"),  # shared = the system message with its overhead: the common prefix
    [(1023, 0), (1024, 1024), (1151, 1024), (1152, 1152), (1153, 1152), (5000, 4992)],
)
def test_hits_come_in_128_token_steps_past_1024(gpt: openai.OpenAI, shared: int, expected: int) -> None:
    assert chat(gpt, shared - 3, "first question")[1] == 0
    prompt, hit = chat(gpt, shared - 3, "second question")
    assert hit == expected and prompt == shared + 3 + o200k("second question") + 3


def test_an_identical_prompt_is_cached_up_to_its_last_whole_step(gpt: openai.OpenAI) -> None:
    chat(gpt, 1500)
    prompt, hit = chat(gpt, 1500)
    assert prompt == 1510 and hit == 1408


def test_prompt_cache_keys_keep_caches_apart(gpt: openai.OpenAI) -> None:
    chat(gpt, 2000, prompt_cache_key="agent-a")
    assert chat(gpt, 2000, "other", prompt_cache_key="agent-b")[1] == 0
    assert chat(gpt, 2000, "other")[1] == 0  # no key is a cache of its own
    assert chat(gpt, 2000, "again", prompt_cache_key="agent-a")[1] == 1920
    assert chat(gpt, 2000, "again", model="gpt-4.1")[1] == 0  # nor do models share


def test_openai_entries_expire_after_inactivity(gpt: openai.OpenAI, clock: Clock) -> None:
    chat(gpt, 2000)
    clock.t += 599
    assert chat(gpt, 2000, "two")[1] == 1920  # and refreshed
    clock.t += 599
    assert chat(gpt, 2000, "three")[1] == 1920
    clock.t += 601
    assert chat(gpt, 2000, "four")[1] == 0


def test_extended_retention_lasts_a_day(gpt: openai.OpenAI, clock: Clock) -> None:
    chat(gpt, 2000, prompt_cache_retention="24h")
    clock.t += 3600 * 23
    assert chat(gpt, 2000, "later")[1] == 1920
    clock.t += 3600 * 24 + 1
    assert chat(gpt, 2000, "much later")[1] == 0


def test_tools_come_first(gpt: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    chat(gpt, 2000, tools=[tool])
    assert chat(gpt, 2000, "b", tools=[tool])[1] > 0
    assert chat(gpt, 2000, "c", tools=[{**tool, "function": {**tool["function"], "name": "g"}}])[1] == 0


def test_openai_stream_usage_carries_cached_tokens(gpt: openai.OpenAI) -> None:
    chat(gpt, 2000)
    messages = [{"role": "system", "content": text(2000)}, {"role": "user", "content": "streamed"}]
    chunks = list(
        gpt.chat.completions.create(
            model=GPT,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    u = chunks[-1].usage
    assert u is not None and u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 1920


def test_bad_cache_parameters_are_refused(gpt: openai.OpenAI) -> None:
    hi: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="'in_memory' and '24h'") as e:
        gpt.chat.completions.create(model=GPT, messages=hi, prompt_cache_retention="1w")  # type: ignore[arg-type]
    assert e.value.param == "prompt_cache_retention"
    with pytest.raises(openai.BadRequestError) as e:
        gpt.chat.completions.create(model=GPT, messages=hi, extra_body={"prompt_cache_key": 7})
    assert e.value.param == "prompt_cache_key"


def test_stored_entries_are_swept_when_expired(sim: Simulator, clock: Clock) -> None:
    for i in range(sim.cache.PURGE_AT - 1):
        sim.cache.settle(Automatic([2000], [i.to_bytes(16, "big")], 600))
    assert len(sim.cache) == sim.cache.PURGE_AT - 1
    clock.t += 601
    sim.cache.settle(Automatic([2000], [b"last".ljust(16)], 600))
    assert len(sim.cache) == 1
