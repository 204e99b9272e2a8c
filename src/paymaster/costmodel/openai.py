"""OpenAI Chat Completions requests: every billable input, bounded from above.

Text is counted exactly with the model's public encoding (`exact=True`) or bounded by the request's
bytes (a byte-level BPE token covers at least one byte). The chat format adds a few tokens per
message, per name and to prime the reply (the OpenAI cookbook, "How to count tokens with
tiktoken"); function definitions are rendered by OpenAI into a form it does not publish, so they are
bounded by the tokens of their JSON plus a per-tool allowance (data/costmodel.yaml).

What sits where (platform.openai.com/docs/api-reference/chat/create): images (`image_url`), audio
(`input_audio`) and files (`file`) are parts of a message's content; a tool call's `arguments` and a
tool message's content are text, whatever they contain.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import orjson

from ..pricing import TIER_ALIASES
from . import Measure, Unbounded, data, margin, spec_for
from .images import openai_tokens
from .media import (
    HEAD,
    PDF_SCAN,
    audio_seconds,
    b64_prefix,
    image_size,
    pdf_page_shapes,
    pdf_pages,
    pdf_strings,
    pdf_text_bytes,
)
from .tokenizer import Counter, encoding, encoding_for

TOKENIZE_LIMIT = 256 * 1024  # bytes of text tokenized per request (~20 ms at most); the rest by its bytes
STANDARD_TIERS = (None, "auto", "default")


def billed_tier(tier: Any, default_tier: str) -> str:
    """The service tier an OpenAI request (Chat Completions or Responses) is billed at, "" for standard:
    "auto" and no tier mean the project's default (`default_tier`, which may cost more); a tier billed as
    another is that one ("fast" is priority: pricing.TIER_ALIASES)."""
    if tier in (None, "auto"):
        tier = default_tier
    if tier in STANDARD_TIERS or tier == "":
        return ""
    if not isinstance(tier, str):
        raise Unbounded("service_tier must be a string", "service_tier")
    return TIER_ALIASES.get(tier, tier)


# message fields the walk prices itself; any other field is bounded as the text of its JSON
KNOWN_FIELDS = frozenset({"role", "content", "name", "tool_calls", "function_call", "audio"})


def measure(body: dict[str, Any], size: int, model: str, exact: bool = False, default_tier: str = "") -> Measure:
    """Bound the input of an OpenAI request of `size` JSON bytes; `exact` counts its text with tiktoken.
    `default_tier`: the tier the provider serves a request that names none or "auto" (the project's)."""
    conf = data()["openai"]
    m = Measure(exact=exact, implicit_cache=True)
    m.service_tier = billed_tier(body.get("service_tier"), default_tier)
    modalities = body.get("modalities")
    m.output_audio = isinstance(modalities, list) and "audio" in modalities
    counter = Counter(encoding(encoding_for(model)), TOKENIZE_LIMIT) if exact else None
    w = _Walk(m, spec_for(conf["images"], model), conf, counter)
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else ()
    text = conf["per_reply"]
    for message in messages:
        if not isinstance(message, dict):
            continue
        text += conf["per_message"]
        if "name" in message:
            text += conf["per_name"] + w.text(message.get("name"))
        content = message.get("content")
        if exact or isinstance(content, list):  # coarse, text counts 0 (its bytes stand for it): only media parts
            text += w.content(content)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            text += conf["per_message"] + w.json(call)  # name, arguments (text to the provider) and framing
        if message.get("audio") is not None:
            # an earlier audio answer, referenced by id (API reference: assistant message `audio`): its
            # audio tokens are input again, at most what one answer can hold
            m.audio += conf["audio_reference_tokens"]
        if isinstance(message.get("function_call"), dict):
            text += conf["per_message"] + w.json(message["function_call"])
        for key, value in message.items() if exact else ():  # coarse: their bytes are in `size` already
            if key not in KNOWN_FIELDS and value is not None:
                text += w.json(value)
    tools = body.get("tools") or body.get("functions")
    if isinstance(tools, list) and tools:
        text += conf["tools_base"] + sum(conf["per_tool"] + w.json(t) for t in tools)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        text += w.json(fmt.get("json_schema"))
    prediction = body.get("prediction")
    if isinstance(prediction, dict):
        # developers.openai.com/api/docs/guides/predicted-outputs: rejected prediction tokens are
        # billed at completion rates; at most the whole prediction (its bytes, or its tokens).
        content = prediction.get("content")
        whole = orjson.dumps(content) if content is not None else b""
        m.extra_output = w.content(content) if exact else len(whole)
    if "web_search_options" in body:  # search models: one search per call, its results in the input
        server = conf["web_search"]
        m.server_uses["web_search"] = 1
        m.fee_defaults["web_search"] = Decimal(str(server["fee_usd"]))
        m.server_results += server["result_tokens"]
    if exact:
        ratio, extra = conf["margin"]["ratio"], conf["margin"]["tokens"]
        m.text = margin(text, ratio, extra)
    else:
        # every string is inside the JSON: its bytes bound all the text; the format's own tokens are added
        m.text = size - m.media_bytes + text - w.counted
    return m


class _Walk:
    __slots__ = ("m", "img", "conf", "counter", "counted")

    def __init__(self, m: Measure, img: dict[str, Any], conf: dict[str, Any], counter: Counter | None) -> None:
        self.m, self.img, self.conf, self.counter = m, img, conf, counter
        self.counted = 0  # tokens of strings counted (coarse mode: 0, the bytes stand for them)

    def text(self, s: Any) -> int:
        if not isinstance(s, str) or self.counter is None:
            return 0
        n = self.counter.count(s)
        self.counted += n
        return n

    def json(self, value: Any) -> int:
        if self.counter is None:
            return 0
        return self.text(orjson.dumps(value).decode())

    def content(self, content: Any) -> int:
        if isinstance(content, str):
            return self.text(content)
        if not isinstance(content, list):
            return self.json(content) if content is not None else 0
        total = 0
        for part in content:
            if not isinstance(part, dict):
                total += self.json(part)
                continue
            kind = part.get("type")
            if kind == "text":
                total += self.text(part.get("text"))
            elif kind == "refusal":
                total += self.text(part.get("refusal"))
            elif kind == "image_url":
                self.image(part.get("image_url"))
            elif kind == "input_audio":
                self.audio(part.get("input_audio"))
            elif kind == "file":
                self.file(part.get("file"))
            else:  # unknown part: bounded as the text of its JSON
                total += self.json(part)
        return total

    def image(self, image: Any) -> None:
        size, detail = None, None
        if isinstance(image, dict):
            detail = image.get("detail")
            url = image.get("url")
            if isinstance(url, str) and url.startswith("data:"):
                self.m.media_bytes += len(url)
                comma = url.find(",")
                size = image_size(b64_prefix(url[comma + 1 :], HEAD)) if comma > 0 else None
        self.m.media += openai_tokens(size, detail, self.img)

    def audio(self, audio: Any) -> None:
        seconds = 0.0
        if isinstance(audio, dict) and isinstance(audio.get("data"), str):
            b64 = audio["data"]
            self.m.media_bytes += len(b64)
            seconds = audio_seconds(b64_prefix(b64, 64), len(b64) * 3 // 4)
        # developers.openai.com/api/docs/guides/realtime-costs: 1 token per 100 ms of user audio
        self.m.audio += math.ceil(seconds * self.conf["audio_tokens_per_second"]) + 1

    def file(self, file: Any) -> None:
        pages = text = shapes = None
        if isinstance(file, dict):
            url = file.get("file_data")
            if isinstance(url, str):
                self.m.media_bytes += len(url)
                b64 = url[url.find(",") + 1 :] if url.startswith("data:") else url
                if len(b64) <= PDF_SCAN * 4 // 3:
                    raw = b64_prefix(b64, PDF_SCAN)
                    pages, text, shapes = pdf_pages(raw), pdf_text_bytes(raw), pdf_page_shapes(raw)
                    strings = pdf_strings(raw) if self.counter is not None else None
                    if strings is not None and text is not None:  # exact: the drawn text, tokenized
                        assert self.counter is not None
                        counted = sum(self.counter.count(x) for x in strings) + len(strings)
                        text = min(text, counted + counted // 50 + 16)
        pdf = self.conf["pdf"]
        pages = min(pages or pdf["max_pages"], pdf["max_pages"])
        most_text = pages * int(pdf["text_tokens_per_page"])
        # developers.openai.com/api/docs/guides/pdf-files: each page's text and an image of the page.
        # The render size is not documented: for tile models a page's shape bounds its tiles (any
        # size of that shape scales to the same 768 px short side); patch models take their cap.
        page = openai_tokens(None, "high", self.img)
        if shapes and "multiplier" not in self.img:
            page = max(openai_tokens((math.ceil(w), math.ceil(h)), "high", self.img) for w, h in shapes)
        self.m.media += pages * page + (most_text if text is None else text)
