"""Mutation fuzzing through a running gateway: every endpoint, starting from a valid request, mutated.

The standard under attack: bad input gets a clear error in the caller's own API error shape (Anthropic
`{"type": "error", "error": {"type", "message"}}`, OpenAI `{"error": {"message", "type", "param", "code"}}`),
never a 500, and never a change to anyone's spend. Requests go as raw HTTP (httpx2), so the fuzzer can send
what the SDKs will not: duplicate keys, NaN and 1e400 literals, lone surrogates, invalid UTF-8, bodies that
are not JSON, odd content types and encodings, missing or doubled credentials, odd paths and methods.

`make test` runs a bounded, derandomized number of examples per endpoint group (a repeatable CI run);
PAYMASTER_FUZZ_EXAMPLES=N runs N per group with fresh randomness, for hunting.
"""

from __future__ import annotations

import copy
import gzip
import os
import secrets
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymaster.app import Gateway
from paymaster.config import parse
from paymaster.server import ServerThread
from tests.conftest import ADMIN_KEY, PROVIDER_KEY, Running, fleet

HUNT = int(os.environ.get("PAYMASTER_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=HUNT or examples,
        deadline=None,
        derandomize=not HUNT,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# -- raw JSON: what orjson will not write ---------------------------------------------------------------


class Raw(bytes):
    """Bytes written into the body as they are (NaN, 1e400, a lone surrogate escape, invalid UTF-8)."""


@dataclass
class Dup:
    """An object whose key `key` appears twice: first `first`, then the object's own value."""

    obj: dict[str, Any]
    key: str
    first: Any


def encode(v: Any) -> bytes:
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, Dup):
        items = [(v.key, v.first), *v.obj.items()]
        return b"{" + b",".join(orjson.dumps(k) + b":" + encode(x) for k, x in items) + b"}"
    if isinstance(v, dict):
        return b"{" + b",".join(orjson.dumps(k) + b":" + encode(x) for k, x in v.items()) + b"}"
    if isinstance(v, list):
        return b"[" + b",".join(encode(x) for x in v) + b"]"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v).encode()  # beyond 64 bits too
    return orjson.dumps(v)


def nest(depth: int) -> Any:
    v: Any = "deep"
    for i in range(depth):
        v = [v] if i % 2 else {"a": v}
    return v


ODD_SCALARS: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**63, 2**70, -(2**70), 0.5, -0.0, 1e308,
    Raw(b"1e400"), Raw(b"-1e400"), Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity"), Raw(b"1" * 5000),
    "", " ", "x" * 100_000, "\x00", "robot", "mystery", "claude-haiku-4-5", "gpt-4.1-mini", "auto",
    Raw(b'"\\ud800"'), Raw(b'"\\udfff x"'), Raw(b'"\xff\xfe"'), Raw(b'"\xc3"'), "\u202e\ufeff", "🙂" * 50,
    [], {}, [None], [[]], [{}], {"type": "mystery"}, [{"type": "mystery_block"}], [{"type": None}],
    {"role": "robot", "content": "hi"}, [{"role": "robot", "content": "hi"}], {"": ""},
    nest(40), nest(200), '{"a":' * 300, "[" * 300 + "]" * 300, "{not json", "data:image/png;base64,!!",
    [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!"}}],
    [{"type": "image", "source": {"type": "url", "url": "ftp://x"}}],
    [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": 5}}],
    [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!", "detail": "ultra"}}],
    [{"type": "input_audio", "input_audio": {"data": 7, "format": "ogg"}}],
    [{"type": "input_image", "image_url": None}], [{"type": "input_file", "file_data": []}],
    [{"type": "tool_result", "tool_use_id": "x", "content": [{"type": 5}]}],
    [{"type": "web_search_20250305", "name": "web_search", "max_uses": -1}], [{"type": "web_search_preview"}],
    {"type": "enabled", "budget_tokens": 2**70}, {"type": "json_schema", "json_schema": None},
    {"type": "function", "function": None}, {"include_usage": "yes"}, {"paymaster_task": 5},
    [{"role": "user", "content": None}], [{"role": "tool"}], [{"role": "assistant", "tool_calls": [None]}],
    [{"type": "function_call", "call_id": None, "arguments": "[[["}], [{"type": "function_call_output"}],
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
odd_values = st.sampled_from(ODD_SCALARS) | json_values


# -- a valid request per endpoint, and what to call it with ------------------------------------------------

CLAUDE = "claude-haiku-4-5"
GPT = "gpt-4.1-mini"


@dataclass
class Req:
    method: str
    path: str
    key: str  # alice | olivia | admin: whose credential
    body: Any = None  # a JSON value (with Raw / Dup inside), or None
    raw: bytes | None = None  # the body as bytes, instead of `body`
    ctype: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    auth: str = "native"  # native | bearer | x-api-key | none | both | wrong | swapped

    def anthropic(self) -> bool:
        """Whether the caller speaks Anthropic: the gateway answers /v1/messages* in Anthropic's shape, and
        /v1/models* too when the request carries anthropic-version."""
        lower = {k.lower() for k in self.headers}
        path = httpx2.URL("http://x" + self.path).path  # as the client sends it: `/v1/messages/../admin` is `/v1/admin`
        return path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in lower)


def messages_body(**kw: Any) -> dict[str, Any]:
    return {
        "model": CLAUDE,
        "max_tokens": 32,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                                         {"type": "text", "text": "and tomorrow?"}]},
        ],
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object", "properties": {}}}],
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        **kw,
    }  # fmt: skip


