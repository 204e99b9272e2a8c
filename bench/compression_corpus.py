"""A corpus of agent traces for the compression bench: realistic tool-result shapes and long sessions,
each with the facts an answer needs (strings that must still be in the request after compression).

    python bench/compression_corpus.py [--out corpus.jsonl] [--seed 7]

Trace kinds (both APIs; Anthropic tool_result blocks and OpenAI tool messages):
- search:  web-search API JSON (25 results with request ids, pagination, links, thumbnails, nulls,
           tracking parameters, the same disclaimer on every item) — questions on the first results
- html:    scraped pages (product page, news article): scripts, styles, nav, cookie banners, footers
- rows:    database query results (200 order rows of 18 columns, many null) — a per-tool keep-rule
           keeps the columns the agent's questions use
- code:    code-search results (GitHub-style: repository objects full of URL templates, text matches)
- blobs:   an attachments API answer with base64 file bodies and a JSON-encoded string payload
- session: a 40,000-token multi-turn support session with tool calls; facts stated in early turns
All generated from a seed: the same corpus on every run. Facts are values present in the raw trace.
"""

from __future__ import annotations

import argparse
import base64
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

WORDS = (
    "widget gadget sensor module panel bracket valve motor cable housing filter pump relay switch adapter "
    "the a of and to in for with on by from quality delivery support standard premium compact durable light "
    "steel aluminium carbon ceramic industrial home office outdoor indoor wireless smart energy efficient"
).split()
DISCLAIMER = "Results are provided as-is; prices and availability may change without notice. See terms."


@dataclass
class Trace:
    name: str
    kind: str
    api: str
    body: dict[str, Any]
    facts: list[str] = field(default_factory=list)
    tool_rules: dict[str, Any] = field(default_factory=dict)  # fleet.yaml prune.tools for this agent


def sentence(r: random.Random, n: int = 12) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n)).capitalize() + "."


def search_json(r: random.Random, topic: str) -> tuple[dict[str, Any], list[str]]:
    items = []
    facts = []
    for i in range(25):
        title = f"{topic.title()} {r.choice(['Guide', 'Review', 'Specs', 'Deals', 'Forum'])} #{r.randint(100, 999)}"
        url = f"https://www.{r.choice(['shop', 'review', 'tech', 'forum'])}{r.randint(1, 99)}.com/{topic}/{i}"
        price = f"${r.randint(20, 900)}.{r.randint(10, 99)}"
        items.append(
            {
                "position": i + 1,
                "title": title,
                "link": url,
                "displayed_link": url.replace("https://", ""),
                "tracking_url": url + f"?utm_source=api&utm_medium=search&sid={r.getrandbits(64):x}",
                "snippet": f"{sentence(r, 18)} Price from {price}. {sentence(r, 10)}",
                "thumbnail": None if i % 3 else f"https://img.example.com/t/{r.getrandbits(48):x}.jpg",
                "favicon": f"https://fav.example.com/{r.getrandbits(32):x}.ico",
                "date": None,
                "rich_snippet": {},
                "sitelinks": [],
                "cached_page_link": f"https://cache.example.com/{r.getrandbits(64):x}",
                "disclaimer": DISCLAIMER,
                "_links": {"self": {"href": f"https://api.search.example/v2/r/{r.getrandbits(40):x}"}},
            }
        )
        if i < 3:
            facts += [title, url, price]
    return (
        {
            "search_metadata": {
                "id": f"{r.getrandbits(96):x}",
                "status": "Success",
                "request_id": f"req_{r.getrandbits(64):x}",
                "created_at": "2026-12-01 10:00:00 UTC",
                "processed_at": "2026-12-01 10:00:01 UTC",
                "total_time_taken": 1.21,
            },
            "search_parameters": {"q": topic, "engine": "web", "gl": "us", "hl": "en", "device": "desktop"},
            "organic_results": items,
            "pagination": {"current": 1, "next": "https://api.search.example/v2/search?start=25", "other_pages": {}},
            "etag": f'W/"{r.getrandbits(64):x}"',
        },
        facts,
    )


