"""POST /v1/paymaster/feedback: an orchestrator or validator says whether a call's answer was good enough.

    POST /v1/paymaster/feedback      (the agent's own key, or the admin key)
    {"call_id": "pm_…", "success": true}        or        {"call_id": "pm_…", "score": 0.7}

`call_id` is the `x-paymaster-call-id` header of the answer. An agent may rate only its own calls
(403 otherwise); the admin key may rate any. Only answered calls (ledger status `ok` or `cascade`) that ran on a
model of the agent's tier ladder, and no older than `routing.feedback_keep_days` (30 by default), can be rated:
ratings are stored per call, and deleted once their call is that old (and an hour more, so that a rating
accepted a moment before, or on a replica whose clock is behind, still takes its call's earlier rating back).
Rating a call again replaces its earlier rating. The rating feeds the router's bandit for that agent and task
type (levers/routing_bandit.py), which, for the task types in `routing.feedback_tasks`, picks the cheapest tier
keeping `routing.feedback_floor`. Bad input is a 400 in the OpenAI error shape; nothing here touches anyone's
spend. Replicas store the rating in Postgres before answering (levers/routing_sync.py): whichever replica takes
it, every replica's bandit learns from it.
"""

from __future__ import annotations

import hmac
import math
from typing import TYPE_CHECKING, Any

from .config import TIERS, hash_key
from .errors import BadRequest, Forbidden, NotFound, Unauthorized
from .http import Receive, Scope, Send, bearer_or_key, header_map, json_response, read_json

if TYPE_CHECKING:
    from .app import Gateway

__all__ = ["handle"]

MAX_BODY = 1 << 14
FIELDS = {"call_id", "success", "score"}
RATEABLE = ("ok", "cascade")  # answered by a provider, or by a cascade's cheaper tier
DAY_S = 86_400


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    h = header_map(scope)
    key = bearer_or_key(h)
    if not key:
        raise Unauthorized("missing API key: send the agent's Paymaster key (or the admin key)")
    admin = gw.config.admin_key_hash is not None and hmac.compare_digest(hash_key(key), gw.config.admin_key_hash)
    agent = None if admin else gw.agent(h)  # the fleet's keys: run-time ones too; revoked or disabled refused
    body, _ = await read_json(receive, h, MAX_BODY)
    call_id, score = parse(body)
    gw.store.flush()  # a call settled a moment ago is readable
    row = gw.store.row(call_id)
    if row is None:
        raise NotFound(f"no call {call_id!r} in the ledger", param="call_id")
    if agent is not None and row["agent"] != agent.name:
        raise Forbidden("an agent may rate only its own calls", param="call_id")
    if row["status"] not in RATEABLE:
        raise BadRequest(
            f"call {call_id!r} was not answered (status {row['status']}); nothing to rate", param="call_id"
        )
    owner = gw.config.agents.get(row["agent"])
    if owner is None:  # the agent left the fleet after the call (a reload without it): nothing learns from it
        raise NotFound(f"call {call_id!r} was made by {row['agent']!r}, no longer in the fleet", param="call_id")
    tier = next((t for t in TIERS if owner.tiers.get(t) == row["model"]), None)
    if tier is None:
        raise BadRequest(
            f"call {call_id!r} ran on {row['model']!r}, which is not on agent {owner.name!r}'s tier ladder",
            param="call_id",
        )
    routing = gw.lever("routing")
    if routing is None:
        raise NotFound("this gateway runs without the routing lever: nothing learns from feedback")
    keep = gw.config.routing.feedback_keep_days
    if row["ts"] < gw.clock() - keep * DAY_S:  # its rating may be deleted already: a new one could count it twice
        raise BadRequest(
            f"call {call_id!r} is older than routing.feedback_keep_days ({keep} days): too old to rate",
            param="call_id",
        )
    previous = await routing.router.rate(call_id, row["ts"], f"{owner.name}/{row['task']}", tier, score)
    out = {"call_id": call_id, "agent": owner.name, "task": row["task"] or None, "tier": tier, "score": score}
    await json_response(send, {**out, "replaced": previous is not None})


def parse(body: dict[str, Any]) -> tuple[str, float]:
    """(call id, score in [0, 1]) from a feedback body, or a BadRequest naming the field."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; give call_id and one of success or score", param=unknown[0])
    call_id = body.get("call_id")
    if not isinstance(call_id, str) or not call_id or len(call_id) > 200:
        raise BadRequest("call_id: the x-paymaster-call-id of the call being rated (a string)", param="call_id")
    if ("success" in body) == ("score" in body):
        raise BadRequest("give exactly one of success (true/false) or score (0 to 1)", param="success")
    if "success" in body:
        if not isinstance(body["success"], bool):
            raise BadRequest("success: must be true or false", param="success")
        return call_id, 1.0 if body["success"] else 0.0
    s = body["score"]
    if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 <= s <= 1:
        raise BadRequest(f"score: must be a number from 0 to 1, got {s!r}", param="score")
    return call_id, float(s)
