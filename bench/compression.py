"""What context compression removes, what it keeps, what it costs in time, and what it saves net.

    python bench/compression.py [--runs 20]

On the corpus of `bench/compression_corpus.py` (both APIs), with the lever's own code
(`paymaster.levers.compression`), tokens counted with o200k_base (OpenAI's tokenizer; Claude's is
not public — the ratios, not the absolute counts, are the figures to read):

1. per technique (pruning alone, HTML alone, stripping alone) and all of them, on the tool-heavy
   traces: input tokens before/after, ratio, and the share of answer-bearing facts still present;
2. summarisation on the 40,000-token sessions (threshold 20,000): tokens sent, facts present;
3. compression time per call on a 50,000-token session: the first call (nothing memoised), a later
   call (earlier results memoised, summary stored), the summariser's own call excluded;
4. the net saving over a growing session on claude-sonnet-4-6 with prompt caching on both sides:
   every call's input priced as cache reads (the prefix the previous call sent), cache writes (the
   rest) and the summariser's calls on claude-haiku-4-5 — so the cache writes a summary causes count;
5. a published prompt-compression method on the same tool-heavy traces, when one installs offline.

The summaries here are written by an extractive stand-in (the transcript's sentences that carry a
figure or a name, the user's first, cut at the summary's token ceiling) in place of the agent's
light-tier model, so step 2's fact share measures that stand-in: in production it is the model's.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from compression_corpus import Trace, corpus, session  # noqa: E402

from paymaster.call import Call, Usage  # noqa: E402
from paymaster.config import Compression, Html, Prune, Strip, Summarise, ToolRule  # noqa: E402
from paymaster.costmodel.tokenizer import encoding  # noqa: E402
from paymaster.levers.compression import Compressor  # noqa: E402
from paymaster.levers.compression.results import Memo, Tally, compress_results  # noqa: E402
from paymaster.pricing import PriceTable, Rates  # noqa: E402

ENC = encoding("o200k_base")


def tokens(body: dict[str, Any]) -> int:
    return len(
        ENC.encode(" ".join(strings(body.get("system"))) + " ".join(strings(body["messages"])), disallowed_special=())
    )


def strings(v: Any) -> list[str]:
    """Every string a model would read in a request part (keys of tool inputs included)."""
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [
            s
            for k, x in v.items()
            if k not in ("type", "role", "id", "tool_use_id", "tool_call_id")
            for s in strings(x)
        ]
    if isinstance(v, list):
        return [s for x in v for s in strings(x)]
    return [] if v is None else [str(v)]


def present(body: dict[str, Any], facts: list[str]) -> int:
    text = "\n".join(strings(body))
    return sum(1 for f in facts if f in text)


def settings_for(t: Trace, **over: Any) -> Compression:
    rules = {k: ToolRule(tuple(v["keep"]), v.get("max_items")) for k, v in t.tool_rules.items()}
    prune = over.pop("prune", Prune(tools=rules))
    return Compression(enabled=True, prune=prune, **over)


VARIANTS = {
    "pruning": lambda t: settings_for(t, html=Html(False), strip=Strip(False)),
    "html": lambda t: settings_for(t, prune=Prune(False), strip=Strip(False)),
    "stripping": lambda t: settings_for(t, prune=Prune(False), html=Html(False)),
    "all three": lambda t: settings_for(t),
}


def techniques(traces: list[Trace]) -> None:
    tool = [t for t in traces if t.kind != "session"]
    print("1. Tool-result techniques on the tool-heavy traces (o200k tokens of what the model reads)\n")
    print(f"{'technique':<11} {'kind':<7} {'traces':>6} {'before':>9} {'after':>9} {'ratio':>7} {'facts kept':>11}")
    for name, make in VARIANTS.items():
        kinds = sorted({t.kind for t in tool}) + ["overall"]
        for kind in kinds:
            sel = [t for t in tool if kind in ("overall", t.kind)]
            before = after = kept = total = 0
            for t in sel:
                out = dict(t.body, messages=compress_results(t.body["messages"], t.api, make(t), Memo(), Tally()))
                before += tokens(t.body)
                after += tokens(out)
                kept += present(out, t.facts)
                total += len(t.facts)
            if name != "all three" and kind != "overall":
                continue
            print(
                f"{name:<11} {kind:<7} {len(sel):>6} {before:>9,} {after:>9,} {before / after:>6.2f}× "
                f"{kept:>5}/{total:<5}"
            )
    print()


# -- summarisation ----------------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FACTUAL = re.compile(r"\d|\$|[A-Z][a-z]+ [A-Z][a-z]+")


def extractive(transcript: str, max_tokens: int) -> str:
    """The stand-in summariser: sentences with a figure or a name, the user's first, to `max_tokens`."""
    ranked: list[tuple[int, int, str]] = []
    for i, line in enumerate(transcript.split("\n")):
        role = line[1 : line.find("]")] if line.startswith("[") else ""
        rank = 0 if role == "user" else 1 if role == "assistant" else 2
        for s in _SENTENCE.findall(line[line.find("]") + 1 :] if rank < 2 else line):
            if _FACTUAL.search(s) and len(s) < 300:
                ranked.append((rank, i, s.strip()))
    out, used = [], 0
    for _, _, s in sorted(ranked):
        n = len(ENC.encode(s, disallowed_special=()))
        if used + n > max_tokens:
            break
        out.append(f"- {s}")
        used += n
    return "Facts:\n" + "\n".join(out)