def product_page(r: random.Random, name: str) -> tuple[str, list[str]]:
    price = f"${r.randint(50, 2000)}.{r.randint(10, 99)}"
    weight = f"{r.randint(1, 30)}.{r.randint(0, 9)} kg"
    sku = f"SKU-{r.randint(10000, 99999)}"
    scripts = "".join(
        f"<script>window.dataLayer=window.dataLayer||[];dataLayer.push({{'event':'v{i}','id':'{r.getrandbits(64):x}'}});"
        + "function t(a,b){return a.map(function(x){return x*b})}" * 4
        + "</script>"
        for i in range(12)
    )
    style = (
        "<style>" + "".join(f".c{i}{{margin:{i}px;padding:{i % 7}px;color:#{i:06x}}}" for i in range(300)) + "</style>"
    )
    nav = "<nav><ul>" + "".join(f'<li><a href="/cat/{i}">Category {i}</a></li>' for i in range(40)) + "</ul></nav>"
    cookie = '<div class="cookie">We use cookies to improve your experience on this site. Accept all cookies?</div>'
    specs = "".join(
        f"<tr><td>{k}</td><td>{v}</td></tr>"
        for k, v in [("Weight", weight), ("SKU", sku), ("Warranty", f"{r.randint(1, 5)} years")]
        + [(f"Attribute {i}", sentence(r, 3)) for i in range(8)]
    )
    reviews = "".join(
        f'<div class="review"><span class="stars">{r.randint(1, 5)} stars</span><p>{sentence(r, 25)}</p></div>'
        for _ in range(6)
    )
    footer = "<footer>" + "".join(f'<a href="/l/{i}">Link {i}</a>' for i in range(30)) + " © 2026 Shop Inc.</footer>"
    html = (
        f"<!DOCTYPE html><html><head><title>{name} | Shop</title><meta charset='utf-8'>{style}{scripts}</head>"
        f"<body>{cookie}<header>{nav}</header><main><h1>{name}</h1><p class='price'>Now {price}</p>"
        f"<p>{sentence(r, 40)}</p><h2>Specifications</h2><table>{specs}</table><h2>Reviews</h2>{reviews}"
        f"</main>{footer}</body></html>"
    )
    return html, [name, price, weight, sku]


def article_page(r: random.Random) -> tuple[str, list[str]]:
    date = f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
    who = r.choice(["Dr. Ana Ruiz", "Tomás Berg", "Priya Natarajan", "Kwame Mensah"])
    figure = f"{r.randint(10, 95)}.{r.randint(0, 9)}%"
    body = "".join(f"<p>{sentence(r, 30)}</p>" for _ in range(10))
    ads = "".join(
        f'<aside class="ad"><img src="/ad{i}.png" alt="">Sponsored: {sentence(r, 8)}</aside>' for i in range(5)
    )
    script = "<script>" + "var x=" + orjson.dumps({f"k{i}": i for i in range(400)}).decode() + "</script>"
    html = (
        f"<html><head><title>Market report</title>{script}</head>"
        "<body><header><nav>Home | World | Business</nav></header>"
        f"<article><h1>Grid storage demand rises</h1><p class='byline'>By {who}, {date}</p>"
        f"<p>Demand grew {figure} year on year, the report says.</p>{body}</article>{ads}"
        f"<footer>Subscribe to our newsletter. © 2026 News Corp.</footer></body></html>"
    )
    return html, [who, date, figure]


def order_rows(r: random.Random) -> tuple[dict[str, Any], list[str]]:
    rows = []
    for i in range(200):
        rows.append(
            {
                "id": 10_000 + i,
                "customer_id": r.randint(1, 5000),
                "status": r.choice(["shipped", "pending", "cancelled", "delivered"]),
                "total": f"{r.randint(5, 3000)}.{r.randint(10, 99)}",
                "currency": "USD",
                "created_at": f"2026-11-{r.randint(1, 30):02d}T{r.randint(0, 23):02d}:00:00Z",
                "updated_at": f"2026-11-{r.randint(1, 30):02d}T{r.randint(0, 23):02d}:00:00Z",
                "coupon_code": None,
                "gift_message": None,
                "shipping_method": r.choice(["ground", "express", None]),
                "tracking_number": None if i % 2 else f"1Z{r.getrandbits(40):X}",
                "notes": "",
                "warehouse_id": r.randint(1, 9),
                "tax": f"{r.randint(0, 200)}.{r.randint(10, 99)}",
                "discount": "0.00",
                "channel": "web",
                "deleted_at": None,
                "row_version": r.randint(1, 40),
            }
        )
    facts = []
    for i in (0, 57, 199):
        facts += [str(rows[i]["id"]), rows[i]["status"], rows[i]["total"]]
    return {"query": "SELECT * FROM orders WHERE created_at > '2026-11-01'", "rowcount": 200, "rows": rows}, facts


