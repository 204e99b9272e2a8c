"""The simulator's tokenizer: deterministic, one token per four UTF-8 bytes of text, and never
fewer tokens than whitespace-separated words:

    count_tokens(text) = max(words, ceil(bytes / 4))

so about one token per four characters of English, more for text of many short words, about one
per character for CJK (three bytes each, like real BPE tokenizers), and never more tokens than
bytes (the gateway bounds input tokens by bytes and relies on that). The sim's answers are words
of at most three letters separated by single spaces: exactly one token per word.

It is two C-level passes over the text (split, and encode for non-ASCII): a regex tokenizer was
ten times slower on long prompts, and the sim has to keep up with the gateway's benchmarks.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from typing import Any

import orjson

from ..costmodel.media import audio_seconds, b64_prefix, image_size

MODEL: ContextVar[str] = ContextVar("sim_model", default="")
"""The model the request being counted is for (set by each API's `measure`): images cost by family."""
AUDIO: ContextVar[list[int]] = ContextVar("sim_audio")
"""The audio tokens of the request being counted (a fresh [0] set by `measure`), for its usage."""

MESSAGE_TOKENS = 3
"""Overhead per message (role and separators), as in OpenAI's published counting recipe."""

REPLY_TOKENS = 3
"""Overhead priming the assistant's reply, once per request."""


ENCODING: ContextVar[Any] = ContextVar("sim_encoding", default=None)
"""The public tokenizer of the request being counted, when its provider publishes one (OpenAI's
models: set by `openai.measure` for the prompt, so a prompt is billed exactly as OpenAI bills it)."""


def count_tokens(text: str) -> int:
    """Tokens in `text`; never more than `len(text.encode())`."""
    enc = ENCODING.get()
    if enc is not None:
        return len(enc.encode_ordinary(text))
    size = len(text) if text.isascii() else len(text.encode())
    return max(len(text.split()), (size + 3) >> 2)


def count_text(value: Any) -> int:
    """Tokens of a field that should hold text; anything else (absent, null, malformed) counts 0."""
    return count_tokens(value) if isinstance(value, str) else 0


def count_json(value: Any) -> int:
    """Tokens of a JSON value as the wire would carry it (tool definitions, tool inputs, schemas)."""
    return count_tokens(orjson.dumps(value).decode())


def count_json_items(items: list[Any]) -> list[int]:
    """Tokens of each item of a JSON array, apportioned so the running sums are the tokens of the
    array's text up to each item (the last one's closing bracket included): the sum is exactly
    `count_json(items)`, and a prefix of the array is priced as a prefix of its text.

    orjson writes no whitespace and every item's text starts and ends with a non-space, so the
    separators never split words: each "," or "[" glues the neighbouring words into one.
    """
    out: list[int] = []
    words = size = before = 0
    last = len(items) - 1
    for i, item in enumerate(items):
        text = orjson.dumps(item).decode()
        words += len(text.split()) - (i > 0)
        size += (len(text) if text.isascii() else len(text.encode())) + 1  # "[" or ","
        upto = max(words, (size + (i == last) + 3) >> 2)
        out.append(upto - before)
        before = upto
    return out


# -- attachments, billed as the providers document them (see each function). The header reader is
# shared with the gateway; the formulas here are written apart from the gateway's bounds, without
# their margins, so the end-to-end tests check one against the other.

PAGE = (1275, 1650)  # a page image: US Letter at 150 dpi
PAGE_TEXT = re.compile(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj")


def _claude_native(model: str) -> tuple[int, int]:
    """(long edge, pixels) of the model's native image resolution (vision docs: Opus 4.7 and later
    2576 px / ~3.75 MP; earlier models 1568 px / ~1.15 MP)."""
    if model.startswith(("claude-opus-4-7", "claude-opus-4-8")):
        return 2576, 3_750_000
    return 1568, 1_150_000


def _claude_image(size: tuple[int, int]) -> int:
    """platform.claude.com/docs/en/build-with-claude/vision: scaled down to the native resolution
    (aspect kept), padded to 28 px; ceil(w/28) * ceil(h/28) visual tokens."""
    long_edge, pixels = _claude_native(MODEL.get())
    w, h = size
    s = min(1.0, long_edge / max(w, h), math.sqrt(pixels / (w * h)))
    w, h = max(1, int(w * s)), max(1, int(h * s))
    return math.ceil(w / 28) * math.ceil(h / 28)


def anthropic_image(source: Any) -> int:
    """Tokens of an Anthropic image block's source (a URL or file: the largest image there is)."""
    size = None
    if isinstance(source, dict) and isinstance(source.get("data"), str):
        size = image_size(b64_prefix(source["data"], 65536))
    return _claude_image(size or (8000, 8000))


def _pdf(data: Any) -> tuple[int, int]:
    """(pages, text tokens) of a base64 PDF: its page objects, and its `(...) Tj` strings."""
    pdf = b64_prefix(data, len(data)) if isinstance(data, str) else b""
    if not pdf.startswith(b"%PDF-"):
        return 100, 100 * 3000  # unreadable here: the documented maximum pages, full of text
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf)) or 1
    text = b" ".join(m.group(1) for m in PAGE_TEXT.finditer(pdf)).decode("latin-1")
    return pages, count_tokens(text) if text else 0


