"""Wire formats: each API's request decoding, usage extraction, stream events and error bodies.

Shared here: the input-token bound and the SSE frame splitter.
"""

from __future__ import annotations

from typing import Any

# Tokens an image can cost at most, on any current model (Anthropic downscales to ~1.15 MP, ~1,600
# tokens, larger on the newest models; OpenAI's high-detail patches stay under ~2,500).
IMAGE_TOKENS = 6_000
# Tool use adds a provider-side system prompt (Anthropic documents 300–800 tokens).
TOOLS_OVERHEAD = 1_000
# Chat-template tokens the request's JSON does not show (role markers, turn separators).
BASE_OVERHEAD = 64


def input_bound(raw_len: int, body: dict[str, Any], raw: bytes) -> int:
    """An upper bound on the input tokens of a request, from its JSON body alone.

    A byte-level BPE token covers at least one byte, and JSON encoding never makes text shorter, so
    the body's byte length bounds the tokens of all text in it. Inline images and documents are the
    exception (base64 bytes say nothing of their token cost): their data is taken out and a fixed
    per-item bound put in.
    """
    bound = raw_len + BASE_OVERHEAD
    if body.get("tools") or body.get("functions"):
        bound += TOOLS_OVERHEAD
    if b'"image' in raw or b'"document"' in raw or b'"file"' in raw or b'"input_audio"' in raw:
        bound += _media_adjust(body.get("messages"))
        bound += _media_adjust(body.get("system"))
    return bound


def _media_adjust(node: Any) -> int:
    adjust = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, dict):
            t = n.get("type")
            if t in ("image", "document") and isinstance(n.get("source"), dict):
                data = n["source"].get("data")
                adjust += IMAGE_TOKENS - (len(data) if isinstance(data, str) else 0)
                if t == "document":
                    adjust += 100 * IMAGE_TOKENS  # a PDF: up to 100 pages, each with a page image
            elif t == "image_url" and isinstance(n.get("image_url"), dict):
                url = n["image_url"].get("url")
                adjust += IMAGE_TOKENS - (len(url) if isinstance(url, str) and url.startswith("data:") else 0)
            elif t in ("file", "input_audio"):
                adjust += 100 * IMAGE_TOKENS
            else:
                stack.extend(v for v in n.values() if isinstance(v, list | dict))
    return adjust


class SSEFrames:
    """Splits a byte stream into complete Server-Sent-Events frames (each ending in a blank line)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self.buf + chunk if self.buf else chunk
        if b"\r\n" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.buf = buf
            return []
        self.buf = buf[end + 2 :]
        return [f + b"\n\n" for f in buf[:end].split(b"\n\n") if f]

    def rest(self) -> bytes:
        out, self.buf = self.buf, b""
        return out


def data_of(frame: bytes) -> bytes | None:
    """The `data:` payload of one SSE frame (single-line data, as both providers send)."""
    i = frame.find(b"data:")
    if i < 0:
        return None
    j = frame.find(b"\n", i)
    return frame[i + 5 : j if j >= 0 else None].strip()
