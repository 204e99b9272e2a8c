"""Attacks on the cap through Anthropic's PDF page limit: a request whose context window is 1M tokens may
carry six times the pages the cost model assumed.

The worst case is computed here from Anthropic's documents, not from the gateway's cost model:

- platform.claude.com/docs/en/build-with-claude/pdf-support, "Check PDF requirements": "Maximum pages per
  request: 600 (100 when the request's context window is under 1M tokens)"; "How PDF support works": each
  page is converted into an image and its text is extracted and "provided alongside each page's image";
- platform.claude.com/docs/en/build-with-claude/vision ("Evaluate image size"): an image costs at most the
  model's native-resolution maximum, about 1,600 tokens for Claude Sonnet 4.6 and Opus 4.6
  (1,568 px long edge, ~1.15 megapixels);
- platform.claude.com/docs/en/about-claude/pricing, "Model pricing": Claude Sonnet 4.6 $3 / MTok input,
  $15 / MTok output; Claude Haiku 4.5 $1 / $5; models overview: Sonnet 4.6 and Opus 4.6 have a 1M-token
  context window, Haiku 4.5 200K.

Before the fix every PDF was bounded at 100 pages whatever the model, even when its page count was read
from the file: a 600-page PDF sent to Sonnet 4.6 was reserved at ~185K input tokens ($0.56) and billed at
~901K ($2.70), so a call fitted to a $2 cap overran it by $0.70; a PDF named by `file_id` (pages
unknown) was reserved at 100 pages too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.costmodel import estimate
from paymaster.pricing import PriceTable
from paymaster.sim import anthropic as sim_anthropic
from tests.attachments import b64, pdf

MTOK = Decimal(1_000_000)
# from the pages named above: (input, output) USD per MTok, context window, most tokens one page image costs
DOCUMENTED = {
    "claude-sonnet-4-6": ((Decimal(3), Decimal(15)), 1_000_000, 1600),
    "claude-opus-4-6": ((Decimal(5), Decimal(25)), 1_000_000, 1600),
    "claude-haiku-4-5": ((Decimal(1), Decimal(5)), 200_000, 1600),
}
TABLE = PriceTable()


def page_limit(model: str) -> int:
    """pdf-support: 600 pages, 100 when the request's context window is under 1M tokens."""
    return 600 if DOCUMENTED[model][1] >= 1_000_000 else 100


def documented_worst_input(model: str, pages: int | None) -> int:
    """The most input tokens a request holding one PDF can be billed for: every page (the limit, when the
    count is unknown) as its largest image plus its text, never past the context window. The text of a
    page is bounded from below by nothing here, so only the image part is counted: a lower bound on the
    worst case, which the reservation must still reach."""
    _, window, image = DOCUMENTED[model]
    n = min(pages if pages is not None else page_limit(model), page_limit(model))
    return min(window, n * image)


def documented_bill(model: str, usage: dict[str, Any]) -> Decimal:
    (inp, out), _, _ = DOCUMENTED[model]
    return (usage["input_tokens"] * inp + usage["output_tokens"] * out) / MTOK


def body_with(model: str, source: dict[str, Any], max_tokens: int = 100) -> dict[str, Any]:
    doc = {"type": "document", "source": source}
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [doc, {"type": "text", "text": "Summarise the report"}]}],
    }


def pdf_source(pages: int) -> dict[str, Any]:
    return {"type": "base64", "media_type": "application/pdf", "data": b64(pdf(pages, "Quarterly revenue grew"))}


def reserved(body: dict[str, Any], window: int | None = -1) -> tuple[int, Decimal]:
    rates = TABLE.rates(body["model"], "anthropic")
    cap = rates.context_window if window == -1 else window
    e = estimate(body, "anthropic", len(orjson.dumps(body)), rates, cap)
    return e.tokens, e.worst_case(0, body["max_tokens"])


