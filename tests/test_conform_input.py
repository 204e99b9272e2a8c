"""Bad input, checked against the providers' documented error shapes: every JSON path of a valid request to
every endpoint, given each wrong kind of value, dropped, or doubled (a duplicate key).

What is asserted, per the providers' documentation (docs.claude.com/en/api/errors; OpenAI's published OpenAPI
`ErrorResponse`, vendored in tests/data/openai_schemas.json), and independently of the gateway's own code:

- the status is below 500;
- an Anthropic caller's error body is exactly `{"type": "error", "error": {"type", "message", ...}}` (plus the
  documented top-level `request_id`), its type one of the documented types and the one documented for the
  status (400 invalid_request_error, 401 authentication_error, 402 billing_error, 403 permission_error, 404
  not_found_error, 413 request_too_large, 429 rate_limit_error; invalid_request_error "may also be used for
  other 4XX status codes"). A budget refusal's 402 carries the README's own two types (`budget_exceeded`,
  `call_too_large`), which the documented versioning lets grow;
- an OpenAI caller's error body is `{"error": {...}}` and validates against `ErrorResponse`;
- both ids the SDKs read (`request-id`, `x-request-id`) are on the answer;
- no window's spent or reserved dollars move and no ledger row books money.

The sweep is deterministic (every path × every wrong value), so a regression shows as the same failing case
every run; `tests/test_fuzz_endpoints.py` covers random combinations of mutations.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import Any

import httpx2
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_fuzz_endpoints import (
    CLAUDE,
    FLEET,
    FORM,
    GPT,
    LINE,
    Raw,
    Req,
    Target,
    chat_body,
    encode,
    fuzz_settings,
    get,
    made_ids,
    messages_body,
    mutate,
    mutated,
    places,
    responses_body,
    upload,
)

DOCUMENTED_ANTHROPIC = {
    400: {"invalid_request_error"},
    401: {"authentication_error"},
    402: {"billing_error", "budget_exceeded", "call_too_large"},
    403: {"permission_error"},
    404: {"not_found_error"},
    413: {"request_too_large"},
    429: {"rate_limit_error"},
}
OTHER_4XX = {"invalid_request_error"}  # "may also be used for other 4XX status codes not listed"


@cache
def openai_error_validator() -> jsonschema.Draft202012Validator:
    from tests.test_openai_schema import SPEC

    return jsonschema.Draft202012Validator({"$ref": "#/$defs/ErrorResponse", "$defs": SPEC["$defs"]})


def documented_error(r: httpx2.Response, anthropic: bool) -> dict[str, Any]:
    """The error object of `r`, after asserting the whole answer is the caller's documented error shape."""
    assert r.status_code < 500, (r.status_code, r.text[:1000])
    assert r.headers.get("content-type", "").startswith("application/json"), (r.headers, r.text[:300])
    assert r.headers.get("request-id") and r.headers.get("x-request-id"), r.headers
    body = r.json()
    if anthropic:
        assert isinstance(body, dict) and body.get("type") == "error", body
        assert set(body) <= {"type", "error", "request_id"}, body
        err = body["error"]
        assert isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"].strip(), body
        allowed = DOCUMENTED_ANTHROPIC.get(r.status_code, OTHER_4XX)
        assert err.get("type") in allowed, (r.status_code, body)
        if "request_id" in body:
            assert body["request_id"] == r.headers["request-id"], (body, r.headers)
    else:
        assert isinstance(body, dict) and set(body) == {"error"}, body
        errors = sorted(openai_error_validator().iter_errors(body), key=str)
        assert not errors, (errors[0].message, body)
        err = body["error"]
        assert err["message"].strip(), body
    return err


