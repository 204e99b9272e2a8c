"""Learning from outcomes, in simulation: does the feedback bandit converge to the best fixed tier?

    python bench/feedback.py [--calls 3000] [--seeds 20]

Each scenario gives the three tiers a true success rate; every call's outcome is drawn from its
tier's rate and reported back (as POST /v1/paymaster/feedback would). The bandit
(levers/routing_bandit.py, floor 0.9, exploration budget 5 %) picks each call's tier. Printed per
scenario, mean over seeds: cost per call (genai-prices, 1,000 input + 500 output tokens on the tier's
model) and success rate over successive stretches of calls, beside the best fixed tier (the cheapest
whose true rate meets the floor), and the number of calls after which the safe tier is the best
fixed tier for good (the median over seeds, with the slowest seed).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from decimal import Decimal

from genai_prices import Usage, calc_price

from paymaster.levers.routing_bandit import Bandit
from paymaster.levers.routing_state import RoutingState

TIERS = ("light", "standard", "heavy")
MODELS = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}
FLOOR, EXPLORE = 0.9, 0.05
SCENARIOS = {
    "light is good enough": {"light": 0.95, "standard": 0.97, "heavy": 0.99},
    "light falls short": {"light": 0.70, "standard": 0.93, "heavy": 0.98},
    "only heavy meets it": {"light": 0.50, "standard": 0.80, "heavy": 0.95},
}


def prices() -> dict[str, Decimal]:
    u = Usage(input_tokens=1000, output_tokens=500)
    return {t: calc_price(u, model_ref=m, provider_id="anthropic").total_price for t, m in MODELS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    started = time.perf_counter()
    cost = prices()
    edges = [e for e in (100, 300, 1000, 3000, 10000) if e < args.calls] + [args.calls]
    print(
        f"Feedback bandit: floor {FLOOR:.0%}, exploration budget {EXPLORE:.0%}; {args.seeds} seeds; per call: "
        + ", ".join(f"{t} ${c}" for t, c in cost.items())
    )
    for name, rate in SCENARIOS.items():
        best = next(t for t in TIERS if rate[t] >= FLOOR)
        stretches: list[list[tuple[float, float]]] = [[] for _ in edges]
        settled: list[int] = []
        for seed in range(args.seeds):
            rng = random.Random(seed)
            b = Bandit(RoutingState(None), FLOOR, EXPLORE, random.Random(1000 + seed))
            picks, last_wrong = [], 0
            for i in range(args.calls):
                tier, _ = b.choose("a/t", TIERS)
                b.record("a/t", tier, float(rng.random() < rate[tier]))
                picks.append(tier)
                if b.safe("a/t", TIERS) != best:
                    last_wrong = i + 1
            settled.append(last_wrong)
            lo = 0
            for k, hi in enumerate(edges):
                part = picks[lo:hi]
                stretches[k].append(
                    (float(sum(cost[t] for t in part) / len(part)), sum(rate[t] for t in part) / len(part))
                )
                lo = hi
        print(
            f"\n{name}: true success {', '.join(f'{t} {r:.0%}' for t, r in rate.items())}; best fixed tier: "
            f"{best} (${cost[best]}/call, {rate[best]:.1%} success)"
        )
        lo = 0
        for k, hi in enumerate(edges):
            c = statistics.mean(x for x, _ in stretches[k])
            s = statistics.mean(y for _, y in stretches[k])
            print(
                f"  calls {lo + 1:>5}-{hi:<5}  cost/call ${c:.6f} ({c / float(cost[best]):5.2f}x best)  "
                f"success {s:6.1%}"
            )
            lo = hi
        settled.sort()
        print(
            f"  safe tier = {best} for good after {settled[len(settled) // 2]} calls (median), "
            f"{settled[-1]} (slowest seed)"
        )
    print(f"\n(bench ran in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
