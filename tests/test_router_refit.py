"""The simulation behind scripts/probe_router_refit.py: the correction starts as the prior, learns from
ratings what the prior misses, and no outcome of the later half (the evaluated prompts) reaches the scores."""

from __future__ import annotations

import random

from script_modules import load

rr = load("scripts/router_refit.py")

HASHED = rr.Recipe(hashed=True, rate=0.2, l2=1e-3, heavy_negatives=True)
DENSE = rr.Recipe(hashed=False, rate=0.2, l2=0.0, heavy_negatives=False)


def synthetic(n: int, prior_informative: bool, seed: int = 0):
    """Light fails exactly when dense feature 0 is above 0.7; the prior knows it or is noise."""
    rng = random.Random(seed)
    x = [rng.random() for _ in range(n)]
    fails = [float(v > 0.7) for v in x]
    prior = [(3.0 * f - 1.5) if prior_informative else rng.gauss(0, 1) for f in fails]
    return rr.Stream(
        prior=prior,
        dense=[[v, rng.random(), 5.0] for v in x],  # a useful count, a useless one, a constant
        buckets=[sorted(rng.sample(range(64), 5)) for _ in range(n)],
        light_ok=[1.0 - f for f in fails],
        heavy_ok=[1.0] * n,
        gap=fails,
    )


def auc(scores: list[float], positive: list[float]) -> float:
    pos = [s for s, y in zip(scores, positive, strict=True) if y]
    neg = [s for s, y in zip(scores, positive, strict=True) if not y]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))


def test_the_correction_starts_as_the_prior():
    for recipe in (HASHED, DENSE):
        corr = rr.Correction(recipe, 3)
        for dense in ([1.0, 2.0, 3.0], [4.0, 0.0, 9.0]):
            corr.observe(dense)
        assert corr.z(0.7, [2.0, 5.0, 1.0], [3, 9]) == 0.7
        corr.update(0.7, [2.0, 5.0, 1.0], [3, 9], 1.0)  # a failure raises the score of that call
        assert corr.z(0.7, [2.0, 5.0, 1.0], [3, 9]) > 0.7


def test_later_half_outcomes_never_reach_the_scores():
    stream = synthetic(600, prior_informative=False)
    base = rr.simulate(stream, HASHED, seed=3, fallback=0.0)
    later = set(base.later)
    assert len(later) == 300
    flipped = rr.Stream(
        stream.prior,
        stream.dense,
        stream.buckets,
        [1.0 - v if i in later else v for i, v in enumerate(stream.light_ok)],
        [1.0 - v if i in later else v for i, v in enumerate(stream.heavy_ok)],
        [1.0 - v if i in later else v for i, v in enumerate(stream.gap)],
    )
    again = rr.simulate(flipped, HASHED, seed=3, fallback=0.0)
    assert again.later == base.later and again.adapted == base.adapted
    # the first half's ratings do move them
    early = rr.Stream(
        stream.prior,
        stream.dense,
        stream.buckets,
        [v if i in later else 1.0 - v for i, v in enumerate(stream.light_ok)],
        stream.heavy_ok,
        stream.gap,
    )
    assert rr.simulate(early, HASHED, seed=3, fallback=0.0).adapted != base.adapted


def test_ratings_teach_what_the_prior_misses():
    stream = synthetic(2000, prior_informative=False)
    for recipe in (HASHED, DENSE):
        run = rr.simulate(stream, recipe, seed=0, fallback=0.0)
        fails = [stream.gap[i] for i in run.later]
        assert auc([stream.prior[i] for i in run.later], fails) < 0.6  # the prior is noise
        assert auc(run.adapted, fails) > 0.95


def test_a_frozen_correction_holds_the_share_and_exploration_costs_its_share(monkeypatch):
    stream = synthetic(4000, prior_informative=True)
    frozen = rr.Recipe(hashed=False, rate=0.0, l2=0.0, heavy_negatives=False)
    run = rr.simulate(stream, frozen, seed=1, fallback=0.0)
    assert run.adapted == [stream.prior[i] for i in run.later]
    # 30 % go heavy by the running quantile, 5 % of those are sent light to learn
    assert abs(run.explored_share - rr.TARGET * rr.EXPLORE) < 0.01
    assert abs(run.heavy_share + run.explored_share - rr.TARGET) < 0.02
    # every explored call is one that needed the top tier here: it loses its gap
    assert abs(run.exploration_gap_lost - run.explored_share * 2000 / sum(stream.gap)) < 1e-9
    monkeypatch.setattr(rr, "EXPLORE", 1.0)  # every call chosen heavy is sent light instead
    run = rr.simulate(stream, frozen, seed=1, fallback=0.0)
    assert run.heavy_share == 0.0 and abs(run.explored_share - rr.TARGET) < 0.02
    monkeypatch.setattr(rr, "EXPLORE", 0.0)
    run = rr.simulate(stream, frozen, seed=1, fallback=0.0)
    assert run.explored_share == 0.0 == run.exploration_gap_lost and abs(run.heavy_share - rr.TARGET) < 0.02
