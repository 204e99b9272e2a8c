"""The simulation behind scripts/probe_router_refit.py, in plain Python (no numpy), so tests can check it.

A fleet's stream of calls is routed by a prior score corrected online from the ratings of the calls
(`Correction`, logistic regression by AdaGrad on the prior logit, the classifier's handcrafted counts and,
optionally, its hashed n-gram buckets); the running quantile (routing_share.ShareKeeper) sends the top
TARGET of recent scores heavy, EXPLORE of those go light instead so light-tier labels span the range.
`simulate` learns from the first half of the stream only and scores the later half with the frozen
correction: no later-half outcome can reach the scores it returns (tests/test_router_refit.py).
The protocol and the figures: scripts/probe_router_refit.py.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from paymaster.levers.routing_share import ShareKeeper
from paymaster.levers.routing_state import RoutingState

TARGET = 0.3
EXPLORE = 0.05
WINDOW, WARMUP = 1000, 50


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Recipe:
    hashed: bool
    rate: float
    l2: float
    heavy_negatives: bool

    @property
    def name(self) -> str:
        feats = "dense+hashed" if self.hashed else "dense"
        return f"{feats}, rate {self.rate:g}, L2 {self.l2:g}, heavy negatives {'on' if self.heavy_negatives else 'off'}"


class Correction:
    """Online logistic regression on top of the prior logit (AdaGrad)."""

    def __init__(self, recipe: Recipe, n_dense: int):
        self.r = recipe
        self.w = [1.0, 0.0] + [0.0] * n_dense  # prior logit, bias, dense
        self.g = [0.0] * len(self.w)
        self.v: dict[int, float] = {}
        self.gv: dict[int, float] = {}
        self.n = 0
        self.mean = [0.0] * n_dense
        self.m2 = [0.0] * n_dense

    def observe(self, dense: list[float]) -> None:
        self.n += 1
        for j, x in enumerate(dense):
            d = x - self.mean[j]
            self.mean[j] += d / self.n
            self.m2[j] += d * (x - self.mean[j])

    def _x(self, prior: float, dense: list[float]) -> list[float]:
        sd = [math.sqrt(m / self.n) if self.n > 1 and m > 0 else 1.0 for m in self.m2]
        return [prior, 1.0] + [(x - mu) / s for x, mu, s in zip(dense, self.mean, sd, strict=True)]

    def z(self, prior: float, dense: list[float], buckets: list[int]) -> float:
        x = self._x(prior, dense)
        out = sum(a * b for a, b in zip(self.w, x, strict=True))
        if self.r.hashed and buckets:
            h = 1.0 / math.sqrt(len(buckets))
            out += h * sum(self.v.get(k, 0.0) for k in buckets)
        return out

    def update(self, prior: float, dense: list[float], buckets: list[int], y: float) -> None:
        x = self._x(prior, dense)
        z = sum(a * b for a, b in zip(self.w, x, strict=True))
        h = 1.0 / math.sqrt(len(buckets)) if buckets else 0.0
        if self.r.hashed:
            z += h * sum(self.v.get(k, 0.0) for k in buckets)
        p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        err = p - y
        rate, l2 = self.r.rate, self.r.l2
        for j, xj in enumerate(x):
            grad = err * xj + (l2 * self.w[j] if j >= 2 else 0.0)
            self.g[j] += grad * grad
            if self.g[j] > 0:
                self.w[j] -= rate * grad / math.sqrt(self.g[j])
        if self.r.hashed:
            for k in buckets:
                vk = self.v.get(k, 0.0)
                grad = err * h + l2 * vk
                gk = self.gv.get(k, 0.0) + grad * grad
                self.gv[k] = gk
                if gk > 0:
                    self.v[k] = vk - rate * grad / math.sqrt(gk)


@dataclass
class Stream:
    """One workload as a fleet's traffic: per prompt (index i), the prior logit, features and outcomes."""

    prior: list[float]  # logit of the prior (static) score
    dense: list[list[float]]
    buckets: list[list[int]]
    light_ok: list[float]  # the rating a light-tier answer gets: 1 success, 0 failure
    heavy_ok: list[float]
    gap: list[float]  # strong - weak quality (what sending the call heavy gains)


@dataclass
class Run:
    later: list[int]
    adapted: list[float]
    heavy_share: float
    explored_share: float
    exploration_gap_lost: float  # share of the whole stream's strong - weak gap


def simulate(stream: Stream, recipe: Recipe, seed: int, fallback: float) -> Run:
    n = len(stream.prior)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    half = n // 2
    corr = Correction(recipe, len(stream.dense[0]))
    keeper = ShareKeeper(RoutingState(None), window=WINDOW, warmup=WARMUP)
    rng = random.Random(10_000 + seed)
    heavy_n = explored = 0
    lost = 0.0
    for i in order[:half]:
        corr.observe(stream.dense[i])
        s = corr.z(stream.prior[i], stream.dense[i], stream.buckets[i])
        keeper.observe("fleet", s)
        heavy = keeper.above("fleet", s, TARGET, fallback)
        if heavy and rng.random() < EXPLORE:
            heavy, explored = False, explored + 1
            lost += stream.gap[i]
        heavy_n += heavy
        if not heavy:
            corr.update(stream.prior[i], stream.dense[i], stream.buckets[i], 1.0 - stream.light_ok[i])
        elif recipe.heavy_negatives and not stream.heavy_ok[i]:
            corr.update(stream.prior[i], stream.dense[i], stream.buckets[i], 0.0)
    later = order[half:]
    adapted = [corr.z(stream.prior[i], stream.dense[i], stream.buckets[i]) for i in later]
    gap = sum(stream.gap)
    return Run(later, adapted, heavy_n / half, explored / half, lost / gap if gap else 0.0)
