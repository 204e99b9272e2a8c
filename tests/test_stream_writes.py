"""A streamed answer's last events leave with the cost line, in one send: the agent is woken once at the end of
a stream, not once for the final events and again for the cost line (exchange.py). The gateway is called as an
ASGI app against the simulator, and what it sends is recorded message by message."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import PROVIDER_KEY, fleet

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.sim import Simulator

ASKS = {
    "anthropic": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64}, "alice"),
    "openai": ("/v1/chat/completions", {"model": "gpt-4.1-mini", "max_tokens": 64}, "olivia"),
}


async def streamed(gw: Gateway, api: str, key: str) -> list[dict[str, Any]]:
    path, fields, _ = ASKS[api]
    body = orjson.dumps({**fields, "stream": True, "messages": [{"role": "user", "content": "hi [sim:tokens=30]"}]})
    auth = [(b"x-api-key", key.encode())] if api == "anthropic" else [(b"authorization", b"Bearer " + key.encode())]
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *auth]
    sent: list[dict[str, Any]] = []
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the agent stays connected
        return {"type": "http.disconnect"}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    await gw({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send)
    return sent


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_the_final_event_and_the_cost_line_leave_in_one_send(sim: Simulator, tmp_path: Path, api: str) -> None:
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob")}
    gw = Gateway(parse(fleet(sim.url, keys, tmp_path), env={"SIM_KEY": PROVIDER_KEY}))

    async def run() -> list[dict[str, Any]]:
        await gw.start()
        try:
            return await streamed(gw, api, keys[ASKS[api][2]])
        finally:
            await gw.stop()

    sent = asyncio.run(run())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = [m["body"] for m in sent[1:]]
    assert all(m["more_body"] for m in sent[1:-1]) and not sent[-1]["more_body"]
    final = b"event: message_stop" if api == "anthropic" else b"data: [DONE]"
    assert final in bodies[-1] and b": paymaster cost_usd=" in bodies[-1]  # together, in the last send
    assert bodies[-1].index(final) < bodies[-1].index(b": paymaster cost_usd=")
    assert all(final not in b for b in bodies[:-1])  # nothing of the end went out before
