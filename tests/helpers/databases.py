"""The databases tests run on: SQLite files, and PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import URL, Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from storage.migrate import upgrade


def postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# A connection a test left open would otherwise hold the next test's reset forever.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"


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
        # No pool: a schema dropped and created again must not meet a connection kept from
        # before, and the tests' own engines are the ones that matter for speed.
        self._engine = create_engine(self.url, poolclass=NullPool)
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
            upgrade(self._engine)
            self.migrated = True
            return self.url
        with self._engine.begin() as conn:
            conn.execute(text(LOCK_TIMEOUT))
            tables = conn.scalars(
                text(
                    "SELECT quote_ident(tablename) FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ).all()
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        return self.url

    def _run(self, *statements: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(text(LOCK_TIMEOUT))
            for statement in statements:
                conn.execute(text(statement))


def insert_crm(conn: Connection, added: datetime) -> None:
    """A system and the integration `crm` in raw SQL, as any schema version since the first
    has them: for the migration tests, which cannot use today's models."""
    conn.execute(
        text(
            "INSERT INTO systems (id, name, spec, added_at, updated_at) "
            "VALUES ('slate', 'Slate', '{}', :now, :now)"
        ),
        {"now": added},
    )
    conn.execute(
        text(
            "INSERT INTO integrations (id, name, source_id, target_id, mechanism, "
            "schedule, timezone, owner, channel, spec, added_at, updated_at) VALUES "
            "('crm', 'CRM', 'slate', 'slate', 'api', 'realtime', 'UTC', 'U0OWNER01', "
            "'C0INTEG01', '{}', :now, :now)"
        ),
        {"now": added},
    )
