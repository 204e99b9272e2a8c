"""How well the complexity classifier routes, measured on prompts it was not trained on.

    python bench/eval_router.py [--data DIR]        # DIR: RouteLLM's per-prompt outcomes
                                                    # (default $ROUTELLM_DATA or /work/shared/data/routellm)

For GSM8K, MMLU and MT-Bench (contaminated prompts dropped, as RouteLLM does) it prints APGR,
CPT(50 %), CPT(80 %) and the cost saving at 95 % of strong-model quality, leave-one-benchmark-out
(the figure that counts: weights trained on the other two benchmarks), each with a 95 % bootstrap
interval (BOOT_ROUNDS resamples of the held-out prompts), beside prompt length alone (no training) and
the random router (mean ± sd over RANDOM_SEEDS seeds); the paired classifier − length APGR difference;
on MMLU the in-benchmark split (5 folds of subjects) beside, never instead of, the held-out row; and
RouteLLM's published routers. Then the heavy share each workload actually gets at a target share,
with the reference-distribution threshold and with the running quantile (levers/routing_share.py),
and the decision latency.

The held-out weights ship in the same file as the production weights; `scripts/train_router.py`
writes both. The metrics follow lm-sys/RouteLLM routellm/evals (evaluate.py, benchmarks.py):
thresholds at the deciles of the router's scores (`pd.qcut(..., 10)`), strong model where
score >= threshold (> for the top one), APGR = trapezoid area under quality vs strong-call share,
normalised so the weak model is 0 and the strong one 1; CPT(x) = strong-call share interpolated
where the curve reaches weak + x * (strong - weak). "95 % quality" = routed score / strong-model
score >= 0.95 on the same curve; the saving prices each call at TOKENS_IN + TOKENS_OUT tokens on
LIGHT_MODEL vs HEAVY_MODEL with genai-prices. Standard library only, plus genai-prices; ~60 s.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import glob
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from itertools import pairwise
from pathlib import Path

from genai_prices import Usage, calc_price

from paymaster.levers.classifier import HEAD, TAIL, Classifier

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
BENCHMARKS = ("gsm8k", "mmlu", "mt_bench")
DEFAULT_DATA = os.environ.get("ROUTELLM_DATA", "/work/shared/data/routellm")

# Cheap / expensive pair for the saving column, and what one call is assumed to use.
LIGHT_MODEL, HEAVY_MODEL, PROVIDER = "claude-haiku-4-5", "claude-opus-4-8", "anthropic"
TOKENS_IN, TOKENS_OUT = 1000, 500
BOOT_ROUNDS = 200  # bootstrap resamples per benchmark for the 95 % intervals
RANDOM_SEEDS = 100

# RouteLLM's published figures (GPT-4-1106 vs Mixtral-8x7B). None = not retrieved.
PUBLISHED = {
    "gsm8k": (None, None, None, "35 %"),
    "mmlu": (0.603, 0.354, 0.703, "45 %"),
    "mt_bench": (0.802, 0.134, 0.313, ">85 %"),
}
PUBLISHED_NOTES = (
    "RouteLLM rows: Ong et al., 'RouteLLM: Learning to Route LLMs with Preference Data', arXiv:2406.18665.",
    "  MT-Bench: matrix factorisation router trained on Arena + GPT-4-judge data (the paper's MT-Bench table).",
    "  MMLU: best value per column of routers trained on Arena + MMLU golden-label data (the paper's MMLU table).",
    "  GSM8K: APGR / CPT not retrieved for this table (no offline copy of the paper's GSM8K table).",
    "  Saving column: 'cost reductions of over 85% on MT Bench, 45% on MMLU, and 35% on GSM8K ... while still",
    "  achieving 95% of GPT-4's performance' (RouteLLM project page; the data README), at their GPT-4 vs",
    "  Mixtral prices, so not comparable in size with our claude pair's column.",
)


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    weak: float  # 1/0 correct (GSM8K, MMLU) or mean judge score of both turns (MT-Bench)
    strong: float
    group: str  # MMLU subject, MT-Bench category, "gsm8k"


def load(data_dir: str | Path = DEFAULT_DATA) -> dict[str, list[Prompt]]:
    """The three benchmarks with RouteLLM's contaminated prompts dropped."""
    d = Path(data_dir)

    def contaminated(bench: str) -> set[str]:
        with open(d / bench / "contaminated_prompts.jsonl") as f:
            return {json.loads(line)["eval_prompt"] for line in f if line.strip()}

    def from_csv(path: Path, group: str, drop: set[str]) -> list[Prompt]:
        with open(path, newline="") as f:
            return [
                Prompt(r["prompt"], float(r[WEAK] == "True"), float(r[STRONG] == "True"), group)
                for r in csv.DictReader(f)
                if r["prompt"] not in drop
            ]

    out = {"gsm8k": from_csv(d / "gsm8k" / "gsm8k_responses.csv", "gsm8k", contaminated("gsm8k"))}
    drop = contaminated("mmlu")
    out["mmlu"] = [
        p for f in sorted(glob.glob(str(d / "mmlu" / "mmlu_*.csv"))) for p in from_csv(Path(f), Path(f).stem[5:], drop)
    ]
    drop = contaminated("mt_bench")
    judged: dict[tuple[int, str], list[float]] = {}
    with open(d / "mt_bench" / "judgements.jsonl") as f:
        for line in f:
            j = json.loads(line)
            judged.setdefault((j["question_id"], j["model"]), []).append(float(j["score"]))
    mt = []
    with open(d / "mt_bench" / "question.jsonl") as f:
        for line in f:
            q = json.loads(line)
            if q["turns"][0] in drop or q["turns"][1] in drop:
                continue
            w, s = judged[(q["question_id"], WEAK)], judged[(q["question_id"], STRONG)]
            # routed on the first turn; quality = mean over both turns (RouteLLM's MTBench.evaluate)
            mt.append(Prompt(q["turns"][0], sum(w) / len(w), sum(s) / len(s), q["category"]))
    out["mt_bench"] = mt
    return out