def code_search(r: random.Random) -> tuple[dict[str, Any], list[str]]:
    items = []
    facts = []
    for i in range(15):
        owner = r.choice(["acme", "octo", "globex", "initech"])
        repo = f"{owner}/{r.choice(['gateway', 'billing', 'router', 'ledger'])}-{i}"
        path = f"src/{r.choice(['budget', 'pricing', 'http'])}/{r.choice(['cap', 'rates', 'pool'])}_{i}.py"
        base = f"https://api.github.com/repos/{repo}"
        fragment = f"def reserve_{i}(amount):\n    # holds {r.randint(1, 99)} units\n    return ledger.hold(amount)"
        items.append(
            {
                "name": path.rsplit("/", 1)[1],
                "path": path,
                "sha": f"{r.getrandbits(160):040x}",
                "url": f"{base}/contents/{path}?ref={r.getrandbits(160):040x}",
                "git_url": f"{base}/git/blobs/{r.getrandbits(160):040x}",
                "html_url": f"https://github.com/{repo}/blob/main/{path}",
                "repository": {
                    "id": r.randint(10**6, 10**8),
                    "node_id": f"MDEwOlJlcG9zaXRvcnk{r.getrandbits(40):x}",
                    "full_name": repo,
                    "private": False,
                    "owner": {
                        "login": owner,
                        "id": r.randint(1, 10**6),
                        "node_id": f"MDQ6VXNlcj{r.getrandbits(32):x}",
                        "avatar_url": f"https://avatars.githubusercontent.com/u/{r.randint(1, 10**6)}?v=4",
                        "gravatar_id": "",
                        "url": f"https://api.github.com/users/{owner}",
                        "followers_url": f"https://api.github.com/users/{owner}/followers",
                        "following_url": f"https://api.github.com/users/{owner}/following{{/other_user}}",
                        "gists_url": f"https://api.github.com/users/{owner}/gists{{/gist_id}}",
                        "starred_url": f"https://api.github.com/users/{owner}/starred{{/owner}}{{/repo}}",
                        "events_url": f"https://api.github.com/users/{owner}/events{{/privacy}}",
                        "type": "Organization",
                        "site_admin": False,
                    },
                    "description": sentence(r, 8),
                    "fork": False,
                    **{
                        f"{k}_url": f"{base}/{k}{{/{k}}}"
                        for k in (
                            "keys",
                            "collaborators",
                            "teams",
                            "hooks",
                            "issue_events",
                            "events",
                            "assignees",
                            "branches",
                            "tags",
                            "blobs",
                            "git_tags",
                            "git_refs",
                            "trees",
                            "statuses",
                            "languages",
                            "stargazers",
                            "contributors",
                            "subscribers",
                            "subscription",
                            "commits",
                            "git_commits",
                            "comments",
                            "issue_comment",
                            "contents",
                            "compare",
                            "merges",
                            "archive",
                            "downloads",
                            "issues",
                            "pulls",
                            "milestones",
                            "notifications",
                            "labels",
                            "releases",
                            "deployments",
                        )
                    },  # fmt: skip
                },
                "score": 1.0,
                "text_matches": [{"fragment": fragment, "matches": [{"text": f"reserve_{i}", "indices": [4, 13]}]}],
            }
        )
        if i < 4:
            facts += [repo, path, f"reserve_{i}"]
    return {"total_count": 15, "incomplete_results": False, "items": items}, facts


def attachments(r: random.Random) -> tuple[dict[str, Any], list[str]]:
    files = []
    facts = []
    for _ in range(4):
        blob = base64.b64encode(r.randbytes(r.randint(6000, 20000))).decode()
        name = f"invoice-{r.randint(1000, 9999)}.pdf"
        files.append({"filename": name, "content_type": "application/pdf", "size": len(blob) * 3 // 4, "data": blob})
        facts.append(name)
    payload = {"event": "invoice.paid", "invoice": {"number": f"INV-{r.randint(10000, 99999)}", "amount": "1,284.50"}}
    facts += [payload["invoice"]["number"], "1,284.50"]
    return {
        "message_id": f"<{r.getrandbits(64):x}@mail>",
        "attachments": files,
        "payload": orjson.dumps(payload).decode(),
    }, facts


# -- traces ------------------------------------------------------------------------------------------


def tool_loop(api: str, task: str, results: list[tuple[str, str]]) -> dict[str, Any]:
    """A request whose conversation calls each tool once and carries its result as text."""
    if api == "anthropic":
        msgs: list[dict[str, Any]] = [{"role": "user", "content": task}]
        for i, (tool, text) in enumerate(results):
            msgs.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": f"toolu_{i:02d}", "name": tool, "input": {"q": task[:40]}}],
                }
            )  # noqa: E501
            msgs.append(
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:02d}", "content": text}]}
            )  # noqa: E501
        return {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "system": "You are a research agent.",
            "messages": msgs,
        }
    msgs = [{"role": "system", "content": "You are a research agent."}, {"role": "user", "content": task}]
    for i, (tool, text) in enumerate(results):
        cid = f"call_{i:02d}"
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": cid, "type": "function", "function": {"name": tool, "arguments": "{}"}}],
            }
        )  # noqa: E501
        msgs.append({"role": "tool", "tool_call_id": cid, "content": text})
    return {"model": "gpt-4.1-mini", "max_tokens": 1024, "messages": msgs}


