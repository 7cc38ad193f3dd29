"""Shared fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
the real runtime and HTTP server on loopback, and the fake Slack Web API."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.runtime import Runtime, build_runtime
from bot.settings import Settings, load_settings
from storage.db import make_engine
from storage.migrate import upgrade
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


class PostgresDatabase:
    """This test process's own PostgreSQL database, migrated once and emptied between tests.

    Migrating from nothing costs a PostgreSQL round trip per DDL statement; emptying the tables
    with one TRUNCATE costs one. Each pytest-xdist worker gets a database of its own
    (``test_gw0``, ``test_gw1``…, created on first use) so workers never share rows.
    """

    def __init__(self, base_url: str) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        url = make_url(base_url)
        if worker:
            url = url.set(database=f"{url.database}_{worker}")
            self._create(make_url(base_url), url.database or "")
        self.url = url.render_as_string(hide_password=False)
        self.migrated = False
        self._run("SELECT 1")  # fails here, once, when the server does not answer

    @staticmethod
    def _create(base: URL, name: str) -> None:
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                exists = conn.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not exists:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()

    def empty(self) -> str:
        """No schema at all, as on a server nobody has set up."""
        self._run("DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
        self.migrated = False
        return self.url

    def migrated_and_empty(self) -> str:
        """The newest schema with no rows, and every id sequence back at 1."""
        if not self.migrated:
            self.empty()
            engine = create_engine(self.url)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
            self.migrated = True
            return self.url
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                tables = conn.scalars(
                    text(
                        "SELECT quote_ident(tablename) FROM pg_tables "
                        "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                    )
                ).all()
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        finally:
            engine.dispose()
        return self.url

    def _run(self, *statements: str) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                # A connection a test left open would otherwise hold the next test forever.
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> PostgresDatabase | None:
    url = _postgres_url()
    if url is None:
        return None
    try:
        return PostgresDatabase(url)
    except OperationalError as exc:
        if os.environ.get("INTEG_REQUIRE_POSTGRES"):
            raise
        reason = str(exc.orig or exc).strip().splitlines()[0]
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL does not answer: {reason}")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema; tests get a copy, which costs far less than
    running every migration again."""
    path = tmp_path_factory.mktemp("template") / "integ.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # the last connection to close folds the WAL into the file
    return path


def _postgres_for(request: pytest.FixtureRequest) -> PostgresDatabase:
    """This process's PostgreSQL database, asked for only by the PostgreSQL half of a test,
    so that a missing server never touches the SQLite half."""
    postgres: PostgresDatabase | None = request.getfixturevalue("postgres")
    if postgres is None:
        if os.environ.get("INTEG_REQUIRE_POSTGRES"):
            pytest.fail("INTEG_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it to PostgreSQL)")
    return postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> str:
    """An empty database at the newest schema, of each kind the suite runs on."""
    if request.param == "sqlite":
        path = tmp_path / "integ.db"
        shutil.copyfile(migrated_sqlite, path)
        return f"sqlite:///{path}"
    return _postgres_for(request).migrated_and_empty()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all, of each kind: for the tests of migrating one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'integ.db'}"
    return _postgres_for(request).empty()


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
    config = uvicorn.Config(
        switch, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
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


@pytest.fixture(scope="session", autouse=True)
def _close_pooled_servers() -> Iterator[None]:
    yield
    with _POOL_LOCK:
        servers, _IDLE_SERVERS[:] = list(_IDLE_SERVERS), []
    for pooled in servers:
        pooled.server.should_exit = True
    for pooled in servers:
        pooled.thread.join(timeout=10)


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
