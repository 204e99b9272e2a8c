"""Bad input: the right 4xx in the caller's own error shape, never a 500, never a change to any spend."""

from __future__ import annotations

import anthropic
import httpx2
import openai
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
    r = httpx2.post(gw.url + "/v1/embeddings", json={}, headers={"authorization": f"Bearer {gw.keys['olivia']}"})
    assert r.status_code == 404 and openai_error(r)
