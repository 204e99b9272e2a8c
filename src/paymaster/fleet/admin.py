"""Admin endpoints that change the fleet at run time (admin key only; admin.py authenticates and routes here).

POST  /admin/agents                       {"name", <agent fields of fleet.yaml>} → the agent and its key (shown once)
PATCH /admin/agents/{name}                {<agent fields>} set at run time; a field set to null follows fleet.yaml again
POST  /admin/agents/{name}/disable        refuse the agent's calls (403) / POST …/enable
POST  /admin/agents/{name}/keys           a further key (shown once)
POST  /admin/agents/{name}/keys/rotate    {"grace_s": S?} a new key; the others work S more seconds (admin.key_grace_s)
POST  /admin/keys/{id}/revoke             refused everywhere from now on
GET   /admin/keys[?agent=NAME]            the keys (id, agent, created, expires, revoked — never the key)
POST  /admin/fleet/reload                 re-read fleet.yaml, as SIGHUP does: 200 applied, 400 refused (old stays)
"""

from __future__ import annotations

import math
from typing import Any

from ..config import AGENT_NAME, AGENT_NAME_RULE, hash_key
from ..errors import BadRequest, MethodNotAllowed, NotFound
from ..http import Receive, Scope, Send, json_response, read_json
from ..query import params
from .live import Fleet, key_id, new_key
from .tables import AgentRow, KeyRow

MAX_BODY = 1 << 16


async def handle(fleet: Fleet, scope: Scope, h: dict[bytes, bytes], receive: Receive, send: Send) -> None:
    method, parts = scope["method"], scope["path"].strip("/").split("/")[1:]
    body = await _body(receive, h) if method in ("POST", "PATCH") else {}
    now = fleet.gw.clock()
    match method, parts:
        case "GET", ["keys"]:
            q = params(scope)
            if "agent" in q:
                _known(fleet, q["agent"])
            names = [q["agent"]] if "agent" in q else list(fleet.gw.config.agents)
            keys = [k.public(now) for n in names for k in fleet.keys_of(n)]
            await json_response(send, {"keys": keys})
        case "POST", ["agents"]:
            name = body.pop("name", None)
            if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
                raise BadRequest(f"name: an agent name of {AGENT_NAME_RULE}", param="name")
            if name in fleet.gw.config.agents:
                raise BadRequest(f"agent {name!r} exists; change it with PATCH /admin/agents/{name}", param="name")
            key, row = await _add(fleet, name, body, now)
            await json_response(send, {"agent": name, "key": key, "key_id": row.id}, 201)
        case "PATCH", ["agents", name]:
            _known(fleet, name)
            old = fleet.row(name)
            spec = {k: v for k, v in {**old.spec, **body}.items() if v is not None}
            if "key_sha256" in body or "key_env" in body:
                raise BadRequest("keys change through /admin/agents/{name}/keys (create, rotate) and revoke")
            await fleet.change([AgentRow(name, spec, old.disabled, now)], [])
            fleet.gw.board.publish("agent.changed", agent=name, fields=sorted(body))
            await json_response(send, {"agent": name, "set": spec})
        case "POST", ["agents", name, ("disable" | "enable") as what]:
            _known(fleet, name)
            old = fleet.row(name)
            await fleet.change([AgentRow(name, old.spec, what == "disable", now)], [])
            fleet.gw.board.publish(f"agent.{what}d", agent=name)
            await json_response(send, {"agent": name, "disabled": what == "disable"})
        case "POST", ["agents", name, "keys"]:
            _known(fleet, name)
            key, row = await fleet.add_key(name, None)
            await json_response(send, {"agent": name, "key": key, "key_id": row.id}, 201)
        case "POST", ["agents", name, "keys", "rotate"]:
            _known(fleet, name)
            grace = body.get("grace_s", fleet.gw.config.management.key_grace_s)
            if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= 30 * 86400:
                raise BadRequest("grace_s: seconds from 0 to 2592000", param="grace_s")
            if not math.isfinite(grace):
                raise BadRequest("grace_s: seconds from 0 to 2592000", param="grace_s")
            key, row = await fleet.add_key(name, float(grace))
            await json_response(send, {"agent": name, "key": key, "key_id": row.id,
                                       "old_keys_expire": now + float(grace)}, 201)  # fmt: skip
        case "POST", ["keys", kid, "revoke"]:
            row = await fleet.revoke(kid)
            await json_response(send, row.public(now))
        case "POST", ["fleet", "reload"]:
            ok, problems = await fleet.reload()
            if not ok:
                raise BadRequest("fleet.yaml refused, the old config stays: " + "; ".join(problems))
            await json_response(send, {"reloaded": True, "agents": len(fleet.gw.config.agents)})
        case _, ["agents" | "keys" | "fleet", *_]:
            raise MethodNotAllowed(f"{method} is not allowed on {scope['path']}")
        case _:
            raise NotFound(f"no admin route {scope['path']}")


async def _add(fleet: Fleet, name: str, spec: dict[str, Any], now: float) -> tuple[str, KeyRow]:
    """A new agent with its first key: both in one change (the fleet is validated with the agent in it)."""
    if "key_sha256" in spec or "key_env" in spec:
        raise BadRequest("an agent added at run time gets its key from the gateway (shown once)")
    key = new_key()
    h = hash_key(key)
    row = KeyRow(key_id(h), name, h, now)
    await fleet.change([AgentRow(name, {**spec, "key_sha256": h}, False, now)], [row])
    fleet.gw.board.publish("agent.added", agent=name, key_id=row.id)
    return key, row


def _known(fleet: Fleet, name: str) -> None:
    if name not in fleet.gw.config.agents:
        raise NotFound(f"no agent named {name!r}")


async def _body(receive: Receive, h: dict[bytes, bytes]) -> dict[str, Any]:
    """The JSON object sent, or {} when nothing is (`POST …/disable` needs no body)."""
    if h.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in h:
        return {}
    body, _ = await read_json(receive, h, MAX_BODY)
    return body
