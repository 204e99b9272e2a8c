"""Run an ASGI app on uvicorn: in the foreground (CLI) or in a background thread (tests, demo, bench),
over plain HTTP or over TLS with a throwaway local CA (`LocalTLS`)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LocalTLS:
    """A CA made at start and a certificate it issued for loopback, as PEM files.

    Clients trust `ca_pem` (`client_context()`, or `ca_bundle:` in fleet.yaml); the server loads
    `server_pem` (its private key and certificate chain). Nothing outside this run trusts the CA.
    """

    ca_pem: Path
    server_pem: Path

    @classmethod
    def issue(cls, directory: Path, hosts: Iterable[str] = LOOPBACK, ca_out: Path | None = None) -> LocalTLS:
        """Write the CA to `ca_out` (default `directory/ca.pem`) and the server's key and chain to `directory`."""
        import trustme  # only a TLS server needs it; the gateway itself never imports it

        ca = trustme.CA(organization_name="paymaster local CA")
        names = dict.fromkeys(h for h in (*LOOPBACK, *hosts) if not _wildcard(h))  # ordered, no duplicates
        cert = ca.issue_cert(*names)
        ca_pem = ca_out or directory / "ca.pem"
        server_pem = directory / "server.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        return cls(ca_pem, server_pem)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (hostname checked, as for a real provider)."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified  # 0.0.0.0 / :: name no address a client dials
    except ValueError:
        return False


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


def serve(app: Any, host: str = "127.0.0.1", port: int = 8080, tls: LocalTLS | None = None, **kw: Any) -> None:
    """Serve in the foreground until interrupted (HTTPS when `tls` is given)."""
    if tls:
        kw["ssl_certfile"] = str(tls.server_pem)
    uvicorn.Server(_config(app, host, port, **kw)).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, host: str = "127.0.0.1", timeout: float = 30.0, alive: Callable[[], bool] | None = None
) -> None:
    """Block until something accepts connections on host:port (a server started in another process);
    `alive` (e.g. `lambda: proc.poll() is None`) ends the wait early when that server has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive and not alive():
            raise RuntimeError(f"the server meant for {host}:{port} exited before listening")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing is listening on {host}:{port} after {timeout:g}s")


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread, for tests and the demo.

    >>> with ServerThread(app) as srv: ... srv.url
    >>> with ServerThread(app, tls=True) as srv: ... srv.url, srv.tls.ca_pem   # https, a fresh local CA
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, tls: bool = False) -> None:
        self.host = host
        self.port = port or free_port()
        self._certs_dir = tempfile.TemporaryDirectory(prefix="paymaster-tls-") if tls else None
        self.tls = LocalTLS.issue(Path(self._certs_dir.name), [host]) if self._certs_dir else None
        kw: dict[str, Any] = {"ssl_certfile": str(self.tls.server_pem)} if self.tls else {}
        self.server = uvicorn.Server(_config(app, self.host, self.port, **kw))
        self.server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import uvloop

        uvloop.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

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
        if self._certs_dir:
            self._certs_dir.cleanup()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
