"""Fresh identifiers in the providers' styles (msg_…, toolu_…, chatcmpl-…, call_…, req_…)."""

from __future__ import annotations

import os
from itertools import count

_PROCESS = os.urandom(4).hex()
_serial = count(1)


def new_id(prefix: str) -> str:
    """`prefix` + 24 hex characters, unique within the process and unlikely to repeat across processes."""
    return f"{prefix}{_PROCESS}{next(_serial):016x}"
