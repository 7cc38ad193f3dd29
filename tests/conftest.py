"""Shared fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
the real runtime and HTTP server on loopback, and the fake Slack Web API."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from bot.runtime import Runtime, build_runtime
from bot.settings import Settings, load_settings
from tests.fake_slack import FakeSlack
from tests.slack_signing import SIGNING_SECRET

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CATALOG = REPO / "examples" / "catalog.yml"
BOT_TOKEN = "xoxb-test-token"
WEBHOOK_TOKEN = "test-webhook-token"


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind the suite runs on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'integ.db'}"
    url = _postgres_url()
    if url is None:
        if os.environ.get("INTEG_REQUIRE_POSTGRES"):
            pytest.fail("INTEG_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it to PostgreSQL)")
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'integ.db'}"


class FixedClock:
    """An injected clock that tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 26, 9, 30, tzinfo=UTC))


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def make_settings(database_url: str, catalog: Path = EXAMPLE_CATALOG, **env: str) -> Settings:
    values = {
        "DATABASE_URL": database_url,
        "INTEG_CATALOG": str(catalog),
        "INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        **env,
    }
    return load_settings(values)


@pytest.fixture
def make_runtime(clock: FixedClock) -> Iterator[Callable[..., Runtime]]:
    built: list[Runtime] = []

    def make(settings: Settings) -> Runtime:
        runtime = build_runtime(settings, clock=clock)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


@dataclass
class RunningServer:
    runtime: Runtime
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_server(runtime: Runtime) -> RunningServer:
    """Run the real ASGI app under uvicorn on a free loopback port, in a thread."""
    config = uvicorn.Config(
        runtime.http_app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(runtime, f"http://127.0.0.1:{port}", server, thread)


def stop_server(running: RunningServer) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=10)


@pytest.fixture
def slack_server(
    database_url: str, fake_slack: FakeSlack, make_runtime: Callable[..., Runtime]
) -> Iterator[RunningServer]:
    """The bot in HTTP mode with a bot token, talking to the fake Slack Web API."""
    settings = make_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    running = start_server(make_runtime(settings))
    yield running
    stop_server(running)


@pytest.fixture
def local_server(
    database_url: str, make_runtime: Callable[..., Runtime]
) -> Iterator[RunningServer]:
    """The bot in local mode: no Slack token."""
    running = start_server(make_runtime(make_settings(database_url)))
    yield running
    stop_server(running)
