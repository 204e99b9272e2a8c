"""The complexity classifier: shipped weights, deterministic scores, threshold knobs, and the routing metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from script_modules import load

from paymaster.levers.classifier import DENSE, Classifier, features

ev = load("bench/eval_router.py")

needs_data = pytest.mark.skipif(
    not (Path(ev.DEFAULT_DATA) / "mmlu").is_dir(), reason="RouteLLM data not found (set ROUTELLM_DATA)"
)
WORD_PROBLEM = (
    "A store sells pencils at 3 for $1.20 and erasers at $0.45 each. Maria buys 18 pencils and 7 erasers, "
    "pays with a $20 bill, and then spends half of her change on stickers that cost $0.35 each. How many "
    "stickers does she buy, and how much money does she have left?"
)


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load()


@pytest.fixture(scope="module")
def weights() -> dict:
    return json.loads(resources.files("paymaster").joinpath("data/router_weights.json").read_text())


@pytest.fixture(scope="module")
def data() -> dict:
    return ev.load()


def test_shipped_weights_load_once_and_are_small(clf, weights):
    assert Classifier.load() is clf
    size = len(resources.files("paymaster").joinpath("data/router_weights.json").read_bytes())
    assert size < 1_000_000
    assert weights["model"]["dense_names"] == list(DENSE)
    assert len(clf.hashed) == clf.buckets == 4096 and len(clf.reference) == 101
    protocols = {(h["protocol"], h["benchmark"]) for h in weights["holdout"]}
    assert protocols == {
        ("leave-one-benchmark-out", "gsm8k"),
        ("leave-one-benchmark-out", "mmlu"),
        ("leave-one-benchmark-out", "mt_bench"),
        ("mmlu-subject-5-fold", "mmlu"),
    }


def test_same_input_same_score_in_any_process(clf):
    texts = ["What is the capital of France?", WORD_PROBLEM, "", "def f(x):\n    return {x: x ** 2}"]
    here = [clf.score(t) for t in texts]
    assert here == [clf.score(t) for t in texts]
    assert all(0.0 < s < 1.0 for s in here)
    code = (
        "import json, sys\nfrom paymaster.levers.classifier import Classifier\n"
        "print(json.dumps([Classifier.load().score(t) for t in json.loads(sys.argv[1])]))"
    )
    for seed in ("1", "2"):  # str hashing is randomised per process; the features must not depend on it
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], env=env, capture_output=True, text=True)
        assert json.loads(out.stdout) == here, out.stderr


def test_features_are_bounded_for_long_prompts():
    short, dense_short = features("word " * 300, 4096)
    long, dense_long = features("word " * 100_000, 4096)
    assert short == long  # only the head and tail of a long prompt are read
    assert dense_long[DENSE.index("chars")] > dense_short[DENSE.index("chars")]  # but its length counts


def test_verified_orderings_of_the_shipped_weights(clf):
    # Checked against these weights, not a property of the method: a multi-step word problem with
    # many quantities outranks short trivia. (A proof request does NOT reliably outrank trivia.)
    assert clf.score(WORD_PROBLEM) > clf.score("What is the capital of France?")
    assert clf.score(WORD_PROBLEM) > clf.score("Who wrote Hamlet?")
    assert clf.pick(WORD_PROBLEM) == "heavy" and clf.pick("What is the capital of France?") == "light"


@needs_data
@pytest.mark.parametrize("bench", ["gsm8k", "mmlu"])
def test_held_out_top_half_needs_the_strong_model_more(data, weights, bench):
    entry = next(
        h for h in weights["holdout"] if h["protocol"] == "leave-one-benchmark-out" and h["benchmark"] == bench
    )
    held_out = Classifier(entry["model"])  # never trained on this benchmark
    ranked = sorted(data[bench], key=lambda p: held_out.score(p.text))
    half = len(ranked) // 2

    def gain(ps):
        return sum(p.strong - p.weak for p in ps) / len(ps)

    assert gain(ranked[half:]) > gain(ranked[:half]) * 1.3


def test_threshold_for_share_is_monotone_and_hits_the_reference_share(clf):
    shares = [i / 100 for i in range(101)]
    cuts = [clf.threshold_for_share(s) for s in shares]
    assert all(a >= b for a, b in zip(cuts, cuts[1:], strict=False))
    assert cuts[0] == 1.0 and cuts[-1] == 0.0
    q = clf.reference
    for s, t in zip(shares[1:-1], cuts[1:-1], strict=True):
        # the reference CDF, piecewise linear through the shipped percentiles, at the threshold
        i = max(k for k in range(len(q) - 1) if q[k] <= t)
        cdf = (i + (t - q[i]) / (q[i + 1] - q[i])) / 100 if q[i + 1] > q[i] else i / 100
        assert 1 - cdf == pytest.approx(s, abs=1e-6)
    with pytest.raises(ValueError):
        clf.threshold_for_share(1.5)


@needs_data
def test_threshold_for_share_on_the_reference_prompts(clf, data):
    t = clf.threshold_for_share(0.3)
    share = sum(sum(clf.score(p.text) >= t for p in ps) / len(ps) for ps in data.values()) / len(data)
    assert share == pytest.approx(0.3, abs=0.02)


def test_share_for_quality_reads_the_worst_held_out_curve(clf, weights):
    curve = weights["quality_curve"]
    assert curve["worst"] == [min(curve[b][k] for b in ev.BENCHMARKS) for k in range(len(curve["heavy_share"]))]
    floors = [0.7, 0.8, 0.9, 0.95, 0.98, 0.999]
    shares = [clf.share_for_quality(q) for q in floors]
    assert shares == sorted(shares) and shares[0] == 0.0 and 0.0 < shares[3] < 1.0
    x, y = curve["heavy_share"], curve["worst"]
    for q, s in zip(floors[1:], shares[1:], strict=True):
        if s == 1.0:
            assert max(y) < q  # no share reached it
            continue
        k = min(max(i for i in range(len(x) - 1) if x[i] <= s), len(x) - 2)
        at = y[k] + (y[k + 1] - y[k]) * (s - x[k]) / (x[k + 1] - x[k])
        assert at == pytest.approx(q, abs=1e-9)  # the worst held-out curve reaches the floor exactly there
        assert all(v < q for xi, v in zip(x, y, strict=True) if xi < s)  # and not before
    assert clf.threshold_for_quality(0.95) == clf.threshold_for_share(clf.share_for_quality(0.95))


def test_pick_splits_by_thresholds(clf):
    s = clf.score(WORD_PROBLEM)
    assert clf.pick(WORD_PROBLEM, thresholds=[s / 2, s]) == "heavy"
    assert clf.pick(WORD_PROBLEM, thresholds=[s / 2, s + 1e-9]) == "standard"
    assert clf.pick(WORD_PROBLEM, tiers=["cheap", "dear"], thresholds=[s + 1e-9]) == "cheap"
    with pytest.raises(ValueError):
        clf.pick(WORD_PROBLEM, thresholds=[0.5, 0.1])
    with pytest.raises(ValueError):
        clf.pick(WORD_PROBLEM, thresholds=[0.5])


def test_apgr_and_cpt_on_a_hand_made_example():
    # Four prompts: the weak model gets the first two right, the strong model all four.
    weak, strong = [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]
    good = [0.1, 0.2, 0.3, 0.4]  # scores the two weak misses highest
    # Decile thresholds 0.1, 0.13, ..., 0.4: strong shares 1, .75 x3, .5 x3, .25 x3 and 0 (strict > max).
    assert ev.call_curve(good, weak, strong) == [(0.0, 0.5)] + [(0.25, 0.75)] * 3 + [(0.5, 1.0)] * 3 + [
        (0.75, 1.0)
    ] * 3 + [(1.0, 1.0)]
    # area 0.15625 + 0.21875 + 0.5 = 0.875 -> (0.875 - 0.5) / (1.0 - 0.5)
    assert ev.apgr(good, weak, strong) == pytest.approx(0.75)
    assert ev.apgr(good[::-1], weak, strong) == pytest.approx(0.25)  # the reversed router
    assert ev.cpt(good, weak, strong, 0.5) == pytest.approx(0.25)  # quality 0.75 reached at 25 % strong
    assert ev.cpt(good, weak, strong, 0.8) == pytest.approx(0.40)  # 0.9: 0.25 + 0.25 * 0.15 / 0.25
    assert ev.share_at_quality(good, weak, strong, 0.95) == pytest.approx(0.45)


@needs_data
def test_random_router_recovers_half_the_gap_on_the_real_data(data):
    mmlu = data["mmlu"]
    assert len(mmlu) == 14037 and len(data["gsm8k"]) == 1307 and len(data["mt_bench"]) == 72
    weak, strong = [p.weak for p in mmlu], [p.strong for p in mmlu]
    assert ev.apgr(ev.random_scores(len(mmlu), 0), weak, strong) == pytest.approx(0.5, abs=0.02)
    assert ev.cpt(ev.random_scores(len(mmlu), 1), weak, strong, 0.5) == pytest.approx(0.5, abs=0.04)


def test_metrics_agree_with_the_single_metric_functions_and_bootstrap_brackets_them():
    import random

    rng = random.Random(4)
    weak = [float(rng.random() < 0.6) for _ in range(400)]
    strong = [max(w, float(rng.random() < 0.8)) for w in weak]
    good = [s - w + rng.random() for w, s in zip(weak, strong, strict=True)]  # informative scores
    m = ev.metrics(good, weak, strong)
    assert m[0] == pytest.approx(ev.apgr(good, weak, strong))
    assert m[1] == pytest.approx(ev.cpt(good, weak, strong, 0.5))
    assert m[2] == pytest.approx(ev.cpt(good, weak, strong, 0.8))
    assert m[3] == pytest.approx(ev.share_at_quality(good, weak, strong, 0.95))
    noise = ev.random_scores(400, 1)
    boots = ev.bootstrap(ev.metrics, {"good": good, "noise": noise}, weak, strong, rounds=60)
    assert len(boots["good"]) == len(boots["noise"]) == 60  # paired: the same resamples for both
    lo, hi = ev.interval([b[0] for b in boots["good"]])
    assert lo < m[0] < hi and lo > 0.5  # an informative router's interval sits above random
    diffs = [g[0] - n[0] for g, n in zip(boots["good"], boots["noise"], strict=True)]
    assert ev.interval(diffs)[0] > 0
    assert ev.interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
