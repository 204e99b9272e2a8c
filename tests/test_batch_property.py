"""Attack the cap on the batch path: whatever the request, what a batch result is billed at (batch prices,
cache reads and writes included) never exceeds the worst case reserved for it at submission."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.batch.prices import batch_rates, halved
from paymaster.config import hash_key, parse
from paymaster.costmodel import estimate
from paymaster.pricing import to_nanos
from paymaster.sim import Simulator
from paymaster.wire import anthropic as wire_anthropic
from paymaster.wire import openai as wire_openai

MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "gpt-4.1-mini", "gpt-4o"]
CONFIG = parse(
    {
        "ledger": ":memory:",
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": "http://127.0.0.1:9", "api_key_env": "K"},
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "K"},
        },
        "agents": {"a": {"model": "claude-haiku-4-5", "models": MODELS, "key_sha256": hash_key("k")}},
    },
    env={"K": "x"},
)  # fmt: skip
SIM = Simulator()
WIRE = {"anthropic": wire_anthropic, "openai": wire_openai}
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=3000)


@st.composite
def requests(draw: Any) -> tuple[str, dict[str, Any]]:
    model = draw(st.sampled_from(MODELS))
    max_tokens = draw(st.integers(1, 4096))
    user = draw(text)
    if model.startswith("claude"):
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": user}],
        }
        if draw(st.booleans()):  # a cached system prompt: batch cache writes and reads
            ttl = draw(st.sampled_from(["5m", "1h"]))
            body["system"] = [{"type": "text", "text": draw(text) * draw(st.integers(1, 400)),
                               "cache_control": {"type": "ephemeral", "ttl": ttl}}]  # fmt: skip
        return "anthropic", body
    return "openai", {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": user}]}


@settings(max_examples=150, deadline=None)
@given(requests(), st.integers(1, 3))
def test_a_batch_result_is_never_billed_above_its_reservation(req: tuple[str, dict[str, Any]], repeats: int) -> None:
    api, body = req
    model = body["model"]
    rates = batch_rates(CONFIG, model)
    payload = orjson.dumps(body)
    worst = estimate(body, api, len(payload), rates, rates.context_window)
    reserved = to_nanos(worst.worst_case(worst.tokens, body["max_tokens"]))
    for _ in range(repeats):  # the same prefix again: a cache read within the batch
        status, answer = SIM._run(api, body)
        if status != 200:
            continue
        usage = WIRE[api].answer_usage(answer)
        assert usage is not None
        usage.service_tier = ""
        billed = to_nanos(rates.cost(usage))
        assert billed <= reserved, (billed, reserved, usage)
        real = to_nanos(CONFIG.prices.rates(model, api).cost(usage))
        assert abs(billed * 2 - real) <= 1  # half the real-time price (nano-dollar rounding aside)


def test_halved_prices_are_exactly_half_of_every_unit() -> None:
    real = CONFIG.prices.rates("claude-sonnet-4-6", "anthropic")
    half = halved(real)
    for unit in ("input", "output", "cache_read", "cache_write"):
        assert [p * 2 for _, p in getattr(half, unit)] == [p for _, p in getattr(real, unit)]