def chat_body(**kw: Any) -> dict[str, Any]:
    return {
        "model": GPT,
        "max_completion_tokens": 32,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is the weather?"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object", "properties": {}}}}],
        "temperature": 0.5,
        "n": 1,
        "response_format": {"type": "text"},
        **kw,
    }  # fmt: skip


def responses_body(**kw: Any) -> dict[str, Any]:
    return {
        "model": GPT,
        "max_output_tokens": 32,
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is the weather?"}]}],
        "tools": [{"type": "function", "name": "w", "parameters": {"type": "object", "properties": {}}}],
        **kw,
    }


AGENT_CALLS = [
    Req("POST", "/v1/messages", "alice", messages_body()),
    Req("POST", "/v1/messages", "alice", messages_body(stream=True)),
    Req("POST", "/v1/messages/count_tokens", "alice", {"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]}),  # noqa: E501
    Req("POST", "/v1/chat/completions", "olivia", chat_body()),
    Req("POST", "/v1/chat/completions", "olivia", chat_body(stream=True, stream_options={"include_usage": True})),
    Req("POST", "/v1/responses", "olivia", responses_body()),
    Req("POST", "/v1/responses", "olivia", responses_body(stream=True)),
    Req("POST", "/v1/embeddings", "olivia", {"model": "text-embedding-3-small", "input": ["hi", "there"]}),
    Req("GET", "/v1/models", "olivia"),
    Req("GET", "/v1/models", "alice", headers={"anthropic-version": "2023-06-01"}),
    Req("GET", "/v1/models/" + GPT, "olivia"),
    # translated: each API's caller to the other provider's model
    Req("POST", "/v1/chat/completions", "olivia", chat_body(model=CLAUDE)),
    Req("POST", "/v1/chat/completions", "olivia", chat_body(model=CLAUDE, stream=True)),
    Req("POST", "/v1/messages", "alice", messages_body(model=GPT)),
    Req("POST", "/v1/messages", "alice", messages_body(model=GPT, stream=True)),
    Req("POST", "/v1/responses", "olivia", responses_body(model=CLAUDE)),
    Req("POST", "/v1/messages", "alice", messages_body(), headers={"x-paymaster-task": "short"}),
    Req("POST", "/v1/chat/completions", "alice", chat_body(model=CLAUDE), headers={"x-paymaster-task": "short"}),
    # routed: model "auto" over tiers of both providers
    Req("POST", "/v1/messages", "bob", messages_body(model="auto"), headers={"x-paymaster-task": "chat"}),
    Req("POST", "/v1/chat/completions", "bob", chat_body(model="auto")),
]  # fmt: skip


B = "fuzzboundary"
LINE = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": GPT, "max_tokens": 16, "messages": [{"role": "user", "content": "q"}]}}  # fmt: skip
FORM = f"multipart/form-data; boundary={B}"


def batch_requests(ids: dict[str, str]) -> list[Req]:
    """The batch, job and stored-response endpoints, on ids made for them by `made_ids`."""
    return [
        Req("POST", "/v1/messages/batches", "alice",
            {"requests": [{"custom_id": "r1", "params": messages_body(max_tokens=16)}]}),
        Req("GET", "/v1/messages/batches", "alice", query="limit=5"),
        Req("GET", f"/v1/messages/batches/{ids['msgbatch']}", "alice"),
        Req("POST", f"/v1/messages/batches/{ids['msgbatch']}/cancel", "alice"),
        Req("GET", f"/v1/messages/batches/{ids['msgbatch']}/results", "alice"),
        Req("DELETE", f"/v1/messages/batches/{ids['msgbatch']}", "alice"),
        Req("POST", "/v1/files", "olivia", raw=upload(encode(LINE)), ctype=FORM),
        Req("GET", f"/v1/files/{ids['file']}", "olivia"),
        Req("GET", f"/v1/files/{ids['file']}/content", "olivia"),
        Req("POST", "/v1/batches", "olivia",
            {"input_file_id": ids["file"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
        Req("GET", "/v1/batches", "olivia", query="limit=5"),
        Req("GET", f"/v1/batches/{ids['batch']}", "olivia"),
        Req("POST", f"/v1/batches/{ids['batch']}/cancel", "olivia"),
        Req("GET", "/v1/paymaster/jobs", "alice", query="limit=5&status=queued"),
        Req("GET", f"/v1/paymaster/jobs/{ids['job']}", "alice"),
        Req("GET", f"/v1/paymaster/jobs/{ids['job']}/result", "alice"),
        Req("GET", f"/v1/responses/{ids['response']}", "olivia"),
        Req("GET", f"/v1/responses/{ids['response']}/input_items", "olivia"),
        Req("POST", f"/v1/responses/{ids['response']}/cancel", "olivia"),
        Req("POST", "/v1/responses", "olivia", {"model": GPT, "input": "on", "previous_response_id": ids["response"]}),
        Req("POST", "/v1/paymaster/feedback", "alice", {"call_id": ids["call"], "success": True}),
        Req("POST", "/v1/paymaster/feedback", "admin", {"call_id": ids["call"], "score": 0.5}),
    ]  # fmt: skip


def admin_requests(ids: dict[str, str]) -> list[Req]:
    return [
        Req("GET", "/admin/agents", "admin"),
        Req("GET", "/admin/agents/alice", "admin"),
        Req("GET", "/admin/ledger", "admin", query="agent=alice&limit=5&since=0&after=0&reconcile=false"),
        Req("GET", "/admin/routing", "admin"),
        Req("GET", "/admin/overview", "admin"),
        Req("GET", "/admin/keys", "admin", query="agent=fuzzee"),
        Req("POST", f"/admin/ledger/{ids['call']}/reconcile", "admin", {"cost_usd": "0.001"}),
        Req("POST", "/admin/agents", "admin", {"name": "fuzznew", "model": CLAUDE, "daily_usd": 1}),
        Req("PATCH", "/admin/agents/fuzzee", "admin", {"daily_usd": 2, "monthly_usd": 20, "max_tokens": 512}),
        Req("POST", "/admin/agents/fuzzee/disable", "admin"),
        Req("POST", "/admin/agents/fuzzee/enable", "admin"),
        Req("POST", "/admin/agents/fuzzee/keys", "admin"),
        Req("POST", "/admin/agents/fuzzee/keys/rotate", "admin", {"grace_s": 5}),
        Req("POST", f"/admin/keys/{ids['key']}/revoke", "admin"),
        Req("POST", "/admin/fleet/reload", "admin"),
        Req("GET", "/metrics", "admin"),
    ]


def upload(content: bytes, purpose: bytes = b"batch") -> bytes:
    return (
        f'--{B}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'.encode()
        + purpose
        + b"\r\n"
        + f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'.encode()
        + b"Content-Type: application/jsonl\r\n\r\n"
        + content
        + f"\r\n--{B}--\r\n".encode()
    )


# -- mutations -------------------------------------------------------------------------------------------


def places(v: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the root included)."""
    out = [at]
    if isinstance(v, dict):
        for k, x in v.items():
            out += places(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += places(x, (*at, i))
    return out


def get(v: Any, at: tuple[Any, ...]) -> Any:
    for k in at:
        v = v[k]
    return v


FIELDS = """max_tokens max_completion_tokens max_output_tokens n dimensions encoding_format stream stream_options
thinking tool_choice tools system service_tier reasoning reasoning_effort web_search_options prompt_cache_key
previous_response_id conversation background store top_k top_p seed logprobs top_logprobs cache_control text include
truncation modalities audio prediction parallel_tool_calls user metadata container mcp_servers context_management
inference_geo speed response_format input instructions messages model params requests custom_id body url method
cost_usd usage daily_usd monthly_usd models tiers tasks grace_s call_id success score""".split()
"""Fields some endpoint reads: the `add` mutation puts one, with an odd value, where the seed has none."""


def mutate(body: Any, at: tuple[Any, ...], op: str, new: Any, name: str = "") -> Any:
    """`body` with the value at `at` replaced by `new`, dropped, duplicated or wrapped, or (an object) given
    field `name` (a copy)."""
    body = copy.deepcopy(body)
    if op == "add":
        target = get(body, at)
        if isinstance(target, dict):
            target[name] = new
        return body
    if not at:
        return new if op == "set" else [body] if op == "wrap" else body
    parent, last = get(body, at[:-1]), at[-1]
    if op == "set":
        parent[last] = new
    elif op == "drop":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    elif op in ("dup", "dup_last") and isinstance(parent, dict):  # dup_last: the odd value is the one orjson keeps
        container = Dup(dict(parent), last, new) if op == "dup" else Dup({**parent, last: new}, last, parent[last])
        if len(at) == 1:
            return container
        get(body, at[:-2])[at[-2]] = container
    elif op in ("dup", "dup_last"):
        parent.insert(last, parent[last])
    return body


@st.composite
def mutated_body(draw: st.DrawFn, body: Any) -> Any:
    for _ in range(draw(st.integers(1, 3))):
        if isinstance(body, Dup):
            break
        at = draw(st.sampled_from(places(body)))
        op = draw(st.sampled_from(["set", "set", "set", "add", "add", "drop", "dup", "dup_last", "wrap"]))
        body = mutate(body, at, op, draw(odd_values), draw(st.sampled_from(FIELDS)))
        if isinstance(body, Raw):
            break
    return body


ODD_CTYPES = [None, "", "text/plain", "application/x-www-form-urlencoded", "APPLICATION/JSON",
              "application/json; charset=latin-1", "application/jsonl", "multipart/form-data",
              "application/json, text/plain", "application/json;;;"]  # fmt: skip
NOT_JSON = [b"", b" ", b"{", b"}", b"[1,2]", b'"a string"', b"42", b"null", b"true", b"\xff\xfe\x00", b"\xef\xbb\xbf{}",
            b"{'model': 1}", b'{"model":}', b"NaN", b"{}" * 3, b"\x00" * 16, b'{"a":1}garbage', b"[" * 5000,
            b'{"a":' * 2000]  # fmt: skip
HEADERS = ["anthropic-version", "anthropic-beta", "x-paymaster-task", "x-paymaster-defer", "x-paymaster-route",
           "accept-encoding", "x-stainless-retry-count", "idempotency-key", "openai-beta"]  # fmt: skip
ANTHROPIC_VERSIONS = ["garbage", "", "2023-01-01", "2099-12-31", "\u00e9"]


@st.composite
def mutated(draw: st.DrawFn, seed: Req) -> Req:
    """One mutation class (or two) applied to a valid request."""
    req = replace(seed, headers=dict(seed.headers))
    kinds = draw(st.lists(st.sampled_from(["body", "body", "body", "raw", "ctype", "auth", "header", "path", "query"]),
                          min_size=1, max_size=2))  # fmt: skip
    for kind in kinds:
        if kind == "body" and req.body is not None and req.raw is None:
            req.body = draw(mutated_body(req.body))
        elif kind == "raw":
            choice = draw(st.sampled_from(["not_json", "gzip", "truncate", "binary", "file"]))
            source = req.raw if req.raw is not None else encode(req.body if req.body is not None else {})
            if choice == "not_json":
                req.raw = draw(st.sampled_from(NOT_JSON))
            elif choice == "gzip":
                req.raw = gzip.compress(source)
                req.headers["content-encoding"] = "gzip"
            elif choice == "truncate":
                req.raw = source[: draw(st.integers(0, max(0, len(source) - 1)))]
            elif choice == "binary":
                req.raw = draw(st.binary(max_size=64))
            else:  # a batch input file whose line is mutated
                req.raw = upload(encode(draw(mutated_body({"custom_id": "x", "method": "POST", "url": "/v1/x"}))))
        elif kind == "ctype":
            req.ctype = draw(st.sampled_from(ODD_CTYPES))
        elif kind == "auth":
            req.auth = draw(st.sampled_from(["bearer", "x-api-key", "none", "both", "wrong", "swapped", "admin"]))
        elif kind == "header":
            name = draw(st.sampled_from(HEADERS))
            req.headers[name] = draw(st.sampled_from([*ANTHROPIC_VERSIONS, "1", "true", "0" * 300, "zz, qq"]))
        elif kind == "path":
            req = draw(odd_path(req))
        elif kind == "query":
            req.query = draw(st.sampled_from(QUERIES))
    return req


QUERIES = ["limit=abc", "limit=-1", "limit=0", "limit=99999999999999999999", "limit=1e3", "limit=", "limit",
           "after=%ff", "%ff=%fe", "after_id=&limit=1", "after_id=x", "after=x", "since=nan", "until=inf",
           "after=-5", "status=%00", "status=queued&status=done", "agent=%ff", "agent=nobody", "a=1&a=2"]  # fmt: skip


@st.composite
def odd_path(draw: st.DrawFn, req: Req) -> Req:
    choice = draw(st.sampled_from(["slash", "double", "suffix", "segment", "case", "method"]))
    path, method = req.path, req.method
    if choice == "slash":
        path += "/"
    elif choice == "double":
        path = path.replace("/", "//", 1)
    elif choice == "suffix":
        path += draw(st.sampled_from(["x", "/x", "/cancel", "/results", "/content", "/input_items", "/../admin"]))
    elif choice == "segment":
        seg = draw(st.sampled_from(["%00", "%ff", "..", "%2e%2e", "a" * 3000, "é", "%C3%A9", "1 2", "null", "-1"]))
        path = path.rsplit("/", 1)[0] + "/" + seg
    elif choice == "case":
        path = path.upper()
    if choice == "method" or draw(st.booleans()):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]))
    return replace(req, method=method, path=path)


# -- sending, and judging the answer ----------------------------------------------------------------------


@dataclass
class Target:
    """A running gateway and how to reach it."""

    gw: Any
    client: httpx2.Client
    keys: dict[str, str]

    def send(self, req: Req) -> httpx2.Response:
        native = "admin" if req.key == "admin" else req.key
        key = ADMIN_KEY if native == "admin" else self.keys[native]
        other = self.keys["olivia" if req.key == "alice" else "alice"]
        h: list[tuple[str, str | bytes]] = [(k, v.encode()) for k, v in req.headers.items()]
        if req.ctype is not None:
            h.append(("content-type", req.ctype.encode("latin-1", "replace")))
        auth = {
            "native": [("x-api-key", key)] if req.anthropic() else [("authorization", f"Bearer {key}")],
            "bearer": [("authorization", f"Bearer {key}")],
            "x-api-key": [("x-api-key", key)],
            "none": [],
            "both": [("x-api-key", key), ("authorization", f"Bearer {other}")],
            "wrong": [("authorization", "Bearer pm-nobody-0000"), ("x-api-key", "")],
            "swapped": [("authorization", f"Bearer {other}")],
            "admin": [("authorization", f"Bearer {ADMIN_KEY}")],
        }[req.auth]  # fmt: skip
        h += [(k, v.encode()) for k, v in auth]
        content = req.raw if req.raw is not None else None if req.body is None else encode(req.body)
        url = self.gw.url + req.path + ("?" + req.query if req.query else "")
        return self.client.request(req.method, url, headers=h, content=content)

    def spend(self) -> list[Any]:
        """Every window's spent and reserved dollars, and every ledger row that books money. A request the
        provider itself refused (relayed as it sent it) leaves a row at $0, status upstream_error: the
        record of a refusal, not spend."""
        booked = [(r["id"], r["cost_nanos"]) for r in self.gw.ledger()
                  if not (r["status"] == "upstream_error" and r["cost_nanos"] == 0)]  # fmt: skip
        return [*self.gw.spend()[:-1], booked]

    def check(self, req: Req) -> httpx2.Response:
        """Send `req`; assert the answer is never a 5xx, a refusal is in the caller's shape and changes no
        spend."""
        before = self.spend()
        r = self.send(req)
        assert r.status_code < 500, (r.status_code, r.text[:2000], req)
        if r.status_code >= 400:
            assert_shape(r, req)
            after = self.spend()
            assert after == before, (req, r.status_code, r.text[:500])
        return r


def assert_shape(r: httpx2.Response, req: Req) -> None:
    if req.method == "HEAD":
        return
    assert r.headers.get("content-type", "").startswith("application/json"), (r.headers, r.text[:300], req)
    body = r.json()
    if req.anthropic():
        assert body.get("type") == "error" and isinstance(body.get("error"), dict), (body, req)
        err = body["error"]
        assert isinstance(err.get("type"), str) and isinstance(err.get("message"), str), (body, req)
    else:
        assert isinstance(body.get("error"), dict), (body, req)
        err = body["error"]
        assert set(err) >= {"message", "type", "param", "code"}, (body, req)
        assert isinstance(err["message"], str) and isinstance(err["type"], str), (body, req)
    assert err["message"].strip(), (body, req)


SHORT = {
    "max_tokens": 64,
    "brevity": "Be terse.",
    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
}
FLEET: dict[str, Any] = {
    "agents": {
        "olivia": {"model": GPT, "models": [GPT, "gpt-4o", "text-embedding-3-small", CLAUDE], "daily_usd": 20,
                   "monthly_usd": 200, "max_tokens": 2048},
        "alice": {"model": CLAUDE, "models": [CLAUDE, "claude-sonnet-4-6", GPT], "daily_usd": 20, "monthly_usd": 200,
                  "max_tokens": 2048, "tasks": {"later": {"defer": True}, "short": SHORT}},
        "fuzzee": {"model": CLAUDE, "daily_usd": 1, "monthly_usd": 10},
        "bob": {"model": "auto", "tiers": {"light": CLAUDE, "heavy": GPT}, "daily_usd": 20, "monthly_usd": 200,
                "max_tokens": 1024, "tasks": {"chat": {"tier": "light"}}},
    },
    "batch": {"flush_age_s": 3600, "poll_s": 3600},  # queued work holds its reservation still while fuzzing
    "observability": {"access_log": "off"},
}  # fmt: skip


@pytest.fixture
def target(gateway: Any) -> Any:
    gw = gateway(**FLEET)
    with httpx2.Client(timeout=20) as client:
        yield Target(gw, client, gw.keys)


@pytest.fixture
def live_target(sim: Any, tmp_path: Any) -> Any:
    """A gateway that takes fleet changes at run time (agents added, set, disabled; keys), as `serve` does."""
    keys = {n: f"pm-{n}-" + secrets.token_hex(8) for n in ("alice", "olivia", "bob", "fuzzee")}
    raw = fleet(sim.url, keys, tmp_path, **copy.deepcopy(FLEET))
    env = {"SIM_KEY": PROVIDER_KEY}
    config = parse(raw, env=env)
    gw = Gateway(config, seed=raw, env=env)
    with ServerThread(gw) as srv, httpx2.Client(timeout=20) as client:
        yield Target(Running(srv.url, gw, keys, config, srv, raw), client, keys)


def made_ids(t: Target) -> dict[str, str]:
    """Ids of real things for the id-bearing endpoints: a message batch, a file, a batch, a deferred job, a
    stored response and a settled call."""
    ok = [t.check(Req("POST", "/v1/messages/batches", "alice",
                      {"requests": [{"custom_id": "r1", "params": messages_body(max_tokens=16)}]})),
          t.check(Req("POST", "/v1/files", "olivia", raw=upload(encode(LINE)), ctype=FORM))]  # fmt: skip
    ids = {"msgbatch": ok[0].json()["id"], "file": ok[1].json()["id"]}
    b = t.check(
        Req(
            "POST",
            "/v1/batches",
            "olivia",
            {"input_file_id": ids["file"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
        )
    )
    job = t.check(Req("POST", "/v1/messages", "alice", messages_body(), headers={"x-paymaster-task": "later"}))
    resp = t.check(Req("POST", "/v1/responses", "olivia", responses_body(store=True)))
    call = t.check(Req("POST", "/v1/messages", "alice", messages_body()))
    assert [x.status_code for x in (*ok, b, resp, call)] == [200] * 5 and job.status_code == 202, job.text
    ids.update(batch=b.json()["id"], job=job.json()["id"], response=resp.json()["id"],
               call=call.headers["x-paymaster-call-id"])  # fmt: skip
    quiet(t)
    return ids


def quiet(t: Target, step_s: float = 1.5, limit_s: float = 30.0) -> None:
    """Wait until nothing in the background moves anyone's spend: the batch service polls the provider at its
    first tick, a second after start, and settles the batches made above then — on a fast machine in the
    middle of the checks that follow, which would take that settlement for spend a refused request made."""
    deadline = time.monotonic() + limit_s
    last = t.spend()
    while time.monotonic() < deadline:
        time.sleep(step_s)
        now = t.spend()
        if now == last:
            return
        last = now
    raise AssertionError("spend kept moving for 30 s after the ids were made")


def run(t: Target, seeds: list[Req], examples: int) -> None:
    @fuzz_settings(examples)
    @given(st.sampled_from(seeds).flatmap(mutated))
    def one(req: Req) -> None:
        t.check(req)

    one()


def test_calls_survive_mutation(target: Target) -> None:
    for seed in AGENT_CALLS:
        assert target.check(seed).status_code == 200, seed  # each seed is valid as it stands
    run(target, AGENT_CALLS, 160)


def test_batch_jobs_and_stored_responses_survive_mutation(target: Target) -> None:
    run(target, batch_requests(made_ids(target)), 80)


def test_batch_input_files_survive_mutation(target: Target) -> None:
    """A batch input file whose first line is mutated, uploaded, then named by a batch (the second line valid)."""

    @fuzz_settings(25)
    @given(mutated_body(LINE))
    def one(line: Any) -> None:
        up = target.check(
            Req("POST", "/v1/files", "olivia", raw=upload(encode(line) + b"\n" + encode(LINE)), ctype=FORM)
        )
        if up.status_code == 200:
            target.check(Req("POST", "/v1/batches", "olivia", {"input_file_id": up.json()["id"],
                             "endpoint": "/v1/chat/completions", "completion_window": "24h"}))  # fmt: skip

    one()


def test_admin_endpoints_survive_mutation(live_target: Target) -> None:
    ids = made_ids(live_target)
    r = live_target.check(Req("GET", "/admin/keys", "admin", query="agent=fuzzee"))
    ids["key"] = r.json()["keys"][0]["id"]
    statuses = {seed.path: live_target.check(seed).status_code for seed in admin_requests(ids)}
    refused = {p for p, s in statuses.items() if s not in (200, 201)}
    # no call is flagged for reconciliation; a gateway started from parsed fleet.yaml content has no file to reload
    assert refused == {f"/admin/ledger/{ids['call']}/reconcile", "/admin/fleet/reload"}, statuses
    run(live_target, admin_requests(ids), 50)


# -- what the fuzzer found, kept as explicit cases ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "query"),
    [
        ("/v1/messages/batches", "alice", "limit=abc"),  # was int("abc"): a 500
        ("/v1/messages/batches", "alice", "limit=0"),
        ("/v1/batches", "olivia", "limit=1e3"),
        ("/v1/batches", "olivia", "limit=101"),
        ("/v1/paymaster/jobs", "alice", "limit=abc"),
        ("/v1/paymaster/jobs", "alice", f"limit={2**70}"),  # was an OverflowError binding SQLite's LIMIT: a 500
        ("/v1/paymaster/jobs", "alice", "limit=-1"),  # was every job (SQLite reads LIMIT -1 as none)
    ],
)
def test_a_list_limit_that_is_not_a_number_in_range_is_a_400(target: Target, path: str, key: str, query: str) -> None:
    r = target.check(Req("GET", path, key, query=query))
    assert r.status_code == 400 and "limit" in r.text


def test_an_unforeseen_failure_is_still_answered_in_the_callers_shape(target: Target) -> None:
    """Any exception but the gateway's own refusals is a defect; it is logged, and the caller still gets its own
    API's error shape (with the logged request id), not the server's plain-text 500."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("a defect")

    routes = target.gw.gw.routes
    routes["POST", "/v1/messages"] = routes["POST", "/v1/chat/completions"] = broken
    for req in (
        Req("POST", "/v1/messages", "alice", messages_body()),
        Req("POST", "/v1/chat/completions", "olivia", chat_body()),
    ):
        r = target.send(req)
        assert r.status_code == 500
        assert_shape(r, req)
        assert r.headers["request-id"] in r.text and "internal error" in r.text


def test_feedback_takes_the_keys_the_fleet_takes(target: Target) -> None:
    """Feedback authenticated against fleet.yaml's keys only: a key issued at run time was a 401 (and a
    revoked fleet.yaml key, or a disabled agent's, could still rate calls)."""
    call = target.check(Req("POST", "/v1/messages", "bob", messages_body(model="auto")))
    call_id = call.headers["x-paymaster-call-id"]
    made = target.check(Req("POST", "/admin/agents/bob/keys", "admin", {}))
    assert made.status_code == 201
    target.keys["bob2"] = made.json()["key"]
    rate = Req("POST", "/v1/paymaster/feedback", "bob2", {"call_id": call_id, "success": True})
    r = target.check(rate)
    assert r.status_code == 200 and r.json()["agent"] == "bob", r.text
    revoke = Req("POST", f"/admin/keys/{made.json()['key_id']}/revoke", "admin", {})
    assert target.check(revoke).status_code == 200
    assert target.check(rate).status_code == 401


def raw_http(url: str, head: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes the HTTP clients will not (a Content-Length that lies); the status and the JSON body."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + b"connection: close\r\n\r\n" + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    status_line, _, rest = out.partition(b"\r\n")
    return int(status_line.split()[1]), orjson.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize(
    ("length", "status", "kind"),
    [(b"99999999999", 413, "request_too_large"), (b"5", 400, "invalid_request_error")],
)
def test_a_content_length_that_lies_is_refused_in_the_callers_shape(
    target: Target, length: bytes, status: int, kind: str
) -> None:
    """Declared past the limit: refused before the body is read; declared short: the body read is cut."""
    before = target.spend()
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: %s\r\n" % (
        target.keys["alice"].encode()
    )
    code, body = raw_http(target.gw.url, head + b"content-length: " + length + b"\r\n", encode(messages_body()))
    assert (code, body["type"], body["error"]["type"]) == (status, "error", kind)
    assert target.spend() == before
