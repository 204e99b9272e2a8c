"""Which certificates the upstream hop trusts.

`ca_bundle` (providers.<name>.ca_bundle): that PEM file only — a private CA, or a TLS-inspecting proxy's.
Otherwise the system store; an image without one (slim containers) falls back to certifi's Mozilla
roots instead of failing every call as "unreachable".
"""

from __future__ import annotations

import functools
import os
import ssl


@functools.cache
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One context per bundle, shared by every provider that trusts it (contexts are costly to build)."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    ctx = ssl.create_default_context()
    if not ctx.cert_store_stats()["x509_ca"] and not _has_capath():
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    return ctx


def _has_capath() -> bool:
    """OpenSSL may trust a hashed directory it loads lazily (cert_store_stats counts it as empty)."""
    paths = ssl.get_default_verify_paths()
    return bool(
        paths.capath and os.path.isdir(paths.capath) and any(f.endswith(".0") for f in os.listdir(paths.capath))
    )
