"""GET /v1/models/{model}: one model the agent may call, in the caller's API's shape (the SDKs'
`client.models.retrieve`); a model the agent may not call is a 404, as for a model that does not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from .errors import ModelNotFound
from .http import Receive, Scope, Send, header_map, respond
from .wire import anthropic as wire_anthropic
from .wire import openai as wire_openai

if TYPE_CHECKING:
    from .app import Gateway

PREFIX = "/v1/models/"


async def retrieve(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    h = header_map(scope)
    agent = gw.agent(h)
    model = unquote(scope["path"][len(PREFIX) :])
    if model not in agent.models and not (model == "auto" and agent.tiers):
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not available to agent {agent.name!r}", param="model"
        )
    api = wire_anthropic if b"anthropic-version" in h else wire_openai
    await respond(send, 200, api.model_body(model))
