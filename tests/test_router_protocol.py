"""The nested-evaluation protocol behind scripts/probe_router_transfer.py: the held-out benchmark never
informs a choice, ranking pairs never cross a workload, and the selection rule is the stated one."""

from __future__ import annotations

import pytest
from script_modules import load

rp = load("scripts/router_protocol.py")

BENCH = ["gsm8k"] * 6 + ["mmlu"] * 24 + ["mt_bench"] * 4
GROUP = ["gsm8k"] * 6 + [f"subject{i % 8}" for i in range(24)] + ["writing", "writing", "math", "math"]


def test_inner_folds_never_touch_the_held_out_benchmark():
    for held_out in ("gsm8k", "mmlu", "mt_bench"):
        folds = rp.inner_folds(BENCH, GROUP, held_out)
        assert folds
        tested = [0] * len(BENCH)
        for _, train, test in folds:
            for i, b in enumerate(BENCH):
                if b == held_out:
                    assert not train[i] and not test[i]
                assert not (train[i] and test[i])
                tested[i] += test[i]
            # a subject is either trained on or tested on within one fold, never both
            assert not {GROUP[i] for i in range(len(BENCH)) if train[i]} & {
                GROUP[i] for i in range(len(BENCH)) if test[i]
            }
        # every prompt of the training benchmarks is tested exactly once
        assert tested == [int(b != held_out) for b in BENCH]


def test_inner_folds_split_mmlu_by_subject_and_train_on_everything_else():
    folds = rp.inner_folds(BENCH, GROUP, "gsm8k")
    names = [f[0] for f in folds]
    assert names == [f"mmlu-{k}" for k in range(rp.SUBJECT_FOLDS)] + ["mt_bench"]
    _, train, test = folds[-1]
    assert [i for i, t in enumerate(train) if t] == [i for i, b in enumerate(BENCH) if b == "mmlu"]
    assert rp.fold_terms(names, [0.1, 0.2, 0.3, 0.4, 0.5, -1.0]) == pytest.approx([0.3, -1.0])


def test_within_pairs_stay_inside_a_group_and_order_by_gap():
    groups = ["a", "a", "a", "b", "b", "c", "c"]
    gaps = [1.0, 0.0, -1.0, 1.0, 1.0, 0.5, 0.5]  # b and c have no gap difference inside: no pairs
    pairs = rp.within_pairs(groups, gaps, range(len(groups)), k=8)
    assert pairs
    for hi, lo in pairs:
        assert groups[hi] == groups[lo] == "a"
        assert gaps[hi] > gaps[lo]
    assert len(pairs) == 6  # each of the 3 prompts of a with both others
    assert rp.within_pairs(groups, gaps, range(7), k=1, seed=3) == rp.within_pairs(groups, gaps, range(7), k=1, seed=3)
    assert len(rp.within_pairs(groups, gaps, range(7), k=1)) == 3


def test_within_pairs_use_only_the_rows_given():
    groups, gaps = ["a"] * 4, [1.0, 0.0, 1.0, 0.0]
    pairs = rp.within_pairs(groups, gaps, [0, 1], k=8)
    assert sorted(pairs) == [(0, 1), (0, 1)]


def test_choose_takes_the_best_inner_margin_and_length_on_a_tie():
    assert rp.choose({"words": 0.0, "x": 0.01, "y": -0.2}) == "x"
    assert rp.choose({"x": 0.0, "words": 0.0, "y": -0.2}) == "words"
    assert rp.choose({"x": 1e-8, "words": 0.0}) == "words"  # inside rounding: a tie


def test_mid_ranks_are_quantiles_inside_the_workload_with_ties_sharing_one_rank():
    assert rp.mid_ranks([10.0, 30.0, 20.0, 40.0]) == pytest.approx([0.125, 0.625, 0.375, 0.875])
    assert rp.mid_ranks([1.0, 1.0, 2.0]) == pytest.approx([1 / 3, 1 / 3, 5 / 6])
    # scale-free: any increasing transform of a signal leaves its ranks unchanged
    values = [3.0, 0.5, 7.0, 7.0, 2.0]
    assert rp.mid_ranks([v**3 + 100 for v in values]) == rp.mid_ranks(values)


def test_stream_ranks_see_only_the_window_of_calls_up_to_each_one():
    values = [5.0, 1.0, 3.0, 4.0, 2.0]
    # a window as long as the stream: each call ranked among the calls so far, itself included
    assert rp.stream_ranks(values, window=10) == pytest.approx([0.5, 0.25, 0.5, 0.625, 0.3])
    # window 2: the call and the one before it
    assert rp.stream_ranks(values, window=2) == pytest.approx([0.5, 0.25, 0.75, 0.75, 0.25])
    # a window holding the whole stream ends on the batch ranks for the last call
    assert rp.stream_ranks(values, window=5)[-1] == rp.mid_ranks(values)[-1]


def test_blend_weights_ranks_and_candidates_are_fixed():
    ranks = {"words": [0.1, 0.9], "classifier": [0.7, 0.3], "numbers": [0.5, 0.5]}
    assert rp.blend(ranks, {"words": 0.75, "classifier": 0.25}) == pytest.approx([0.25, 0.75])
    assert rp.blend(ranks, {"words": 1.0}) == [0.1, 0.9]
    cands = rp.RANK_CANDIDATES
    assert len(cands) <= 6 and cands[rp.BASELINE] == {"words": 1.0}
    for weights in cands.values():
        assert sum(weights.values()) == pytest.approx(1.0) and set(weights) <= set(ranks)


def test_success_needs_length_and_random_beaten_on_every_benchmark():
    length = {"gsm8k": 0.6, "mmlu": 0.58, "mt_bench": 0.55}
    rand = {"gsm8k": 0.5, "mmlu": 0.5, "mt_bench": 0.5}
    assert rp.beats({"gsm8k": 0.61, "mmlu": 0.59, "mt_bench": 0.7}, length, rand)
    assert not rp.beats({"gsm8k": 0.61, "mmlu": 0.58, "mt_bench": 0.7}, length, rand)  # level is not above
    assert not rp.beats({"gsm8k": 0.61, "mmlu": 0.59, "mt_bench": 0.49}, {**length, "mt_bench": 0.4}, rand)


def test_a_train_only_source_is_trained_on_in_every_inner_fold_and_never_tested():
    bench = BENCH + ["arena"] * 3
    group = GROUP + ["arena"] * 3
    for held_out in ("gsm8k", "mmlu", "mt_bench"):
        plain = rp.inner_folds(BENCH, GROUP, held_out)
        folds = rp.inner_folds(bench, group, held_out, train_only=(rp.ARENA,))
        # the same splits as without the extra source, which is added to every train mask
        assert [f[0] for f in folds] == [f[0] for f in plain]
        for (_, train, test), (_, train0, test0) in zip(folds, plain, strict=True):
            assert train == train0 + [True] * 3 and test == test0 + [False] * 3
    # without train_only the extra source would have been an inner test set of its own
    assert "arena" in [f[0] for f in rp.inner_folds(bench, group, "gsm8k")]


def test_arena_candidates_are_fixed_and_use_the_arena_trained_classifier():
    cands = rp.ARENA_CANDIDATES
    assert len(cands) <= 6 and cands[rp.BASELINE] == {"words": 1.0}
    for name, weights in cands.items():
        assert sum(weights.values()) == pytest.approx(1.0)
        assert set(weights) <= {"words", "arena", "arena balanced"}
        assert name == rp.BASELINE or set(weights) - {"words"}  # every other candidate uses arena data
