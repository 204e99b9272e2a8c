"""The gateway's user-space instructions per call: `bench/pipeline_cpu.py` run twice under valgrind
(callgrind), with LONG and SHORT measured calls; (I(LONG) - I(SHORT)) / (LONG - SHORT) cancels start-up.

    python bench/pipeline_instructions.py [--api anthropic|openai] [--long 400] [--short 100] [--tree DIR]
                                          [--limits | --refused] [--turns N] [--stream]

Unlike CPU time, the count does not move with the machine's load, so it compares two checkouts on a busy
machine (`--tree` runs the bench against another checkout's venv and sources). It leaves out kernel time
(socket I/O, the journal's writes), which `bench/pipeline_cpu.py` includes. Needs valgrind; ~1 minute per run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).with_name("pipeline_cpu.py")


def instructions(tree: Path, api: str, calls: int, extra: tuple[str, ...] = ()) -> int:
    cmd = [
        "taskset", "-c", "0", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        str(tree / ".venv/bin/python"), str(BENCH), "--api", api, "--calls", str(calls), "--warmup", "20", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in both runs
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api", choices=("anthropic", "openai"), default="anthropic")
    ap.add_argument("--long", type=int, default=400, help="measured calls in the long run (default 400)")
    ap.add_argument("--short", type=int, default=100, help="measured calls in the short run (default 100)")
    ap.add_argument("--tree", type=Path, default=BENCH.parent.parent, help="checkout to measure (its .venv)")
    ap.add_argument("--limits", action="store_true", help="also with every denial-of-wallet limit on: the difference")
    ap.add_argument("--refused", action="store_true", help="only calls refused (429) by a rate limit: a refusal's cost")
    ap.add_argument("--turns", type=int, default=0, help="a tool loop this many rounds in (pipeline_cpu.py --turns)")
    ap.add_argument("--stream", action="store_true", help="streamed calls (pipeline_cpu.py --stream)")
    args = ap.parse_args()
    turns = (("--turns", str(args.turns)) if args.turns else ()) + (("--stream",) if args.stream else ())
    runs = [("limits off", turns)] + ([("limits on", ("--limits", *turns))] if args.limits else [])
    if args.refused:
        runs = [("refused (429)", ("--refused",))]
    counts = []
    for label, extra in runs:
        long_, short = (instructions(args.tree, args.api, n, extra) for n in (args.long, args.short))
        counts.append((long_ - short) / (args.long - args.short))
        shape = (f", {args.turns} rounds of tool loop" if args.turns else "") + (", streamed" if args.stream else "")
        print(f"{args.api}: {counts[-1]:,.0f} instructions per call, {label}{shape} ({args.tree})")
    if len(counts) == 2:
        print(f"{args.api}: limits add {counts[1] - counts[0]:,.0f} instructions per call")


if __name__ == "__main__":
    main()
