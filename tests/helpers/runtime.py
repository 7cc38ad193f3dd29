"""The bot as tests run it: settings from a test's own values, an injected clock, and the real
ASGI app served by uvicorn on loopback."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.runtime import Runtime
from bot.server import http_server_options
from bot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CATALOG = REPO / "examples" / "catalog.yml"
BOT_TOKEN = "xoxb-test-token"
WEBHOOK_TOKEN = "test-webhook-token"


class FixedClock:
    """An injected clock that tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def database(self, session: Session) -> datetime:
        """As the database's clock, which leases are measured in: the same time, so that a
        test lets a lease run out by moving this clock."""
        return self.now


def make_settings(database_url: str, catalog: Path = EXAMPLE_CATALOG, **env: str) -> Settings:
    values = {
        "DATABASE_URL": database_url,
        "INTEG_CATALOG": str(catalog),
        "INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        # Off unless a test turns it on: most tests fire several integrations' alerts in a
        # moment to test something else, which would otherwise be one system's outage
        # (tests/outages turn it on).
        "INTEG_OUTAGE_INTEGRATIONS": "0",
        **env,
    }
    return load_settings(values)


async def _stopped(scope: Scope, receive: Receive, send: Send) -> None:
    """What a pooled server answers while no test has it: nothing reaches a closed runtime."""
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b"test server not in use"})


class _Switch:
    """An ASGI app that hands each request to the app of the runtime the server is lent to."""

    def __init__(self) -> None:
        self.app: ASGIApp = _stopped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@dataclass
class _PooledServer:
    url: str
    switch: _Switch
    server: uvicorn.Server
    thread: threading.Thread


# Uvicorn takes about 0.2 s to stop (two fixed 0.1 s sleeps), more than most tests take, so
# each test process keeps the servers it started and lends them out again.
_IDLE_SERVERS: list[_PooledServer] = []
_POOL_LOCK = threading.Lock()


def _new_server() -> _PooledServer:
    switch = _Switch()
    # The limits `integ-bot serve` runs with: the tests see the server production runs.
    config = uvicorn.Config(
        switch,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        **http_server_options(),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    return _PooledServer(f"http://127.0.0.1:{port}", switch, server, thread)


@dataclass
class RunningServer:
    runtime: Runtime
    url: str
    pooled: _PooledServer

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_server(runtime: Runtime) -> RunningServer:
    """Serve the runtime's real ASGI app under uvicorn on a free loopback port, in a thread."""
    with _POOL_LOCK:
        pooled = _IDLE_SERVERS.pop() if _IDLE_SERVERS else None
    if pooled is None:
        pooled = _new_server()
    pooled.switch.app = runtime.http_app
    return RunningServer(runtime, pooled.url, pooled)


def stop_server(running: RunningServer) -> None:
    """From here on the runtime gets no requests; the server goes back to the pool."""
    running.pooled.switch.app = _stopped
    with _POOL_LOCK:
        _IDLE_SERVERS.append(running.pooled)


def close_pooled_servers() -> None:
    """Stop every server in the pool; at the end of the test session."""
    with _POOL_LOCK:
        servers, _IDLE_SERVERS[:] = list(_IDLE_SERVERS), []
    for pooled in servers:
        pooled.server.should_exit = True
    for pooled in servers:
        pooled.thread.join(timeout=10)
