"""The honest-evaluation protocol of scripts/probe_router_transfer.py, in plain Python (no numpy).

Three pieces a router recipe is judged by, kept apart from the numerics so tests can check them:

- `inner_folds`: the splits a recipe may be tuned on when `held_out` is the benchmark it will be
  measured on. Only the other benchmarks appear, in train and in test: each training benchmark is
  held out in turn (MMLU as 5 folds of subjects, training on everything else that is not held out).
- `within_pairs`: (higher gap, lower gap) prompt pairs drawn inside one group only, for a ranking
  objective that never compares prompts of different groups (different workloads).
- `choose`: the selection rule, fixed before any held-out figure was looked at: the candidate with the
  highest mean inner margin over prompt length; length itself on a tie.

And the pieces of scripts/probe_router_arena.py (`ARENA_CANDIDATES`: the classifier trained with a fourth,
training-only source) and of scripts/probe_router_rank.py (workload-relative scores): `RANK_CANDIDATES`, a prompt's
quantile inside its workload (`mid_ranks`, the whole evaluated set; `stream_ranks`, a running window as the
router keeps), `blend` of the signals' ranks, and the success criterion `beats`.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Collection, Mapping, Sequence

SUBJECT_FOLDS = 5
BASELINE = "words"


def inner_folds(
    bench: Sequence[str],
    group: Sequence[str],
    held_out: str,
    folds: int = SUBJECT_FOLDS,
    train_only: Collection[str] = (),
) -> list[tuple[str, list[bool], list[bool]]]:
    """(name, train mask, test mask) for every inner split; none touches `held_out`. A source in
    `train_only` (extra training data, e.g. arena-bench-v1) is in the train mask of every split and never
    tested on."""
    training = sorted({b for b in bench if b != held_out and b not in train_only})
    usable = [b != held_out for b in bench]
    out = []
    for x in training:
        if x == "mmlu":
            subjects = sorted({g for b, g in zip(bench, group, strict=True) if b == "mmlu"})
            random.Random(0).shuffle(subjects)
            for k in range(folds):
                part = set(subjects[k::folds])
                test = [b == "mmlu" and g in part for b, g in zip(bench, group, strict=True)]
                out.append((f"mmlu-{k}", [u and not t for u, t in zip(usable, test, strict=True)], test))
        else:
            test = [b == x for b in bench]
            out.append((x, [u and not t for u, t in zip(usable, test, strict=True)], test))
    return out


def fold_terms(names: Sequence[str], margins: Sequence[float]) -> list[float]:
    """One term per training benchmark: the MMLU subject folds averaged into one."""
    per: dict[str, list[float]] = {}
    for name, m in zip(names, margins, strict=True):
        per.setdefault(name.split("-")[0], []).append(m)
    return [sum(v) / len(v) for _, v in sorted(per.items())]


def within_pairs(
    groups: Sequence[str], gaps: Sequence[float], rows: Sequence[int], k: int = 8, seed: int = 0
) -> list[tuple[int, int]]:
    """Up to `k` pairs per prompt of `rows`: (index of the larger strong-minus-weak gap, index of the
    smaller), both prompts of the same group; prompts with equal gaps are never paired."""
    rng = random.Random(seed)
    by_group: dict[str, list[int]] = {}
    for i in rows:
        by_group.setdefault(groups[i], []).append(i)
    pairs = []
    for g in sorted(by_group):
        members = by_group[g]
        others = {v: [j for j in members if gaps[j] != v] for v in {gaps[i] for i in members}}
        for i in members:
            other = others[gaps[i]]
            for j in rng.sample(other, min(k, len(other))):
                pairs.append((i, j) if gaps[i] > gaps[j] else (j, i))
    return pairs


def choose(criteria: Mapping[str, float]) -> str:
    """The candidate with the highest criterion (rounded to 1e-6); prompt length on a tie."""
    return max(criteria, key=lambda n: (round(criteria[n], 6), n == BASELINE))


# -- workload-relative scores (scripts/probe_router_rank.py) ----------------------------------------

# Each candidate: weights over the signals' ranks inside the workload (weights sum to 1). Fixed before any
# held-out figure of these candidates was computed. "words": prompt length in words (the baseline);
# "classifier": the fold's classifier (scripts/train_router.py's recipe, trained on the fold's training data
# only); "numbers": how many numeric tokens the prompt holds (classifier.features' "numbers" count).
RANK_CANDIDATES: dict[str, dict[str, float]] = {
    BASELINE: {"words": 1.0},
    "classifier": {"classifier": 1.0},
    "rank 0.75 words + 0.25 classifier": {"words": 0.75, "classifier": 0.25},
    "rank 0.5 words + 0.5 classifier": {"words": 0.5, "classifier": 0.5},
    "rank 0.25 words + 0.75 classifier": {"words": 0.25, "classifier": 0.75},
    "rank mean of words, classifier, numbers": {"words": 1 / 3, "classifier": 1 / 3, "numbers": 1 / 3},
}
STREAM_WINDOW = 1000  # the router's default routing.share_window
STREAM_ORDERS = {"gsm8k": 10, "mmlu": 3, "mt_bench": 40}  # random orders per held-out stream (as the re-fit probe)


def mid_rank(ordered: Sequence[float], value: float) -> float:
    """The quantile of `value` among the sorted `ordered` (which holds it): (number below + half the number
    equal) / n, in (0, 1); ties share one rank."""
    lo, hi = bisect.bisect_left(ordered, value), bisect.bisect_right(ordered, value)
    return (lo + (hi - lo) / 2) / len(ordered)


def mid_ranks(values: Sequence[float]) -> list[float]:
    """Each value's quantile inside the whole workload `values` (the batch version)."""
    ordered = sorted(values)
    return [mid_rank(ordered, v) for v in values]


