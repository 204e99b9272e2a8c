"""/dashboard over plain HTTP: the login form and its session cookie, what the cookie may read, the shipped assets,
and /admin/overview's figures against the admin API and the ledger."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx2
from conftest import ADMIN_KEY


def login(gw: Any, key: str = ADMIN_KEY) -> httpx2.Response:
    return httpx2.post(gw.url + "/dashboard/login", data={"key": key}, follow_redirects=False)


def test_the_page_is_behind_a_login_form(gateway: Any) -> None:
    gw = gateway()
    r = httpx2.get(gw.url + "/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    form = httpx2.get(gw.url + "/dashboard/login")
    assert form.status_code == 200 and 'method="post"' in form.text and 'type="password"' in form.text
    for wrong in ("nope", gw.keys["alice"], ""):
        bad = login(gw, wrong)
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
    ok = login(gw)
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"]
    assert re.search(r"(?i);\s*HttpOnly", cookie) and re.search(r"(?i);\s*SameSite=Strict", cookie)
    assert ADMIN_KEY not in cookie and ADMIN_KEY not in ok.headers["location"]
    token = cookie.split(";")[0]
    page = httpx2.get(gw.url + "/dashboard", headers={"cookie": token})
    assert page.status_code == 200 and "/dashboard/static/app.js" in page.text
    assert "content-security-policy" in page.headers
    # a forged or ended session reads nothing
    assert httpx2.get(gw.url + "/admin/agents", headers={"cookie": "pm_dashboard=forged"}).status_code == 401
    out = httpx2.post(gw.url + "/dashboard/logout", headers={"cookie": token}, follow_redirects=False)
    assert out.status_code == 303
    assert httpx2.get(gw.url + "/admin/overview", headers={"cookie": token}).status_code == 401


def test_the_session_reads_the_admin_api_and_never_writes(gateway: Any) -> None:
    gw = gateway()
    token = login(gw).headers["set-cookie"].split(";")[0]
    assert httpx2.get(gw.url + "/admin/agents", headers={"cookie": token}).status_code == 200
    assert httpx2.get(gw.url + "/metrics", headers={"cookie": token}).status_code == 200
    r = httpx2.post(gw.url + "/admin/ledger/pm_x/reconcile", headers={"cookie": token}, json={"cost_usd": "0"})
    assert r.status_code == 401


def test_assets_ship_with_the_package_and_fetch_nothing_from_outside(gateway: Any) -> None:
    gw = gateway()
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = httpx2.get(gw.url + "/dashboard/static/" + name)
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", r.text), name
    assert httpx2.get(gw.url + "/dashboard/static/../app.py").status_code == 404


def test_overview_figures_match_the_admin_api_and_ledger(gateway: Any) -> None:
    gw = gateway()
    for i in range(2):
        gw.anthropic("alice").messages.create(
            model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": f"q {i}"}]
        )
    gw.openai("olivia").chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "q"}])
    o = gw.admin("/admin/overview").json()
    agents = gw.admin("/admin/agents").json()["agents"]
    assert [a["windows"] for a in o["agents"]] == [a["windows"] for a in agents]
    rows = gw.ledger()
    assert [r["id"] for r in o["recent"]] == [r["id"] for r in reversed(rows)]
    for name in ("alice", "olivia"):
        spent = sum(Decimal(r["cost_usd"]) for r in rows if r["agent"] == name)
        assert sum(Decimal(v) for v in o["spend"]["today"]["agents"][name]) == spent
        assert sum(Decimal(v) for v in o["spend"]["month"]["agents"][name]) == spent
    fleet_day = next(w for w in o["fleet"]["windows"] if w["window"] == "fleet daily")
    assert Decimal(fleet_day["spent_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows)
    assert len(o["spend"]["today"]["labels"]) == 24
    assert o["savings"]["today"] and all(Decimal(v) >= 0 for v in o["savings"]["today"].values())


def test_savings_by_lever_read_from_the_ledgers_attribution_column(gateway: Any) -> None:
    import sqlite3

    gw = gateway()
    for i in range(2):
        gw.anthropic("alice").messages.create(
            model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": f"q {i}"}]
        )
    gw.ledger()  # committed
    db = sqlite3.connect(gw.raw["ledger"])
    if not any(r[1] == "savings" for r in db.execute("PRAGMA table_info(ledger)")):
        db.execute("ALTER TABLE ledger ADD COLUMN savings TEXT NOT NULL DEFAULT '{}'")
    db.execute("""UPDATE ledger SET savings = '{"routing": 1500000, "caching": 250000}'""")
    db.commit()
    db.close()
    o = gw.admin("/admin/overview").json()
    assert list(o["savings"]["today"].items()) == [("routing", "0.003000"), ("caching", "0.000500")]
    assert o["savings"]["month"] == o["savings"]["today"]
