"""Train the complexity classifier; write src/paymaster/data/router_weights.json.

    .venv/bin/pip install numpy scikit-learn          # training only; scoring needs neither
    .venv/bin/python scripts/train_router.py [--data DIR] [--out PATH]

Deterministic (no sampling; fixed fold assignment), so a rerun reproduces the file byte for byte
given the same numpy / scikit-learn / scipy versions.

1. Data: RouteLLM's per-prompt outcomes of Mixtral-8x7B (weak) and GPT-4-1106 (strong) on GSM8K,
   MMLU and MT-Bench, contaminated prompts dropped (bench/eval_router.py `load`).
2. Label: 1 where the strong model beats the weak one (GSM8K, MMLU: strong correct and weak wrong;
   MT-Bench: strong judge score at least 1 point higher, mean of both turns), else 0.
3. Features: `paymaster.levers.classifier.features` (hashed word uni/bigrams, L2-normalised, scaled
   down by HASH_SCALE so they are regularised harder; plus handcrafted counts, standardised).
   A handcrafted count is kept only when its rank correlation with the strong-minus-weak gap has
   the same sign on every training benchmark (a cue that flips between benchmarks is not trusted
   on unseen traffic); the others get weight 0.
4. Model: L2 logistic regression (C below), exported as plain weights (standardisation folded in).
5. Held-out models, same recipe: leave-one-benchmark-out (3) and 5 folds of MMLU subjects, shipped
   in the same file for bench/eval_router.py. The held-out (LOBO) scores give the quality-vs-heavy-share
   curves that `Classifier.share_for_quality` reads; the production model's scores on the three
   benchmarks (each weighted equally) give the reference quantiles for `threshold_for_share`.

Replacing this recipe: a candidate ships only when the rule below, fixed before any held-out figure is
looked at, picks it and the picked candidate's held-out APGR is above prompt length on every benchmark.
Rule (scripts/router_protocol.py): for each held-out benchmark, score every candidate on the two
training benchmarks only (each held out in turn, MMLU as 5 subject folds; the mean margin over prompt
length), take the best, prompt length on a tie. The candidates tried so far and their figures:
`scripts/probe_router_transfer.py --no-blend --ranking 1,2,3` (none beat length on every held-out
benchmark: the best, round 3, 0.610 / 0.587 / 0.597 against length's 0.595 / 0.588 / 0.566);
`scripts/probe_router_rank.py` (rank blends of length and this classifier inside the workload: the rule's
picks give 0.595 / 0.583 / 0.566, length on GSM8K and MT-Bench, below it on MMLU);
`scripts/probe_router_arena.py` (this recipe trained with arena-bench-v1 added as a fourth source, `load_arena`,
plain or sources balanced, alone or rank-blended with length: the rule's picks give 0.577 / 0.588 / 0.566).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import eval_router as ev  # noqa: E402

from paymaster.levers.classifier import DENSE, Classifier, features  # noqa: E402

BUCKETS = 4096
HASH_SCALE = 0.3
C = 1.0
FOLDS = 5
SHARES = [i / 50 for i in range(51)]  # grid of the shipped quality curves
OUT = ROOT / "src" / "paymaster" / "data" / "router_weights.json"
ARENA = "arena"  # arena-bench-v1 (scripts/data/arena_bench_v1): a training-only source, never held out of record
ARENA_DATA = ROOT / "scripts" / "data" / "arena_bench_v1" / "outcomes.jsonl"
JUDGED = ("mt_bench", ARENA)  # 1..10 judge scores: label "strong at least one point higher"


def label(bench: str, p: ev.Prompt) -> float:
    return float(p.strong - p.weak >= 1.0) if bench in JUDGED else float(p.strong > p.weak)


def load_arena(path: str | Path = ARENA_DATA) -> list[ev.Prompt]:
    """arena-bench-v1's prompts with both models' GPT-4 judge ratings (scripts/build_arena_data.py)."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [ev.Prompt(r["prompt"], float(r["weak"]), float(r["strong"]), ARENA) for r in rows]


