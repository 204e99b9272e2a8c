"""`paymaster agents add|set|disable|enable` and `paymaster keys create|rotate|revoke|list`: the admin API of a
running gateway (fleet/admin.py), so the change is stored, validated and seen by every replica."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..config.yaml_file import read_file


def run(args: argparse.Namespace) -> int:
    key = os.environ.get(args.admin_key_env)
    if not key:
        print(f"paymaster: set {args.admin_key_env} to the admin key", file=sys.stderr)
        return 2
    url = args.url or _url(args.config)
    if args.cmd == "agents":
        method, path, body = _agents(args)
    else:
        method, path, body = _keys(args)
    try:
        status, out = _call(url, key, method, path, body)
    except (OSError, ValueError) as e:
        print(f"paymaster: cannot reach the gateway at {url}: {e}", file=sys.stderr)
        return 2
    if status >= 400:
        err = out.get("error", out)
        print(f"paymaster: {status}: {err.get('message', err) if isinstance(err, dict) else err}", file=sys.stderr)
        return 1
    if "key" in out:
        print(f"key: {out['key']}")
        print(
            "paymaster: the key is shown once: give it to the agent now (the gateway keeps its hash)", file=sys.stderr
        )
    for k, v in out.items():
        if k != "key":
            print(f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}")
    return 0


def _agents(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    if args.action in ("disable", "enable"):
        return "POST", f"/admin/agents/{args.name}/{args.action}", None
    spec: dict[str, Any] = {}
    for flag, field in (("model", "model"), ("daily_usd", "daily_usd"), ("monthly_usd", "monthly_usd"),
                        ("max_tokens", "max_tokens")):  # fmt: skip
        if getattr(args, flag) is not None:
            spec[field] = getattr(args, flag)
    if args.models:
        spec["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    for item in args.set:
        field, _, value = item.partition("=")
        try:
            spec[field.strip()] = json.loads(value)
        except json.JSONDecodeError:
            spec[field.strip()] = value
    if args.action == "add":
        return "POST", "/admin/agents", {"name": args.name, **spec}
    return "PATCH", f"/admin/agents/{args.name}", spec


def _keys(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    if args.action == "list":
        return "GET", "/admin/keys" + (f"?agent={args.key}" if args.key else ""), None
    if not args.key:
        raise SystemExit(f"paymaster: keys {args.action} needs the {'key id' if args.action == 'revoke' else 'agent'}")
    if args.action == "create":
        return "POST", f"/admin/agents/{args.key}/keys", None
    if args.action == "rotate":
        return "POST", f"/admin/agents/{args.key}/keys/rotate", {} if args.grace is None else {"grace_s": args.grace}
    return "POST", f"/admin/keys/{args.key}/revoke", None


def _url(config: str) -> str:
    listen = (read_file(Path(config)) or {}).get("listen") or {}
    host = listen.get("host", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{listen.get('port', 8080)}"


def _call(url: str, key: str, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
