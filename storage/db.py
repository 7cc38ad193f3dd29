"""Engine and session factory for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from storage.write_turns import TurnTimeout

# How long anything waits on the database before it gives up, so that a database that is
# down, locked or stuck costs a request a few seconds and an answer (hooks and pings: 503,
# try again later), never a hang. Every transaction the bot runs takes milliseconds.
#
# SQLite: how long a write waits for the one write lock (another process's transaction, a
# backup, a `sqlite3` shell left inside BEGIN) before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 5.0
# PostgreSQL: opening a connection (libpq counts whole seconds, at least 2)...
CONNECT_TIMEOUT_SECONDS = 5
# ... one statement, lock waits included (migrations run without: storage.migrate)...
STATEMENT_TIMEOUT_SECONDS = 10
# ... and a connection that stops answering mid-query (a server or network gone without
# closing it): TCP keepalives on an idle one, and data left unacknowledged this long.
KEEPALIVE_IDLE_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3
TCP_USER_TIMEOUT_SECONDS = 20
# Both: waiting for a free connection from the pool.
POOL_TIMEOUT_SECONDS = 5.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine configured for concurrent use by the server's threads."""
    if url.startswith("sqlite"):
        if make_url(url).database not in (None, "", ":memory:"):
            kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)  # a file: a QueuePool
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
    kwargs["connect_args"] = {**_postgres_connect_args(url), **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def _postgres_connect_args(url: str) -> dict[str, Any]:
    # `options` given in DATABASE_URL (`?options=-c search_path=…`) are kept, not replaced.
    given = make_url(url).query.get("options") or ()
    timeout = f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000}"
    return {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "options": " ".join([*([given] if isinstance(given, str) else given), timeout]),
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
        "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_SECONDS * 1000,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer commits; foreign keys are off by default in
    # SQLite, and the history tables rely on them.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.close()


def table_of(model: type[Any]) -> Table:
    """A model's table, typed as one: Core statements on it (insert().from_select, bulk
    updates) are built once and reused on the hottest paths."""
    return cast(Table, model.__table__)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One short transaction: committed when the block ends, rolled back if it raises."""
    with factory() as session, session.begin():
        yield session


def insert_for(session: Session) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING: what claims a row by inserting
    it, so that two processes inserting the same key do not fail each other's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take work just now (down, restarting,
    unreachable, locked, out of connections, too slow), as opposed to a bug or a row it
    refused: what is answered "try again later" (503) rather than 500."""
    if isinstance(exc, PoolTimeout | TurnTimeout):  # no connection, or no turn, came in time
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        # A deadlock or serialization failure (SQLSTATE class 40) is this transaction's
        # own bad luck, to be tried again at once, not a database that is away.
        return not str(getattr(exc.orig, "sqlstate", None) or "").startswith("40")
    return False


def describe(exc: BaseException) -> str:
    """One line saying what the database driver said, for the log. It may name the
    database's host and port: what a client is told is `error_kind` alone."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else 'no message'}"[:300]


def error_kind(exc: BaseException) -> str:
    """The driver's error class (`OperationalError`), safe to show anyone."""
    return type(getattr(exc, "orig", None) or exc).__name__


def check_answers(session: Session) -> None:
    """Raise unless the database answers, and on SQLite could take a write, with the waits
    above: it fails exactly when the bot's own work would. SQLite in WAL mode goes on serving
    reads while another connection holds its write lock, so there the check takes the write
    lock (and gives it back at once) rather than reading."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        connection.exec_driver_sql("ROLLBACK")
        return
    connection.exec_driver_sql("SELECT 1")
