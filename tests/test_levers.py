"""The lever protocol: the pipeline runs `levers.LEVERS` in order, and any lever can be left out — its
effect disappears, every other lever's stays — or deleted (its module and its line) with the rest of the
gateway importable and answering calls."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anthropic
import orjson
import pytest

import paymaster
from paymaster.levers import LEVERS

LADDER = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}
LONG = "The quarterly report covers revenue, costs and the outlook for every region. " * 400
AGENTS = {
    "alice": {"model": "claude-haiku-4-5", "response_cache": {"enabled": True, "ttl_s": 60}, "compression": {}},
    "ava": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 1000},
}


def output_shows(gw: Any, sim: Any) -> bool:
    """An OpenAI call naming no max_tokens gets the agent's ceiling, said in a header."""
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}]
    )
    raw.parse()  # answered either way: without the lever the pipeline still bounds the call
    sent = sim.requests[-1]["body"]
    assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) == 2048
    return raw.headers.get("x-paymaster-max-tokens") == "2048; set to the ceiling"


def compression_shows(gw: Any, sim: Any) -> bool:
    """A large JSON tool result reaches the provider pruned."""
    result = (
        '{"request_id": "r1", "items": [' + ", ".join(f'{{"title": "t{i}", "etag": "e{i}"}}' for i in range(80)) + "]}"
    )
    gw.anthropic().messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        tools=[{"name": "search", "input_schema": {"type": "object"}}],
        messages=[
            {"role": "user", "content": "find"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": result}]},
        ],
    )
    sent = sim.requests[-1]["body"]["messages"][2]["content"][0]["content"]
    return sent != result and "more items omitted" in sent


def routing_shows(gw: Any, sim: Any) -> bool:
    """`model: auto` runs on a tier of the agent's ladder."""
    try:
        raw = gw.anthropic("ava").messages.with_raw_response.create(
            model="auto", max_tokens=20, messages=[{"role": "user", "content": "What is 2+2?"}]
        )
    except anthropic.BadRequestError as e:  # no router: a clear 400 in the caller's shape, nothing spent
        assert "routing" in e.message
        return False
    return raw.headers["x-paymaster-model"] in LADDER.values()


def caching_shows(gw: Any, sim: Any) -> bool:
    """A long system prompt gets a cache breakpoint."""
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=20, system=LONG, messages=[{"role": "user", "content": "q"}]
    )
    system = sim.requests[-1]["body"]["system"]
    return isinstance(system, list) and any("cache_control" in block for block in system)


def response_cache_shows(gw: Any, sim: Any) -> bool:
    """A repeated deterministic request is answered by the gateway, at no cost."""
    call = dict(
        model="claude-haiku-4-5",
        max_tokens=30,
        messages=[{"role": "user", "content": "the same question"}],
        extra_body={"temperature": 0},
    )
    first = gw.anthropic().messages.with_raw_response.create(**call)
    sent = len(sim.requests)
    again = gw.anthropic().messages.with_raw_response.create(**call)
    assert again.parse().content[0].text == first.parse().content[0].text
    hit = again.headers.get("x-paymaster-cache") == "hit"
    assert (len(sim.requests) == sent) is hit
    return hit


def batch_shows(gw: Any, sim: Any) -> bool:
    """A call sent with x-paymaster-defer is queued for the batch API and answered 202 with a job id."""
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "later"}],
        extra_headers={"x-paymaster-defer": "24h"},
    )  # fmt: skip
    assert raw.status_code in (200, 202)  # without the lever the header is ignored: answered in real time
    return raw.status_code == 202 and raw.headers["x-paymaster-job-id"].startswith("pm_")


