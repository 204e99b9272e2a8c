"""`python -m paymaster.sim` / `paymaster sim`: serve the simulator in the foreground.

`--tls` serves HTTPS with a CA made at start (see `paymaster.server.LocalTLS`); the CA certificate is
written to `--ca-out` (or a temporary file, removed at exit) and its path printed, for clients to trust.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..server import LocalTLS, serve
from .app import Simulator


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paymaster sim",
        description="Serve a fake Anthropic + OpenAI provider (deterministic answers, injectable faults).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8090, help="port to bind (default: %(default)s)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before the first byte of every answer")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay per output token when streaming")
    p.add_argument("--default-output-tokens", type=int, default=50, help="answer length without [sim:tokens=N]")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this provider key (repeatable; default: any non-empty key)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate from a local CA made at start (for 127.0.0.1, localhost, --host)",
    )
    p.add_argument(
        "--ca-out",
        type=Path,
        metavar="PATH",
        help="with --tls: write the CA certificate (PEM) here (default: a temporary file, removed at exit)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.ca_out and not args.tls:
        p.error("--ca-out needs --tls")
    sim = Simulator(
        latency_ms=args.latency_ms,
        token_delay_ms=args.token_delay_ms,
        default_output_tokens=args.default_output_tokens,
        api_keys=args.api_keys,
    )
    with tempfile.TemporaryDirectory(prefix="paymaster-sim-") as tmp:
        tls = LocalTLS.issue(Path(tmp), [args.host], ca_out=args.ca_out) if args.tls else None
        url = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
        print(f"paymaster sim on {url} (Anthropic /v1/messages, OpenAI /v1/chat/completions)", flush=True)
        if tls:
            print(f"CA certificate: {tls.ca_pem}  (trust it: `ca_bundle: {tls.ca_pem}` under a provider)", flush=True)
        # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; both end here, so the key is removed
        signal.signal(signal.SIGTERM, _stop)
        try:
            serve(sim.app, args.host, args.port, tls=tls)
        except KeyboardInterrupt:
            pass
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