# -- RouteLLM's metrics ---------------------------------------------------------------------------


def quantile(ordered: Sequence[float], p: float) -> float:
    """Linear-interpolation quantile of sorted values (numpy's default, what pd.qcut uses)."""
    if len(ordered) == 1:
        return ordered[0]
    pos = p * (len(ordered) - 1)
    i = min(int(pos), len(ordered) - 2)
    return ordered[i] + (ordered[i + 1] - ordered[i]) * (pos - i)


def call_curve(
    scores: Sequence[float], weak: Sequence[float], strong: Sequence[float], bins: int = 10
) -> list[tuple[float, float]]:
    """(share of calls sent to the strong model, mean quality) at the router's score deciles, by share."""
    n = len(scores)
    order = sorted(range(n), key=scores.__getitem__)
    ordered = [scores[i] for i in order]
    tail = [0.0] * (n + 1)  # tail[k]: quality gained by sending order[k:] to the strong model
    for k in range(n - 1, -1, -1):
        i = order[k]
        tail[k] = tail[k + 1] + strong[i] - weak[i]
    base = sum(weak)
    points = []
    for b in range(bins + 1):
        t = quantile(ordered, b / bins)
        k = bisect.bisect_left(ordered, t) if b < bins else bisect.bisect_right(ordered, t)
        points.append(((n - k) / n, (base + tail[k]) / n))
    points.sort()
    return points


def apgr(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> float:
    """Average performance gap recovered: 0 = the weak model's quality, 1 = the strong model's."""
    pts = call_curve(scores, weak, strong)
    w, s = sum(weak) / len(weak), sum(strong) / len(strong)
    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(pts))
    span = pts[-1][0] - pts[0][0]
    return (auc - w * span) / ((s - w) * span)


def share_for(points: Sequence[tuple[float, float]], target: float) -> float:
    """Strong-call share where the curve first reaches `target` quality (np.interp on a rising curve)."""
    if target <= points[0][1]:
        return points[0][0]
    for (x0, y0), (x1, y1) in pairwise(points):
        if y0 < target <= y1:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return points[-1][0]


def cpt(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float], pgr: float) -> float:
    """Call-performance threshold: the strong-call share needed to recover `pgr` of the gap."""
    w, s = sum(weak) / len(weak), sum(strong) / len(strong)
    return share_for(call_curve(scores, weak, strong), w + pgr * (s - w))


