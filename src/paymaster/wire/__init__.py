"""Wire formats: each API's request decoding, usage extraction, stream events and error bodies.

Shared here: `Wire`, what each API's module (`anthropic.py`, `openai.py`) provides, and the SSE frame
splitter. (A request's worst-case cost is `paymaster.costmodel`'s.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..call import Call, Usage
    from ..errors import GatewayError


class StreamWatcher(Protocol):
    """Reads a provider's stream frame by frame: what to relay, and the usage it reported."""

    finished: bool

    def frame(self, f: bytes) -> bytes | None: ...
    def usage(self) -> Usage | None: ...
    def input_usage(self) -> Usage | None: ...


class Wire(Protocol):
    """One API's shapes, as the gateway speaks them to callers and providers: a wire module."""

    API: str  # "anthropic" | "openai"

    @property
    def StreamWatch(self) -> Callable[[Call], StreamWatcher]: ...  # the module's StreamWatch class

    def check(self, body: dict[str, Any]) -> tuple[str, int | None, bool]: ...
    def set_max_tokens(self, body: dict[str, Any], n: int, provider_kind: str) -> None: ...
    def answer_usage(self, answer: Any) -> Usage | None: ...
    def error_body(self, e: GatewayError, rid: str | None = None) -> bytes: ...  # rid: the answer's request id
    def stream_error(self, message: str, seq: int = 0) -> bytes: ...  # seq: the event's sequence number (Responses)
    def models_body(self, models: list[str]) -> bytes: ...


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