class Design:
    """Feature matrices for every prompt of every benchmark (of `benches`), in one row order."""

    def __init__(self, data: dict[str, list[ev.Prompt]], benches: tuple[str, ...] = ev.BENCHMARKS):
        self.benches = benches
        self.rows = [(b, p) for b in benches for p in data[b]]
        cols, ptr, vals, dense = [], [0], [], []
        for _, p in self.rows:
            found, d = features(p.text, BUCKETS)
            cols += sorted(found)
            vals += [1.0 / np.sqrt(len(found) or 1)] * len(found)
            ptr.append(len(cols))
            dense.append(d)
        n = len(self.rows)
        self.hashed = sp.csr_matrix((np.array(vals), np.array(cols), np.array(ptr)), shape=(n, BUCKETS))
        self.dense = np.array(dense)
        self.bench = np.array([b for b, _ in self.rows])
        self.group = np.array([p.group for _, p in self.rows])
        self.y = np.array([label(b, p) for b, p in self.rows])
        self.gap = np.array([p.strong - p.weak for _, p in self.rows])

    def consistent(self, train: np.ndarray) -> list[int]:
        """Handcrafted counts whose correlation with the gap has one sign on every training benchmark."""
        keep = []
        for j in range(self.dense.shape[1]):
            signs = set()
            for b in self.benches:
                m = train & (self.bench == b)
                if m.sum() < 30:
                    continue  # not a training benchmark here
                col = self.dense[m, j]
                if col.min() == col.max():
                    signs.add(0.0)
                    continue
                signs.add(float(np.sign(spearmanr(col, self.gap[m]).statistic)))
            if signs in ({1.0}, {-1.0}):
                keep.append(j)
        return keep

    def fit(self, train: np.ndarray, balance: bool = False) -> dict:
        """The recipe on the rows of `train`; with `balance`, every training source (benchmark) carries the
        same total sample weight (so 291 arena prompts count as much as 13,000 MMLU ones)."""
        keep = self.consistent(train)
        d = self.dense[:, keep]
        mu, sd = d[train].mean(0), d[train].std(0)
        x = sp.hstack([self.hashed * HASH_SCALE, sp.csr_matrix((d - mu) / sd)]).tocsr()
        lr = LogisticRegression(C=C, max_iter=5000, tol=1e-8)
        weight = None
        if balance:
            sources = sorted(set(self.bench[train]))
            per = {b: train.sum() / (len(sources) * (train & (self.bench == b)).sum()) for b in sources}
            weight = np.array([per[b] for b in self.bench[train]])
        lr.fit(x[train], self.y[train], sample_weight=weight)
        coef, bias = lr.coef_[0], float(lr.intercept_[0])
        dense_w = [0.0] * len(DENSE)
        for k, j in enumerate(keep):
            dense_w[j] = float(coef[BUCKETS + k] / sd[k])
            bias -= float(coef[BUCKETS + k] * mu[k] / sd[k])
        model = {
            "buckets": BUCKETS,
            "bias": _round(bias),
            "hashed": [_round(float(w) * HASH_SCALE) for w in coef[:BUCKETS]],
            "dense_names": list(DENSE),
            "dense": [_round(w) for w in dense_w],
        }
        # the exported weights, scored in pure Python, must agree with scikit-learn's model
        sample = np.flatnonzero(train)[::97]
        ours = np.array([Classifier(model).score(self.rows[i][1].text) for i in sample])
        theirs = lr.predict_proba(x[sample])[:, 1]
        assert np.abs(ours - theirs).max() < 1e-3, np.abs(ours - theirs).max()
        return model


def _round(x: float) -> float:
    return float(f"{x:.5g}")


def subject_folds(data: dict[str, list[ev.Prompt]]) -> list[list[str]]:
    subjects = sorted({p.group for p in data["mmlu"]})
    random.Random(0).shuffle(subjects)
    return [sorted(subjects[k::FOLDS]) for k in range(FOLDS)]


def quality_curve(scores: list[float], prompts: list[ev.Prompt]) -> list[float]:
    """Routed quality / strong-model quality when the top `share` of prompts by score go heavy."""
    n = len(prompts)
    order = sorted(range(n), key=lambda i: -scores[i])
    strong = sum(p.strong for p in prompts)
    out = []
    for share in SHARES:
        top = order[: round(share * n)]
        routed = sum(p.weak for p in prompts) + sum(prompts[i].strong - prompts[i].weak for i in top)
        out.append(round(routed / strong, 4))
    return out


def reference_quantiles(scores: np.ndarray, bench: np.ndarray) -> list[float]:
    """Score percentiles 0..100 of the three benchmarks' prompts, each benchmark weighted equally."""
    weight = np.zeros(len(scores))
    for b in ev.BENCHMARKS:
        weight[bench == b] = 1.0 / (bench == b).sum()
    order = np.argsort(scores, kind="stable")
    s, w = scores[order], weight[order]
    centre = (np.cumsum(w) - w / 2) / w.sum()
    return [_round(float(v)) for v in np.interp(np.linspace(0, 1, 101), centre, s)]


