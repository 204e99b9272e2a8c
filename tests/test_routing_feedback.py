"""Learning from outcomes: POST /v1/paymaster/feedback, and the bandit that picks the cheapest tier keeping
a success rate (routing_bandit.py)."""

from __future__ import annotations

import random
import sys
import time

import httpx2
import openai
import pytest
from conftest import ADMIN_KEY

from paymaster.levers.routing_bandit import MIN_EVIDENCE, Bandit
from paymaster.levers.routing_state import RoutingState

TIERS = ["light", "standard", "heavy"]
COST = {"light": 1.0, "standard": 4.0, "heavy": 20.0}
LADDER = {"light": "claude-haiku-4-5", "standard": "claude-sonnet-4-6", "heavy": "claude-opus-4-8"}


def simulate(success: dict[str, float], floor: float, calls: int, seed: int = 0, explore: float = 0.05):
    """Run the bandit against tiers that succeed at the given rates; the last quarter's cost and success."""
    rng = random.Random(seed)
    b = Bandit(RoutingState(None), floor, explore, random.Random(seed + 1))
    picks = []
    for _ in range(calls):
        tier, _why = b.choose("a/t", TIERS)
        b.record("a/t", tier, float(rng.random() < success[tier]))
        picks.append(tier)
    tail = picks[-calls // 4 :]
    return b, sum(COST[t] for t in tail) / len(tail), sum(success[t] for t in tail) / len(tail)


@pytest.mark.parametrize(
    ("success", "best"),
    [
        ({"light": 0.97, "standard": 0.98, "heavy": 0.99}, "light"),  # light is good enough
        ({"light": 0.60, "standard": 0.95, "heavy": 0.99}, "standard"),  # light falls short of the floor
        ({"light": 0.50, "standard": 0.70, "heavy": 0.95}, "heavy"),  # only the top tier meets it
    ],
)
def test_converges_to_the_cheapest_tier_meeting_the_floor(success, best):
    b, cost, ok = simulate(success, floor=0.9, calls=1500)
    assert b.safe("a/t", TIERS) == best
    assert cost <= COST[best] * 1.15 + 0.5  # within a few exploratory calls of the best fixed tier's cost
    assert ok >= success[best] - 0.03
    r = b.view()["a/t"]
    assert r["explored"] <= 0.05 * r["calls"] + 1  # exploration stayed within its budget


def test_exploration_is_bounded_by_its_budget_when_nothing_meets_the_floor():
    b, _, _ = simulate({"light": 0.1, "standard": 0.2, "heavy": 0.3}, floor=0.9, calls=400, explore=0.02)
    r = b.view()["a/t"]
    assert r["safe_tier"] == "heavy" and r["explored"] <= 0.02 * 400 + 1
    assert r["tiers"]["heavy"]["share"] >= 0.9


def test_state_survives_a_restart_and_a_rerating_counts_once(tmp_path):
    path = str(tmp_path / "state")
    b = Bandit(RoutingState(path), 0.9, 0.05, random.Random(0))
    for _ in range(MIN_EVIDENCE + 2):
        b.record("a/t", "light", 1.0)
    b.record("a/t", "light", 0.0)
    b.record("a/t", "light", 1.0, undo=0.0)  # the same call, rated again
    b.flush()
    b.state.close()
    again = Bandit(RoutingState(path), 0.9, 0.05)
    view = again.view()["a/t"]["tiers"]["light"]
    assert view["rated"] == MIN_EVIDENCE + 3 and view["success"] == 1.0
    assert again.safe("a/t", TIERS) == "light"
    with pytest.raises(ValueError):
        again.record("a/t", "light", 1.5)


# -- the endpoint -----------------------------------------------------------------------------------


def auto_agents():
    return {
        "alice": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 100},
        "carol": {"model": "auto", "tiers": LADDER, "daily_usd": 50, "max_tokens": 100},
    }


def post(gw, body, key):
    return httpx2.post(gw.url + "/v1/paymaster/feedback", json=body, headers={"authorization": f"Bearer {key}"})


