"""Odd-but-possible input on every endpoint: a 4xx (or the normal answer) in the caller's shape, never a
500, never a change to anyone's spend."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.conftest import ADMIN_KEY


@pytest.mark.parametrize("last", ["9" * 5000, "9" * 19, "12abc", ""])
def test_an_events_stream_with_an_odd_last_event_id_opens(gateway: Any, last: str) -> None:
    """A Last-Event-ID of 4,301+ digits made int() raise: a plain-text 500 instead of the event stream."""
    gw = gateway()
    gw.anthropic().messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "last-event-id": last}
    with httpx2.stream("GET", gw.url + "/admin/events", headers=headers, timeout=5) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        first = next(r.iter_bytes())
        assert first.startswith(b": paymaster events")
