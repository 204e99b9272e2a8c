"""The honest-evaluation protocol of scripts/probe_router_transfer.py, in plain Python (no numpy).

Three pieces a router recipe is judged by, kept apart from the numerics so tests can check them:

- `inner_folds`: the splits a recipe may be tuned on when `held_out` is the benchmark it will be
  measured on. Only the other benchmarks appear, in train and in test: each training benchmark is
  held out in turn (MMLU as 5 folds of subjects, training on everything else that is not held out).
- `within_pairs`: (higher gap, lower gap) prompt pairs drawn inside one group only, for a ranking
  objective that never compares prompts of different groups (different workloads).
- `choose`: the selection rule, fixed before any held-out figure was looked at: the candidate with the
  highest mean inner margin over prompt length; length itself on a tie.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

SUBJECT_FOLDS = 5
BASELINE = "words"


def inner_folds(
    bench: Sequence[str], group: Sequence[str], held_out: str, folds: int = SUBJECT_FOLDS
) -> list[tuple[str, list[bool], list[bool]]]:
    """(name, train mask, test mask) for every inner split; none touches `held_out`."""
    training = sorted({b for b in bench if b != held_out})
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
