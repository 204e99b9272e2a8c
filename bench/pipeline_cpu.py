"""The gateway's own CPU per call, in process: the ASGI app called directly (no HTTP server on the agent
side, no load generator) against the simulator in another process, pinned to core 1.

    taskset -c 0 python bench/pipeline_cpu.py [--calls N] [--api anthropic|openai] [--turns N] [--stream]
                                              [--profile [--sort cumtime]]

One agent (budgets, ledger and journal on, no response cache), one short non-streaming request per call,
sent one after another after `--warmup` calls; `--turns N`: instead, an agent's tool loop N rounds in
(~1 kB a round: what grows with the conversation — the checks, the cost model, the caching lever's walks);
`--stream`: the same calls streamed (the simulator's event stream, relayed event by event as it arrives).
The figure is this process's CPU time per call
(`time.process_time`, the ledger's commit thread included; split into user and system time) and the
wall time per call; the provider's time
is in the wall figure only. `--profile` runs the measured calls under cProfile and prints its top functions
(the CPU figure is then inflated by the profiler). Pin it (`taskset -c 0`) and alternate runs when
comparing two checkouts: the script runs unchanged against an older tree (`cd <tree> && taskset -c 0
.venv/bin/python <this file>`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time

import orjson

from paymaster.app import Gateway
from paymaster.config import hash_key, parse

MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4.1-mini"}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_sim(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "paymaster.cli", "sim", "--port", str(port), "--api-key", "sk"]
    sim = subprocess.Popen(["taskset", "-c", "1", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return sim
        except OSError:
            time.sleep(0.1)
    sim.terminate()
    raise SystemExit("the simulator did not start")


# --limits: every denial-of-wallet limit on, set high enough never to refuse (the loop detector sees the same
# call every time, below its threshold): what checking them costs a call
LIMITS = {"requests_per_minute": 10_000_000, "tokens_per_minute": 10_000_000_000, "max_in_flight": 1000,
          "loop_calls": 1_000_000, "loop_window_s": 60}  # fmt: skip


TEXT = "The quarterly figures show revenue up four percent, costs flat, and two open questions. "
RESULT = "row 17: region=EMEA revenue=1204.5 cost=877.1 margin=0.27 note=steady; " * 8


def conversation(api: str, turns: int) -> dict[str, object]:
    """An agent's tool loop `turns` rounds in, as the request of its next round: a system prompt, one tool,
    and per round an assistant text with a tool call and the tool's ~600-byte result (~1 kB a round)."""
    schema = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    system = "You are an analyst. Use the search tool, then answer in three bullet points. " * 20
    if api == "anthropic":
        msgs: list[dict[str, object]] = [{"role": "user", "content": "Summarise the quarter."}]
        for k in range(turns):
            call = {"type": "tool_use", "id": f"toolu_{k:04d}", "name": "search", "input": {"query": f"q{k}"}}
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": TEXT}, call]})
            result = {"type": "tool_result", "tool_use_id": f"toolu_{k:04d}", "content": RESULT}
            msgs.append({"role": "user", "content": [result]})
        tools = [{"name": "search", "description": "Search the finance tables.", "input_schema": schema}]
        return {"model": MODELS[api], "max_tokens": 256, "system": system, "tools": tools, "messages": msgs}
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Summarise the quarter."}]
    for k in range(turns):
        fn = {"name": "search", "arguments": orjson.dumps({"query": f"q{k}"}).decode()}
        msgs.append(
            {
                "role": "assistant",
                "content": TEXT,
                "tool_calls": [{"id": f"call_{k}", "type": "function", "function": fn}],
            }
        )
        msgs.append({"role": "tool", "tool_call_id": f"call_{k}", "content": RESULT})
    tools = [
        {
            "type": "function",
            "function": {"name": "search", "description": "Search the finance tables.", "parameters": schema},
        }
    ]
    return {"model": MODELS[api], "max_tokens": 256, "tools": tools, "messages": msgs}


# --refused: one call a minute, so every measured call is refused (429): what a refusal costs the gateway
REFUSED = {"requests_per_minute": 1}


def gateway(port: int, api: str, key: str, limits: dict[str, object] | None = None) -> Gateway:
    url = f"http://127.0.0.1:{port}"
    raw = {
        "ledger": f"{tempfile.mkdtemp()}/ledger.db",
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": url, "api_key_env": "K"},
            "openai": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "K"},
        },
        "agents": {
            "a": {
                "model": MODELS[api],
                "daily_usd": 1000,
                "monthly_usd": 10000,
                "max_tokens": 256,
                "key_sha256": hash_key(key),
                **({"limits": limits} if limits else {}),
            }
        },
    }
    return Gateway(parse(raw, env={"K": "sk"}))


async def run(args: argparse.Namespace, port: int) -> None:
    key = "pm-" + secrets.token_hex(8)
    gw = gateway(port, args.api, key, REFUSED if args.refused else LIMITS if args.limits else None)
    hello = [{"role": "user", "content": "Say hello in a few words, please."}]
    request: dict[str, object] = {"model": MODELS[args.api], "max_tokens": 64, "messages": hello}
    if args.turns:
        request = conversation(args.api, args.turns)
    if args.stream:
        request["stream"] = True
    body = orjson.dumps(request)
    if args.api == "anthropic":
        path = "/v1/messages"
        auth = [(b"x-api-key", key.encode()), (b"anthropic-version", b"2023-06-01")]
    else:
        path = "/v1/chat/completions"
        auth = [(b"authorization", b"Bearer " + key.encode())]
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *auth]

    async def one() -> None:
        scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
        sent = False

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # the agent stays connected
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(m: dict[str, object]) -> None:
            if m["type"] == "http.response.start":
                status.append(m["status"])  # type: ignore[arg-type]

        await gw(scope, receive, send)
        assert status == [429 if args.refused and admitted else 200], status

    admitted = False

    await gw.start()
    for _ in range(args.warmup):
        await one()
        admitted = True  # --refused: the bucket's one call is spent
    prof = cProfile.Profile() if args.profile else None
    r0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for _ in range(args.calls):
        await one()
    if prof:
        prof.disable()
    r1, c1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    await gw.stop()
    user, system = ((b - a) / args.calls * 1e6 for a, b in ((r0.ru_utime, r1.ru_utime), (r0.ru_stime, r1.ru_stime)))
    print(
        f"{args.api}: {(c1 - c0) / args.calls * 1e6:.1f} µs CPU per call (user {user:.1f}, system {system:.1f}),"
        f" wall {(w1 - w0) / args.calls * 1e3:.3f} ms"
    )
    if prof:
        pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="measured calls (default 3000)")
    ap.add_argument("--warmup", type=int, default=200, help="calls before measuring (default 200)")
    ap.add_argument("--api", choices=sorted(MODELS), default="anthropic", help="the API the agent speaks")
    ap.add_argument("--limits", action="store_true", help="the agent has every denial-of-wallet limit on")
    ap.add_argument("--refused", action="store_true", help="every measured call refused (429) by a rate limit")
    ap.add_argument("--turns", type=int, default=0, help="send a tool loop this many rounds in (~1 kB a round)")
    ap.add_argument("--stream", action="store_true", help="stream the answers")
    ap.add_argument("--profile", action="store_true", help="run the measured calls under cProfile")
    ap.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumtime, ncalls)")
    ap.add_argument("--top", type=int, default=30, help="functions to print with --profile")
    args = ap.parse_args()
    port = free_port()
    sim = start_sim(port)
    try:
        import uvloop

        uvloop.install()
        asyncio.run(run(args, port))
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
