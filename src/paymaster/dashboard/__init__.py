"""The web dashboard (`/dashboard`) and the Prometheus endpoint (`/metrics`).

    GET  /dashboard            the page (signed in), else a redirect to the login form
    GET  /dashboard/login      the login form: the admin key, posted in the body (never in a URL)
    POST /dashboard/login      checks the key; sets a session cookie (HttpOnly, SameSite=Strict; Secure over HTTPS)
    POST /dashboard/logout     ends the session
    GET  /dashboard/static/…   the page's script and style (shipped in the package: no build step, no CDN)
    GET  /dashboard/live       Server-Sent Events: the blackboard's events, and `ledger.changed` (at most once a
                               second) when calls were booked
    GET  /metrics              Prometheus text format; the admin key as a Bearer token, or a dashboard session

A session cookie also reads the admin API's GET endpoints (the page draws `GET /admin/overview`); it never
changes anything (reconciling takes the admin key itself).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from ..config import hash_key
from ..errors import BadRequest, MethodNotAllowed, NotFound, TooLarge, Unauthorized
from ..http import Headers, Receive, Scope, Send, bearer_or_key, header_map, respond
from ..metrics import CONTENT_TYPE
from .overview import overview as overview  # GET /admin/overview (admin.py routes it)

if TYPE_CHECKING:
    from ..app import Gateway
    from ..config import Config

COOKIE = "pm_dashboard"
SESSION_S = 12 * 3600
LIVE_EVERY_S = 1.0  # how often a page may be told to redraw (each redraw sums the month's ledger)
KEEPALIVE_S = 15.0
NO_REPLAY = 2**63 - 1  # subscribe from now on: the page loads the recent events from /admin/overview
MAX_FORM = 4096
STATIC = {"app.js": b"text/javascript; charset=utf-8", "style.css": b"text/css; charset=utf-8"}
HTML = b"text/html; charset=utf-8"
SECURITY: Headers = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
]

# live sessions (token -> expiry) by the admin key they proved; in memory: a restart signs everyone out
_sessions: dict[str, dict[str, float]] = {}


def _asset(name: str) -> bytes:
    return (resources.files(__package__) / name).read_bytes()


def signed_in(config: Config, h: dict[bytes, bytes]) -> bool:
    """Whether the request carries a live dashboard session cookie of the gateway running `config`."""
    token = _cookie(h)
    if token is None:
        return False
    live = _sessions.get(config.admin_key_hash or "", {})
    expires = live.get(token)
    if expires is None:
        return False
    if expires < time.time():
        live.pop(token, None)
        return False
    return True


def _cookie(h: dict[bytes, bytes]) -> str | None:
    raw = h.get(b"cookie")
    if not raw:
        return None
    for part in raw.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def _admin_key_ok(gw: Gateway, key: str) -> bool:
    return gw.config.admin_key_hash is not None and hmac.compare_digest(hash_key(key), gw.config.admin_key_hash)


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    h = header_map(scope)
    if path == "/metrics":
        if method != "GET":
            raise MethodNotAllowed(f"{method} is not allowed on /metrics; use GET")
        key = bearer_or_key(h)
        if not (key and _admin_key_ok(gw, key)) and not signed_in(gw.config, h):
            raise Unauthorized("/metrics takes the admin key (Authorization: Bearer …)")
        body = await asyncio.to_thread(gw.metrics.render)  # thousands of series: off the event loop
        await respond(send, 200, body, ctype=CONTENT_TYPE)
    elif path == "/dashboard/login":
        if method == "GET":
            await _login_page(send, 200, "")
        elif method == "POST":
            await _login(gw, scope, h, receive, send)
        else:
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
    elif path == "/dashboard/logout":
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use POST")
        token = _cookie(h)
        if token is not None:
            _sessions.get(gw.config.admin_key_hash or "", {}).pop(token, None)
        await _redirect(send, "/dashboard/login", _set_cookie(scope, "", 0))
    elif path.startswith("/dashboard/static/"):
        name = path.removeprefix("/dashboard/static/")
        if name not in STATIC:
            raise NotFound(f"no dashboard asset {name!r}")
        await respond(send, 200, _asset(name), [(b"cache-control", b"no-cache")], ctype=STATIC[name])
    elif path in ("/dashboard", "/dashboard/"):
        if method != "GET":
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        if not signed_in(gw.config, h):
            await _redirect(send, "/dashboard/login")
            return
        await respond(send, 200, _asset("index.html"), SECURITY, ctype=HTML)
    elif path == "/dashboard/live":
        if not signed_in(gw.config, h):
            raise Unauthorized("sign in at /dashboard/login")
        await _live(gw, receive, send)
    else:
        raise NotFound(f"no dashboard route {path}")


async def _login_page(send: Send, status: int, message: str) -> None:
    page = _asset("login.html").replace(b"<!--message-->", _escape(message).encode())
    await respond(send, status, page, SECURITY, ctype=HTML)


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def _login(gw: Gateway, scope: Scope, h: dict[bytes, bytes], receive: Receive, send: Send) -> None:
    ctype = h.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype != b"application/x-www-form-urlencoded":
        raise BadRequest("the login form posts application/x-www-form-urlencoded")
    body = b""
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        body += msg.get("body", b"")
        if len(body) > MAX_FORM:
            raise TooLarge("login form too large")
        more = msg.get("more_body", False)
    key = dict(parse_qsl(body.decode("utf-8", "replace"))).get("key", "")
    if not key or not _admin_key_ok(gw, key):
        await asyncio.sleep(0.2)  # slows guessing; the key itself is 256 bits from `paymaster keys new`
        await _login_page(send, 401, "That is not the admin key.")
        return
    token = secrets.token_urlsafe(32)
    live = _sessions.setdefault(gw.config.admin_key_hash or "", {})
    now = time.time()
    for t, exp in list(live.items()):
        if exp < now:
            del live[t]
    live[token] = now + SESSION_S
    await _redirect(send, "/dashboard", _set_cookie(scope, token, SESSION_S))


def _set_cookie(scope: Scope, token: str, max_age: int) -> Headers:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    value = f"{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    return [(b"set-cookie", value.encode())]


async def _redirect(send: Send, to: str, headers: Headers | None = None) -> None:
    await respond(send, 303, b"", [(b"location", to.encode()), *(headers or []), (b"cache-control", b"no-store")], HTML)


async def _live(gw: Gateway, receive: Receive, send: Send) -> None:
    """The blackboard's events as they happen, and `ledger.changed` when calls were booked since the last look."""
    q = gw.board.subscribe(NO_REPLAY)
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    seen = gw.metrics.settled_count
    quiet = 0.0
    try:
        await send({"type": "http.response.body", "body": b": paymaster dashboard\n\n", "more_body": True})
        while not gone.is_set():
            await asyncio.sleep(LIVE_EVERY_S)
            out = []
            while not q.empty():
                out.append(q.get_nowait()[1])
            if gw.metrics.settled_count != seen:
                seen = gw.metrics.settled_count
                out.append(b'event: ledger.changed\ndata: {"calls": %d}\n\n' % seen)
            quiet = 0.0 if out else quiet + LIVE_EVERY_S
            if quiet >= KEEPALIVE_S:
                out.append(b": keep-alive\n\n")
                quiet = 0.0
            if out:
                await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
    finally:
        watcher.cancel()
        gw.board.unsubscribe(q)
