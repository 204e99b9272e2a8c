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

from typing import Any

import orjson

IMAGE_TOKENS = 1000
"""Fixed cost of one image (or other binary attachment: PDF, audio, file).

Real providers price images by their pixel size, which is not knowable from base64 cheaply; a
fixed figure keeps the sim fast and its counts predictable.
"""

MESSAGE_TOKENS = 3
"""Overhead per message (role and separators), as in OpenAI's published counting recipe."""

REPLY_TOKENS = 3
"""Overhead priming the assistant's reply, once per request."""


def count_tokens(text: str) -> int:
    """Tokens in `text`; never more than `len(text.encode())`."""
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