# -- the bound -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-6"])
def test_a_600_page_pdf_on_a_1m_context_model_is_bounded_at_600_pages(model: str) -> None:
    tokens, _ = reserved(body_with(model, pdf_source(600)))
    assert tokens >= documented_worst_input(model, 600)  # failed before: ~185K against >= 960K


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5"])
def test_a_pdf_named_by_file_id_is_bounded_at_the_models_page_limit(model: str) -> None:
    tokens, _ = reserved(body_with(model, {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}))
    assert tokens >= documented_worst_input(model, None)


def test_the_1m_context_beta_lifts_the_page_limit_on_a_200k_model() -> None:
    """admission passes no context cap when the request carries the `context-1m` beta (its window is 1M)."""
    tokens, _ = reserved(body_with("claude-sonnet-4-6", pdf_source(600)), window=None)
    assert tokens >= documented_worst_input("claude-sonnet-4-6", 600)


def test_a_window_under_1m_keeps_the_100_page_bound() -> None:
    """Not looser than the document asks: under a 1M-token window, 100 pages is the limit."""
    tokens, _ = reserved(body_with("claude-haiku-4-5", pdf_source(600)), window=999_999)
    assert 100 * 1600 <= tokens < 600 * 1600


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(DOCUMENTED)),
    pages=st.integers(1, 600),
    words=st.integers(1, 40),
    max_tokens=st.integers(1, 4096),
)
def test_no_pdf_the_provider_accepts_is_billed_above_its_reservation(
    model: str, pages: int, words: int, max_tokens: int
) -> None:
    """reserved >= the documented worst case >= the simulator's bill for it, for any PDF within the page
    limit the provider enforces."""
    pages = min(pages, page_limit(model))
    source = {"type": "base64", "media_type": "application/pdf", "data": b64(pdf(pages, "revenue " * words))}
    body = body_with(model, source, max_tokens)
    tokens, usd = reserved(body)
    assert tokens >= documented_worst_input(model, pages)
    billed_input, _ = sim_anthropic.measure(body, orjson.dumps(body))
    usage = {"input_tokens": min(billed_input, DOCUMENTED[model][1]), "output_tokens": max_tokens}
    assert usd >= documented_bill(model, usage)


# -- end to end: the official SDK, the gateway and the simulator -----------------------------------------


def _fleet(daily: str) -> dict[str, Any]:
    return {
        "agents": {"fay": {"model": "claude-sonnet-4-6", "max_tokens": 4096, "daily_usd": daily, "monthly_usd": 50}}
    }


def test_a_600_page_pdf_cannot_run_an_agent_past_its_cap(gateway: Any) -> None:
    """$2 a day: the old 100-page bound ($0.56) fitted, the provider billed ~$2.70. Now the call is refused
    (its count_tokens-refined bound is ~$2.84) and nothing is spent."""
    gw = gateway(**_fleet("2"))
    client = gw.anthropic("fay")
    body = body_with("claude-sonnet-4-6", pdf_source(600))
    try:
        client.messages.create(**body)
    except anthropic.APIStatusError as e:
        assert e.status_code == 402
    rows = [r for r in gw.ledger("fay") if r["status"] != "refused"]
    assert sum(Decimal(r["cost_usd"]) for r in rows) <= Decimal(2)


def test_a_600_page_pdf_the_agent_can_afford_is_admitted_and_booked_at_the_bill(gateway: Any) -> None:
    gw = gateway(**_fleet("5"))
    msg = gw.anthropic("fay").messages.create(**body_with("claude-sonnet-4-6", pdf_source(600)))
    (row,) = gw.ledger("fay")
    bill = documented_bill("claude-sonnet-4-6", msg.usage.model_dump())
    assert msg.usage.input_tokens > 600 * 1000  # every page was read
    assert Decimal(row["cost_usd"]) == bill and row["reconcile"] == 0
    assert row["worst_nanos"] >= int(bill * 1_000_000_000)
