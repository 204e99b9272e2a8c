"""The gateway as an importable ASGI app, for running it under any ASGI server:

    PAYMASTER_CONFIG=fleet.yaml uvicorn paymaster.asgi:app --loop uvloop --http httptools
    PAYMASTER_CONFIG=fleet.yaml granian --interface asgi paymaster.asgi:app

`paymaster serve` is the same app on uvicorn (measured the faster of the two here; bench/server_choice.py).
"""

from __future__ import annotations

import os

from .app import Gateway
from .config import load

app = Gateway(load(os.environ.get("PAYMASTER_CONFIG", "fleet.yaml")))
