"""Shared fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
the real runtime and HTTP server on loopback, and the fake Slack Web API. What tests import
lives in tests/helpers."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.runtime import Runtime, build_runtime
from bot.settings import Settings
from storage.db import make_engine
from storage.migrate import upgrade
from tests.helpers.databases import PostgresDatabase, postgres_url
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import (
    BOT_TOKEN,
    FixedClock,
    RunningServer,
    close_pooled_servers,
    make_settings,
    start_server,
    stop_server,
)
from tests.helpers.slack_signing import SIGNING_SECRET


@pytest.fixture(scope="session")
def postgres() -> PostgresDatabase | None:
    url = postgres_url()
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


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 26, 9, 30, tzinfo=UTC))


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def make_runtime(clock: FixedClock) -> Iterator[Callable[..., Runtime]]:
    built: list[Runtime] = []

    def make(settings: Settings) -> Runtime:
        runtime = build_runtime(settings, clock=clock, lease_clock=clock.database)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


def pytest_configure(config: pytest.Config) -> None:
    # Every runtime a test builds collects garbage after loading its catalog, and a full
    # collection scans every object in the process: in a test process holding the whole
    # suite's imports that took 0.1 s a runtime. Frozen objects are not scanned.
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _close_pooled_servers() -> Iterator[None]:
    yield
    close_pooled_servers()


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
