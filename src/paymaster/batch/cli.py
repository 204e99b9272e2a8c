"""`paymaster batch submit | status | results`: an operator's batch through a running gateway, on an agent's key.

    paymaster batch submit requests.jsonl --agent X [--wait]    lines: Anthropic {"custom_id", "params"},
                                                                OpenAI {"custom_id", "method", "url", "body"},
                                                                or bare request bodies (--api; custom_id line-N)
    paymaster batch status <batch id> --agent X [--wait]        a progress bar while it runs (--wait)
    paymaster batch results <batch id> --agent X [--out FILE]   JSONL results; failed requests listed on stderr

A line that cannot be a request is reported with its line number and left out; the rest is submitted. The
agent's key: --key, else $PAYMASTER_KEY_<AGENT> (upper case, '-' and '.' as '_'), else $PAYMASTER_KEY.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from .. import multipart

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
DONE = {"ended", "completed", "failed", "expired", "cancelled"}


def add_parser(sub: Any) -> None:
    b = sub.add_parser("batch", help="submit a JSONL file as a batch through the gateway; status; results")
    b.add_argument("action", choices=["submit", "status", "results"])
    b.add_argument("target", help="submit: the JSONL file; status/results: the batch id")
    b.add_argument("--agent", required=True, help="the agent whose budget and key the batch runs on")
    b.add_argument("--config", default="fleet.yaml", help="fleet.yaml, for the gateway's address")
    b.add_argument("--url", help="the gateway's URL (default: listen.host:port of --config)")
    b.add_argument("--key", help="the agent's key (default: $PAYMASTER_KEY_<AGENT> or $PAYMASTER_KEY)")
    b.add_argument("--api", choices=["anthropic", "openai"], help="the API of bare request lines / of the batch id")
    b.add_argument("--wait", action="store_true", help="show progress until the batch ends")
    b.add_argument("--out", help="results: write the JSONL here instead of stdout")


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url.rstrip("/"), key

    def call(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
        h = {"authorization": f"Bearer {self.key}", "x-api-key": self.key, "anthropic-version": "2023-06-01"}
        if body is not None:
            h["content-type"] = ctype
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"paymaster: {method} {path}: {e.code} {message(e.read())}") from None
        except urllib.error.URLError as e:
            raise SystemExit(f"paymaster: cannot reach the gateway at {self.url}: {e.reason}") from None


def message(body: bytes) -> str:
    try:
        err = orjson.loads(body)["error"]
        return str(err.get("message", err))
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace")


def read(path: str, api: str | None) -> tuple[str, list[tuple[str, dict[str, Any]]], list[str]]:
    """The file's API, its requests (custom_id, body) and one readable error per line left out."""
    good: list[tuple[str, dict[str, Any]]] = []
    errors: list[str] = []
    seen: set[str] = set()
    kind = api
    with open(path, "rb") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                ln = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                errors.append(f"line {n}: not valid JSON ({e})")
                continue
            if not isinstance(ln, dict):
                errors.append(f"line {n}: must be a JSON object")
                continue
            shape = "anthropic" if "params" in ln else "openai" if "body" in ln else None
            body = ln.get("params") if shape == "anthropic" else ln.get("body") if shape == "openai" else ln
            cid = ln.get("custom_id", f"line-{n}") if shape else f"line-{n}"
            kind = kind or shape or "anthropic"
            if shape is not None and shape != kind:
                errors.append(f"line {n}: a {shape} request in a {kind} batch")
            elif not isinstance(cid, str) or not CUSTOM_ID.fullmatch(cid):
                errors.append(f"line {n}: custom_id must be 1-64 letters, digits, '_' or '-', got {cid!r}")
            elif cid in seen:
                errors.append(f"line {n}: custom_id {cid!r} already used on an earlier line")
            elif not isinstance(body, dict) or not isinstance(body.get("model"), str):
                errors.append(f"line {n}: the request needs a model")
            else:
                seen.add(cid)
                good.append((cid, body))
    return kind or "anthropic", good, errors


