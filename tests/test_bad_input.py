"""Bad input: the right 4xx in the caller's own error shape, never a 500, never a change to any spend."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import orjson
import pytest


def anthropic_error(r: httpx2.Response) -> dict:
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    return body["error"]


def openai_error(r: httpx2.Response) -> dict:
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    return body["error"]


CASES = [
    # (name, path, headers-kind, body bytes, content-type, status, error type)
    (
        "malformed json",
        "/v1/messages",
        "anthropic",
        b'{"model": "claude-haiku-4-5", ',
        "application/json",
        400,
        "invalid_request_error",
    ),
    ("not an object", "/v1/messages", "anthropic", b"[1, 2]", "application/json", 400, "invalid_request_error"),
    (
        "wrong content type",
        "/v1/messages",
        "anthropic",
        b"model=x",
        "application/x-www-form-urlencoded",
        415,
        "invalid_request_error",
    ),
    ("no content type", "/v1/chat/completions", "openai", b"{}", "", 415, "invalid_request_error"),
    (
        "negative max_tokens",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-haiku-4-5","max_tokens":-5,"messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "absurd max_tokens",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-haiku-4-5","max_tokens":10000000000,"messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "max_tokens not a number",
        "/v1/chat/completions",
        "openai",
        b'{"model":"gpt-4.1-mini","max_tokens":"lots","messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "zero max_completion_tokens",
        "/v1/chat/completions",
        "openai",
        b'{"model":"gpt-4.1-mini","max_completion_tokens":0,"messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "missing max_tokens",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "no messages",
        "/v1/chat/completions",
        "openai",
        b'{"model":"gpt-4.1-mini","messages":[]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "bad role",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"system","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "unknown model",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-nonexistent-9","max_tokens":5,"messages":[{"role":"user","content":"x"}]}',
        "application/json",
        404,
        "not_found_error",
    ),
    (
        "model of another agent",
        "/v1/chat/completions",
        "openai",
        b'{"model":"gpt-4.1","messages":[{"role":"user","content":"x"}]}',
        "application/json",
        404,
        "invalid_request_error",
    ),
    (
        "model on the other API",
        "/v1/chat/completions",
        "openai",
        b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}',
        "application/json",
        404,
        "invalid_request_error",
    ),
    (
        "bad n",
        "/v1/chat/completions",
        "openai",
        b'{"model":"gpt-4.1-mini","n":0,"messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
    (
        "stream not bool",
        "/v1/messages",
        "anthropic",
        b'{"model":"claude-haiku-4-5","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}',
        "application/json",
        400,
        "invalid_request_error",
    ),
]


@pytest.mark.parametrize("name,path,kind,body,ctype,status,etype", CASES, ids=[c[0] for c in CASES])
def test_bad_requests_get_a_clear_4xx_and_spend_nothing(gateway, sim, name, path, kind, body, ctype, status, etype):
    gw = gateway()
    before = gw.spend()
    agent = "alice" if kind == "anthropic" else "olivia"
    headers = {"x-api-key": gw.keys[agent]} if kind == "anthropic" else {"authorization": f"Bearer {gw.keys[agent]}"}
    if ctype:
        headers["content-type"] = ctype
    r = httpx2.post(gw.url + path, content=body, headers=headers)
    assert r.status_code == status, r.text
    err = anthropic_error(r) if kind == "anthropic" else openai_error(r)
    assert err["type"] == etype and err["message"]
    assert gw.spend() == before
    assert not sim.requests


def test_unknown_and_missing_keys_get_401_in_each_sdk(gateway):
    gw = gateway()
    before = gw.spend()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gw.url, api_key="pm-wrong", max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=gw.url + "/v1", api_key="pm-wrong", max_retries=0).chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.code == "invalid_api_key"
    r = httpx2.post(gw.url + "/v1/messages", json={"model": "claude-haiku-4-5"})
    assert r.status_code == 401 and anthropic_error(r)["type"] == "authentication_error"
    assert gw.spend() == before


def test_provider_key_is_not_an_agent_key(gateway):
    gw = gateway()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gw.url, api_key="sk-sim-provider-key", max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_admin_endpoints_refuse_agent_keys(gateway):
    gw = gateway()
    for path in ("/admin/agents", "/admin/agents/alice", "/admin/ledger", "/admin/events"):
        r = gw.admin(path, key=gw.keys["alice"])
        assert r.status_code == 403 and openai_error(r)["type"] == "permission_error"
        assert gw.admin(path, key="nope").status_code == 401
    assert gw.admin("/admin/agents/nobody").status_code == 404
    assert gw.admin("/admin/ledger", limit="many").status_code == 400
    assert gw.admin("/admin/ledger", colour="red").status_code == 400


def test_oversized_body_is_413_without_spend(gateway, sim):
    gw = gateway(limits={"max_body_mb": 1})
    before = gw.spend()
    big = "x" * (1024 * 1024 + 10)
    with pytest.raises(anthropic.APIStatusError) as e:
        gw.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": big}]
        )
    assert e.value.status_code == 413 and e.value.body["error"]["type"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as o:
        gw.openai().chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": big}])
    assert o.value.status_code == 413
    assert gw.spend() == before and not sim.requests


def test_unknown_routes_and_methods(gateway):
    gw = gateway()
    r = httpx2.get(gw.url + "/v1/messages", headers={"x-api-key": gw.keys["alice"]})
    assert r.status_code == 405 and anthropic_error(r)["type"] == "invalid_request_error"
    r = httpx2.post(gw.url + "/v1/audio/speech", json={}, headers={"authorization": f"Bearer {gw.keys['olivia']}"})
    assert r.status_code == 404 and openai_error(r)


# -- JSON the gateway can read but not write back, and malformed-but-JSON fields: 4xx, never a 500

ROUTES = {
    "anthropic": ("/v1/messages", "alice", {"model": "claude-haiku-4-5", "max_tokens": 50}),
    "openai": ("/v1/chat/completions", "olivia", {"model": "gpt-4.1-mini"}),
}
MIXED = {
    "alice": {"model": "claude-haiku-4-5", "models": ["claude-haiku-4-5", "gpt-4.1-mini"], "daily_usd": 5},
    "olivia": {"model": "gpt-4.1-mini", "models": ["gpt-4.1-mini", "claude-haiku-4-5"], "daily_usd": 5},
}


def _post(gw, kind: str, body: bytes, path: str | None = None, client: httpx2.Client | None = None) -> httpx2.Response:
    route, agent, _ = ROUTES[kind]
    headers = {"content-type": "application/json"}
    headers.update(
        {"x-api-key": gw.keys[agent]} if kind == "anthropic" else {"authorization": f"Bearer {gw.keys[agent]}"}
    )
    return (client or httpx2).post(gw.url + (path or route), content=body, headers=headers)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_deeply_nested_json_is_a_400_in_the_callers_shape(gateway, sim):
    gw = gateway()
    before = gw.spend()
    for kind in ("anthropic", "openai"):
        for depth in (130, 255, 600, 1020):  # orjson reads up to 1,024 levels and writes at most 254
            model = ROUTES[kind][2]["model"].encode()
            head = (
                b'{"model":"%s","max_tokens":50,"messages":[{"role":"user","content":"x"}],"metadata":{"deep":' % model
            )
            r = _post(gw, kind, head + _nested(depth) + b"}}")
            assert r.status_code == 400, (kind, depth, r.text)
            err = anthropic_error(r) if kind == "anthropic" else openai_error(r)
            assert err["type"] == "invalid_request_error" and "levels deep" in err["message"]
    assert gw.spend() == before and not sim.requests


def test_deep_json_on_count_tokens_is_a_400(gateway, sim):
    gw = gateway()
    body = b'{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}],"x":' + _nested(300) + b"}"
    r = _post(gw, "anthropic", body, "/v1/messages/count_tokens")
    assert r.status_code == 400 and anthropic_error(r)["type"] == "invalid_request_error"
    assert not sim.requests


def test_nesting_within_the_limit_still_goes_through(gateway, sim):
    gw = gateway()
    schema: dict = {"type": "object"}
    for _ in range(40):  # a deep but legitimate tool schema
        schema = {"type": "object", "properties": {"child": schema}}
    gw.anthropic().messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        tools=[{"name": "f", "input_schema": schema}],
        messages=[{"role": "user", "content": "x"}],
    )
    assert sim.requests


def test_deep_tool_call_arguments_translated_for_claude_are_a_400(gateway, sim):
    """OpenAI tool-call arguments are JSON text; translated for Claude they become an object the
    gateway must write: nested too deep, they are refused like a deep body."""
    gw = gateway(agents=MIXED)
    before = gw.spend()
    args = '{"a":' * 300 + "1" + "}" * 300
    with pytest.raises(openai.BadRequestError) as e:
        gw.openai().chat.completions.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    assert "levels deep" in e.value.body["message"]
    assert gw.spend() == before and not sim.requests


# (field, value) pairs, each set on an otherwise valid request
WRONG_TYPES = [
    (field, value)
    for field in (
        "messages",
        "system",
        "tools",
        "tool_choice",
        "metadata",
        "stream_options",
        "n",
        "temperature",
        "top_p",
        "stop",
        "stop_sequences",
        "response_format",
        "thinking",
        "service_tier",
        "output_config",
        "prompt_cache_key",
        "max_completion_tokens",
    )
    for value in (True, -1, 1.5, "x", [], [1], ["x"], {}, {"a": 1}, [{}], [{"type": 5}], [{"type": "text", "text": 5}])
]
MESSAGE_FIELDS = [
    (field, value)
    for field in ("content", "tool_calls", "role", "name", "tool_call_id")
    for value in (None, True, 7, [], [1], {}, [{"type": "image"}], [{"type": "image_url", "image_url": 5}])
]


@pytest.mark.parametrize("translated", [False, True], ids=["direct", "translated"])
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_wrong_types_anywhere_are_4xx_in_the_callers_shape(gateway, sim, kind, translated):
    gw = gateway(agents=MIXED)
    _, _, base = ROUTES[kind]
    model = {"anthropic": "gpt-4.1-mini", "openai": "claude-haiku-4-5"}[kind] if translated else base["model"]
    failures = []
    bodies = [
        {**base, "model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "x"}], f: v}
        for f, v in WRONG_TYPES
    ]
    for f, v in MESSAGE_FIELDS:
        message = {"role": "user", "content": "x", f: v}
        bodies.append(
            {**base, "model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "q"}, message]}
        )
    client = httpx2.Client()
    for body in bodies:
        r = _post(gw, kind, orjson.dumps(body), client=client)
        if r.status_code >= 500:
            failures.append((body, r.status_code, r.text[:200]))
        elif r.status_code >= 400:
            anthropic_error(r) if kind == "anthropic" else openai_error(r)
    client.close()
    assert not failures, failures[:5]
