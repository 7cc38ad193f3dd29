"""The retention migration (0009), on a database in use, on each database the suite runs on:
it works out when each alert last fired and was shown from the history it already has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command as alembic
from sqlalchemy import inspect, text

from storage.db import make_engine
from storage.migrate import alembic_config
from tests.helpers.databases import insert_crm

ADDED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def moment(value: object) -> datetime | None:
    """SQLite hands back text, PostgreSQL a datetime: compared as the moment they name."""
    if value is None:
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return found.replace(tzinfo=found.tzinfo or UTC)


def _history(conn) -> None:
    """Two alerts: #1 fired, was resolved and fired again, its post queued twice (the second
    after a silence); #2 fired and was never posted."""
    insert_crm(conn, ADDED)
    for alert_id, key in ((1, "nightly"), (2, "quiet")):
        conn.execute(
            text(
                "INSERT INTO alerts (id, integration_name, integration_id, key, status, "
                "severity, summary, source, count, first_seen_at, last_seen_at) VALUES "
                "(:id, 'crm', 'crm', :key, 'firing', 'error', 'Load failed', 'generic', 1, "
                ":at, :at)"
            ),
            {"id": alert_id, "key": key, "at": ADDED},
        )
    transitions = [
        (1, None, "firing", ADDED),
        (1, "firing", "resolved", ADDED + HOUR),
        (1, "resolved", "firing", ADDED + 10 * HOUR),
        (2, None, "firing", ADDED + 2 * HOUR),
    ]
    for alert_id, before, after, at in transitions:
        conn.execute(
            text(
                "INSERT INTO alert_transitions (alert_id, at, from_status, to_status) "
                "VALUES (:alert, :at, :before, :after)"
            ),
            {"alert": alert_id, "at": at, "before": before, "after": after},
        )
    for kind, at in (("post", ADDED), ("update", ADDED + 12 * HOUR), ("post", ADDED + 11 * HOUR)):
        conn.execute(
            text(
                "INSERT INTO outbox (created_at, due_at, kind, channel, alert_id, payload, "
                "status, attempts) VALUES (:at, :at, :kind, 'C0INTEG01', 1, '{}', 'sent', 1)"
            ),
            {"at": at, "kind": kind},
        )


def test_the_retention_migration_backfills_when_alerts_fired_and_were_shown_and_downgrades(
    empty_database_url: str,
) -> None:
    config = alembic_config(empty_database_url)
    alembic.upgrade(config, "0008")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            _history(conn)
        alembic.upgrade(config, "0009")
        with engine.connect() as conn:
            found = conn.execute(text("SELECT id, fired_at, shown_at FROM alerts ORDER BY id"))
            backfilled = [(i, moment(f), moment(s)) for i, f, s in found]
        assert backfilled == [
            (1, ADDED + 10 * HOUR, ADDED + 11 * HOUR),
            (2, ADDED + 2 * HOUR, None),
        ]
        schema = inspect(engine)
        assert "retention_runs" in schema.get_table_names()
        indexes = {i["name"] for i in schema.get_indexes("heartbeat_pings")}
        assert "ix_heartbeat_pings_at" in indexes

        alembic.downgrade(config, "0008")
        schema = inspect(engine)
        assert "retention_runs" not in schema.get_table_names()
        columns = {c["name"] for c in schema.get_columns("alerts")}
        assert not {"fired_at", "shown_at"} & columns
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alert_transitions")) == 4
            assert conn.scalar(text("SELECT count(*) FROM outbox")) == 3
    finally:
        engine.dispose()
