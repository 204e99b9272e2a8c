"""The upstream hop through the whole gateway: what the agent sees and what the ledger books."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anthropic
import pytest
import transport_kit
from transport_kit import PKI, ConnectProxy, Loop, Origin

loop, pki = transport_kit.loop, transport_kit.pki  # module-scoped fixtures


def providers(origin: Origin, sim: Any, **hop: Any) -> dict[str, Any]:
    return {
        "anthropic": {"kind": "anthropic", "base_url": origin.url, "api_key_env": "SIM_KEY", **hop},
        "openai": {"kind": "openai", "base_url": sim.url + "/v1", "api_key_env": "SIM_KEY"},
    }


def ask(gw: Any) -> Any:
    return gw.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )


def test_stale_keep_alive_is_not_sent_twice_and_booked_at_worst_case(
    gateway, sim, loop: Loop, pki: PKI, tmp_path: Path
) -> None:
    """The provider drops a kept-alive connection after reading the call: it may have run it, so the call is
    not sent again (a second run would go unbooked) but answered 502 and booked at its worst case, flagged."""
    with Origin(loop, pki.server_ctx(), drop_reused=True) as o:
        gw = gateway(providers=providers(o, sim, ca_bundle=pki.bundle(tmp_path)))
        assert ask(gw).content[0].text == "hello"
        with pytest.raises(anthropic.APIStatusError) as e:
            ask(gw)
        assert ask(gw).content[0].text == "hello"  # the dropped connection is gone: a fresh one answers
        assert o.dropped == 1 and len(o.requests) == 2  # the dropped request was not sent again
    assert e.value.status_code == 502
    rows = gw.ledger("alice")
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["input_tokens"] == 10 and r["output_tokens"] == 2 for r in ok)
    (lost,) = [r for r in rows if r["status"] != "ok"]
    assert lost["reconcile"] == 1 and lost["cost_nanos"] == lost["worst_nanos"] > 0


def test_full_pool_is_refused_unbilled(gateway, sim, loop: Loop, tmp_path: Path) -> None:
    with Origin(loop, hold=1.0) as o:
        gw = gateway(providers=providers(o, sim, max_connections=1, pool_timeout_s=0.2))
        first: list[Any] = []
        t = threading.Thread(target=lambda: first.append(ask(gw)))
        t.start()
        while not o.open:
            threading.Event().wait(0.01)
        with pytest.raises(anthropic.APIStatusError) as e:
            ask(gw)
        t.join()
    assert e.value.status_code == 502 and "max_connections" in e.value.message
    assert first and first[0].content[0].text == "hello"
    rows = gw.ledger("alice")
    refused = [r for r in rows if r["status"] == "unreachable"]
    assert len(rows) == 2 and len(refused) == 1 and refused[0]["cost_nanos"] == 0


def test_calls_go_through_the_configured_proxy(gateway, sim, loop: Loop, pki: PKI, tmp_path: Path) -> None:
    with Origin(loop, pki.server_ctx()) as o, ConnectProxy(loop, auth=("gw", "pw")) as px:
        gw = gateway(providers=providers(o, sim, ca_bundle=pki.bundle(tmp_path), proxy=px.url("gw", "pw")))
        assert ask(gw).content[0].text == "hello"
        assert px.tunnels == 1
    assert gw.ledger("alice")[-1]["status"] == "ok"