class BenchServices:
    """What the lever needs of the gateway: `ask` answers with the extractive stand-in, priced on genai-prices."""

    def __init__(self) -> None:
        self.table = PriceTable()
        self.asked: list[tuple[int, int]] = []  # (input, output) tokens of each summariser call
        self.clock = time.time

        class _Models(dict[str, Any]):
            def __missing__(self, model: str) -> Any:
                api = "anthropic" if model.startswith("claude") else "openai"
                return type("M", (), {"provider": type("P", (), {"api": api, "kind": api})})

        self.config = type("C", (), {"models": _Models()})

    def rates_of(self, model: str) -> Rates:
        return self.table.rates(model, "anthropic" if model.startswith("claude") else "openai")

    def price(self, bill: Any) -> int:
        return int(self.rates_of(bill.model).cost(bill.usage) * 10**9)

    async def ask(self, agent: Any, api: str, body: dict[str, Any], task: str) -> tuple[int, bytes]:
        prompt = body["messages"][-1]["content"]
        text = extractive(prompt, body.get("max_tokens") or body["max_completion_tokens"])
        n_in = len(ENC.encode(prompt, disallowed_special=())) + 200
        n_out = len(ENC.encode(text, disallowed_special=()))
        self.asked.append((n_in, n_out))
        if api == "anthropic":
            answer = {
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": n_in, "output_tokens": n_out},
            }
        else:
            answer = {
                "choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out},
            }
        return 200, orjson.dumps(answer)


def agent_for(t: Trace, threshold: int = 20_000) -> Any:
    light = "claude-haiku-4-5" if t.api == "anthropic" else "gpt-4.1-nano"
    comp = settings_for(t, summarise=Summarise(threshold_tokens=threshold))
    return type(
        "A", (), {"name": f"bench-{t.name}", "compression": comp, "tiers": {"light": light}, "models": (light,)}
    )


def call_of(t: Trace) -> Call:
    body = orjson.loads(orjson.dumps(t.body))
    return Call(api=t.api, agent="bench", body=body, model=body["model"], stream=False, max_tokens=1024)


def compressor(services: BenchServices, tmp: str) -> Compressor:
    return Compressor(type("Cfg", (), {"ledger": tmp})(), services)  # type: ignore[arg-type]


async def summarisation(traces: list[Trace]) -> None:
    print("2. Summarisation on the long sessions (threshold 20,000 tokens; pruning, HTML and stripping on too)\n")
    print(f"{'trace':<19} {'before':>8} {'after':>7} {'ratio':>7} {'facts kept':>11}  summary")
    for t in [t for t in traces if t.kind == "session"]:
        services = BenchServices()
        lever = compressor(services, ":memory:")
        call = call_of(t)
        ctx = type("Ctx", (), {"agent": agent_for(t), "state": {}})()
        await lever.apply(call, ctx)  # type: ignore[arg-type]
        note = ctx.state.get("compression")
        print(
            f"{t.name:<19} {tokens(t.body):>8,} {tokens(call.body):>7,} {tokens(t.body) / tokens(call.body):>6.2f}× "
            f"{present(call.body, t.facts):>5}/{len(t.facts):<5}  {note.summary if note else '-'}"
        )
    print()