def submit(c: Client, api: str, requests: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    if api == "anthropic":
        reqs = [{"custom_id": cid, "params": body} for cid, body in requests]
        return dict(orjson.loads(c.call("POST", "/v1/messages/batches", orjson.dumps({"requests": reqs}))))
    lines = b"".join(
        orjson.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}) + b"\n"
        for cid, body in requests
    )
    boundary = "pm" + secrets.token_hex(12)
    form = multipart.form({"purpose": "batch"}, {"file": ("requests.jsonl", lines)}, boundary)
    f = orjson.loads(c.call("POST", "/v1/files", form, f"multipart/form-data; boundary={boundary}"))
    body = {"input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return dict(orjson.loads(c.call("POST", "/v1/batches", orjson.dumps(body))))


def status(c: Client, api: str, bid: str) -> dict[str, Any]:
    path = f"/v1/messages/batches/{bid}" if api == "anthropic" else f"/v1/batches/{bid}"
    return dict(orjson.loads(c.call("GET", path)))


def progress(b: dict[str, Any]) -> tuple[int, int, str]:
    """(finished, total, state) of a batch object of either API."""
    counts = b["request_counts"]
    if "processing" in counts:
        total = sum(counts.values())
        return total - counts["processing"], total, b["processing_status"]
    return counts["completed"] + counts["failed"], counts["total"], b["status"]


def wait(c: Client, api: str, b: dict[str, Any], every: float = 1.0) -> dict[str, Any]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    done, total, state = progress(b)
    with tqdm(total=total, desc=b["id"], unit="req", file=sys.stderr) as bar:
        while True:
            bar.update(done - bar.n)
            bar.set_postfix_str(state)
            if state in DONE:
                return b
            time.sleep(every)
            b = status(c, api, b["id"])
            done, total, state = progress(b)


def results(c: Client, api: str, bid: str) -> tuple[list[bytes], list[str]]:
    """The result lines, and one readable line per failed request."""
    b = status(c, api, bid)
    failed: list[str] = []
    if api == "anthropic":
        lines = [ln for ln in c.call("GET", f"/v1/messages/batches/{bid}/results").splitlines() if ln.strip()]
        for ln in lines:
            r = orjson.loads(ln)
            res = r["result"]
            if res["type"] == "errored":
                failed.append(f"{r['custom_id']}: {res['error']['error']['message']}")
            elif res["type"] != "succeeded":
                failed.append(f"{r['custom_id']}: {res['type']}")
        return lines, failed
    lines = []
    for key in ("output_file_id", "error_file_id"):
        if b.get(key):
            lines += [ln for ln in c.call("GET", f"/v1/files/{b[key]}/content").splitlines() if ln.strip()]
    for ln in lines:
        r = orjson.loads(ln)
        if r.get("error"):
            failed.append(f"{r['custom_id']}: {r['error'].get('message')}")
        elif r["response"]["status_code"] != 200:
            failed.append(f"{r['custom_id']}: {message(orjson.dumps(r['response']['body']))}")
    return lines, failed


def run(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        from ..config import load

        config = load(args.config)
        url = f"http://{config.host}:{config.port}"
    var = "PAYMASTER_KEY_" + re.sub(r"[^A-Z0-9]", "_", args.agent.upper())
    key = args.key or os.environ.get(var) or os.environ.get("PAYMASTER_KEY")
    if not key:
        print(f"paymaster: no key for agent {args.agent!r}: pass --key or set ${var}", file=sys.stderr)
        return 2
    c = Client(url, key)
    if args.action == "submit":
        api, good, errors = read(args.target, args.api)
        for e in errors:
            print(f"paymaster: {args.target}: {e}", file=sys.stderr)
        if not good:
            print(f"paymaster: {args.target}: no request to submit", file=sys.stderr)
            return 1
        b = submit(c, api, good)
        print(f"{b['id']}\t{api}\t{len(good)} requests submitted, {len(errors)} lines left out")
        if args.wait:
            wait(c, api, b)
        return 1 if errors else 0
    api = args.api or ("anthropic" if args.target.startswith("msgbatch_") else "openai")
    if args.action == "status":
        b = wait(c, api, status(c, api, args.target)) if args.wait else status(c, api, args.target)
        done, total, state = progress(b)
        print(f"{b['id']}\t{state}\t{done}/{total} finished")
        return 0
    lines, failed = results(c, api, args.target)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        out.write(b"".join(ln + b"\n" for ln in lines))
        out.flush()
    finally:
        if args.out:
            out.close()
    for f in failed:
        print(f"paymaster: failed: {f}", file=sys.stderr)
    return 1 if failed else 0
