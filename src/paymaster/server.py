"""Run an ASGI app on uvicorn: in the foreground (CLI) or in a background thread (tests, demo, bench)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def _config(app: Any, host: str, port: int, **kw: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=kw.pop("log_level", "warning"),
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the gateway never reads the client address; one ASGI layer less per call
        date_header=False,
        **kw,
    )


def serve(app: Any, host: str = "127.0.0.1", port: int = 8080, **kw: Any) -> None:
    """Serve in the foreground until interrupted."""
    uvicorn.Server(_config(app, host, port, **kw)).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Block until something accepts connections on host:port (a server started in another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing is listening on {host}:{port} after {timeout:g}s")


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread, for tests and the demo.

    >>> with ServerThread(app) as srv: ... srv.url
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port()
        self.server = uvicorn.Server(_config(app, self.host, self.port))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import uvloop

        uvloop.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
