"""The vendored arena-bench-v1 outcomes (scripts/data/arena_bench_v1, a training-only router source): the
mapping scripts/build_arena_data.py documents holds in the committed file, and no prompt of it is a
RouteLLM benchmark prompt under another name."""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path

import pytest
from script_modules import load

ev = load("bench/eval_router.py")
ROOT = Path(__file__).resolve().parent.parent
ARENA = ROOT / "scripts" / "data" / "arena_bench_v1"
ROWS = [json.loads(line) for line in (ARENA / "outcomes.jsonl").read_text().splitlines()]


def test_outcomes_are_judge_ratings_of_both_models_per_prompt():
    assert len(ROWS) == 291  # 300 upstream, 7 without both ratings, 2 overlapping a benchmark
    assert len({r["question_id"] for r in ROWS}) == len(ROWS)
    for r in ROWS:
        assert set(r) == {"question_id", "prompt", "weak", "strong"}
        assert r["prompt"].strip()
        for side in ("weak", "strong"):
            assert isinstance(r[side], int) and 1 <= r[side] <= 10
    # the strong model is rated higher on average (upstream means: weak 6.5, strong 8.8)
    assert sum(r["strong"] for r in ROWS) / len(ROWS) > sum(r["weak"] for r in ROWS) / len(ROWS) + 2


def test_licence_and_attribution_ship_with_the_data():
    assert "Apache License" in (ARENA / "LICENSE").read_text()
    readme = (ARENA / "README.md").read_text()
    assert "lmarena/arena-hard-auto" in readme and "4a705dd" in readme


@pytest.mark.skipif(not (Path(ev.DEFAULT_DATA) / "mmlu").is_dir(), reason="RouteLLM data not found")
def test_no_arena_prompt_shares_an_eight_word_run_with_a_benchmark_prompt():
    def runs(text: str) -> set[str]:
        w = re.findall(r"[a-z0-9]+", text.lower())
        return {" ".join(w[i : i + 8]) for i in range(len(w) - 7)}

    d = Path(ev.DEFAULT_DATA)
    seen: set[str] = set()
    for f in [d / "gsm8k" / "gsm8k_responses.csv", *map(Path, glob.glob(str(d / "mmlu" / "mmlu_*.csv")))]:
        with open(f, newline="") as fh:
            for r in csv.DictReader(fh):
                seen |= runs(r["prompt"])
    with open(d / "mt_bench" / "question.jsonl") as fh:
        for line in fh:
            for t in json.loads(line)["turns"]:
                seen |= runs(t)
    assert not [r["question_id"] for r in ROWS if runs(r["prompt"]) & seen]