def cascade_shows(gw: Any, sim: Any) -> bool:
    """A task type in routing.cascade is answered by the light tier first, its answer checked."""
    tool = {
        "name": "f",
        "description": "d",
        "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    }
    raw = gw.anthropic("ava").messages.with_raw_response.create(
        model="auto",
        max_tokens=50,
        messages=[{"role": "user", "content": "fill it"}],
        tools=[tool],
        tool_choice={"type": "any"},
        extra_headers={"x-paymaster-task": "extraction"},
    )
    raw.parse()
    return raw.headers.get("x-paymaster-cascade") == f"{LADDER['light']} passed"


SHOWS: dict[str, Callable[[Any, Any], bool]] = {
    "cascade": cascade_shows,
    "output": output_shows,
    "compression": compression_shows,
    "routing": routing_shows,
    "caching": caching_shows,
    "response_cache": response_cache_shows,
    "batch": batch_shows,
}


def test_every_lever_in_the_list_has_a_check_here():
    assert set(SHOWS) == set(LEVERS)


@pytest.mark.parametrize("left_out", [None, *LEVERS])
def test_each_lever_left_out_leaves_the_others_working(gateway, sim, left_out):
    names = tuple(n for n in LEVERS if n != left_out)
    gw = gateway(agents=AGENTS, levers=names, routing={"cascade": ["extraction"]})
    assert [lever.name for lever in gw.gw.levers] == list(names)
    shown = {name: SHOWS[name](gw, sim) for name in LEVERS}
    assert shown == {name: name != left_out for name in LEVERS}
    rows = gw.ledger()
    assert rows and all(r["cost_nanos"] <= r["worst_nanos"] for r in rows if r["status"] == "ok")


DELETED = """
import importlib, pkgutil, sys
sys.path.insert(0, {root!r})
import httpx2
import paymaster
assert paymaster.__file__.startswith({root!r}), paymaster.__file__
for m in pkgutil.walk_packages(paymaster.__path__, "paymaster."):
    if m.name != "paymaster.asgi" and not m.name.endswith("__main__"):  # these run something on import
        importlib.import_module(m.name)  # nothing else imports the deleted lever
from paymaster.app import Gateway
from paymaster.config import hash_key, parse
from paymaster.levers import LEVERS
from paymaster.server import ServerThread
from paymaster.sim import Simulator

assert {gone!r} not in LEVERS
sim = Simulator(api_keys={{"sk"}})
with ServerThread(sim.app) as up:
    config = parse({{
        "ledger": {ledger!r},
        "providers": {{"anthropic": {{"kind": "anthropic", "base_url": up.url, "api_key_env": "K"}}}},
        "agents": {{"alice": {{"model": "claude-haiku-4-5", "key_sha256": hash_key("pm-a"), "daily_usd": 1}}}},
    }}, env={{"K": "sk"}})
    gw = Gateway(config)
    assert [lever.name for lever in gw.levers] == list(LEVERS)
    with ServerThread(gw) as srv:
        ask = {{"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{{"role": "user", "content": "hi"}}]}}
        h = {{"x-api-key": "pm-a", "anthropic-version": "2023-06-01"}}
        r = httpx2.post(srv.url + "/v1/messages", headers=h, json=ask)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["output_tokens"] > 0 and float(r.headers["x-paymaster-cost-usd"]) > 0
print("ok")
"""


def test_deleting_a_levers_module_and_its_line_leaves_the_gateway_working(tmp_path: Path):
    """For each lever, a copy of the package without its module and its line: every other module imports,
    and the gateway answers a call (the copies run side by side, one process each)."""
    src = Path(paymaster.__file__).parent
    runs = {}
    for gone in LEVERS:
        copy = tmp_path / gone
        shutil.copytree(src, copy / "paymaster", ignore=shutil.ignore_patterns("__pycache__"))
        levers = copy / "paymaster" / "levers"
        module = levers / gone  # a lever is a module or a package
        shutil.rmtree(module) if module.is_dir() else module.with_suffix(".py").unlink()
        listing = (levers / "__init__.py").read_text()
        line = next(ln for ln in listing.splitlines(keepends=True) if ln.strip().startswith(f'"{gone}",'))
        (levers / "__init__.py").write_text(listing.replace(line, ""))
        script = textwrap.dedent(DELETED.format(root=str(copy), gone=gone, ledger=str(copy / "ledger.db")))
        runs[gone] = subprocess.Popen([sys.executable, "-c", script], stdout=PIPE, stderr=PIPE, text=True)
    for gone, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0 and out.strip().endswith("ok"), f"without {gone}: {err[-3000:]}"


class Faulty:
    """A lever added by one line, whose after-settlement hook breaks."""

    name = "faulty"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def apply(self, call: Any, ctx: Any) -> None:
        call.notes["x-paymaster-faulty"] = "applied"
        ctx.state[self.name] = call.model

    def settled(self, call: Any, outcome: Any, ctx: Any) -> None:
        self.seen.append(f"{ctx.state[self.name]} {outcome.status} {outcome.cost_nanos}")
        raise RuntimeError("a lever's bug")


def test_a_new_lever_plugs_in_by_name_and_its_failing_hook_never_loses_a_booking(gateway, monkeypatch):
    faulty = Faulty()
    module = types.ModuleType("paymaster.levers.faulty")
    module.make = lambda config, gateway: faulty  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "paymaster.levers.faulty", module)
    gw = gateway(levers=(*LEVERS, "faulty"))
    raw = gw.anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-paymaster-faulty"] == "applied" and raw.parse().usage.output_tokens > 0
    (row,) = gw.ledger("alice")
    assert row["status"] == "ok" and row["cost_nanos"] > 0
    assert faulty.seen == [f"claude-haiku-4-5 ok {row['cost_nanos']}"]
    assert gw.admin("/admin/agents/alice").json()["windows"][0]["reserved_usd"] == "0.000000"


class Asker:
    """A lever that calls a model through the gateway itself (as summarisation does)."""

    name = "asker"

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []

    async def apply(self, call: Any, ctx: Any) -> None:
        if call.task == "compression":  # its own call passes through the levers too
            return
        ask = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "sum up"}]}
        self.replies.append(await ctx.gateway.ask(ctx.agent, "anthropic", ask, "compression"))


def test_a_lever_calls_a_model_through_the_gateway_on_the_agents_budget(gateway, monkeypatch):
    asker = Asker()
    module = types.ModuleType("paymaster.levers.asker")
    module.make = lambda config, gateway: asker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "paymaster.levers.asker", module)
    gw = gateway(
        levers=("asker", *LEVERS), agents={"alice": {"model": "claude-haiku-4-5", "tasks": {"compression": {}}}}
    )
    gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    ((status, body),) = asker.replies
    assert status == 200 and orjson.loads(body)["type"] == "message"
    rows = gw.ledger("alice")
    assert sorted(r["task"] for r in rows) == ["", "compression"] and all(r["cost_nanos"] > 0 for r in rows)
    spent = gw.admin("/admin/agents/alice").json()["windows"][0]["spent_usd"]
    assert Decimal(spent) * 10**9 >= sum(r["cost_nanos"] for r in rows)
