"""The TLS settings of the bot's own HTTPS clients (probes, vendor status pages)."""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def client_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: loading the CA bundle takes about 15 ms
    a client, and a context is safe to share between clients and threads."""
    return httpx.create_ssl_context()