def numpy_metrics(scores: list[float], prompts: list[ev.Prompt]) -> tuple[float, float, float]:
    """APGR and CPT(50 %, 80 %) the way routellm/evals/evaluate.py computes them, to check ev's code."""
    s = np.array(scores)
    w, st = np.array([p.weak for p in prompts]), np.array([p.strong for p in prompts])
    thresholds = np.quantile(s, np.linspace(0, 1, 11))
    pts = []
    for i, t in enumerate(thresholds):
        sel = s >= t if i < 10 else s > t
        pts.append((sel.mean() * 100, np.where(sel, st, w).mean()))
    pts.sort()
    x, acc = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    auc = np.trapezoid(acc, x / 100)
    weak_auc, strong_auc = (
        np.trapezoid(np.full(len(x), w.mean()), x / 100),
        np.trapezoid(np.full(len(x), st.mean()), x / 100),
    )
    cpts = [np.interp(q * (st.mean() - w.mean()) + w.mean(), acc, x) / 100 for q in (0.5, 0.8)]
    return float((auc - weak_auc) / (strong_auc - weak_auc)), float(cpts[0]), float(cpts[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=ev.DEFAULT_DATA)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    data = ev.load(args.data)
    design = Design(data)
    everything = np.ones(len(design.rows), bool)
    print(f"{len(design.rows)} prompts: " + ", ".join(f"{b} {len(data[b])}" for b in ev.BENCHMARKS))

    holdout = []
    for b in ev.BENCHMARKS:
        test = design.bench == b
        holdout.append({"protocol": "leave-one-benchmark-out", "benchmark": b, "groups": None, "test": test})
    for subjects in subject_folds(data):
        test = (design.bench == "mmlu") & np.isin(design.group, subjects)
        holdout.append({"protocol": "mmlu-subject-5-fold", "benchmark": "mmlu", "groups": subjects, "test": test})

    held: dict[str, dict[str, list[float]]] = {}
    for h in holdout:
        test = h.pop("test")
        h["model"] = design.fit(~test)
        clf = Classifier(h["model"])
        kept = [DENSE[j] for j, w in enumerate(h["model"]["dense"]) if w]
        print(f"{h['protocol']:24} {h['benchmark']:8} kept counts: {', '.join(kept)}")
        scores = held.setdefault(h["protocol"], {}).setdefault(h["benchmark"], [0.0] * len(data[h["benchmark"]]))
        for i, p in enumerate(data[h["benchmark"]]):
            if h["groups"] is None or p.group in h["groups"]:
                scores[i] = clf.score(p.text)

    print("\nheld-out APGR / CPT(50%) / CPT(80%)   [numpy re-computation as in routellm evaluate.py]")
    worst_diff = 0.0
    for protocol, per_bench in held.items():
        for b, scores in per_bench.items():
            ps = data[b]
            weak, strong = [p.weak for p in ps], [p.strong for p in ps]
            mine = (ev.apgr(scores, weak, strong), ev.cpt(scores, weak, strong, 0.5), ev.cpt(scores, weak, strong, 0.8))
            ref = numpy_metrics(scores, ps)
            worst_diff = max(worst_diff, *(abs(a - r) for a, r in zip(mine, ref, strict=True)))
            print(
                f"  {protocol:24} {b:8} {mine[0]:.3f} / {mine[1]:.1%} / {mine[2]:.1%}   "
                f"[{ref[0]:.3f} / {ref[1]:.1%} / {ref[2]:.1%}]"
            )
    print(f"largest difference between bench/eval_router.py metrics and the numpy version: {worst_diff:.2e}")

    model = design.fit(everything)
    clf = Classifier(model)
    kept = [DENSE[j] for j, w in enumerate(model["dense"]) if w]
    print(f"\nproduction model kept counts: {', '.join(kept)}")
    full_scores = np.array([clf.score(p.text) for _, p in design.rows])
    curves = {b: quality_curve(held["leave-one-benchmark-out"][b], data[b]) for b in ev.BENCHMARKS}
    worst = [min(curves[b][k] for b in ev.BENCHMARKS) for k in range(len(SHARES))]

    doc = {
        "format": 1,
        "about": (
            "Paymaster complexity classifier: logistic regression over hashed word uni/bigrams and handcrafted counts; "
            "score = P(strong model beats weak model). Written by scripts/train_router.py; do not edit by hand."
        ),
        "training": {
            "data": "lm-sys/RouteLLM per-prompt outcomes (commit 0b64fda): GSM8K, MMLU, MT-Bench; contaminated dropped",
            "weak_model": ev.WEAK,
            "strong_model": ev.STRONG,
            "label": "GSM8K/MMLU: strong correct and weak wrong; MT-Bench: strong judge score >= weak + 1",
            "prompts": {b: len(data[b]) for b in ev.BENCHMARKS},
            "C": C,
            "hash_scale": HASH_SCALE,
            "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__},
        },
        "model": model,
        "reference": {
            "about": "score percentiles 0..100 of the production model on GSM8K + MMLU + MT-Bench prompts, "
            "each benchmark weighted equally",
            "score_quantiles": reference_quantiles(full_scores, design.bench),
        },
        "quality_curve": {
            "about": "routed quality / strong-model quality vs share of calls sent heavy (top scores first), "
            "scored by the leave-one-benchmark-out models; 'worst' is the minimum over the three benchmarks",
            "heavy_share": SHARES,
            **curves,
            "worst": worst,
        },
        "holdout": holdout,
    }
    text = json.dumps(doc, separators=(",", ":")) + "\n"
    Path(args.out).write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"\nwrote {args.out}: {len(text) / 1024:.0f} KiB, sha256 {digest}")
    for q in (0.90, 0.95, 0.98):
        share = Classifier(model, doc["reference"]["score_quantiles"], doc["quality_curve"]).share_for_quality(q)
        print(f"  min_quality {q:.2f} -> heavy share {share:.0%}")


if __name__ == "__main__":
    main()