def share_at_quality(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float], q: float) -> float:
    """Strong-call share at which quality reaches `q` x the strong model's (0.95 = 95 %)."""
    w, s = sum(weak) / len(weak), sum(strong) / len(strong)
    return share_for(call_curve(scores, weak, strong), q * s) if q * s > w else 0.0


def bootstrap(
    metric: Callable[[Sequence[float], Sequence[float], Sequence[float]], tuple[float, ...]],
    routers: dict[str, Sequence[float]],
    weak: Sequence[float],
    strong: Sequence[float],
    rounds: int = BOOT_ROUNDS,
    seed: int = 0,
) -> dict[str, list[tuple[float, ...]]]:
    """`metric` of each router on `rounds` resamples of the prompts (with replacement), the same
    resamples for every router, so rows can be compared pairwise (position k = resample k)."""
    rng = random.Random(seed)
    n = len(weak)
    out: dict[str, list[tuple[float, ...]]] = {name: [] for name in routers}
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        w, s = [weak[i] for i in idx], [strong[i] for i in idx]
        if sum(s) == sum(w):
            continue  # no gap to recover in this resample
        for name, sc in routers.items():
            out[name].append(metric([sc[i] for i in idx], w, s))
    return out


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval."""
    ordered = sorted(values)
    lo = ordered[int((1 - level) / 2 * (len(ordered) - 1))]
    hi = ordered[int((1 + level) / 2 * (len(ordered) - 1) + 0.5)]
    return lo, hi


def metrics(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> tuple[float, ...]:
    """(APGR, CPT(50 %), CPT(80 %), strong-call share at 95 % quality) from one curve."""
    pts = call_curve(scores, weak, strong)
    w, s = sum(weak) / len(weak), sum(strong) / len(strong)
    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(pts))
    span = pts[-1][0] - pts[0][0]
    return (
        (auc - w * span) / ((s - w) * span),
        share_for(pts, w + 0.5 * (s - w)),
        share_for(pts, w + 0.8 * (s - w)),
        share_for(pts, 0.95 * s) if 0.95 * s > w else 0.0,
    )


def random_scores(n: int, seed: int = 0) -> list[float]:
    """RouteLLM's random router: random.seed(seed), then random.uniform(0, 1) per prompt."""
    rng = random.Random(seed)
    return [rng.uniform(0, 1) for _ in range(n)]


# -- the table ------------------------------------------------------------------------------------


def call_prices() -> tuple[Decimal, Decimal]:
    usage = Usage(input_tokens=TOKENS_IN, output_tokens=TOKENS_OUT)
    light = calc_price(usage, model_ref=LIGHT_MODEL, provider_id=PROVIDER).total_price
    heavy = calc_price(usage, model_ref=HEAVY_MODEL, provider_id=PROVIDER).total_price
    return light, heavy


def saving(share: float, light: Decimal, heavy: Decimal) -> float:
    """Cost saving against sending every call to the heavy model, with `share` of calls heavy."""
    routed = Decimal(repr(share)) * heavy + (1 - Decimal(repr(share))) * light
    return float(1 - routed / heavy)


def holdout_scores(data: dict[str, list[Prompt]], weights: dict, protocol: str) -> dict[str, list[float]]:
    """Per benchmark, each prompt's score from the held-out model whose test split holds it."""
    out: dict[str, list[float]] = {}
    for bench, prompts in data.items():
        entries = [e for e in weights["holdout"] if e["protocol"] == protocol and e["benchmark"] == bench]
        if not entries:
            continue
        scores: list[float | None] = [None] * len(prompts)
        for e in entries:
            clf = Classifier(e["model"])
            groups = set(e["groups"]) if e["groups"] is not None else None
            for i, p in enumerate(prompts):
                if groups is None or p.group in groups:
                    if scores[i] is not None:
                        raise ValueError(f"{protocol}: {bench} prompt in two test splits")
                    scores[i] = clf.score(p.text)
        if any(s is None for s in scores):
            raise ValueError(f"{protocol}: {bench} prompts in no test split")
        out[bench] = [s for s in scores if s is not None]
    return out


