"""The Responses API's stored responses at the gateway: the context a request names, and the endpoints
that read or change a stored response, passed through to its provider for the agent that made it.

    GET    /v1/responses/{id}               retrieve
    DELETE /v1/responses/{id}               delete
    GET    /v1/responses/{id}/input_items   list its input items
    POST   /v1/responses/{id}/cancel        cancel (background responses; the gateway refuses creating them)

None of them is billed. An id the agent did not create through the gateway is "not found" to it, as
another organization's would be at the provider (`response_book.py` keeps who made what).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Agent
from .errors import BadRequest, MethodNotAllowed, NotFound
from .http import Receive, Scope, Send, header_map, respond
from .providers import UpstreamError, relay_headers
from .response_book import context_of
from .upstream_errors import fail

if TYPE_CHECKING:
    from .app import Gateway

ACTIONS = {("GET", ""), ("DELETE", ""), ("GET", "input_items"), ("POST", "cancel")}


async def stored_context(gw: Gateway, agent: Agent, body: dict[str, Any]) -> int | None:
    """Tokens of the stored context a Responses request names (0: none; None: one the gateway never
    served, bounded by the model's context window — or refused, by fleet policy)."""
    crowded = await gw.book.join(body)  # replicas: counted in flight on its conversation before its size is read
    try:
        named, tokens = await context_of(gw.book, agent.name, body)
    except LookupError:
        param = "previous_response_id" if body.get("previous_response_id") is not None else "conversation"
        raise NotFound(f"{param}: no such stored response or conversation for this key", param=param) from None
    if crowded:  # another call is growing it through another replica: its size is unknown until that settles
        tokens = None
    refuse = gw.config.responses_unknown_context == "refuse"
    in_flight = crowded or gw.book.in_flight(body)  # (in flight: one it served, growing)
    if named and tokens is None and refuse and not in_flight:
        param = "previous_response_id" if body.get("previous_response_id") is not None else "conversation"
        raise BadRequest(
            f"{param}: the gateway did not serve this stored context, so its size cannot be known; "
            "fleet policy refuses it (responses.unknown_stored_context: refuse)",
            param=param,
        )
    gw.book.begin(body)  # ended by the pipeline once the call has settled or was refused
    return tokens


async def stored(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """One of the stored-response endpoints (module docstring), for the agent that made the response."""
    h = header_map(scope)
    agent = gw.agent(h)
    method, path = scope["method"], scope["path"]
    rest = path.split("/responses/", 1)[1]
    rid, _, action = rest.partition("/")
    if (method, action) not in ACTIONS:
        if action in ("", "input_items", "cancel") and rid:
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise NotFound(f"no route {method} {path}")
    made = await gw.book.owner_anywhere(rid)
    if made is None or made[0] != agent.name:
        raise NotFound(f"No response found with id '{rid}'.", param="response_id")
    model = gw.config.models.get(made[1])
    if model is None or model.provider.api != "openai":
        raise NotFound(f"No response found with id '{rid}' (its model is no longer served).", param="response_id")
    up = gw.upstreams[model.provider.name]
    body = b""
    while True:  # cancel's body, if any, is not forwarded: the endpoint takes none
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    target = f"/responses/{rid}" + (f"/{action}" if action else "")
    qs = scope.get("query_string", b"")
    if qs:
        target += "?" + qs.decode("latin-1")
    try:
        resp = await up.transport.send(method, target, up.headers(h), b"")
        data = await resp.read()
    except UpstreamError as e:
        fail(e, up.provider.name)
    if method == "DELETE" and resp.status == 200:
        await gw.book.forget(rid)
    ctype = (resp.headers.get("content-type") or "application/json").encode("latin-1")
    await respond(send, resp.status, data, relay_headers(resp), ctype)
