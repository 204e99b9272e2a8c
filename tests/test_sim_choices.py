"""The simulator answers `n > 1` and `logprobs` as Chat Completions does (issue 18, item 7), through
the official SDK, directly and through the gateway."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from paymaster.sim import Simulator
from tests.conftest import PROVIDER_KEY

USER: Any = [{"role": "user", "content": "hi [sim:tokens=6]"}]


@pytest.fixture
def client(sim: Simulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.url + "/v1", api_key=PROVIDER_KEY, max_retries=0)  # type: ignore[attr-defined]


def test_n_choices_each_answered_and_counted(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="gpt-4o", messages=USER, n=3)
    assert [c.index for c in done.choices] == [0, 1, 2]
    texts = [c.message.content or "" for c in done.choices]
    assert len(set(texts)) == 3 and all(len(t.split()) == 6 for t in texts)
    assert done.usage and done.usage.completion_tokens == 18


def test_n_choices_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=USER, n=2, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = {
        i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
        for i in (0, 1)
    }
    assert texts[0] != texts[1] and all(len(t.split()) == 6 for t in texts.values())
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop", "stop"] and chunks[-1].usage and chunks[-1].usage.completion_tokens == 12


def test_logprobs(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="gpt-4o", messages=USER, logprobs=True, top_logprobs=3)
    choice = done.choices[0]
    assert choice.logprobs and choice.logprobs.content
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content and len(entries) == 6
    for e in entries:
        assert e.logprob < 0 and bytes(e.bytes or []) == e.token.encode()
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token
        assert all(alt.logprob <= e.logprob for alt in e.top_logprobs)
    plain = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert plain.choices[0].logprobs is None


def test_logprobs_stream(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, logprobs=True, stream=True))
    tokens = [
        e.token for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "".join(tokens) == text and len(tokens) == 6


def test_top_logprobs_needs_logprobs(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=USER, top_logprobs=2)
    assert e.value.param == "top_logprobs"


def test_n_choices_through_the_gateway(gateway: Any) -> None:
    gw = gateway()
    done = gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=USER, n=2, logprobs=True, max_tokens=50)
    assert len(done.choices) == 2 and all(c.logprobs for c in done.choices)
    assert gw.ledger("olivia")[-1]["output_tokens"] == 12


def test_whole_number_floats_and_nulls_are_accepted(sim: Simulator) -> None:
    base = {"messages": USER, "stream": None, "max_tokens": 4.0, "n": 2.0}
    r = httpx2.post(
        sim.url + "/v1/chat/completions",
        json={"model": "gpt-4o", **base},
        headers={"authorization": f"Bearer {PROVIDER_KEY}"},
    )  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 2 and r.json()["usage"]["completion_tokens"] == 8
    headers = {"x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01"}
    r = httpx2.post(
        sim.url + "/v1/messages", json={"model": "claude-x", "max_tokens": 4.0, "messages": USER}, headers=headers
    )  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["output_tokens"] == 4