def timings(prompts: Sequence[str], score: Callable[[str], float], repeat: int = 1) -> list[float]:
    """Microseconds per `score` call (per prompt, the fastest of `repeat` calls), sorted."""
    clock = time.perf_counter_ns

    def once(text: str) -> int:
        t0 = clock()
        score(text)
        return clock() - t0

    for t in prompts[:200]:  # warm up
        score(t)
    return sorted(min(once(t) for _ in range(repeat)) / 1000 for t in prompts)


def pct(ordered: Sequence[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def shares_held(clf: Classifier, data: dict[str, list[Prompt]], calls: int = 3000) -> None:
    """target_heavy_share on workloads unlike each other: the reference-distribution threshold against the
    running quantile (routing_share.py), each benchmark's prompts streamed as one agent's traffic."""
    from paymaster.levers.routing_share import ShareKeeper
    from paymaster.levers.routing_state import RoutingState

    print(
        f"Heavy share actually sent, per workload ({calls} calls each, prompts in random order, repeated when fewer; "
        "running quantile: window 1000, warm-up 50, counted after the warm-up)"
    )
    print(f"{'workload':9} | {'target':>6} | {'reference threshold':>19} | {'running quantile':>16}")
    for target in (0.1, 0.3, 0.5):
        fixed = clf.threshold_for_share(target)
        for b, ps in data.items():
            rng, texts = random.Random(1), []
            while len(texts) < calls:
                texts += rng.sample([p.text for p in ps], min(len(ps), calls - len(texts)))
            scores = [clf.score(t) for t in texts]
            keeper = ShareKeeper(RoutingState(None), window=1000, warmup=50)
            heavy = counted = 0
            for sc in scores:
                keeper.observe(b, sc)
                if keeper.seen(b) >= keeper.warmup:
                    counted += 1
                    heavy += keeper.above(b, sc, target, fixed)
            ref = sum(sc >= fixed for sc in scores) / len(scores)
            print(f"{b:9} | {target:6.0%} | {ref:19.1%} | {heavy / counted:16.1%}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="RouteLLM per-prompt outcomes (gsm8k/, mmlu/, mt_bench/)")
    args = ap.parse_args()
    started = time.perf_counter()

    data = load(args.data)
    weights = json.loads(resources.files("paymaster").joinpath("data/router_weights.json").read_text())
    lobo = holdout_scores(data, weights, "leave-one-benchmark-out")
    folds = holdout_scores(data, weights, "mmlu-subject-5-fold")
    light, heavy = call_prices()

    print(
        "Complexity classifier on RouteLLM data (weak: Mixtral-8x7B, strong: GPT-4-1106), contaminated prompts dropped"
    )
    for b, ps in data.items():
        n = len(ps)
        w, s = sum(p.weak for p in ps) / n, sum(p.strong for p in ps) / n
        unit = "judge score" if b == "mt_bench" else "accuracy"
        print(f"  {b:9} {n:6} prompts, {unit}: weak {w:.3f}, strong {s:.3f}; 95 % quality = {0.95 * s:.3f}")
    print(
        f"Saving priced with genai-prices: {LIGHT_MODEL} ${light} vs {HEAVY_MODEL} ${heavy} per call "
        f"({TOKENS_IN} input + {TOKENS_OUT} output tokens; {PROVIDER}); all-light saves {saving(0.0, light, heavy):.0%}"
    )
    print(
        f"Each cell: value on the held-out benchmark [95 % bootstrap interval, {BOOT_ROUNDS} resamples of its prompts]"
        "; "
        f"random = mean ± sd over {RANDOM_SEEDS} seeds."
    )
    print()
    header = (
        f"{'benchmark':9} | {'router':46} | {'APGR':^19} | {'CPT(50%)':^19} | {'CPT(80%)':^19} | "
        "saving @95% quality [interval] (heavy share)"
    )
    print(header)
    print("-" * len(header))
    for b, ps in data.items():
        weak, strong = [p.weak for p in ps], [p.strong for p in ps]
        routers: dict[str, list[float]] = {}
        if b in lobo:
            routers["classifier, benchmark held out (LOBO)"] = lobo[b]
        routers["prompt length alone (no training)"] = [float(len(p.text)) for p in ps]
        boots = bootstrap(metrics, routers, weak, strong, seed=BENCHMARKS.index(b))
        for name, sc in routers.items():
            m, cols = metrics(sc, weak, strong), list(zip(*boots[name], strict=True))
            cells = [f"{m[0]:.3f} [{interval(cols[0])[0]:.3f}, {interval(cols[0])[1]:.3f}]"]
            cells += [f"{m[k]:5.1%} [{interval(cols[k])[0]:.0%}, {interval(cols[k])[1]:.0%}]" for k in (1, 2)]
            lo, hi = (saving(x, light, heavy) for x in reversed(interval(cols[3])))
            print(
                f"{b:9} | {name:46} | {cells[0]:^19} | {cells[1]:^19} | {cells[2]:^19} | "
                f"{saving(m[3], light, heavy):5.1%} [{lo:.0%}, {hi:.0%}] ({m[3]:.0%} heavy)"
            )
        rnd = [metrics(random_scores(len(ps), seed), weak, strong) for seed in range(RANDOM_SEEDS)]
        cols = list(zip(*rnd, strict=True))
        sav = [saving(x, light, heavy) for x in cols[3]]
        cells = [f"{statistics.mean(c):.3f} ± {statistics.stdev(c):.3f}" for c in cols[:1]]
        cells += [f"{statistics.mean(c):5.1%} ± {statistics.stdev(c):.1%}" for c in cols[1:3]]
        print(
            f"{b:9} | {'random router (mean ± sd over seeds)':46} | {cells[0]:^19} | {cells[1]:^19} | "
            f"{cells[2]:^19} | {statistics.mean(sav):5.1%} ± {statistics.stdev(sav):.1%}"
        )
        if b in folds:  # in-benchmark split: shown beside the held-out figure, never instead of it
            m = metrics(folds[b], weak, strong)
            print(
                f"{b:9} | {'(in-benchmark: 5 folds of MMLU subjects)':46} | {m[0]:^19.3f} | {m[1]:^19.1%} | "
                f"{m[2]:^19.1%} | {saving(m[3], light, heavy):5.1%} ({m[3]:.0%} heavy)"
            )
        a, c5, c8, cut = PUBLISHED[b]
        print(
            f"{b:9} | {'RouteLLM published, best learned router':46} | {_fmt(a, '.3f'):^19} | "
            f"{_fmt(c5, '.1%'):^19} | {_fmt(c8, '.1%'):^19} | {cut} (their prices, see notes)"
        )
        if len(routers) == 2:
            names = list(routers)
            diffs = [x[0] - y[0] for x, y in zip(boots[names[0]], boots[names[1]], strict=True)]
            lo, hi = interval(diffs)
            wins = sum(d > 0 for d in diffs) / len(diffs)
            print(
                f"{b:9} | APGR classifier − length: {statistics.mean(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}], "
                f"classifier ahead in {wins:.0%} of resamples"
            )
        print("-" * len(header))
    print()
    for line in PUBLISHED_NOTES:
        print(line)
    print()

    clf = Classifier.load()
    shares_held(clf, data)
    typical = [p.text for b in BENCHMARKS for p in data[b][:: max(1, len(data[b]) // 1000)]]
    chars = sorted(len(t) for t in typical)
    every = timings(typical * 3, clf.score)
    best = timings(typical, clf.score, repeat=5)  # per prompt, best of 5: without scheduler noise
    print(
        f"Decision latency, shipped classifier, pure Python: {len(typical)} benchmark prompts "
        f"(median {chars[len(chars) // 2]} chars, p99 {chars[int(len(chars) * 0.99)]}), 3 passes: "
        f"p50 {pct(every, 0.5):.0f} µs, p99 {pct(every, 0.99):.0f} µs; best of 5 per prompt: "
        f"p50 {pct(best, 0.5):.0f} µs, p99 {pct(best, 0.99):.0f} µs"
    )
    long = [("Summarise the thread below.\n" + t * 40) for t in typical[:50]]
    slow = timings(long * 4, clf.score)
    print(
        f"Long prompts (~{len(long[0]) // 1000}k chars, read as the first {HEAD} + last {TAIL}): "
        f"p50 {pct(slow, 0.5):.0f} µs, p99 {pct(slow, 0.99):.0f} µs"
    )
    t0 = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    print(f"(this machine: a 1e6-step Python loop takes {1000 * (time.perf_counter() - t0):.0f} ms)")
    print(f"(bench ran in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
