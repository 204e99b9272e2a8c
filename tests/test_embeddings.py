"""POST /v1/embeddings through the gateway with the official SDK: priced and capped like every call, batch
inputs bounded, `dimensions` and `encoding_format` passed through, bad input a 400 in OpenAI's shape."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest

from paymaster.call import Usage
from paymaster.costmodel import estimate

EMBEDDER = {
    "model": "text-embedding-3-small",
    "models": ["text-embedding-3-small", "text-embedding-3-large", "claude-haiku-4-5"],
    "daily_usd": 5,
    "monthly_usd": 50,
    "max_tokens": 2048,
}


def sent(gw: Any) -> list[dict[str, Any]]:
    sim_url = gw.config.providers["openai"].base_url.removesuffix("/v1")
    return [r for r in httpx2.get(sim_url + "/_sim/requests").json() if r["path"] == "/v1/embeddings"]


def test_embeddings_are_priced_from_usage(gateway: Any) -> None:
    gw = gateway(agents={"olivia": EMBEDDER})
    client = gw.openai()
    texts = ["the quick brown fox", "jumps over the lazy dog", "again"]
    res = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=256)
    assert [d.index for d in res.data] == [0, 1, 2]
    assert all(len(d.embedding) == 256 for d in res.data)
    assert sent(gw)[-1]["body"]["dimensions"] == 256
    [row] = gw.ledger("olivia")
    assert (row["api"], row["status"], row["output_tokens"]) == ("embeddings", "ok", 0)
    assert row["input_tokens"] == res.usage.prompt_tokens > 0
    rates = gw.gw.rates_of("text-embedding-3-small")
    assert Decimal(row["cost_usd"]) == rates.cost(Usage(res.usage.prompt_tokens, 0))
    assert row["cost_nanos"] <= row["worst_nanos"]
    b64 = client.embeddings.create(model="text-embedding-3-large", input="hi", encoding_format="base64")
    assert sent(gw)[-1]["body"]["encoding_format"] == "base64"
    assert len(base64.b64decode(b64.data[0].embedding)) == 3072 * 4  # float32, as the caller asked


def test_a_batch_is_bounded_per_input_and_refused_over_the_cap(gateway: Any) -> None:
    gw = gateway(agents={"olivia": {**EMBEDDER, "daily_usd": 0.001}})
    client = gw.openai()
    big = ["word " * 5000] * 30  # 30 inputs of 25,000 bytes: each billed at most 8,192 tokens
    rates = gw.gw.rates_of("text-embedding-3-small")
    bound = estimate({"model": "text-embedding-3-small", "input": big}, "embeddings", 0, rates, None)
    assert bound.tokens == 30 * 8192  # the per-input limit, not the bytes
    everything = estimate({"model": "text-embedding-3-small", "input": big * 2}, "embeddings", 0, rates, None)
    assert everything.tokens == 300_000  # the per-request limit
    with pytest.raises(openai.APIStatusError) as e:  # ~$0.005 worst case against a $0.001 cap
        client.embeddings.create(model="text-embedding-3-small", input=big)
    assert e.value.status_code == 402
    assert sent(gw) == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": ["ok", 3.5]}, "input"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "input"),
        ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "claude-haiku-4-5", "input": "x"}, None),
    ],
)
def test_bad_embeddings_input_is_a_400(gateway: Any, body: dict[str, Any], param: str | None) -> None:
    gw = gateway(agents={"olivia": EMBEDDER})
    before = gw.spend()
    r = httpx2.post(gw.url + "/v1/embeddings", json=body, headers={"authorization": f"Bearer {gw.keys['olivia']}"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert gw.spend() == before and sent(gw) == []