def one_call(gw, agent="alice", task="extraction") -> str:
    raw = gw.anthropic(agent).messages.with_raw_response.create(
        model="auto",
        max_tokens=20,
        messages=[{"role": "user", "content": "Pull the date out [sim:tokens=5]"}],
        extra_headers={"x-paymaster-task": task},
    )
    return raw.headers["x-paymaster-call-id"]


def test_feedback_is_recorded_for_the_agents_own_calls_and_shown_in_the_admin_api(gateway):
    gw = gateway(agents=auto_agents(), routing={"feedback_tasks": ["extraction"], "feedback_floor": 0.9})
    call = one_call(gw)
    model = gw.ledger("alice")[-1]["model"]
    tier = next(t for t, m in LADDER.items() if m == model)
    before = gw.spend()
    r = post(gw, {"call_id": call, "success": True}, gw.keys["alice"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "call_id": call,
        "agent": "alice",
        "task": "extraction",
        "tier": tier,
        "score": 1.0,
        "replaced": False,
    }
    r = post(gw, {"call_id": call, "score": 0.25}, ADMIN_KEY)  # the admin key may rate any call; replaces
    assert r.status_code == 200 and r.json()["replaced"] is True
    assert gw.spend() == before  # feedback never changes spend
    view = gw.admin("/admin/routing").json()
    arm = view["feedback"]["alice/extraction"]["tiers"][tier]
    assert arm["rated"] == 1.0 and arm["success"] == 0.25 and view["feedback_floor"] == 0.9
    assert view["feedback"]["alice/extraction"]["calls"] == 1


def test_bad_feedback_gets_a_clear_error_in_the_openai_shape_and_changes_nothing(gateway):
    gw = gateway(agents=auto_agents(), routing={"feedback_tasks": ["extraction"], "feedback_floor": 0.9})
    mine, theirs = one_call(gw, "alice"), one_call(gw, "carol")
    before = (gw.spend(), gw.admin("/admin/routing").json())
    cases = [
        ({"call_id": theirs, "success": True}, 403, "own calls"),
        ({"call_id": "pm_nope", "success": True}, 404, "no call"),
        ({"success": True}, 400, "call_id"),
        ({"call_id": mine}, 400, "exactly one"),
        ({"call_id": mine, "success": True, "score": 1}, 400, "exactly one"),
        ({"call_id": mine, "score": 1.5}, 400, "0 to 1"),
        ({"call_id": mine, "score": True}, 400, "0 to 1"),
        ({"call_id": mine, "success": "yes"}, 400, "true or false"),
        ({"call_id": mine, "sucess": True}, 400, "unknown field 'sucess'"),
        ({"call_id": 12, "success": True}, 400, "call_id"),
    ]
    for body, status, words in cases:
        r = post(gw, body, gw.keys["alice"])
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert words in err["message"] and {"message", "type", "param", "code"} <= set(err), err
    r = httpx2.post(
        gw.url + "/v1/paymaster/feedback",
        content=b"{not json",
        headers={"authorization": f"Bearer {gw.keys['alice']}", "content-type": "application/json"},
    )
    assert r.status_code == 400 and "error" in r.json()
    assert post(gw, {"call_id": mine, "success": True}, "pm-wrong").status_code == 401
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys["alice"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):  # the official SDK reads it as its own typed error
        client.post("/paymaster/feedback", body={"call_id": theirs, "success": True}, cast_to=object)
    assert (gw.spend(), gw.admin("/admin/routing").json()) == before


def test_feedback_on_a_call_of_an_agent_that_left_the_fleet_is_a_404_not_a_500(gateway):
    import dataclasses

    from tests.conftest import ADMIN_KEY

    gw = gateway(agents=auto_agents(), routing={"feedback_tasks": ["extraction"], "feedback_floor": 0.9})
    theirs = one_call(gw, "carol")
    cfg = gw.gw.config
    gw.gw.config = dataclasses.replace(cfg, agents={n: a for n, a in cfg.agents.items() if n != "carol"})
    r = post(gw, {"call_id": theirs, "success": True}, ADMIN_KEY)
    assert r.status_code == 404 and "no longer in the fleet" in r.json()["error"]["message"], r.text


def test_with_feedback_the_gateway_moves_an_agent_to_the_cheapest_tier_that_keeps_succeeding(gateway):
    gw = gateway(
        agents=auto_agents(), routing={"feedback_tasks": ["extraction"], "feedback_floor": 0.8, "feedback_explore": 0.5}
    )
    tiers = []
    for _ in range(60):
        call = one_call(gw)
        tiers.append(next(t for t, m in LADDER.items() if m == gw.ledger("alice")[-1]["model"]))
        assert post(gw, {"call_id": call, "success": True}, gw.keys["alice"]).status_code == 200
    assert tiers[0] == "heavy"  # nothing known: the top tier
    assert tiers[-10:].count("light") >= 8  # every tier succeeds: it settles on the cheapest
    assert gw.admin("/admin/routing").json()["feedback"]["alice/extraction"]["safe_tier"] == "light"


def test_ratings_of_calls_past_feedback_keep_days_are_deleted_and_such_calls_cannot_be_rated(gateway):
    """The router's state file kept every rating ever given. Now a call older than routing.feedback_keep_days
    cannot be rated (400 in the OpenAI shape), and its stored rating is deleted by the next rating."""
    now = [time.time()]
    gw = gateway(clock=lambda: now[0], agents=auto_agents(),
                 routing={"feedback_tasks": ["extraction"], "feedback_keep_days": 2})  # fmt: skip
    old = one_call(gw)
    assert post(gw, {"call_id": old, "success": True}, gw.keys["alice"]).status_code == 200
    now[0] += 3 * 86_400
    new = one_call(gw)
    r = post(gw, {"call_id": old, "success": False}, gw.keys["alice"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "call_id"
    assert "too old to rate" in r.json()["error"]["message"]
    assert post(gw, {"call_id": new, "success": True}, gw.keys["alice"]).status_code == 200
    stored = RoutingState(gw.config.ledger + ".routing").items("feedback")
    assert [k for k, _ in stored] == [new]


class Ticking:
    """A clock that, once armed, moves one second on right after the feedback endpoint's age check reads it: the
    router's pruning, which reads it next, is a second later, so a call at the edge of routing.feedback_keep_days
    is young enough for the one and old enough for the other."""

    def __init__(self) -> None:
        self.t = time.time()
        self.armed = False

    def __call__(self) -> float:
        now = self.t
        if self.armed and sys._getframe(1).f_code.co_filename.endswith("feedback.py"):
            self.t += 1.0
        return now


def test_a_rating_accepted_at_the_edge_of_feedback_keep_days_still_takes_its_earlier_rating_back(gateway):
    """A call rateable when the endpoint checks its age must keep its stored rating until the router has taken it
    back: the pruning keeps ratings a grace period past the age limit. Before, a call that turned too old between
    the check and the pruning (a second later here; on replicas, any clock difference between the replica that
    prunes and the one that rates) lost its rating first, and the new one was counted as a first rating: one
    call's feedback counted twice by the bandit."""
    clock = Ticking()
    gw = gateway(clock=clock, agents=auto_agents(),
                 routing={"feedback_tasks": ["extraction"], "feedback_keep_days": 2})  # fmt: skip
    call = one_call(gw)
    assert post(gw, {"call_id": call, "success": True}, gw.keys["alice"]).json()["replaced"] is False
    (row,) = [r for r in gw.ledger("alice") if r["id"] == call]
    clock.t = row["ts"] + 2 * 86_400 - 0.5  # the check: 0.5 s inside the limit; the pruning: 0.5 s past it
    clock.armed = True
    r = post(gw, {"call_id": call, "success": False}, gw.keys["alice"])
    clock.armed = False
    assert r.status_code == 200, r.text
    assert r.json()["replaced"] is True  # the earlier rating was found and taken back
