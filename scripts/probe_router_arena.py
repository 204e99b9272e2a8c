"""A fourth kind of training data: does the classifier transfer once arena-bench-v1 is added? A research probe.

    .venv/bin/pip install -e '.[train]'                        # numpy, scikit-learn (the folds' classifiers)
    .venv/bin/python scripts/probe_router_arena.py [--data DIR] [--inner-only]

Issue 14, item 2, a sixth attempt. The five before trained only on GSM8K, MMLU and MT-Bench, so a held-out
benchmark left two kinds of prompt to learn from. arena-bench-v1 (lmarena/arena-hard-auto, Apache-2.0) holds 300
Chatbot Arena prompts answered by the same two models as RouteLLM's data (Mixtral-8x7B-Instruct weak,
gpt-4-1106-preview strong) and graded 1..10 by a GPT-4 judge: open-ended questions, code, maths, writing.
It is added as a FOURTH training source, in every fold, never a held-out benchmark of record.

THE PROTOCOL (written and committed before any held-out figure of these candidates was computed)

Data: RouteLLM's three benchmarks as bench/eval_router.py `load` (contaminated prompts dropped) plus
scripts/data/arena_bench_v1/outcomes.jsonl (scripts/build_arena_data.py; 291 prompts: weak / strong = the judge's
rating of each model's answer, as is; prompts without both ratings or sharing an 8-word run with any benchmark
prompt dropped). Label for training: train_router.label, strong >= weak + 1 for arena as for MT-Bench.

Signals, per prompt: words (the baseline `router_protocol.BASELINE`); "arena": scripts/train_router.py's recipe
(`Design.fit`: hashed uni/bigrams + sign-consistent counts, L2 logistic regression, C = 1) trained on the fold's
training benchmarks AND arena-bench-v1 (a count is kept only if its sign agrees on every training source, arena
included); "arena balanced": the same with every training source carrying the same total sample weight.

Candidates (`router_protocol.ARENA_CANDIDATES`, six): words; "arena" alone; "arena balanced" alone; the rank
blends w x rank(words) + (1 - w) x rank(arena) for w = 0.75 and 0.5; the 0.5 rank blend with "arena balanced".
Ranks as scripts/probe_router_rank.py: mid-rank quantile inside the evaluated workload (`router_protocol.mid_ranks`).

Metric: APGR (bench/eval_router.py `apgr`, RouteLLM's definition) on the evaluated set.

Selection (`router_protocol.choose`, unchanged): for each held-out benchmark B, every candidate is scored on the
two other benchmarks only, each held out in turn (`router_protocol.inner_folds(..., train_only=("arena",))`:
MMLU as 5 folds of subjects; arena-bench-v1 in the training set of every inner fold, never tested); criterion =
mean over those two benchmarks of (candidate - words) APGR, MMLU's folds averaged into one term; the best is
picked, words on a tie. Only then are B's figures computed.

Held-out figures, per B: every candidate's APGR with a 95 % bootstrap interval (eval_router.bootstrap, 200
resamples), CPT(50 %), the paired pick - words difference with its interval, random (mean +- sd over 100 seeds),
and the stream version (B in random orders, STREAM_ORDERS, each prompt ranked among the last STREAM_WINDOW =
1000). Beside them, not candidates: the fifth attempt's classifier without arena (the same recipe, trained on
the two other benchmarks only), for the effect of the added data. Extra line, labelled as such and choosing
nothing: arena-bench-v1 held out (classifiers trained on the three benchmarks).

Success criterion, stated beforehand (as the fifth attempt): the picked procedure's held-out APGR above words'
and above the random mean on every one of GSM8K, MMLU, MT-Bench (`router_protocol.beats`) AND its stream APGR
above words' on every one. Only then would new weights ship (scripts/train_router.py with arena added). No
candidate, weight or mapping is changed after a held-out figure is seen; anything added later is post-hoc.
(Protocol committed in af37276, after only the inner figures, `--inner-only`, were computed.)

MEASURED (one run, ~7 min on 2 busy cores): not met. The rule picks the 0.5 rank blend of words and "arena" for
GSM8K held out and words for MMLU and MT-Bench (every arena candidate is below words on their training
benchmarks' inner folds). Held-out APGR, the procedure / words / random: GSM8K 0.577 / 0.595 / 0.498 (pick - words
-0.017 [-0.051, +0.016]); MMLU 0.588 / 0.588 / 0.500; MT-Bench 0.566 / 0.566 / 0.500; streams the same within
0.004. Adding arena moved the classifier alone from 0.567 / 0.574 / 0.755 (fifth attempt) to 0.511 / 0.576 /
0.724. No candidate is above words on all three: the sources-balanced one is the best on MMLU (+0.021 [+0.007,
+0.035]) and the worst on GSM8K (-0.099) and MT-Bench (-0.147); the 0.75 rank blend is -0.001 / +0.002 / +0.044.
Extra, arena-bench-v1 held out (291 prompts): every signal 0.51-0.53 (random 0.50, words 0.525).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
import eval_router as ev  # noqa: E402
import router_protocol as rp  # noqa: E402
import train_router as tr  # noqa: E402

from paymaster.levers.classifier import Classifier  # noqa: E402

CANDS = rp.ARENA_CANDIDATES
SOURCES = (*ev.BENCHMARKS, rp.ARENA)
REFERENCE = "classifier without arena (5th attempt; not a candidate)"


class Probe:
    """Every prompt's signals; the fold classifiers, fitted once per (training mask, balance)."""

    def __init__(self, data: dict[str, list[ev.Prompt]]):
        self.data = data
        self.design = tr.Design(data, SOURCES)
        self.prompts = [p for _, p in self.design.rows]
        self.bench = self.design.bench
        self.words = [float(len(p.text.split())) for p in self.prompts]
        self._fits: dict[tuple[bytes, bool], list[float]] = {}

    def classifier(self, train: np.ndarray, balance: bool = False) -> list[float]:
        key = (train.tobytes(), balance)
        if key not in self._fits:
            t0 = time.perf_counter()
            clf = Classifier(self.design.fit(train, balance))
            self._fits[key] = [clf.score(p.text) for p in self.prompts]
            print(
                f"  (fitted a classifier on {int(train.sum())} prompts{', balanced' if balance else ''} "
                f"in {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        return self._fits[key]

    def signals(self, train: np.ndarray, idx: Sequence[int]) -> dict[str, list[float]]:
        assert not train[list(idx)].any()
        plain, balanced = self.classifier(train), self.classifier(train, True)
        return {
            "words": [self.words[i] for i in idx],
            "arena": [plain[i] for i in idx],
            "arena balanced": [balanced[i] for i in idx],
        }

    def apgr(self, scores: Sequence[float], idx: Sequence[int]) -> float:
        ps = [self.prompts[i] for i in idx]
        return ev.apgr(list(scores), [p.weak for p in ps], [p.strong for p in ps])


def scores_of(signals: dict[str, list[float]], ranker: str = "batch") -> dict[str, list[float]]:
    rank = rp.mid_ranks if ranker == "batch" else rp.stream_ranks
    ranks = {s: rank(v) for s, v in signals.items()}
    return {name: rp.blend(ranks, weights) for name, weights in CANDS.items()}


def inner(probe: Probe) -> dict[str, str]:
    picks = {}
    for b in ev.BENCHMARKS:
        folds = rp.inner_folds(list(probe.bench), list(probe.design.group), b, train_only=(rp.ARENA,))
        margins: dict[str, list[float]] = {n: [] for n in CANDS}
        for _, train, test in folds:
            idx = list(np.flatnonzero(test))
            sc = scores_of(probe.signals(np.array(train), idx))
            base = probe.apgr(sc[rp.BASELINE], idx)
            for n in CANDS:
                margins[n].append(probe.apgr(sc[n], idx) - base)
        names = [f[0] for f in folds]
        crit = {n: statistics.mean(rp.fold_terms(names, m)) for n, m in margins.items()}
        picks[b] = rp.choose(crit)
        print(f"\n[{b} held out] inner criterion (mean margin over words on the training benchmarks):")
        for n in CANDS:
            terms = rp.fold_terms(names, margins[n])
            mark = "  <- picked" if n == picks[b] else ""
            print(f"  {crit[n]:+.4f} (terms {', '.join(f'{t:+.3f}' for t in terms)}) {n}{mark}")
        print(f"[{b} held out] picked before any held-out figure: {picks[b]}", flush=True)
    return picks


def table(probe: Probe, b: str, train: np.ndarray, pick: str | None, orders: int) -> dict[str, tuple[float, float]]:
    """Print B's held-out table; return {candidate: (APGR, stream APGR)} plus the random mean under "random"."""
    idx = list(np.flatnonzero(probe.bench == b))
    ps = [probe.prompts[i] for i in idx]
    weak, strong = [p.weak for p in ps], [p.strong for p in ps]
    sig = probe.signals(train, idx)
    sc = scores_of(sig)
    ref = probe.classifier(train & (probe.bench != rp.ARENA))
    sc_ref = {**sc, REFERENCE: [ref[i] for i in idx]}
    boots = ev.bootstrap(ev.metrics, sc_ref, weak, strong, seed=SOURCES.index(b))
    rnd = [ev.apgr(ev.random_scores(len(ps), s), weak, strong) for s in range(ev.RANDOM_SEEDS)]
    streams = []
    for seed in range(orders):
        order = random.Random(seed).sample(range(len(idx)), len(idx))
        st = scores_of({s: [v[k] for k in order] for s, v in sig.items()}, "stream")
        w, s_ = [weak[k] for k in order], [strong[k] for k in order]
        streams.append({n: ev.apgr(st[n], w, s_) for n in CANDS})
    out = {}
    print("| candidate | APGR [95 % CI] | CPT(50 %) | stream APGR (mean ± sd over orders) |")
    print("| --- | --- | --- | --- |")
    for n in [*CANDS, REFERENCE]:
        m = ev.metrics(sc_ref[n], weak, strong)
        lo, hi = ev.interval([x[0] for x in boots[n]])
        bold = "**" if n == pick else ""
        if n in CANDS:
            sv = [o[n] for o in streams]
            sd = statistics.stdev(sv) if len(sv) > 1 else 0.0
            out[n] = (m[0], statistics.mean(sv))
            stream_cell = f"{out[n][1]:.3f} ± {sd:.3f}"
        else:
            stream_cell = ""
        print(f"| {bold}{n}{bold} | {bold}{m[0]:.3f}{bold} [{lo:.3f}, {hi:.3f}] | {m[1]:.1%} | {stream_cell} |")
    print(f"| random (100 seeds) | {statistics.mean(rnd):.3f} ± {statistics.stdev(rnd):.3f} | | |")
    out["random"] = (statistics.mean(rnd), statistics.mean(rnd))
    print("paired candidate - words APGR [95 % interval]:")
    for n in [*CANDS, REFERENCE]:
        if n == rp.BASELINE:
            continue
        lo, hi = ev.interval([x[0] - y[0] for x, y in zip(boots[n], boots[rp.BASELINE], strict=True)])
        a = ev.apgr(sc_ref[n], weak, strong) - ev.apgr(sc_ref[rp.BASELINE], weak, strong)
        extra = ""
        if n in CANDS:
            sdiff = [o[n] - o[rp.BASELINE] for o in streams]
            extra = f"; stream {statistics.mean(sdiff):+.3f} (ahead in {sum(d > 0 for d in sdiff)} of {len(sdiff)})"
        print(f"  {'PICK ' if n == pick else ''}{n}: {a:+.3f} [{lo:+.3f}, {hi:+.3f}]{extra}")
    return out


def held_out(probe: Probe, picks: dict[str, str]) -> None:
    res = {}
    for b in ev.BENCHMARKS:
        n = int((probe.bench == b).sum())
        print(f"\n{b} held out ({n} prompts; classifiers trained on the two other benchmarks + arena-bench-v1)")
        res[b] = table(probe, b, probe.bench != b, picks[b], rp.STREAM_ORDERS[b])
    pick = {b: res[b][picks[b]][0] for b in ev.BENCHMARKS}
    words = {b: res[b][rp.BASELINE][0] for b in ev.BENCHMARKS}
    rand = {b: res[b]["random"][0] for b in ev.BENCHMARKS}
    ok = rp.beats(pick, words, rand)
    ok_stream = all(res[b][picks[b]][1] > res[b][rp.BASELINE][1] for b in ev.BENCHMARKS)
    print("\n| | " + " | ".join(ev.BENCHMARKS) + " |\n| --- |" + " --- |" * len(ev.BENCHMARKS))
    print("| the procedure (pick per benchmark) | " + " | ".join(f"{pick[b]:.3f}" for b in ev.BENCHMARKS) + " |")
    print("| words | " + " | ".join(f"{words[b]:.3f}" for b in ev.BENCHMARKS) + " |")
    print("| the procedure, stream | " + " | ".join(f"{res[b][picks[b]][1]:.3f}" for b in ev.BENCHMARKS) + " |")
    print("| words, stream | " + " | ".join(f"{res[b][rp.BASELINE][1]:.3f}" for b in ev.BENCHMARKS) + " |")
    print("| random | " + " | ".join(f"{rand[b]:.3f}" for b in ev.BENCHMARKS) + " |")
    verdict = "MET" if ok and ok_stream else "NOT MET"
    print(
        f"\nsuccess criterion (stated beforehand): {verdict} (above words and random held out: {ok}; "
        f"above words in the stream: {ok_stream})"
    )
    print(
        f"\nEXTRA (not a benchmark of record; chooses nothing): arena-bench-v1 held out "
        f"({int((probe.bench == rp.ARENA).sum())} prompts; classifiers trained on GSM8K + MMLU + MT-Bench)"
    )
    table(probe, rp.ARENA, probe.bench != rp.ARENA, None, 40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=ev.DEFAULT_DATA)
    ap.add_argument("--arena", default=str(tr.ARENA_DATA))
    ap.add_argument("--inner-only", action="store_true", help="stop after the picks (no held-out figure)")
    args = ap.parse_args()
    started = time.perf_counter()
    data = {**ev.load(args.data), rp.ARENA: tr.load_arena(args.arena)}
    print(", ".join(f"{b} {len(data[b])}" for b in SOURCES) + " prompts")
    probe = Probe(data)
    picks = inner(probe)
    if not args.inner_only:
        held_out(probe, picks)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
