"""Pre-dispatch complexity classifier: how likely a call needs the stronger model.

    clf = Classifier.load()                  # the shipped weights, parsed once per process
    clf.score(text)                          # 0..1, higher = needs the stronger model
    clf.pick(text, thresholds=[0.2, 0.25])   # "light" | "standard" | "heavy"
    clf.threshold_for_share(0.3)             # the score cut sending 30 % of reference calls to heavy
    clf.share_for_quality(0.95)              # heavy share that kept 95 % of strong-model quality held out

The score is a logistic regression over hashed word uni- and bigrams and a few handcrafted counts
(length, numbers, math symbols, code markers, question words, multi-step cues), evaluated in pure
Python with no I/O after `load` (~0.1 ms for a typical prompt; a long one is read as its head and
tail). It estimates the probability that the strong model beats the weak one, learnt from RouteLLM's
per-prompt outcomes (GSM8K, MMLU, MT-Bench) for Mixtral-8x7B vs GPT-4. `scripts/train_router.py`
reproduces the weights file; `bench/eval_router.py` measures it on prompts it was not trained on:
APGR 0.57 on GSM8K and MMLU held out, 0.59 on unseen MMLU subjects, 0.76 on MT-Bench (72 prompts,
noisy); random routing is 0.50 and prompt length alone about 0.58-0.60 on GSM8K and MMLU — level with
it there (bootstrap intervals overlap), well ahead on MT-Bench. A weak signal: use it for which calls
go heavy, not as a judgement on any one prompt. How many go heavy is held on each agent's own traffic
by the router's running quantile (routing_share.py); the reference thresholds below apply only while
that window warms up. A per-fleet re-fit of this score from feedback ratings was measured too
(scripts/probe_router_refit.py): level with prompt length on GSM8K and MMLU held out, not above, so it
is not part of the router. Nor is a blend of this score's and length's ranks inside each workload
(scripts/probe_router_rank.py): level with length or below it on GSM8K and MMLU held out.

Two ways to set the heavy threshold, both backed by data shipped in the weights file:
- a share of calls: `threshold_for_share` reads score quantiles of a reference distribution
  (the three benchmarks' prompts, each benchmark weighted equally);
- a quality floor: `share_for_quality` reads the quality-vs-heavy-share curve measured on held-out
  benchmarks at training time (the worst of the three), then `threshold_for_share` applies.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any
from zlib import crc32

__all__ = ["DENSE", "HEAD", "TAIL", "TIERS", "Classifier", "features"]

TIERS = ("light", "standard", "heavy")
HEAD, TAIL = 1500, 500  # a long prompt is read as its first HEAD and last TAIL characters

# The handcrafted counts, in the order of `features(...)[1]`; the weights file names them too.
DENSE = (
    "chars",
    "words",
    "digits",
    "numbers",
    "distinct_numbers",
    "longest_number",
    "sentences",
    "math_symbols",
    "question_marks",
    "newlines",
    "commas",
    "code_markers",
    "question_words",
    "step_cues",
    "logic_words",
    "comparatives",
    "mean_word_length",
    "type_token_ratio",
    "long_word_ratio",
)

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")
_MATH = "+-*/=^<>%$"
_CODE = ("```", "{", "}", "==", ";\n", "def ", "class ", "return ", "function", "#include", "import ")
_CUES = tuple(  # question words, multi-step cues, logic words, comparatives
    tuple(words.split())
    for words in (
        "what why how which who when where explain describe prove derive calculate compute solve write implement "
        "compare",
        "then after each every total remaining left rest twice half per times percent average many much",
        "if not unless except only all none both either neither must cannot",
        "more less greater fewer than most least",
    )
)
_NUM_HASH = crc32(b"<num>")


def features(text: str, buckets: int) -> tuple[set[int], list[float]]:
    """The hashed n-gram buckets set by `text`, and its handcrafted counts (in `DENSE` order).

    `buckets` must be a power of two. Training (scripts/train_router.py) and scoring share this.
    """
    n_chars = len(text)
    if n_chars > HEAD + TAIL:
        text = text[:HEAD] + "\n" + text[-TAIL:]
    tokens = _TOKEN.findall(text.lower())
    counts = Counter(tokens)

    mask = buckets - 1
    hashes = {t: _NUM_HASH if t.isdigit() else crc32(t.encode()) for t in counts}
    seq = [hashes[t] for t in tokens]
    found = {h & mask for h in hashes.values()}
    found.update(((a * 1000003) ^ b) & mask for a, b in pairwise(seq))

    words = text.split()
    n_words = len(words) or 1
    numbers = [(t, c) for t, c in counts.items() if t.isdigit()]
    log = math.log1p
    return found, [
        log(n_chars),
        log(len(words)),
        log(sum(len(t) * c for t, c in numbers)),
        log(sum(c for _, c in numbers)),
        log(len(numbers)),
        log(max((len(t) for t, _ in numbers), default=0)),
        log(len(_SENTENCE_END.findall(text))),
        log(sum(counts[c] for c in _MATH)),
        log(counts["?"]),
        log(text.count("\n")),
        log(counts[","]),
        log(sum(text.count(m) for m in _CODE)),
        *(log(sum(counts[w] for w in cue)) for cue in _CUES),
        sum(map(len, words)) / n_words,
        len(counts) / len(tokens) if tokens else 1.0,
        sum(c for t, c in counts.items() if len(t) > 8) / n_words,
    ]


class Classifier:
    """One trained model plus the data that turns config knobs into score thresholds."""

    def __init__(self, model: dict[str, Any], reference: Sequence[float] = (), quality: dict[str, Any] | None = None):
        if list(model["dense_names"]) != list(DENSE):
            raise ValueError("weights were trained on other handcrafted features; retrain (scripts/train_router.py)")
        self.buckets = int(model["buckets"])
        if self.buckets & (self.buckets - 1):
            raise ValueError("buckets must be a power of two")
        self.bias = float(model["bias"])
        self.hashed = [float(w) for w in model["hashed"]]
        self.dense = [float(w) for w in model["dense"]]
        if len(self.hashed) != self.buckets or len(self.dense) != len(DENSE):
            raise ValueError("weights file is inconsistent with its own sizes")
        self.reference = [float(q) for q in reference]  # score quantiles 0 %, 1 %, ..., 100 %
        self.quality = quality or {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> Classifier:
        """The classifier from `path` (default: the shipped weights), cached per path."""
        return _load(str(path) if path is not None else None)

    def score(self, text: str) -> float:
        """Probability (0..1) that the call needs the stronger model."""
        found, dense = features(text, self.buckets)
        w = self.hashed
        z = self.bias + sum(w[b] for b in found) / math.sqrt(len(found) or 1)
        z += sum(a * x for a, x in zip(self.dense, dense, strict=True))
        if z < -60:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    def pick(self, text: str, tiers: Sequence[str] = TIERS, thresholds: Sequence[float] | None = None) -> str:
        """The tier for `text`: `thresholds` are ascending score cuts, one fewer than `tiers`.

        Without thresholds the reference distribution is split evenly across the tiers.
        """
        if not tiers:
            raise ValueError("no tiers")
        if thresholds is None:
            n = len(tiers)
            thresholds = [self.threshold_for_share(1 - k / n) for k in range(1, n)]
        if len(thresholds) != len(tiers) - 1 or list(thresholds) != sorted(thresholds):
            raise ValueError("thresholds must be ascending, one fewer than tiers")
        s = self.score(text)
        return tiers[sum(s >= t for t in thresholds)]

    def threshold_for_share(self, heavy_share: float) -> float:
        """The score at or above which `heavy_share` of the reference calls fall (monotone, decreasing)."""
        if not 0.0 <= heavy_share <= 1.0:
            raise ValueError("heavy_share must be between 0 and 1")
        q = self.reference
        if not q:
            raise ValueError("these weights carry no reference quantiles")
        if heavy_share <= 0.0:
            return 1.0  # scores are below 1: nothing is heavy
        if heavy_share >= 1.0:
            return 0.0
        pos = (1.0 - heavy_share) * (len(q) - 1)
        i = min(int(pos), len(q) - 2)
        return q[i] + (q[i + 1] - q[i]) * (pos - i)

    def share_for_quality(self, min_quality: float) -> float:
        """The smallest heavy share that kept `min_quality` of strong-model quality on every held-out benchmark.

        Quality is the routed score over the strong model's score (0.95 = 95 % of strong-model quality),
        read off the worst of the held-out curves shipped in the weights file; 1.0 when no share reached it.
        """
        shares, worst = self.quality.get("heavy_share"), self.quality.get("worst")
        if not shares or not worst:
            raise ValueError("these weights carry no quality curve")
        if min_quality <= worst[0]:
            return 0.0
        for (s0, q0), (s1, q1) in pairwise(zip(shares, worst, strict=True)):
            if q0 < min_quality <= q1:
                return float(s0 + (s1 - s0) * (min_quality - q0) / (q1 - q0))
        return 1.0

    def threshold_for_quality(self, min_quality: float) -> float:
        """The heavy threshold for a quality floor: `threshold_for_share(share_for_quality(min_quality))`."""
        return self.threshold_for_share(self.share_for_quality(min_quality))


@functools.cache
def _load(path: str | None) -> Classifier:
    if path is None:
        raw = resources.files("paymaster").joinpath("data/router_weights.json").read_text()
    else:
        raw = Path(path).read_text()
    doc = json.loads(raw)
    return Classifier(doc["model"], doc["reference"]["score_quantiles"], doc["quality_curve"])
