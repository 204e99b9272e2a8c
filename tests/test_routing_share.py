"""Shares that hold on unseen traffic: the heavy threshold is a running quantile of recent scores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from script_modules import load

from paymaster.levers.classifier import Classifier
from paymaster.levers.routing_share import FLUSH_EVERY, ShareKeeper
from paymaster.levers.routing_state import RoutingState, state_path

ev = load("bench/eval_router.py")
needs_data = pytest.mark.skipif(not (Path(ev.DEFAULT_DATA) / "mmlu").is_dir(), reason="RouteLLM data not found")

LADDER = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}


def live_share(keeper: ShareKeeper, key: str, scores: list[float], share: float, fallback: float) -> float:
    """Share of `scores` sent heavy when each is observed and then compared with the cut, as the router does,
    counted after the warm-up."""
    heavy = counted = 0
    for s in scores:
        keeper.observe(key, s)
        if keeper.seen(key) < keeper.warmup:
            continue
        counted += 1
        heavy += keeper.above(key, s, share, fallback)
    return heavy / counted


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: r.betavariate(2, 8),  # low scores in a narrow band
        lambda r: r.betavariate(8, 2),  # high scores
        lambda r: 0.5 + r.random() * 1e-3,  # a sliver
        lambda r: r.choice([0.1, 0.9]) + r.gauss(0, 0.01),  # two clusters
        lambda r: 0.42,  # one prompt template: every score the same
        lambda r: r.choice([0.2, 0.5, 0.8]),  # three templates
    ],
)
def test_share_holds_on_workloads_whose_scores_differ(draw):
    rng = random.Random(7)
    keeper = ShareKeeper(RoutingState(None), window=500, warmup=50)
    scores = [draw(rng) for _ in range(3000)]
    fixed = 0.5  # one fixed cut for every workload misses the share on most of them
    assert live_share(keeper, "a/", scores, 0.3, fixed) == pytest.approx(0.3, abs=0.05)


def test_share_follows_a_workload_that_drifts():
    rng = random.Random(3)
    keeper = ShareKeeper(RoutingState(None), window=400, warmup=50)
    live_share(keeper, "a/", [rng.betavariate(2, 8) for _ in range(2000)], 0.3, 0.5)
    after = [rng.betavariate(8, 2) for _ in range(2000)]  # the agent's traffic changes
    for s in after[:400]:  # one window later
        keeper.observe("a/", s)
    assert live_share(keeper, "a/", after[400:], 0.3, 0.5) == pytest.approx(0.3, abs=0.05)


@needs_data
def test_on_held_out_benchmarks_the_running_cut_holds_30_percent_where_the_reference_cut_does_not():
    clf = Classifier.load()
    data = ev.load()
    fixed = clf.threshold_for_share(0.3)
    off = {}
    for b, ps in data.items():
        rng, texts = random.Random(0), []
        while len(texts) < 1500:  # MT-Bench's 72 prompts come round again, reshuffled
            texts += rng.sample([p.text for p in ps], min(len(ps), 1500 - len(texts)))
        scores = [clf.score(t) for t in texts]
        off[b] = abs(sum(s >= fixed for s in scores) / len(scores) - 0.3)
        keeper = ShareKeeper(RoutingState(None), window=1000, warmup=50)
        assert live_share(keeper, f"agent/{b}", scores, 0.3, fixed) == pytest.approx(0.3, abs=0.05), b
    assert max(off.values()) > 0.05  # the reference-distribution cut misses on at least one benchmark


def test_windows_are_per_key_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "ledger.db.routing")
    keeper = ShareKeeper(RoutingState(path), window=100, warmup=10)
    for i in range(100):
        keeper.observe("a/", i / 100)
        keeper.observe("b/x", 0.9 + i / 1000)
    cut_a, cut_b = keeper.cut("a/", 0.3, 0.5), keeper.cut("b/x", 0.3, 0.5)
    assert cut_a == pytest.approx(0.70) and cut_b == pytest.approx(0.97)
    keeper.flush()
    keeper.state.close()
    again = ShareKeeper(RoutingState(path), window=100, warmup=10)
    assert again.seen("a/") == 100 and again.cut("a/", 0.3, 0.5) == cut_a and again.cut("b/x", 0.3, 0.5) == cut_b
    assert again.cut("new/", 0.3, 0.5) == 0.5  # no window yet: the fallback


def test_unflushed_scores_are_written_every_few_observations(tmp_path):
    path = str(tmp_path / "s")
    keeper = ShareKeeper(RoutingState(path), window=500, warmup=10)
    for i in range(FLUSH_EVERY * 3 + 5):
        keeper.observe("a/", i / 1000)
    crashed = ShareKeeper(RoutingState(path), window=500, warmup=10)  # no flush: as after a crash
    assert crashed.seen("a/") == FLUSH_EVERY * 3


def test_edges():
    keeper = ShareKeeper(RoutingState(None), window=10, warmup=5)
    for s in (0.1, 0.2, 0.3, 0.4, 0.5, float("nan")):
        keeper.observe("a/", s)
    assert keeper.seen("a/") == 5  # a non-finite score is not kept
    assert keeper.cut("a/", 0.0, 0.5) == float("inf") and keeper.cut("a/", 1.0, 0.5) == float("-inf")
    with pytest.raises(ValueError):
        ShareKeeper(RoutingState(None), window=10, warmup=20)
    assert state_path(":memory:", None) is None and state_path("/x/l.db", None) == "/x/l.db.routing"
    assert state_path("/x/l.db", "/y/s") == "/y/s"


def test_gateway_holds_the_share_for_an_agent_and_keeps_it_across_a_restart(gateway, sim, tmp_path):
    routing = {"target_heavy_share": 0.3, "share_window": 40, "share_warmup": 10}
    agents = {"alice": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 100}}
    ledger = str(tmp_path / "keep.db")
    gw = gateway(agents=agents, routing=routing, ledger=ledger)
    rng = random.Random(5)
    words = "apple pear river stone cloud paper green quiet fast table".split()

    def ask(g) -> str:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "? [sim:tokens=5]"
        raw = g.anthropic().messages.with_raw_response.create(
            model="auto", max_tokens=20, messages=[{"role": "user", "content": text}]
        )
        return raw.headers["x-paymaster-model"]

    models = [ask(gw) for _ in range(50)]
    heavy = models[10:].count(LADDER["heavy"]) / 40
    assert heavy == pytest.approx(0.3, abs=0.1)  # 40 calls: a share within sampling noise of 30 %
    gw.srv.stop()
    again = gateway(agents=agents, routing=routing, ledger=ledger)
    assert again.gw.lever("routing").router.shares.seen("alice/") == 40  # the window came back from the state file


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"share_window": 0}, "routing.share_window: must be a whole number"),
        ({"share_window": 10, "share_warmup": 20}, "share_warmup must not exceed share_window"),
        ({"feedback_floor": 1.5}, "routing.feedback_floor: must be a fraction"),
        ({"feedback_floor": 0}, "feedback_floor must be above 0"),
        ({"feedback_explore": -0.1}, "routing.feedback_explore: must be a fraction"),
        ({"cascade": "extraction"}, "routing.cascade"),
        ({"feedback_tasks": [""]}, "routing.feedback_tasks[0]"),
    ],
)
def test_routing_settings_are_checked_with_their_path(routing, message):
    from paymaster.config import ConfigError, hash_key, parse

    raw = {
        "providers": {"anthropic": {"api_key_env": "K"}},
        "agents": {"a": {"key_sha256": hash_key("pm-a"), "model": "claude-haiku-4-5"}},
        "routing": routing,
    }
    with pytest.raises(ConfigError) as e:
        parse(raw, env={"K": "x"})
    assert message in str(e.value)
    ok = parse({**raw, "routing": {"cascade": ["extraction"], "feedback_tasks": ["extraction"]}}, env={"K": "x"})
    assert ok.routing.cascade == ("extraction",) and ok.routing.share_window == 1000
    assert ok.routing.feedback_floor == 0.9 and ok.routing.feedback_explore == 0.05


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.floats(0, 1), min_size=1, max_size=5),
    noise=st.sampled_from([0.0, 1e-6, 0.05]),
    share=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_any_stationary_workload_gets_its_share(points, noise, share, seed):
    """Whatever the scores look like — a few templates, ties, near-ties, a spread — the share sent over the
    cut stays within 5 points of the target once the window is warm."""
    rng = random.Random(seed)
    scores = [rng.choice(points) + rng.gauss(0, noise) for _ in range(2500)]
    keeper = ShareKeeper(RoutingState(None), window=500, warmup=500)
    assert live_share(keeper, "a/", scores, share, 0.5) == pytest.approx(share, abs=0.05)
