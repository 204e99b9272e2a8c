"""`paymaster demo`: the reference content pipeline, before and after, then the gateway left up.

A provider simulator (over HTTPS, with a CA made at start) and two gateways start on loopback, each
with its own SQLite ledger in a temp dir. The same five-agent pipeline (classify → research → outline
→ draft → validate) runs the same tasks through the official `anthropic` SDK twice:

- before: every step on the most expensive model (claude-opus-4-8), no caching, the five web-search
  results sent whole, prose answers, no caps;
- after: every lever on — classify on the light tier, research with its five search results pruned
  (compression), outline with its system prompt cached, draft on the heavy tier with structured output,
  validate on the light tier with structured output; $2/day caps.

It prints the cost per task of each step and in all, the reduction, and the saving per lever (the
before run is the measured counterfactual: savings.py's walk over each step splits before − after
exactly), beside the published reference for this pipeline ($0.082 → $0.026 per task, 68 %). Then it
keeps the "after" gateway (admin API, dashboard, event stream) up until Ctrl-C, or exits with `--exit`.

What is simulated: the providers (their wire formats, usage and prompt caching, from `sim/`), the
text (words of one token each), and the token shapes of each step (`STEPS`: prompt, search-result and
answer sizes, chosen so that the before run costs what the reference's does). Prices are genai-prices'
current rates. A structured answer is as long as the simulator's minimal example of its schema, so the
draft's schema asks for the reference's number of sections.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import yaml

from . import savings
from .app import Gateway
from .call import Usage
from .config import ConfigError, load, parse
from .pricing import PriceTable, from_nanos, usd_str
from .report import render
from .server import ServerThread
from .sim import Simulator
from .sim.text import words

LIGHT, STANDARD, HEAVY = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8"
LADDER = {"light": LIGHT, "standard": STANDARD, "heavy": HEAVY}
REFERENCE_BEFORE, REFERENCE_AFTER = Decimal("0.082"), Decimal("0.026")  # USD per task, the published figures
REFERENCE_REDUCTION = 68  # percent


@dataclass(frozen=True)
class Step:
    agent: str
    task: str
    tier: str  # after: the tier its task type runs on
    prompt: int  # tokens of the user's request
    answer: int  # tokens of the prose answer
    system: int = 0  # tokens of a system prompt shared by every task (the outline's style guide)
    searches: int = 0  # web-search results sent back as tool results
    structured: bool = False  # after: the task type has a schema


STEPS = (
    Step("classifier", "classify", "light", prompt=300, answer=100),
    Step("researcher", "research", "standard", prompt=190, answer=160, searches=5),
    Step("outliner", "outline", "standard", prompt=200, answer=180, system=2000),
    Step("drafter", "draft", "heavy", prompt=600, answer=800, structured=True),
    Step("validator", "validate", "light", prompt=900, answer=200, structured=True),
)
TOPICS = (
    "solar storage",
    "urban beekeeping",
    "sourdough science",
    "deep-sea cables",
    "rust in embedded systems",
    "tidal power",
    "coral restoration",
    "quantum sensors",
    "bicycle logistics",
    "vertical farms",
)
SECTIONS = 58  # the draft's schema asks for this many sections: the simulator's answer is ~400 tokens
SCHEMAS = {
    "draft": {
        "type": "object",
        "required": ["title", "sections"],
        "properties": {
            "title": {"type": "string"},
            "sections": {
                "type": "array",
                "minItems": SECTIONS,
                "items": {
                    "type": "object",
                    "required": ["heading", "text"],
                    "properties": {"heading": {"type": "string"}, "text": {"type": "string"}},
                },
            },
        },
    },
    "validate": {
        "type": "object",
        "required": ["verdict", "issues"],
        "properties": {
            "verdict": {"enum": ["pass", "revise"]},
            "issues": {"type": "array", "minItems": 3, "items": {"type": "string"}},
        },
    },
}
SEARCH_TOOL = {
    "name": "web_search",
    "description": "Search the web; returns the top results as JSON.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
PRUNE = {"prune": {"tools": {"web_search": {"keep": ["title", "url", "snippet"]}}}}  # compression's keep-rules


def search_result(seed: int, topic: str) -> str:
    """One search result as a search API returns it: what an agent needs (title, url, snippet) and what it
    does not (the page's text, crawl metadata)."""
    return orjson.dumps(
        {
            "title": f"{topic}: {words(seed, 8)}",
            "url": f"https://example.org/{topic.replace(' ', '-')}/{seed}",
            "snippet": words(seed + 1, 140),
            "page_content": words(seed + 2, 800),
            "metadata": {"crawled_at": "2026-11-30T08:00:00Z", "language": "en", "rank": seed % 10, "cache": "hit"},
            "html_length": 48_213,
        }
    ).decode()


def request(step: Step, topic: str, n: int) -> dict[str, Any]:
    """The step's request for task `n` (the same in both runs but for the model)."""
    seed = 1000 * n + STEPS.index(step) * 100
    said = f"[sim:tokens={step.answer}]"
    ask = f"{step.task.capitalize()} for the article on {topic}. {words(seed, step.prompt - 12)} {said}"
    body: dict[str, Any] = {"max_tokens": 1024, "messages": [{"role": "user", "content": ask}]}
    if step.system:
        body["system"] = "House style guide. " + words(7, step.system - 4)
    if step.searches:
        uses = [
            {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": "web_search", "input": {"query": f"{topic} {i}"}}
            for i in range(step.searches)
        ]
        results = [
            {"type": "tool_result", "tool_use_id": u["id"], "content": search_result(seed + 10 * i, topic)}
            for i, u in enumerate(uses)
        ]
        body["tools"] = [SEARCH_TOOL]
        body["messages"] = [
            {"role": "user", "content": f"Research {topic} for an article: search the web."},
            {"role": "assistant", "content": uses},
            {"role": "user", "content": [*results, {"type": "text", "text": ask}]},
        ]
    return body


def fleet(sim_url: str, ca_bundle: str, *, after: bool, compression: bool) -> dict[str, Any]:
    agents: dict[str, Any] = {}
    for s in STEPS:
        key = {"key_env": f"PAYMASTER_DEMO_KEY_{s.agent.upper()}"}
        if after:
            agents[s.agent] = {**key, "model": "auto", "tiers": LADDER, "daily_usd": 2, "monthly_usd": 60}
            if s.searches and compression:
                agents[s.agent]["compression"] = PRUNE
        else:
            agents[s.agent] = {**key, "model": HEAVY, "caching": {"enabled": False}}
    raw: dict[str, Any] = {
        "timezone": "UTC",
        "ledger": "after.db" if after else "before.db",
        "observability": {"access_log": "access.log"},  # one JSON line per call, beside the ledger (not the terminal)
        "admin": {"key_env": "PAYMASTER_DEMO_ADMIN_KEY"},
        "defaults": {"max_tokens": 1024},
        "providers": {
            "anthropic": {
                "kind": "anthropic",
                "base_url": sim_url,
                "api_key_env": "PAYMASTER_DEMO_PROVIDER_KEY",
                "ca_bundle": ca_bundle,
            }
        },
        "agents": agents,
    }
    if after:
        raw["fleet"] = {"daily_usd": 50, "monthly_usd": 500}
        raw["tasks"] = {
            s.task: {"tier": s.tier, **({"schema": SCHEMAS[s.task]} if s.structured else {})} for s in STEPS
        }
    return raw


def compression_available() -> bool:
    """Whether this build has the compression lever (levers/compression, `agents.<name>.compression`)."""
    probe = {
        "ledger": ":memory:",
        "providers": {"anthropic": {"kind": "anthropic", "api_key_env": "K"}},
        "agents": {"a": {"model": LIGHT, "key_sha256": "0" * 64, "compression": PRUNE}},
    }
    try:
        parse(probe, env={"K": "k"})
    except ConfigError:
        return False
    return True


@dataclass
class Run:
    """One run's ledger rows per step, and what they cost."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # step task → rows in task order

    def cost(self, task: str | None = None) -> int:
        steps = [task] if task else list(self.rows)
        return sum(r["cost_nanos"] for t in steps for r in self.rows[t])


@dataclass
class Result:
    tasks: int
    before: Run
    after: Run
    by_lever: dict[str, int]  # nano-dollars over all tasks; sums exactly to before − after
    compression: bool

    def per_task(self, nanos: int) -> Decimal:
        return from_nanos(nanos) / self.tasks

    @property
    def reduction(self) -> Decimal:
        b, a = self.before.cost(), self.after.cost()
        return Decimal(100 * (b - a)) / b if b else Decimal(0)


def attribute(step: Step, before: dict[str, Any], after: dict[str, Any], price: savings.Price) -> savings.Attribution:
    """Split one step's before − after by lever: the before run is the measured counterfactual. Output
    control is credited the answer tokens it saved (and the input its schema added), compression the
    prompt tokens it removed, routing the move off the before model, caching the cache reads and writes;
    input the gateway adds to every call (the cache-isolation tag) goes with caching."""
    billed = Usage(
        after["input_tokens"],
        after["output_tokens"],
        after["cache_read_tokens"],
        after["cache_write_tokens"],
        after["cache_write_1h_tokens"],
    )
    extra_in = before["input_tokens"] - after["input_tokens"]
    changes = [savings.Change("output", output_tokens_removed=before["output_tokens"] - after["output_tokens"])]
    input_lever = "compression" if step.searches else "output" if step.structured else "caching"
    changes.append(savings.Change(input_lever, input_tokens_removed=extra_in))
    if after["model"] != before["model"]:
        changes.append(savings.Change("routing", model=before["model"]))
    changes.append(savings.Change("caching", uncached=True))
    return savings.attribute(price, savings.Shape(after["model"], billed), after["cost_nanos"], changes)


def run(
    tasks: int = 6,
    keep: bool = True,
    out: Callable[[str], None] = print,
    then: Callable[[str, str], None] | None = None,
    folder: str | Path | None = None,
) -> Result:
    """Both runs; prints the comparison; with `keep`, serves the after gateway until Ctrl-C; `then(url,
    admin_key)` is called while the after gateway still serves (scripts/dashboard_screenshots.py).

    The ledgers (before.db, after.db) and fleet files are written to `folder`, by default a new temporary
    folder that is left in place for `paymaster report`. Every server started here is stopped on the way out,
    a Ctrl-C (KeyboardInterrupt) included; a Ctrl-C while serving ends the demo normally."""
    env = {f"PAYMASTER_DEMO_KEY_{s.agent.upper()}": "pm-" + secrets.token_urlsafe(16) for s in STEPS}
    env["PAYMASTER_DEMO_ADMIN_KEY"] = admin_key = "pm-admin-" + secrets.token_urlsafe(16)
    env["PAYMASTER_DEMO_PROVIDER_KEY"] = provider_key = "sk-sim-" + secrets.token_urlsafe(8)
    os.environ.update(env)
    compression = compression_available()
    tmp = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="paymaster-demo-"))
    gateways: list[ServerThread] = []
    try:
        sim = Simulator(latency_ms=2.0, api_keys={provider_key})
        with ServerThread(sim.app, tls=True) as sim_srv:  # the real path: the provider hop over HTTPS
            assert sim_srv.tls is not None
            ca = str(sim_srv.tls.ca_pem)
            runs = []
            for after in (False, True):
                path = tmp / ("after.yaml" if after else "before.yaml")
                path.write_text(yaml.safe_dump(fleet(sim_srv.url, ca, after=after, compression=compression)))
                srv = ServerThread(Gateway(load(path)))
                gateways.append(srv)
                srv.start()
                runs.append(pipeline(srv.url, env, tasks, after, admin_key))
                if not after:
                    srv.stop()
            price = savings.pricer(lambda m: PriceTable().rates(m, "anthropic"))
            by_lever: dict[str, int] = {}
            for s in STEPS:
                for b, a in zip(runs[0].rows[s.task], runs[1].rows[s.task], strict=True):
                    savings.add(by_lever, attribute(s, b, a, price).by_lever)
            result = Result(tasks, runs[0], runs[1], by_lever, compression)
            out(table(result))
            report = f"`paymaster report --ledger {tmp / 'after.db'}` (or before.db; --by agent,day)"
            out(f"\nledgers kept in {tmp}: {report}")
            if keep or then is not None:
                out(f"gateway (after) on {srv.url}: admin API {srv.url}/admin/agents, events {srv.url}/admin/events")
                out(f"  dashboard {srv.url}/dashboard; admin key: {admin_key}")
            if then is not None:
                then(srv.url, admin_key)
            if keep:
                try:  # from the moment it says so, Ctrl-C ends the demo normally
                    out("serving until Ctrl-C (`paymaster demo --exit` runs once and stops)")
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    finally:
        for g in gateways:
            if g.thread.ident is not None:  # started
                g.stop()
    return result


def pipeline(url: str, env: dict[str, str], tasks: int, after: bool, admin_key: str) -> Run:
    with httpx2.Client(timeout=600) as http:  # one plain-HTTP client for every agent's SDK (the gateway is on loopback)
        clients = {
            s.agent: anthropic.Anthropic(
                base_url=url, api_key=env[f"PAYMASTER_DEMO_KEY_{s.agent.upper()}"], max_retries=0, http_client=http
            )
            for s in STEPS
        }
        for n in range(tasks):
            topic = TOPICS[n % len(TOPICS)]
            for s in STEPS:
                body = request(s, topic, n)
                headers = {"x-paymaster-task": s.task} if after else {}
                clients[s.agent].messages.create(model="auto" if after else HEAVY, extra_headers=headers, **body)
        run = Run()
        for s in STEPS:
            answer = http.get(f"{url}/admin/ledger", params={"agent": s.agent, "limit": 1000},
                              headers={"authorization": f"Bearer {admin_key}"})  # fmt: skip
            run.rows[s.task] = answer.json()["data"]
    return run


def table(r: Result) -> str:
    rows = []
    for s in STEPS:
        rows.append(
            [
                s.task,
                r.before.rows[s.task][0]["model"],
                usd_str(r.per_task(r.before.cost(s.task))),
                r.after.rows[s.task][0]["model"],
                usd_str(r.per_task(r.after.cost(s.task))),
                _what(s, r.compression),
            ]
        )
    b, a = r.per_task(r.before.cost()), r.per_task(r.after.cost())
    rows.append(["per task", "", usd_str(b), "", usd_str(a), f"{r.reduction:.1f} % less"])
    lines = [
        f"Reference content pipeline, {r.tasks} tasks, each run through the gateway twice (cost per task, USD):",
        "",
        render(rows, ("step", "before: model", "before $", "after: model", "after $", "after: levers")),
        "",
        f"published reference:  before ~${REFERENCE_BEFORE}  after ~${REFERENCE_AFTER}  ({REFERENCE_REDUCTION} % less)",
        f"this run:             before ${b:.4f}  after ${a:.4f}  ({r.reduction:.1f} % less)",
        "",
        "saved per task, by lever (sums exactly to before − after):",
    ]
    lever_rows = [[k, usd_str(r.per_task(r.by_lever[k]))] for k in savings.ORDER if r.by_lever.get(k)]
    lever_rows.append(["total", usd_str(r.per_task(sum(r.by_lever.values())))])
    lines.append(render(lever_rows, ("lever", "$ per task")))
    if not r.compression:
        lines.append(
            "\nTODO: this build has no compression lever (levers/compression): the research step's five search "
            "results were sent unpruned, so its saving is missing from the after figure."
        )
    return "\n".join(lines)


def _what(s: Step, compression: bool) -> str:
    out = [f"{s.tier} tier"]
    if s.searches:
        out.append(f"{s.searches} search results pruned" if compression else "pruning: TODO (no compression lever)")
    if s.system:
        out.append("system prompt cached")
    if s.structured:
        out.append("structured output")
    return ", ".join(out)
