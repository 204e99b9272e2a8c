"""The limits attacked (hypothesis): whatever mix of calls starting, ending and settling at whatever times, an
agent never has more calls open than max_in_flight, never more admitted calls in any stretch of time than
requests_per_minute allows, the open count returns to zero, and another agent is never refused."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paymaster.blackboard import Blackboard
from paymaster.config import Agent, AgentLimits
from paymaster.errors import RateLimited
from paymaster.limits import Entry, Limits, Meter


def agent(name: str, lim: AgentLimits) -> Agent:
    return Agent(name=name, key_hash="", model="m", models=("m",), daily_usd=None, monthly_usd=None,
                 max_tokens=16, limits=lim)  # fmt: skip


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


steps = st.lists(
    st.tuples(st.sampled_from(["start", "end", "wait"]), st.floats(0, 5), st.integers(0, 500), st.booleans()),
    max_size=200,
)
BODIES = [{"model": "m", "messages": [{"role": "user", "content": text}]} for text in ("x", "something else")]


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(1, 20), st.integers(1, 5), st.integers(1, 1000), st.sampled_from([None, 2, 3]))
def test_no_sequence_of_calls_beats_the_limits(
    ops: list[Any], rpm: int, cap: int, tpm: int, loop_calls: int | None
) -> None:
    """A call refused as a loop (after it was admitted on the rates) gives its take back and leaves: the rate
    and in-flight bounds hold over the calls truly admitted, whatever the mix."""
    clock = Clock()
    limits = Limits(Blackboard(["noisy", "quiet"]), clock)
    noisy = agent("noisy", AgentLimits(requests_per_minute=rpm, max_in_flight=cap, tokens_per_minute=tpm,
                                       loop_calls=loop_calls, loop_window_s=10, loop_block=True))  # fmt: skip
    quiet = agent("quiet", AgentLimits())
    open_: list[Meter] = []
    admitted: list[float] = []
    for op, dt, tokens, same in ops:
        if op == "wait":
            clock.t += dt
        elif op == "start":
            try:
                limits.admit(noisy, m := limits.meter("noisy"))
                if loop_calls is not None:
                    try:
                        limits.loop(noisy, m, BODIES[0 if same else 1])
                    except RateLimited:
                        limits.leave("noisy", Entry(m, None))
                        raise
                open_.append(m)
                admitted.append(clock.t)
            except RateLimited as e:
                assert e.retry_after >= 1
            limits.admit(quiet, limits.meter("quiet"))  # never refused
            assert limits.meters["noisy"].open <= cap
        elif open_:
            limits.charge("noisy", tokens)
            limits.leave("noisy", Entry(open_.pop(0), None))
    for m in open_:
        limits.leave("noisy", Entry(m, None))
    assert "noisy" not in limits.meters or limits.meters["noisy"].open == 0
    for i, t0 in enumerate(admitted):  # any window [t0, t0 + w]: at most rpm + w * rpm / 60 calls
        for t1 in admitted[i:]:
            n = sum(1 for t in admitted if t0 <= t <= t1)
            assert n <= rpm + math.floor((t1 - t0) * rpm / 60) + 1e-9
