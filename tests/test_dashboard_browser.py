"""The dashboard in a real headless Chromium: it loads after the login form, its figures are the admin API's,
it updates when a call is made (the live stream), and it shows a blocked agent with its reason and reset time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from browser import chromium
from conftest import ADMIN_KEY

WAIT_S = 15


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


def sign_in(d: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(url + "/dashboard")
    WebDriverWait(d, WAIT_S).until(lambda d: d.current_url.endswith("/dashboard/login"))
    d.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    d.find_element(By.ID, "sign-in").click()
    WebDriverWait(d, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-loaded]"))
    assert ADMIN_KEY not in d.current_url


def cell(d: Any, agent: str, css: str) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, f'tr[data-agent="{agent}"] {css}').get_attribute("data-usd") or ""


def text(d: Any, agent: str, css: str) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, f'tr[data-agent="{agent}"] {css}').text


def test_dashboard_in_chromium(gateway: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    gw = gateway(agents={"bob": {"model": "claude-haiku-4-5", "daily_usd": 0.0001, "max_tokens": 100}})
    gw.anthropic("alice").messages.create(
        model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "before"}]
    )
    d = browser
    d.get(gw.url + "/dashboard/login")
    d.find_element(By.ID, "key").send_keys("not the key")
    d.find_element(By.ID, "sign-in").click()
    assert "not the admin key" in d.find_element(By.ID, "login-error").text
    sign_in(d, gw.url)

    # every agent's figures are the admin API's
    for a in gw.admin("/admin/agents").json()["agents"]:
        day = next(w for w in a["windows"] if w["window"] == "agent daily")
        month = next(w for w in a["windows"] if w["window"] == "agent monthly")
        assert cell(d, a["name"], ".daily .spent") == day["spent_usd"]
        assert cell(d, a["name"], ".daily .cap") == day["cap_usd"]
        assert cell(d, a["name"], ".monthly .spent") == month["spent_usd"]
        assert text(d, a["name"], ".status .badge") == a["status"]["state"] == "active"
    first = d.find_element(By.CSS_SELECTOR, "#recent tbody tr").get_attribute("data-call")
    assert first == gw.ledger()[-1]["id"]

    # a call updates the page through the live stream, without a reload
    WebDriverWait(d, WAIT_S).until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"))
    before = cell(d, "olivia", ".daily .spent")
    gw.openai("olivia").chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "now"}])
    spent = next(w for w in gw.admin("/admin/agents/olivia").json()["windows"] if w["window"] == "agent daily")
    assert spent["spent_usd"] != before
    WebDriverWait(d, WAIT_S).until(lambda d: cell(d, "olivia", ".daily .spent") == spent["spent_usd"])
    new = gw.ledger()[-1]["id"]
    WebDriverWait(d, WAIT_S).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#recent tbody tr").get_attribute("data-call") == new
    )

    # a blocked agent shows as blocked, with why and until when
    with pytest.raises(anthropic.APIStatusError):
        gw.anthropic("bob").messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "x" * 4000}]
        )
    status = gw.admin("/admin/agents/bob").json()["status"]
    assert status["state"] == "blocked"
    WebDriverWait(d, WAIT_S).until(lambda d: text(d, "bob", ".status .badge") == "blocked")
    assert text(d, "bob", ".status .reason") == status["reason"]
    assert status["until"].replace("T", " ")[:16] in text(d, "bob", ".resets")
    assert d.find_elements(By.CSS_SELECTOR, '#events li[data-event="agent.blocked"]')
