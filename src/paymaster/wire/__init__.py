"""Wire formats: each API's request decoding, usage extraction, stream events and error bodies.

Shared here: the SSE frame splitter. (A request's worst-case cost is `paymaster.costmodel`'s.)
"""

from __future__ import annotations


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