def session(r: random.Random, api: str, target_tokens: int = 40_000) -> Trace:
    """A long support session: turns of user questions, assistant answers and lookups; facts early on."""
    facts_said = [
        ("The customer's order number is 88231-KX.", "88231-KX"),
        ("Their budget for the replacement is $4,500.", "$4,500"),
        ("The faulty unit was installed on 2026-03-14 at the Rotterdam site.", "2026-03-14"),
        ("Contact person: Ingrid Halvorsen, ext. 5521.", "Ingrid Halvorsen"),
        ("The warranty case id is WC-77120.", "WC-77120"),
        ("They need delivery before 2026-12-20.", "2026-12-20"),
    ]
    msgs: list[dict[str, Any]] = []
    facts = [f for _, f in facts_said]
    size = 0
    turn = 0
    while size < target_tokens * 4:
        said = facts_said[turn][0] if turn < len(facts_said) else ""
        user = f"{said} {sentence(r, 30)} {sentence(r, 20)}".strip()
        msgs.append({"role": "user", "content": user})
        tool = r.choice(["search", "kb_lookup"])
        data, _ = search_json(r, r.choice(["pump", "valve", "relay"])) if tool == "search" else order_rows(r)
        if tool == "kb_lookup":
            data = {"rows": data["rows"][:40], "rowcount": 40}
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        cid = f"call_{turn:03d}"
        if api == "anthropic":
            msgs.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": sentence(r, 15)},
                        {"type": "tool_use", "id": cid, "name": tool, "input": {"q": "x"}},
                    ],
                }
            )  # noqa: E501
            msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": cid, "content": text}]})
        else:
            msgs.append(
                {
                    "role": "assistant",
                    "content": sentence(r, 15),
                    "tool_calls": [{"id": cid, "type": "function", "function": {"name": tool, "arguments": "{}"}}],
                }
            )  # noqa: E501
            msgs.append({"role": "tool", "tool_call_id": cid, "content": text})
        msgs.append({"role": "assistant", "content": " ".join(sentence(r, 25) for _ in range(6))})
        size = len(orjson.dumps(msgs))
        turn += 1
    msgs.append({"role": "user", "content": "Given everything so far, what should we order?"})
    if api == "anthropic":
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "system": "You are a support agent.",
            "messages": msgs,
        }
    else:
        body = {
            "model": "gpt-4.1-mini",
            "max_tokens": 1024,
            "messages": [{"role": "system", "content": "You are a support agent."}, *msgs],
        }  # noqa: E501
    return Trace(f"session-{api}", "session", api, body, facts)


ROW_RULE = {"sql_query": {"keep": ["rows[*].id", "rows[*].status", "rows[*].total", "rowcount"], "max_items": 500}}


def corpus(seed: int = 7) -> list[Trace]:
    r = random.Random(seed)
    out: list[Trace] = []
    for api in ("anthropic", "openai"):
        for n in range(2):
            results, facts = [], []
            for topic in ("heat pump", "water valve"):
                data, f = search_json(r, topic)
                results.append(("web_search", orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()))
                facts += f
            out.append(Trace(f"search-{api}-{n}", "search", api, tool_loop(api, "Compare offers.", results), facts))
        pages, facts = [], []
        for name in ("Acme Heat Pump X200", "Globex Valve V9"):
            html, f = product_page(r, name)
            pages.append(("fetch_page", html))
            facts += f
        html, f = article_page(r)
        pages.append(("fetch_page", html))
        facts += f
        out.append(Trace(f"html-{api}", "html", api, tool_loop(api, "Read these pages.", pages), facts))
        data, facts = order_rows(r)
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        out.append(
            Trace(f"rows-{api}", "rows", api, tool_loop(api, "Which orders?", [("sql_query", text)]), facts, ROW_RULE)
        )
        data, facts = code_search(r)
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        out.append(
            Trace(f"code-{api}", "code", api, tool_loop(api, "Where is reserve?", [("code_search", text)]), facts)
        )
        data, facts = attachments(r)
        out.append(
            Trace(
                f"blobs-{api}",
                "blobs",
                api,
                tool_loop(api, "Which invoice?", [("mail", orjson.dumps(data).decode())]),
                facts,
            )
        )  # noqa: E501
        out.append(session(r, api))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="-")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    lines = b"\n".join(orjson.dumps(t.__dict__) for t in corpus(a.seed)) + b"\n"
    if a.out == "-":
        print(f"{len(corpus(a.seed))} traces, {len(lines):,} bytes (use --out FILE to write them)")
    else:
        with open(a.out, "wb") as f:
            f.write(lines)


if __name__ == "__main__":
    main()
