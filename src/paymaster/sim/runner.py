"""`python -m paymaster.sim` / `paymaster sim`: serve the simulator in the foreground."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..server import serve
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sim = Simulator(
        latency_ms=args.latency_ms,
        token_delay_ms=args.token_delay_ms,
        default_output_tokens=args.default_output_tokens,
        api_keys=args.api_keys,
    )
    print(f"paymaster sim on http://{args.host}:{args.port} (Anthropic /v1/messages, OpenAI /v1/chat/completions)")
    try:
        serve(sim.app, args.host, args.port)
    except KeyboardInterrupt:  # uvicorn re-raises the signal after its graceful shutdown
        pass
    return 0