class Ledger:
    """What 'no change to anyone's spend' compares, cheaply enough to check after every request: every
    agent's windows (spent, reserved), and the ledger rows written since the last look that book money."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self.seq = 0
        self.windows = self.read_windows()
        self.read_rows()

    def read_windows(self) -> list[Any]:
        r = self.t.client.get(self.t.gw.url + "/admin/agents", headers={"authorization": "Bearer " + ADMIN})
        return [[(a["name"], w["spent_usd"], w["reserved_usd"]) for w in a["windows"]] for a in r.json()["agents"]]

    def read_rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            r = self.t.client.get(
                self.t.gw.url + "/admin/ledger",
                params={"after": self.seq, "limit": 1000},
                headers={"authorization": "Bearer " + ADMIN},
            )
            page = r.json()
            out += page["data"]
            if page["data"]:
                self.seq = page["data"][-1]["seq"]
            if page["next_after"] is None:
                return out

    def check(self, req: Req) -> httpx2.Response:
        r = self.t.send(req)
        anthropic = req.anthropic()
        rows = self.read_rows()
        windows = self.read_windows()
        if r.status_code >= 400:
            documented_error(r, anthropic)
            booked = [x for x in rows if not (x["status"] == "upstream_error" and x["cost_nanos"] == 0)]
            assert not booked and windows == self.windows, (req, r.status_code, r.text[:500], booked)
        else:
            assert r.status_code < 500, (r.status_code, r.text[:1000], req)
        self.windows = windows
        return r


from tests.conftest import ADMIN_KEY as ADMIN  # noqa: E402

WRONG: list[Any] = [
    None, True, 0, -1, 2**64, 1.5, 1e308, "", "x", [], {}, [None], [{}], {"type": None},
    Raw(b"NaN"), Raw(b"-Infinity"), Raw(b"1e400"), Raw(b'"\\ud800"'), Raw(b'"\\udc00x"'),
]  # fmt: skip
"""A value of every wrong kind: each JSON type, the edges of numbers, the non-JSON literals Python's json
writes (NaN, Infinity), a number past float range, lone surrogates."""


def sweep(body: Any) -> list[tuple[str, Any]]:
    """Every path × every wrong value, every path dropped, every object key doubled with a wrong first and a
    wrong last value, and the body as a non-object top level."""
    out: list[tuple[str, Any]] = []
    for at in places(body):
        name = "/".join(map(str, at)) or "<root>"
        for i, v in enumerate(WRONG):
            out.append((f"{name}={i}", mutate(body, at, "set", v)))
        if at:
            out.append((f"{name}:drop", mutate(body, at, "drop", None)))
            if isinstance(get(body, at[:-1]), dict):
                out.append((f"{name}:dup", mutate(body, at, "dup", Raw(b"NaN"))))
                out.append((f"{name}:dup_last", mutate(body, at, "dup_last", [])))
    return out


SEEDS: dict[str, Req] = {
    "messages": Req("POST", "/v1/messages", "alice", messages_body()),
    "messages-stream": Req("POST", "/v1/messages", "alice", messages_body(stream=True)),
    "messages-to-gpt": Req("POST", "/v1/messages", "alice", messages_body(model=GPT)),
    "count_tokens": Req(
        "POST",
        "/v1/messages/count_tokens",
        "alice",
        {
            "model": CLAUDE,
            "system": "s",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            "tools": messages_body()["tools"],
        },
    ),  # fmt: skip
    "chat": Req("POST", "/v1/chat/completions", "olivia", chat_body()),
    "chat-stream": Req(
        "POST", "/v1/chat/completions", "olivia", chat_body(stream=True, stream_options={"include_usage": True})
    ),  # fmt: skip
    "chat-to-claude": Req("POST", "/v1/chat/completions", "olivia", chat_body(model=CLAUDE)),
    "responses": Req("POST", "/v1/responses", "olivia", responses_body()),
    "responses-stream": Req("POST", "/v1/responses", "olivia", responses_body(stream=True)),
    "responses-to-claude": Req("POST", "/v1/responses", "olivia", responses_body(model=CLAUDE)),
    "embeddings": Req(
        "POST",
        "/v1/embeddings",
        "olivia",
        {"model": "text-embedding-3-small", "input": ["hi", "there"], "dimensions": 64},
    ),  # fmt: skip
    "message-batches": Req(
        "POST",
        "/v1/messages/batches",
        "alice",
        {"requests": [{"custom_id": "r1", "params": messages_body(max_tokens=16)}]},
    ),  # fmt: skip
}


@pytest.fixture
def target(gateway: Any) -> Any:
    gw = gateway(**FLEET)
    with httpx2.Client(timeout=30) as client:
        yield Target(gw, client, gw.keys)


@pytest.mark.parametrize("seed", list(SEEDS))
def test_every_path_of_every_agent_call_with_every_wrong_value(target: Target, seed: str) -> None:
    ledger = Ledger(target)
    base = SEEDS[seed]
    assert ledger.check(base).status_code == 200
    failed = []
    for name, body in sweep(base.body):
        try:
            ledger.check(Req(base.method, base.path, base.key, body))
        except AssertionError as e:
            failed.append(f"{seed} {name}: {str(e)[:600]}")
    assert not failed, "\n".join([f"{len(failed)} cases", *failed[:30]])


HEADER_CASES: list[tuple[str, dict[str, str], str | None, str]] = [
    # (name, extra headers, content-type (None: none sent), auth form: see Target.send / AUTH below)
    ("version garbage", {"anthropic-version": "garbage"}, "application/json", "native"),
    ("version empty", {"anthropic-version": ""}, "application/json", "native"),
    ("version future", {"anthropic-version": "2099-01-01"}, "application/json", "native"),
    ("beta list", {"anthropic-beta": "prompt-caching-2024-07-31,  token-efficient-tools-2025-02-19"},
     "application/json", "native"),
    ("beta empty items", {"anthropic-beta": ",,, ,"}, "application/json", "native"),
    ("beta unknown", {"anthropic-beta": "no-such-beta-2099-01-01"}, "application/json", "native"),
    ("beta huge", {"anthropic-beta": ",".join(["x"] * 2000)}, "application/json", "native"),
    ("ctype charset", {}, "application/json; charset=utf-8", "native"),
    ("ctype upper", {}, "Application/JSON", "native"),
    ("ctype text", {}, "text/plain", "native"),
    ("ctype form", {}, "application/x-www-form-urlencoded", "native"),
    ("ctype multipart", {}, "multipart/form-data; boundary=x", "native"),
    ("ctype none", {}, None, "native"),
    ("ctype params junk", {}, "application/json;;; q", "native"),
    ("ctype jsonish", {}, "application/vnd.api+json", "native"),
    ("encoding gzip", {"content-encoding": "gzip"}, "application/json", "native"),
    ("encoding deflate", {"content-encoding": "deflate"}, "application/json", "native"),
    ("encoding br", {"content-encoding": "br"}, "application/json", "native"),
    ("encoding unknown", {"content-encoding": "x-nope"}, "application/json", "native"),
    ("encoding gzip claimed", {"content-encoding": "gzip", "x-raw": "1"}, "application/json", "native"),
    ("auth bearer lowercase", {}, "application/json", "bearer-lower"),
    ("auth bearer no space", {}, "application/json", "bearer-nospace"),
    ("auth bearer double space", {}, "application/json", "bearer-double"),
    ("auth basic", {}, "application/json", "basic"),
    ("auth empty bearer", {}, "application/json", "bearer-empty"),
    ("auth only scheme", {}, "application/json", "scheme-only"),
    ("auth key with spaces", {}, "application/json", "key-spaces"),
    ("auth non-ascii", {}, "application/json", "non-ascii"),
    ("auth two headers", {}, "application/json", "two-auth"),
]  # fmt: skip


def send_headers(t: Target, req: Req, extra: dict[str, str], ctype: str | None, auth: str) -> httpx2.Response:
    key = t.keys[req.key]
    h: list[tuple[bytes, bytes]] = []
    raw_body = encode(req.body)
    if extra.get("content-encoding") == "gzip" and "x-raw" not in extra:
        raw_body = gzip.compress(raw_body)
    elif extra.get("content-encoding") == "deflate":
        import zlib

        raw_body = zlib.compress(raw_body)
    for k, v in extra.items():
        if k != "x-raw":
            h.append((k.encode(), v.encode()))
    if ctype is not None:
        h.append((b"content-type", ctype.encode()))
    forms = {
        "native": [(b"x-api-key", key.encode())]
        if req.anthropic()
        else [(b"authorization", b"Bearer " + key.encode())],
        "bearer-lower": [(b"authorization", b"bearer " + key.encode())],
        "bearer-nospace": [(b"authorization", b"Bearer" + key.encode())],
        "bearer-double": [(b"authorization", b"Bearer  " + key.encode())],
        "basic": [(b"authorization", b"Basic " + key.encode())],
        "bearer-empty": [(b"authorization", b"Bearer x"), (b"x-api-key", b"-")],
        "scheme-only": [(b"authorization", b"Bearer")],
        "key-spaces": [(b"x-api-key", b"pm " + key.encode())],
        "non-ascii": [(b"authorization", "Bearer clé-é".encode())],
        "two-auth": [(b"authorization", b"Bearer " + key.encode()), (b"authorization", b"Bearer pm-other")],
    }
    h += forms[auth]
    return t.client.request(req.method, t.gw.url + req.path, headers=h, content=raw_body)


@pytest.mark.parametrize("seed", ["messages", "messages-stream", "count_tokens", "chat", "responses", "embeddings"])
def test_odd_headers_content_types_and_credentials(target: Target, seed: str) -> None:
    ledger = Ledger(target)
    base = SEEDS[seed]
    failed = []
    for name, extra, ctype, auth in HEADER_CASES:
        before = ledger.windows
        r = send_headers(target, base, extra, ctype, auth)
        rows = ledger.read_rows()
        ledger.windows = ledger.read_windows()
        try:
            if r.status_code >= 400:
                documented_error(r, base.anthropic())
                booked = [x for x in rows if not (x["status"] == "upstream_error" and x["cost_nanos"] == 0)]
                assert not booked and ledger.windows == before, (r.status_code, r.text[:300])
            assert r.status_code < 500, (r.status_code, r.text[:300])
        except AssertionError as e:
            failed.append(f"{seed} {name}: {r.status_code} {str(e)[:400]}")
    assert not failed, "\n".join(failed)


def test_random_mutations_of_every_agent_call_get_documented_errors(target: Target) -> None:
    """Hypothesis: one to three mutations at once (tests/test_fuzz_endpoints.py's), judged by the documented
    shapes and types above rather than by shape alone."""
    ledger = Ledger(target)

    @fuzz_settings(120)
    @given(st.sampled_from(list(SEEDS.values())).flatmap(mutated))
    def one(req: Req) -> None:
        r = ledger.check(req)
        assert r.status_code < 500

    one()


ADMIN_VALUES = ["", "x", "-1", "0", "1", "1.5", "nan", "inf", "-inf", "1e400", "9" * 30, "%00", "%ff", "true",
                "2026-12-02", "2026-12-02T00:00:00Z", "\u00e9"]  # fmt: skip


def test_every_admin_query_parameter_with_every_odd_value(target: Target) -> None:
    failed = []
    params = ["agent", "status", "model", "since", "until", "reconcile", "after", "limit", "nope"]
    for name in params:
        for v in ADMIN_VALUES:
            for path in ("/admin/ledger", "/admin/agents", "/admin/overview"):
                r = target.client.get(f"{target.gw.url}{path}?{name}={v}", headers={"authorization": "Bearer " + ADMIN})
                if r.status_code >= 500 or (r.status_code >= 400 and not isinstance(r.json().get("error"), dict)):
                    failed.append(f"{path}?{name}={v}: {r.status_code} {r.text[:200]}")
    assert not failed, "\n".join(failed)


def test_every_path_of_a_reconcile_body_with_every_wrong_value(target: Target) -> None:
    call = target.send(Req("POST", "/v1/messages", "alice", messages_body()))
    cid = call.headers["x-paymaster-call-id"]
    ledger = Ledger(target)
    bodies = {
        "cost": {"cost_usd": "0.001"},
        "usage": {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 0, "cache_write_tokens": 0,
                            "service_tier": "standard", "server_tool_uses": {"web_search_requests": 1}},
                  "batch": False},
    }  # fmt: skip
    failed = []
    for kind, seed in bodies.items():
        for name, body in sweep(seed):
            req = Req("POST", f"/admin/ledger/{cid}/reconcile", "admin", body, auth="admin")
            r = target.send(req)
            rows, windows = ledger.read_rows(), ledger.read_windows()
            if r.status_code >= 500 or (r.status_code >= 400 and not isinstance(r.json().get("error"), dict)):
                failed.append(f"{kind} {name}: {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400 and (windows != ledger.windows or rows):
                failed.append(f"{kind} {name}: refused, yet spend moved")
            ledger.windows = windows
    assert not failed, "\n".join(failed[:30])


def test_every_path_of_the_id_bearing_bodies_with_every_wrong_value(target: Target) -> None:
    """Batches created from an uploaded file, routing feedback, and a Responses request naming a stored
    response: the bodies that carry ids of things the gateway made."""
    ids = made_ids(target)
    ledger = Ledger(target)
    seeds = [
        Req("POST", "/v1/batches", "olivia",
            {"input_file_id": ids["file"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
             "metadata": {"k": "v"}}),
        Req("POST", "/v1/paymaster/feedback", "alice", {"call_id": ids["call"], "success": True}),
        Req("POST", "/v1/paymaster/feedback", "alice", {"call_id": ids["call"], "score": 0.5}),
        Req("POST", "/v1/responses", "olivia",
            {"model": GPT, "input": [{"role": "user", "content": "on"}], "previous_response_id": ids["response"]}),
    ]  # fmt: skip
    failed = []
    for seed in seeds:
        for name, body in sweep(seed.body):
            try:
                ledger.check(Req(seed.method, seed.path, seed.key, body))
            except AssertionError as e:
                failed.append(f"{seed.path} {name}: {str(e)[:400]}")
    assert not failed, "\n".join([f"{len(failed)} cases", *failed[:30]])


MULTIPART = [
    ("no boundary", "multipart/form-data", None),
    ("wrong boundary", "multipart/form-data; boundary=other", None),
    ("empty", FORM, b""),
    ("no file part", FORM, b'--fuzzboundary\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                           b"--fuzzboundary--\r\n"),
    ("no purpose", FORM, f'--fuzzboundary\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
                         f"\r\n{json.dumps(LINE)}\r\n--fuzzboundary--\r\n".encode()),
    ("purpose odd", FORM, upload(encode(LINE), b"fine-tune")),
    ("purpose empty", FORM, upload(encode(LINE), b"")),
    ("file empty", FORM, upload(b"")),
    ("file not json", FORM, upload(b"not json\n")),
    ("file not lines of objects", FORM, upload(b"[1,2]\n")),
    ("file binary", FORM, upload(bytes(range(256)))),
    ("unterminated", FORM, upload(encode(LINE))[:-20]),
    ("json instead", "application/json", b'{"purpose": "batch", "file": "x"}'),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ctype", "raw"), MULTIPART, ids=[m[0] for m in MULTIPART])
def test_odd_file_uploads(target: Target, name: str, ctype: str, raw: bytes | None) -> None:
    ledger = Ledger(target)
    body = raw if raw is not None else upload(encode(LINE))
    r = ledger.check(Req("POST", "/v1/files", "olivia", raw=body, ctype=ctype))
    assert r.status_code < 500