async def latency(runs: int) -> None:
    import random

    print("3. Compression time per call, a 50,000-token session (the summariser's call excluded)\n")
    for api in ("anthropic", "openai"):
        t = session(random.Random(11), api, target_tokens=50_000)
        services = BenchServices()
        cold: list[float] = []
        for _ in range(max(3, runs // 4)):  # nothing memoised, no summary stored
            lever = compressor(services, ":memory:")
            agent = agent_for(t, threshold=10**9)
            call = call_of(t)
            ctx = type("Ctx", (), {"agent": agent, "state": {}})()
            t0 = time.perf_counter()
            await lever.apply(call, ctx)  # type: ignore[arg-type]
            cold.append(time.perf_counter() - t0)
        lever = compressor(services, ":memory:")
        agent = agent_for(t)
        await lever.apply(call_of(t), type("Ctx", (), {"agent": agent, "state": {}})())  # type: ignore[arg-type]
        warm: list[float] = []
        for _ in range(runs):  # earlier results memoised, the summary stored: every later call of the session
            call = call_of(t)
            ctx = type("Ctx", (), {"agent": agent, "state": {}})()
            t0 = time.perf_counter()
            await lever.apply(call, ctx)  # type: ignore[arg-type]
            warm.append(time.perf_counter() - t0)
            assert ctx.state["compression"].summary == "reused"
        print(
            f"{api:<10} {tokens(t.body):,} tokens: first call p50 {statistics.median(cold) * 1000:.2f} ms, "
            f"later calls p50 {statistics.median(warm) * 1000:.2f} ms, max {max(warm) * 1000:.2f} ms"
        )
    print()


async def net_saving() -> None:
    """A session grown call by call (each call ends at a user turn), priced with Anthropic prompt caching."""
    import random

    print("4. Net saving over a growing session, claude-sonnet-4-6 with prompt caching on both sides\n")
    t = session(random.Random(5), "anthropic", target_tokens=60_000)
    msgs = t.body["messages"]
    ends = [i + 1 for i, m in enumerate(msgs) if m["role"] == "user" and isinstance(m["content"], str)]
    services = BenchServices()
    lever = compressor(services, ":memory:")
    agent = agent_for(t)
    rates = services.rates_of("claude-sonnet-4-6")
    totals = {"plain": Decimal(0), "compressed": Decimal(0)}
    prev: dict[str, list[Any]] = {"plain": [], "compressed": []}
    sent = {"plain": 0, "compressed": 0}
    writes = 0
    for end in ends:
        body = dict(t.body, messages=msgs[:end])
        call = call_of(Trace(t.name, t.kind, t.api, body, t.facts))
        ctx = type("Ctx", (), {"agent": agent, "state": {}})()
        await lever.apply(call, ctx)  # type: ignore[arg-type]
        for side, b in (("plain", body), ("compressed", call.body)):
            m = b["messages"]
            common = 0
            while common < min(len(m), len(prev[side])) and m[common] == prev[side][common]:
                common += 1
            read = tokens(dict(b, messages=m[:common])) if common else 0
            total = tokens(b)
            if side == "compressed" and common == 0 and prev[side]:
                writes += 1
            u = Usage(input_tokens=total, output_tokens=300, cache_read_tokens=read, cache_write_tokens=total - read)
            totals[side] += rates.cost(u)
            sent[side] += total
            prev[side] = m
    summary_cost = sum((services.rates_of("claude-haiku-4-5").cost(Usage(i, o)) for i, o in services.asked), Decimal(0))
    net = totals["plain"] - totals["compressed"] - summary_cost
    print(f"calls: {len(ends)}, summaries written: {len(services.asked)}, prompts rewritten from the start: {writes}")
    print(f"input tokens sent: {sent['plain']:,} uncompressed, {sent['compressed']:,} compressed")
    print(
        f"cost: ${totals['plain']:.4f} uncompressed, ${totals['compressed']:.4f} compressed "
        f"+ ${summary_cost:.4f} summaries = net saving ${net:.4f} ({net / totals['plain']:.0%})\n"
    )


def published(traces: list[Trace]) -> None:
    print("5. A published prompt-compression method on the same tool-heavy traces\n")
    print(
        "Tried first: LLMLingua-2 (`llmlingua` 0.2.2 on PyPI). The package ships no model: PromptCompressor\n"
        "loads microsoft/llmlingua-2-xlm-roberta-large-meetingbank with transformers' from_pretrained (the\n"
        "Hugging Face hub) and needs torch; this machine reaches package registries only, so it cannot run.\n"
        "Run instead: BM25 selection of the results' chunks against the task (the retrieval baseline of\n"
        "LongLLMLingua, Jiang et al. 2024, written here from the Okapi BM25 formula: k1 1.5, b 0.75), chunks\n"
        "of ~40 words kept in their order up to the rule-based output's token count, so the ratios match.\n"
    )
    print(f"{'method':<22} {'before':>9} {'after':>9} {'ratio':>7} {'facts kept':>11} {'ms/trace':>9}")
    tool = [t for t in traces if t.kind != "session"]
    rows = {"rule-based (all three)": [0, 0, 0, 0, 0.0], "BM25 selection": [0, 0, 0, 0, 0.0]}
    for t in tool:
        t0 = time.perf_counter()
        ours = dict(t.body, messages=compress_results(t.body["messages"], t.api, settings_for(t), Memo(), Tally()))
        ms = (time.perf_counter() - t0) * 1000
        budget = tokens(ours)
        t0 = time.perf_counter()
        theirs = bm25_select(t, budget)
        ms2 = (time.perf_counter() - t0) * 1000
        for name, body, took in (("rule-based (all three)", ours, ms), ("BM25 selection", theirs, ms2)):
            r = rows[name]
            r[0] += tokens(t.body)
            r[1] += tokens(body)
            r[2] += present(body, t.facts)
            r[3] += len(t.facts)
            r[4] += took
    for name, (before, after, kept, total, took) in rows.items():
        print(
            f"{name:<22} {before:>9,} {after:>9,} {before / after:>6.2f}× {kept:>5}/{total:<5} {took / len(tool):>9.2f}"
        )
    print()


_WORD = re.compile(r"[A-Za-z0-9$][A-Za-z0-9$.,-]*")


def bm25_select(t: Trace, budget: int) -> dict[str, Any]:
    """The trace's tool results cut to ~40-word chunks, the best BM25 matches for the task kept (in order)
    until the request is `budget` tokens; everything else as it was."""
    import math

    task = " ".join(strings(t.body["messages"][0 if t.api == "anthropic" else 1]))
    query = [w.lower() for w in _WORD.findall(task)]
    results: list[tuple[int, int | None, list[str]]] = []  # (message, block, chunks)
    for i, m in enumerate(t.body["messages"]):
        if m["role"] == "tool":
            results.append((i, None, _chunks(m["content"])))
        elif m["role"] == "user" and isinstance(m["content"], list):
            for j, b in enumerate(m["content"]):
                if b.get("type") == "tool_result":
                    results.append((i, j, _chunks(b["content"])))
    texts = [c for _, _, cs in results for c in cs]
    docs = [[w.lower() for w in _WORD.findall(c)] for c in texts]
    n = len(docs)
    avg = sum(map(len, docs)) / max(1, n)
    df: dict[str, int] = {}
    for d in docs:
        for w in set(d):
            df[w] = df.get(w, 0) + 1
    scores = []
    for d in docs:
        tf: dict[str, int] = {}
        for w in d:
            tf[w] = tf.get(w, 0) + 1
        score = 0.0
        for q in query:
            if q in tf:
                idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                score += idf * tf[q] * 2.5 / (tf[q] + 1.5 * (0.25 + 0.75 * len(d) / avg))
        scores.append(score)

    def build(keep: set[int]) -> dict[str, Any]:
        body = orjson.loads(orjson.dumps(t.body))
        k = 0
        for i, j, cs in results:
            text = " ".join(c for c_i, c in enumerate(cs, start=k) if c_i in keep)
            k += len(cs)
            if j is None:
                body["messages"][i]["content"] = text
            else:
                body["messages"][i]["content"][j]["content"] = text
        return body

    keep: set[int] = set()
    used = tokens(build(keep))  # the request without any result text
    for k in sorted(range(n), key=lambda k: (-scores[k], k)):
        cost = len(ENC.encode(texts[k], disallowed_special=()))
        if used + cost > budget:
            continue
        keep.add(k)
        used += cost
    body = build(keep)
    return body


def _chunks(text: str, words: int = 40) -> list[str]:
    ws = text.split()
    return [" ".join(ws[i : i + words]) for i in range(0, len(ws), words)]


async def amain(runs: int) -> None:
    traces = corpus()
    techniques(traces)
    await summarisation(traces)
    await latency(runs)
    await net_saving()
    published(traces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    asyncio.run(amain(ap.parse_args().runs))


if __name__ == "__main__":
    main()