def stream_ranks(values: Sequence[float], window: int = STREAM_WINDOW) -> list[float]:
    """Each value's quantile among the last `window` values of the stream up to and including itself: what a
    router keeping a running window of recent scores per workload knows when the call arrives."""
    recent: deque[float] = deque()
    ordered: list[float] = []
    out = []
    for v in values:
        if len(recent) == window:
            del ordered[bisect.bisect_left(ordered, recent.popleft())]
        recent.append(v)
        bisect.insort(ordered, v)
        out.append(mid_rank(ordered, v))
    return out


def blend(ranks: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> list[float]:
    """sum over signals of weight x rank, per prompt (scale-free: every rank lies in (0, 1))."""
    names = list(weights)
    n = len(ranks[names[0]])
    return [sum(weights[s] * ranks[s][i] for s in names) for i in range(n)]


def beats(pick: Mapping[str, float], length: Mapping[str, float], random_mean: Mapping[str, float]) -> bool:
    """The success criterion, per held-out benchmark: the picked procedure's APGR above prompt length's and
    above the random router's mean, on every benchmark."""
    return all(pick[b] > length[b] and pick[b] > random_mean[b] for b in pick)


# -- a fourth training source (scripts/probe_router_arena.py) -----------------------------------------

# arena-bench-v1 (scripts/data/arena_bench_v1, built by scripts/build_arena_data.py): 291 Chatbot Arena prompts,
# weak / strong = the GPT-4 judge's 1..10 rating of Mixtral-8x7B's / GPT-4-1106's answer, label strong >= weak + 1
# (train_router.label). It is training data in every fold, outer and inner (`inner_folds(train_only=...)`), and
# never a held-out benchmark of record (reported held out only as an extra line).
ARENA = "arena"
# Signals: "words" (the baseline); "arena" = train_router's recipe (Design.fit) on the fold's training benchmarks
# plus arena-bench-v1; "arena balanced" = the same with every training source weighted equally (Design.fit
# balance=True). Candidates are weights over the signals' ranks inside the workload, as RANK_CANDIDATES.
# Fixed before any held-out figure of these candidates was computed.
ARENA_CANDIDATES: dict[str, dict[str, float]] = {
    BASELINE: {"words": 1.0},
    "classifier + arena": {"arena": 1.0},
    "classifier + arena, sources balanced": {"arena balanced": 1.0},
    "rank 0.75 words + 0.25 classifier + arena": {"words": 0.75, "arena": 0.25},
    "rank 0.5 words + 0.5 classifier + arena": {"words": 0.5, "arena": 0.5},
    "rank 0.5 words + 0.5 classifier + arena, balanced": {"words": 0.5, "arena balanced": 0.5},
}
