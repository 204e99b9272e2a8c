"""Rebuild scripts/data/arena_bench_v1/outcomes.jsonl: a fourth source of router training data.

    .venv/bin/python scripts/build_arena_data.py --upstream /path/to/arena-hard-auto [--data DIR]

The upstream is a git clone of github.com/lmarena/arena-hard-auto (Apache-2.0). Its commit 4a705dd
(2023-12-14, "reproduce") is the last to hold `data/arena-bench-v1/`: 300 single-turn Chatbot Arena prompts
(question.jsonl) with GPT-4 judge ratings of each model's answer (model_judgment/). The two files used are
the judgments of the same two models as RouteLLM's data:

    weak   mistralai/Mixtral-8x7B-Instruct-v0.1   model_judgment/Mixtral-8x7B-Instruct-v0.1.jsonl
    strong gpt-4-1106-preview                     model_judgment/gpt-4-turbo.jsonl (its "model" field says so)

The judgments are single-answer grades, not pairwise verdicts: judge gpt-4, temperature 0, a reference
answer by gpt-4 in the prompt, "rate the response on a scale of 1 to 10" (data/arena-bench-v1_config.yaml at
that commit), parsed by upstream into the integer field "score" (None where the judge gave no parsable
rating). The mapping, fixed in scripts/router_protocol.py (ARENA_*) before any held-out figure used it:

- weak, strong = the two models' "score" for the prompt, as is (1..10, the scale of MT-Bench's judgements);
  a prompt where either score is None is dropped (7 prompts);
- a prompt that shares any 8-word shingle (lower-cased alphanumeric words) with any GSM8K, MMLU or MT-Bench
  prompt of the RouteLLM data (contaminated ones included, every MT-Bench turn) is dropped, so no held-out
  prompt is trained on under another name (2 prompts: an MT-Bench reasoning question, an MMLU astronomy one);
- the router's label is the MT-Bench one (scripts/train_router.py `label`): strong >= weak + 1.

The upstream's code is not used or copied; only these derived numbers and the prompt texts are vendored,
with upstream's LICENSE (scripts/data/arena_bench_v1/LICENSE, README.md).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import eval_router as ev  # noqa: E402

COMMIT = "4a705dd"
WEAK_FILE = "model_judgment/Mixtral-8x7B-Instruct-v0.1.jsonl"
STRONG_FILE = "model_judgment/gpt-4-turbo.jsonl"
OUT = ROOT / "scripts" / "data" / "arena_bench_v1" / "outcomes.jsonl"
SHINGLE = 8


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    w = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(w[i : i + k]) for i in range(len(w) - k + 1)}


def benchmark_shingles(data_dir: str | Path) -> set[str]:
    """Every 8-word shingle of every RouteLLM prompt: GSM8K, MMLU, both MT-Bench turns, contaminated included."""
    d = Path(data_dir)
    texts = []
    for f in [d / "gsm8k" / "gsm8k_responses.csv", *sorted(Path(p) for p in glob.glob(str(d / "mmlu" / "mmlu_*.csv")))]:
        with open(f, newline="") as fh:
            texts += [r["prompt"] for r in csv.DictReader(fh)]
    with open(d / "mt_bench" / "question.jsonl") as fh:
        texts += [t for line in fh if line.strip() for t in json.loads(line)["turns"]]
    out: set[str] = set()
    for t in texts:
        out |= shingles(t)
    return out


def upstream_file(upstream: Path, name: str) -> list[dict]:
    text = subprocess.run(
        ["git", "-C", str(upstream), "show", f"{COMMIT}:data/arena-bench-v1/{name}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def build(upstream: Path, data_dir: str | Path) -> list[dict]:
    questions = upstream_file(upstream, "question.jsonl")
    weak_rows, strong_rows = upstream_file(upstream, WEAK_FILE), upstream_file(upstream, STRONG_FILE)
    assert {r["model"] for r in weak_rows} == {"mistralai/Mixtral-8x7B-Instruct-v0.1"}
    assert {r["model"] for r in strong_rows} == {"gpt-4-1106-preview"}
    weak = {r["question_id"]: r["score"] for r in weak_rows}
    strong = {r["question_id"]: r["score"] for r in strong_rows}
    seen = benchmark_shingles(data_dir)
    out, unscored, overlapping = [], 0, 0
    for q in questions:
        assert len(q["turns"]) == 1
        text, qid = q["turns"][0], q["question_id"]
        if weak.get(qid) is None or strong.get(qid) is None:
            unscored += 1
            continue
        if shingles(text) & seen:
            overlapping += 1
            continue
        out.append({"question_id": qid, "prompt": text, "weak": weak[qid], "strong": strong[qid]})
    print(f"{len(questions)} prompts: {unscored} without both scores, {overlapping} overlapping a benchmark")
    print(f"kept {len(out)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, type=Path, help="git clone of lmarena/arena-hard-auto")
    ap.add_argument("--data", default=ev.DEFAULT_DATA, help="RouteLLM data (for the overlap check)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    rows = build(args.upstream, args.data)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    w, s = [r["weak"] for r in rows], [r["strong"] for r in rows]
    print(
        f"wrote {args.out}: weak mean {sum(w) / len(w):.2f}, strong mean {sum(s) / len(s):.2f}, "
        f"strong >= weak + 1 on {sum(b - a >= 1 for a, b in zip(w, s, strict=True))}"
    )


if __name__ == "__main__":
    main()
