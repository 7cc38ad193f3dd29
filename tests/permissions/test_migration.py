"""The permissions migration, on a database in use, on each database the suite runs on."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command as alembic
from sqlalchemy import inspect, text

from storage.db import make_engine
from storage.migrate import alembic_config
from tests.helpers.databases import insert_crm

ADDED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_permissions_migration_dates_existing_heartbeat_keys_and_downgrades(
    empty_database_url: str,
) -> None:
    config = alembic_config(empty_database_url)
    alembic.upgrade(config, "0007")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            insert_crm(conn, ADDED)
            conn.execute(
                text(
                    "INSERT INTO heartbeats (integration_id, key, status) "
                    "VALUES ('crm', '3f6c0d2e-crm-nightly', 'up')"
                )
            )
        alembic.upgrade(config, "0008")
        with engine.connect() as conn:
            changed = conn.scalar(text("SELECT key_changed_at FROM heartbeats"))
        # SQLite hands back text, PostgreSQL a datetime: compared as the moment they name.
        moment = changed if isinstance(changed, datetime) else datetime.fromisoformat(changed)
        assert moment.replace(tzinfo=moment.tzinfo or UTC) == ADDED
        tables = set(inspect(engine).get_table_names())
        assert {"audit", "catalog_settings"} <= tables

        alembic.downgrade(config, "0007")
        schema = inspect(engine)
        assert "audit" not in schema.get_table_names()
        assert "key_changed_at" not in {c["name"] for c in schema.get_columns("heartbeats")}
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT key FROM heartbeats")) == "3f6c0d2e-crm-nightly"
    finally:
        engine.dispose()
