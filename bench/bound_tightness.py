"""How tight the reservation is: reserved ÷ billed on a generated corpus, false refusals, CPU per call.

    python bench/bound_tightness.py [--n 300] [--seed 7]

The corpus: prose, code, JSON tool results, multi-turn tool loops, images of random sizes, one PDF,
sent to both providers (Claude Haiku 4.5 / Sonnet 4.6, GPT-4.1 mini / GPT-4o). For each request:

- billed: what the provider bills for it, from the documents, with every output token the call may
  produce (max_tokens) — the input side is what the cost model bounds. OpenAI text: o200k_base tokens
  plus the cookbook's chat overhead, tool definitions as the rendered function namespace; Claude:
  the count the simulator's count_tokens gives (its tokenizer stands in for Claude's); images and
  PDFs by the vision / PDF documents' formulas (the simulator's implementation of them).
- reserved: the cost model's worst case, coarse (the hot path: bytes) and tight (OpenAI's tokenizer;
  Claude's count_tokens plus its margin) — the tight one is what an agent near its cap is held to.
- false refusals: an agent whose remaining budget is 1.5x the call's billed cost must be admitted
  (the gateway tightens a coarse bound that does not fit, so the tight one decides).
- CPU: µs per call for the coarse estimate (every call) and the OpenAI exact count (near the cap).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from attachments import b64, pdf, png  # noqa: E402

from paymaster.call import Usage  # noqa: E402
from paymaster.costmodel import estimate  # noqa: E402
from paymaster.costmodel.tokenizer import encoding  # noqa: E402
from paymaster.pricing import PriceTable  # noqa: E402
from paymaster.sim import anthropic as sim_anthropic  # noqa: E402
from paymaster.sim import tokens as sim_tokens  # noqa: E402

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if will more no out so said what up its about "
    "budget model token cache request provider agent reserve settle ledger window report quarterly revenue"
).split()
CODE = [
    "def {n}(x, y):\n    return [a * b for a, b in zip(x, y)]\n",
    "for i in range({k}):\n    total += values[i] ** 2  # accumulate\n",
    "class {N}:\n    def __init__(self):\n        self.items: dict[str, int] = {{}}\n",
    "if not ok:\n    raise ValueError(f'bad input: {{value!r}}')\n",
]
O200K = encoding("o200k_base")
TABLE = PriceTable()


def prose(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20)))
        out.append(s.capitalize() + ".")
    return " ".join(out)


def code(rng: random.Random, n: int) -> str:
    return "".join(
        rng.choice(CODE).format(n=f"f{rng.randint(0, 99)}", N=f"C{rng.randint(0, 9)}", k=rng.randint(2, 99))
        for _ in range(n)
    )


def json_result(rng: random.Random, n: int) -> str:
    rows = [
        {
            "id": rng.randint(1, 10**6),
            "name": rng.choice(WORDS),
            "score": round(rng.random(), 4),
            "tags": rng.sample(WORDS, 3),
        }
        for _ in range(n)
    ]
    return orjson.dumps({"results": rows, "total": n}).decode()


def corpus(rng: random.Random, n: int) -> list[tuple[str, list[dict[str, Any]], int]]:
    """(kind, neutral messages, max_tokens): messages as (role, text | image | tool call | tool result)."""
    out = []
    for i in range(n):
        kind = rng.choice(["prose", "code", "json", "loop", "loop", "image"]) if i else "pdf"
        turns: list[dict[str, Any]] = [{"role": "system", "text": prose(rng, rng.randint(2, 12))}]
        if kind == "prose":
            turns.append({"role": "user", "text": prose(rng, rng.randint(3, 400))})
        elif kind == "code":
            turns.append({"role": "user", "text": "Review this:\n" + code(rng, rng.randint(3, 200))})
        elif kind == "json":
            turns.append({"role": "user", "text": "Summarise: " + json_result(rng, rng.randint(1, 150))})
        elif kind == "loop":
            turns.append({"role": "user", "text": prose(rng, rng.randint(1, 20))})
            for k in range(rng.randint(1, 6)):
                turns.append({"role": "call", "name": "search", "args": {"q": prose(rng, 1)}, "id": f"c{k}"})
                turns.append({"role": "result", "id": f"c{k}", "text": json_result(rng, rng.randint(1, 40))})
        elif kind == "image":
            turns.append(
                {
                    "role": "user",
                    "text": prose(rng, rng.randint(1, 5)),
                    "image": (rng.randint(64, 4000), rng.randint(64, 4000)),
                }
            )
        else:
            turns.append({"role": "user", "text": "Summarise the attached report.", "pdf": rng.randint(1, 3)})
        out.append((kind, turns, rng.choice([256, 512, 1024, 2048])))
    return out


TOOLS_SPEC = {
    "name": "search",
    "description": "Search the knowledge base.",
    "properties": {"q": {"type": "string", "description": "query"}},
}


def to_anthropic(model: str, turns: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = ""
    for t in turns:
        if t["role"] == "system":
            system = t["text"]
        elif t["role"] == "user":
            content: list[dict[str, Any]] = []
            if "image" in t:
                content.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": b64(png(*t["image"]))},
                    }
                )
            if "pdf" in t:
                content.append(
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": b64(pdf(t["pdf"], prose(random.Random(1), 30))),
                        },
                    }
                )
            content.append({"type": "text", "text": t["text"]})
            messages.append({"role": "user", "content": content})
        elif t["role"] == "call":
            messages.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": t["id"], "name": t["name"], "input": t["args"]}],
                }
            )
        else:
            messages.append(
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": t["id"], "content": t["text"]}]}
            )
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "system": system, "messages": messages}
    if any(t["role"] == "call" for t in turns):
        body["tools"] = [
            {
                "name": "search",
                "description": TOOLS_SPEC["description"],
                "input_schema": {"type": "object", "properties": TOOLS_SPEC["properties"]},
            }
        ]
    return body


def to_openai(model: str, turns: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for t in turns:
        if t["role"] == "system":
            messages.append({"role": "system", "content": t["text"]})
        elif t["role"] == "user":
            if "image" in t:
                url = "data:image/png;base64," + b64(png(*t["image"]))
                messages.append(
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                            {"type": "text", "text": t["text"]},
                        ],
                    }
                )
            elif "pdf" in t:
                data = "data:application/pdf;base64," + b64(pdf(t["pdf"], prose(random.Random(1), 30)))
                messages.append(
                    {
                        "role": "user",
                        "content": [
                            {"type": "file", "file": {"filename": "r.pdf", "file_data": data}},
                            {"type": "text", "text": t["text"]},
                        ],
                    }
                )
            else:
                messages.append({"role": "user", "content": t["text"]})
        elif t["role"] == "call":
            call = {
                "id": t["id"],
                "type": "function",
                "function": {"name": t["name"], "arguments": orjson.dumps(t["args"]).decode()},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": t["id"], "content": t["text"]})
    body: dict[str, Any] = {"model": model, "max_completion_tokens": max_tokens, "messages": messages}
    if any(t["role"] == "call" for t in turns):
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "search",
                    "description": TOOLS_SPEC["description"],
                    "parameters": {"type": "object", "properties": TOOLS_SPEC["properties"]},
                },
            }
        ]
    return body


def openai_billed(body: dict[str, Any]) -> int:
    """o200k tokens + the cookbook's 3 per message and 3 for the reply + documented image/PDF tokens."""
    sim_tokens.MODEL.set(body["model"])
    sim_tokens.ENCODING.set(O200K)  # as the simulator bills an OpenAI prompt: its public tokenizer
    total = 3
    for m in body["messages"]:
        total += 3
        c = m.get("content")
        if isinstance(c, str):
            total += len(O200K.encode_ordinary(c))
        elif isinstance(c, list):
            for p in c:
                if p["type"] == "text":
                    total += len(O200K.encode_ordinary(p["text"]))
                elif p["type"] == "image_url":
                    total += sim_tokens.openai_image(p["image_url"])
                elif p["type"] == "file":
                    total += sim_tokens.openai_file(p["file"])
        for call in m.get("tool_calls") or ():
            total += 3 + len(O200K.encode_ordinary(call["function"]["name"] + call["function"]["arguments"]))
        if "tool_call_id" in m:
            total += len(O200K.encode_ordinary(m["tool_call_id"]))
    if body.get("tools"):
        f = TOOLS_SPEC
        rendered = (
            f"namespace functions {{\n\n// {f['description']}\ntype {f['name']} = (_: {{\n"
            "// query\nq: string,\n}) => any;\n\n} // namespace functions"
        )
        total += len(O200K.encode_ordinary(rendered))
    return total


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    items = corpus(rng, args.n)
    ratios: dict[tuple[str, str, str], list[float]] = {}
    refusals = total = 0
    refused: list[str] = []
    cpu: dict[str, list[float]] = {
        "coarse anthropic": [],
        "coarse openai": [],
        "exact openai": [],
        "refined anthropic": [],
    }
    for api, body in (
        ("anthropic", to_anthropic("claude-haiku-4-5", items[0][1], 1)),
        ("openai", to_openai("gpt-4o", items[0][1], 1)),
    ):
        estimate(body, api, 1, TABLE.rates(body["model"], api), None, exact=True)  # warm-up: tables, encodings
    for kind, turns, max_tokens in items:
        group = "text" if kind in ("prose", "code", "json", "loop") else ("image" if kind == "image" else "pdf")
        for api, model in (
            ("anthropic", rng.choice(["claude-haiku-4-5", "claude-sonnet-4-6"])),
            ("openai", rng.choice(["gpt-4.1-mini", "gpt-4o"])),
        ):
            rates = TABLE.rates(model, api)
            if api == "anthropic":
                body = to_anthropic(model, turns, max_tokens)
                billed_in, _ = sim_anthropic.measure(body, orjson.dumps(body))
                tighten: dict[str, Any] = {"counted": billed_in}
            else:
                body = to_openai(model, turns, max_tokens)
                billed_in = openai_billed(body)
                tighten = {"exact": True}
            size = len(orjson.dumps(body))
            t0 = time.perf_counter()
            coarse = estimate(body, api, size, rates, rates.context_window)
            t1 = time.perf_counter()
            tight = estimate(body, api, size, rates, rates.context_window, **tighten)
            t2 = time.perf_counter()
            cpu[f"coarse {api}"].append((t1 - t0) * 1e6)
            cpu[f"{'exact' if api == 'openai' else 'refined'} {api}"].append((t2 - t1) * 1e6)
            billed = rates.cost(Usage(billed_in, max_tokens))
            for how, e in (("coarse", coarse), ("tight", tight)):
                ratios.setdefault((api, group, how), []).append(float(e.worst_case(0, max_tokens) / billed))
                ratios.setdefault((api, group, how + " input"), []).append(e.tokens / billed_in)
            total += 1
            if tight.worst_case(0, max_tokens) > billed * 3 / 2:  # would not fit a budget of 1.5x its cost
                refusals += 1
                refused.append(f"{api} {model} {group}")
    print(f"bound tightness on {args.n} generated requests x 2 providers (reserved / billed, output at max_tokens)")
    print(f"{'provider':10} {'kind':6} {'bound':14} {'n':>4} {'p50':>6} {'p99':>6} {'max':>6}")
    for (api, group, how), xs in sorted(ratios.items()):
        print(f"{api:10} {group:6} {how:14} {len(xs):4d} {pct(xs, 0.5):6.2f} {pct(xs, 0.99):6.2f} {max(xs):6.2f}")
    print(f"false refusals (remaining budget = 1.5x the call's billed cost): {refusals} of {total}", *refused)
    for name, xs in cpu.items():
        print(f"cost model CPU, {name:18}: p50 {statistics.median(xs):7.1f} µs  p99 {pct(xs, 0.99):8.1f} µs")


if __name__ == "__main__":
    main()
