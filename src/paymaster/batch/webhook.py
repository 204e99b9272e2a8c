"""A finished deferred job, POSTed to its agent's `webhook:` (batch.md): signed like the alert webhooks, tried again
on a connection failure, 408, 429 or 5xx."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from ..alerts import RETRY_STATUS, sign

log = logging.getLogger("paymaster")

WEBHOOK_TRIES = 4  # attempts in all (waits 1 s, 2 s, 4 s between them)


def post(url: str, body: bytes, secret: str, job_id: str, tries: int = WEBHOOK_TRIES, wait_s: float = 1.0) -> bool:
    """POST a finished job, signed like the alert webhooks (alerts.py) when the agent has a secret:
    `x-paymaster-signature: sha256=<HMAC-SHA256(secret, "<timestamp>." + body)>`. A connection failure, 408,
    429 or 5xx is tried again (`tries` attempts in all, the wait doubling); other answers are final."""
    for attempt in range(tries):
        ts = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": "paymaster-webhook",
            "x-paymaster-event": "job.finished",
            "x-paymaster-event-id": job_id,
            "x-paymaster-timestamp": ts,
        }
        if secret:
            headers["x-paymaster-signature"] = sign(secret, ts, body)
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError as e:
            if e.code not in RETRY_STATUS:
                log.warning("batch: webhook %s answered %d for job %s", url, e.code, job_id)
                return False
            why = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            why = str(e) or type(e).__name__
        if attempt + 1 < tries:
            time.sleep(wait_s * 2**attempt)
    log.warning("batch: webhook %s failed for job %s: %s", url, job_id, why)
    return False