def anthropic_document(source: Any) -> int:
    """platform.claude.com/docs/en/build-with-claude/pdf-support: each page is its extracted text
    plus an image of the page."""
    pages, text = _pdf(source.get("data") if isinstance(source, dict) else None)
    return text + pages * _claude_image(PAGE)


def _openai_family(model: str) -> tuple[str, float, int]:
    """("tile", base, per tile) or ("patch", multiplier, cap), from the vision guide's table."""
    for prefix, fam in (
        ("gpt-4.1-mini", ("patch", 1.62, 1536)),
        ("gpt-4.1-nano", ("patch", 2.46, 1536)),
        ("gpt-5-mini", ("patch", 1.62, 1536)),
        ("gpt-5-nano", ("patch", 2.46, 1536)),
        ("o4-mini", ("patch", 1.72, 1536)),
        ("gpt-4o-mini", ("tile", 2833, 5667)),
        ("o1", ("tile", 75, 150)),
        ("o3", ("tile", 75, 150)),
        ("gpt-5", ("tile", 70, 140)),
    ):
        if model.startswith(prefix):
            return fam
    return ("tile", 85, 170)  # gpt-4o, gpt-4.1, gpt-4.5


def _openai_image(size: tuple[int, int], detail: Any) -> int:
    """developers.openai.com/api/docs/guides/images-vision, "Calculating costs"."""
    kind, a, b = _openai_family(MODEL.get())
    w, h = size
    if kind == "patch":
        patches = math.ceil(w / 32) * math.ceil(h / 32)
        if patches > b:
            shrink = math.sqrt(b * 32 * 32 / (w * h))
            w2, h2 = w * shrink, h * shrink
            shrink *= min(math.floor(w2 / 32) / (w2 / 32), math.floor(h2 / 32) / (h2 / 32))
            patches = min(b, math.ceil(w * shrink / 32) * math.ceil(h * shrink / 32))
        return math.ceil(patches * a)
    if detail == "low":
        return int(a)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = int(w * s), int(h * s)
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = int(w * s), int(h * s)
    return int(a + b * math.ceil(w / 512) * math.ceil(h / 512))


def openai_image(image: Any) -> int:
    size, detail = None, None
    if isinstance(image, dict):
        detail = image.get("detail")
        url = image.get("url")
        if isinstance(url, str) and url.startswith("data:"):
            size = image_size(b64_prefix(url[url.find(",") + 1 :], 65536))
    return _openai_image(size or (2048, 768), detail)


def openai_file(file: Any) -> int:
    """developers.openai.com/api/docs/guides/pdf-files: each page's text and an image of it."""
    data = file.get("file_data") if isinstance(file, dict) else None
    if isinstance(data, str):
        data = data[data.find(",") + 1 :]
    pages, text = _pdf(data)
    return text + pages * _openai_image(PAGE, "high")


def openai_audio(audio: Any) -> int:
    """developers.openai.com/api/docs/guides/realtime-costs: 1 token per 100 ms of audio; the sim
    takes compressed audio at 32 kbit/s."""
    data = audio.get("data") if isinstance(audio, dict) else None
    if not isinstance(data, str):
        return 0
    head = b64_prefix(data, 64)
    size = len(data) * 3 // 4
    seconds = audio_seconds(head, size) if head[:4] == b"RIFF" else size * 8 / 32000
    tokens = math.ceil(seconds * 10)
    AUDIO.get([0])[0] += tokens
    return tokens
