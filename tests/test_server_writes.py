"""The HTTP server's writes: an answer of known length leaves in one write (head and body together), so the
agent is woken once per answer; a stream's head still leaves at once, before its first event.

uvicorn's own protocol, driven with the bytes of a request, writes into a transport that records each write
(what the kernel would get as one `write`/`writev`), so the count is exact and not a matter of timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from paymaster.server import OneWriteProtocol, _config


class Recorded(asyncio.Transport):
    """A transport that keeps each write: one entry per system call it would make."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:  # uvloop: one writev
        self.writes.append(b"".join(parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def exchange(app: Any, request: bytes, protocol: type[asyncio.Protocol] = OneWriteProtocol) -> list[bytes]:
    config: uvicorn.Config = _config(app, "127.0.0.1", 8080)
    config.http = protocol
    config.load()
    proto = protocol(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    transport = Recorded()
    proto.connection_made(transport)
    proto.data_received(request)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if proto.cycle is not None and proto.cycle.response_complete:  # type: ignore[attr-defined]
            break
    return transport.writes


async def answer(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def stream(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"data: 2\n\n"})


POST = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_an_answer_leaves_in_one_write() -> None:
    writes = asyncio.run(exchange(answer, POST))
    assert len(writes) == 1, writes
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    assert body == b'{"ok":true}'


def test_uvicorn_alone_writes_an_answer_twice() -> None:
    """What the protocol changes: uvicorn's own writes the head, then the body."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert len(asyncio.run(exchange(answer, POST, HttpToolsProtocol))) == 2


def test_a_stream_head_leaves_before_its_first_event() -> None:
    writes = asyncio.run(exchange(stream, POST))
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in writes[0]
    assert writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"]


def test_head_request_gets_the_head_alone() -> None:
    writes = asyncio.run(exchange(answer, b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n") and b"content-length: 11" in writes[0]


def test_an_app_that_fails_after_its_head_sends_no_half_answer() -> None:
    async def fails(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        raise RuntimeError("boom")

    writes = asyncio.run(exchange(fails, POST))
    assert writes == []  # the connection is closed; no head promising a body that never comes
