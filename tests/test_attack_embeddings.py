"""Embeddings, both ways the cap can break: an affordable call refused because the bound is far too loose
(English text is ~4-5 bytes a token, and the byte bound was never tightened), and a bound below the bill
(OpenAI's 8,192-token input limit applied to another server's model, whose limit may be larger). Each test
failed before its fix.

Independent figures: OpenAI's embedding models count input with cl100k_base (OpenAI cookbook, "How to count
tokens with tiktoken") and bill `usage.prompt_tokens` at the model's input price; an OpenAI-compatible
embedding server bills whatever its own tokenizer counts, up to its own input limit (32,768 tokens in the
attack below)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from paymaster.call import Usage
from paymaster.costmodel import estimate
from paymaster.costmodel.tokenizer import encoding
from paymaster.pricing import PriceTable

TEXTS = ["The committee reviewed the quarterly figures and agreed to postpone the decision. " * 40] * 20


def test_an_embeddings_call_the_agent_can_afford_is_not_refused(gateway: Any) -> None:
    tokens = sum(len(encoding("cl100k_base").encode_ordinary(t)) for t in TEXTS)
    size = sum(len(t.encode()) for t in TEXTS)
    assert size > 4 * tokens  # the byte bound is more than four times the bill
    rates = PriceTable().rates("text-embedding-3-small", "openai")
    bill = rates.cost(Usage(tokens, 0))
    cap = bill * 2  # affordable twice over, far below the byte bound
    assert rates.cost(Usage(min(size, 300_000), 0)) > cap
    agent = {"model": "text-embedding-3-small", "models": ["text-embedding-3-small"], "daily_usd": str(cap),
             "monthly_usd": 50, "max_tokens": 2048}  # fmt: skip
    gw = gateway(agents={"olivia": agent})
    res = gw.openai().embeddings.create(model="text-embedding-3-small", input=TEXTS)
    assert res.usage.prompt_tokens == tokens
    [row] = gw.ledger("olivia")
    assert row["status"] == "ok" and Decimal(row["cost_usd"]) == bill <= cap
    assert row["cost_nanos"] <= row["worst_nanos"]


def test_another_servers_embedding_model_is_not_capped_at_openais_input_limit() -> None:
    table = PriceTable({"nomic-embed-text": {"input_mtok": "0.10", "output_mtok": "0"}})
    rates = table.rates("nomic-embed-text")
    body = {"model": "nomic-embed-text", "input": "x " * 20_000}  # 20,000 words: up to 20,002 tokens there
    worst = estimate(body, "embeddings", len(orjson.dumps(body)), rates, None)
    assert worst.worst_case(0, 0) >= rates.cost(Usage(20_002, 0))
