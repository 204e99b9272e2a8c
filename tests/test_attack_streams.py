"""Streams against the bill: what an interrupted stream is booked at.

A stream the provider cut (or the agent left) is booked at the input the provider reported plus every
output token the call was allowed: the most the provider can bill. The input side comes from
message_start, whose usage need not say where or how fast the call runs — `speed` and `inference_geo`
are documented on the final usage (platform.claude.com …/build-with-claude/fast-mode, "Pricing": fast
mode is billed at its own rates, and …/about-claude/pricing, "Data residency pricing": US-only inference
1.1x every token price). Priced at the standard rates because message_start did not repeat them, such a
call was booked below what the provider bills for it: half the bill in fast mode, 10 % under in a
workspace running "us"."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest
import transport_kit
from test_attack_modifiers import documented_bill
from test_interruptions import no_open_calls
from transport_kit import Loop, Origin

loop = transport_kit.loop  # module-scoped fixture
INPUT = 1000


def opening(msg_id: str, model: str, usage: dict[str, Any], text: str) -> list[tuple[str, dict[str, Any]]]:
    """A Messages stream's first events: message_start with `usage`, one text block started, one delta."""
    message = {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": usage}  # fmt: skip
    block = {"type": "text", "text": ""}
    delta = {"type": "text_delta", "text": text}
    return [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
    ]


class CutAfterStart(Origin):
    """A provider whose Messages stream sends message_start (usage: input only, no speed or geography),
    one text delta, and then drops the connection."""

    async def answer(self, w: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str], body: bytes):
        usage = {"input_tokens": INPUT, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                 "output_tokens": 1, "service_tier": "standard"}  # fmt: skip
        events = opening("msg_cut", json.loads(body)["model"], usage, "Once upon")
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_cut\r\n\r\n")
        for name, data in events:
            w.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        await w.drain()
        return False  # close: the stream is cut (no message_delta, no message_stop)


@pytest.mark.parametrize(
    ("model", "asked", "workspace", "ran"),
    [
        ("claude-opus-4-8", {"speed": "fast"}, "global", {"speed": "fast"}),
        ("claude-sonnet-4-6", {}, "us", {"inference_geo": "us"}),
        ("claude-sonnet-4-6", {"inference_geo": "us"}, "global", {"inference_geo": "us"}),
    ],
    ids=["fast", "us-workspace", "us-asked"],
)
def test_a_cut_stream_is_booked_at_the_speed_and_geography_it_ran_at(
    gateway: Any, sim: Any, loop: Loop, model: str, asked: dict[str, str], workspace: str, ran: dict[str, str]
) -> None:
    with CutAfterStart(loop) as o:
        providers = {
            "anthropic": {"kind": "anthropic", "base_url": o.url, "api_key_env": "SIM_KEY", "timeout_s": 5,
                          "inference_geo": workspace},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
        }  # fmt: skip
        gw = gateway(providers=providers, agents={"fay": {"model": model, "daily_usd": 5, "max_tokens": 4096}})
        with pytest.raises(anthropic.APIError):
            with gw.anthropic("fay").messages.stream(
                model=model, max_tokens=500, messages=[{"role": "user", "content": "tell a story " * 100}], **asked
            ) as s:
                for _ in s:
                    pass
    (row,) = gw.ledger("fay")
    assert row["status"] == "cut" and row["reconcile"] == 1
    # the most the provider can bill: the input it reported, every output token allowed, where the call ran
    most = documented_bill(model, {"input_tokens": INPUT, "output_tokens": 500, **ran})
    assert Decimal(row["cost_nanos"]) / 10**9 >= most, (row["cost_usd"], most)
    assert row["cost_nanos"] <= row["worst_nanos"]


class FinishedButOpen(Origin):
    """A provider that sends a whole Messages stream, message_stop included, and keeps the connection open
    a while before ending the body (the last chunk comes late)."""

    async def answer(self, w: asyncio.StreamWriter, method: str, target: str, headers: dict[str, str], body: bytes):
        usage = {"input_tokens": INPUT, "output_tokens": 1}
        events = [
            *opening("msg_done", json.loads(body)["model"], usage, "Done."),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 3},
                },
            ),  # fmt: skip
            ("message_stop", {"type": "message_stop"}),
        ]
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for name, data in events:
            frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            w.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        await w.drain()
        await asyncio.sleep(2)
        w.write(b"0\r\n\r\n")
        return False


def test_an_agent_leaving_after_the_final_event_is_booked_at_the_usage(gateway: Any, sim: Any, loop: Loop) -> None:
    """The agent read message_stop (its answer is whole) and closed the connection before the gateway's stream
    ended: the provider billed the reported usage, and that is what is booked — not every output token the
    call was allowed, flagged, as for a stream abandoned halfway."""
    with FinishedButOpen(loop) as o:
        providers = {
            "anthropic": {"kind": "anthropic", "base_url": o.url, "api_key_env": "SIM_KEY", "timeout_s": 5},
            "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
        }
        gw = gateway(providers=providers)
        body = {"model": "claude-haiku-4-5", "max_tokens": 2000, "stream": True,
                "messages": [{"role": "user", "content": "tell a story " * 100}]}  # fmt: skip
        headers = {"x-api-key": gw.keys["alice"], "anthropic-version": "2023-06-01"}
        with httpx.stream("POST", gw.url + "/v1/messages", json=body, headers=headers, timeout=10) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: message_stop"):
                    break  # leaving the block closes the connection
        no_open_calls(gw)  # settled (the gateway saw the agent leave before the provider's stream ended)
    (row,) = gw.ledger("alice")
    # platform.claude.com/docs/en/about-claude/pricing: Claude Haiku 4.5, $1 / MTok input, $5 / MTok output
    assert Decimal(row["cost_nanos"]) / 10**9 == (INPUT * 1 + 3 * 5) / Decimal(10**6)
    assert row["status"] == "ok" and row["reconcile"] == 0
