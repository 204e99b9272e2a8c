"""Queued faults: injected by tests (from any thread), consumed FIFO by matching requests.

"429"      rate limited (with retry-after)
"500"      internal error
"529"      overloaded (Anthropic 529; OpenAI answers 503)
"timeout"  no answer: the request is held open until the client gives up
"cut"      streaming: a few events, then the connection drops; otherwise dropped at once
"html"     502 with an HTML page, as a CDN or proxy in front of the provider answers (token counts and
           embeddings too)

Usage faults answer 200 as usual, with the usage an openai-compatible server or a misbehaving
proxy might send (see `alter_usage`):
"no_usage"         no usage at all: no `usage` in the answer, no usage chunk in an OpenAI stream,
                   neither message_start nor message_delta usage in an Anthropic stream
"no_output_usage"  usage without its output count (`output_tokens` / `completion_tokens`)
"extra_usage"      usage with a billable-looking count no price table knows (`web_crawl_requests: 2`)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import orjson

USAGE_FAULTS = ("no_usage", "no_output_usage", "extra_usage")
KINDS = ("429", "500", "529", "timeout", "cut", "html", *USAGE_FAULTS)
OUTPUT_COUNTS = ("output_tokens", "completion_tokens")


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    model: str | None = None
    retry_after: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "fault": self.kind,
            "count": self.remaining,
            "model": self.model,
            "retry_after": self.retry_after,
        }


class Faults:
    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, kind: str, count: int = 1, model: str | None = None, retry_after: float | None = None) -> None:
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if model is not None and not isinstance(model, str):
            raise ValueError(f"model must be a string, got {model!r}")
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int | float)):
            raise ValueError(f"retry_after must be a number of seconds, got {retry_after!r}")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        with self._lock:
            self._queue.append(Fault(kind, count, model, retry_after))

    def take(self, model: str, kinds: tuple[str, ...] = KINDS) -> Fault | None:
        """The first queued fault of one of `kinds` matching `model` (one use of it), or None."""
        if not self._queue:  # the common case, without the lock
            return None
        with self._lock:
            for i, fault in enumerate(self._queue):
                if (fault.model is None or fault.model == model) and fault.kind in kinds:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._queue[i]
                    return Fault(fault.kind, 1, fault.model, fault.retry_after)
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._queue]

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


def alter_usage(kind: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """One answer, or one stream event's data, as a usage fault sends it (None: the event is not sent)."""
    holders = [obj, obj["message"]] if isinstance(obj.get("message"), dict) else [obj]
    for holder in holders:
        usage = holder.get("usage")
        if not isinstance(usage, dict):
            continue
        if kind == "no_usage":
            if obj.get("object") == "chat.completion.chunk" and not obj.get("choices"):
                return None  # the usage chunk, left out
            del holder["usage"]
        elif kind == "no_output_usage":
            for key in OUTPUT_COUNTS:
                usage.pop(key, None)
        elif kind == "extra_usage":
            usage["web_crawl_requests"] = 2
    return obj


def alter_frame(kind: str, frame: bytes) -> bytes | None:
    """`alter_usage` on one server-sent event (`event: …` / `data: {…}`); other frames pass unchanged."""
    head, sep, data = frame.partition(b"data: ")
    if not sep or not data.startswith(b"{"):
        return frame
    obj = alter_usage(kind, orjson.loads(data))
    return None if obj is None else head + b"data: " + orjson.dumps(obj) + b"\n\n"
