"""The change log's storage, and silences logged into it through the real Slack paths."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command as alembic
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from bot import wire_ids
from commands.changes import entries as changes
from storage.db import make_engine, transaction
from storage.migrate import alembic_config, upgrade
from storage.models import Alert, Base, Change, OutboxMessage, Silence
from tests.helpers.runtime import WEBHOOK_TOKEN, make_settings
from tests.helpers.slack_signing import (
    interactive_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # the `clock` fixture's time
# Everything a reason could hold that a careless path would mangle or act on.
AWKWARD = (
    'Vendor\'s "maintenance" window; DROP TABLE changes; -- *bold* _it_ ~gone~ `code` '
    "> quote :tada: 🎉 <!channel> <@U0OTHER1> <https://evil.example|click> & 100%"
)


def slack_escaped(typed: str) -> str:
    # What Slack sends in a slash command's text for what the person typed.
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def command(server, typed, user_id="U0OWNER01"):
    body = slash_command_body(slack_escaped(typed), user_id=user_id)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    return response.json()["text"]


def stored(server, model):
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def test_a_silence_from_the_command_is_logged_as_a_change_by_whoever_silenced(slack_server):
    answer = command(slack_server, "silence CRM 2h vendor maintenance window", "U0BACKUP1")
    assert answer.startswith(":no_bell: Alerts for *Slate to Banner admissions* are silenced")
    [silence] = stored(slack_server, Silence)
    [change] = stored(slack_server, Change)
    assert (change.integration_id, change.category, change.source, change.author) == (
        "crm",
        "silence",
        "command",
        "U0BACKUP1",
    )
    assert change.summary == (
        "Silenced for 2h until 2026-11-26 11:30 UTC: vendor maintenance window"
    )
    assert change.happened_at == change.logged_at == silence.starts_at == NOW
    assert silence.ends_at == NOW + timedelta(hours=2)
    # Not made from a Slack message, so nothing ties it to one.
    assert (change.permalink, change.ticket_url) == (None, None)
    assert (change.message_channel, change.message_ts) == (None, None)
    assert (change.edited_at, change.deleted_at) == (None, None)


def test_a_silence_without_a_reason_is_logged_without_one(slack_server):
    command(slack_server, "silence crm 90m")
    [change] = stored(slack_server, Change)
    assert change.summary == "Silenced for 1h 30m until 2026-11-26 11:00 UTC"
    assert stored(slack_server, Silence)[0].reason is None


def test_a_reason_is_stored_exactly_as_written_and_escaped_where_shown(slack_server):
    command(slack_server, f"silence crm 2h {AWKWARD}")
    [change] = stored(slack_server, Change)
    assert change.summary == f"Silenced for 2h until 2026-11-26 11:30 UTC: {AWKWARD}"
    assert stored(slack_server, Silence)[0].reason == AWKWARD
    # Stored raw, but the channel is never pinged nor sent to a forged link.
    [told] = stored(slack_server, OutboxMessage)
    shown = json.dumps(told.payload)
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    assert "<@U0OTHER1>" not in shown and "<https://evil.example" not in shown
    with slack_server.runtime.deps.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM changes")) == 1


# slack_bolt's parse_body reads any form body holding the word "payload" as an
# interactivity payload and drops it; bot/web/app.py parses such bodies itself.
def test_a_reason_holding_the_word_payload_reaches_the_log(slack_server):
    command(slack_server, "silence crm 2h the payload schema changed")
    [change] = stored(slack_server, Change)
    assert change.summary.endswith(": the payload schema changed")


def click_silence(server, fake_slack, alert_id, user):
    payload = load_payload("block_actions")
    payload["user"]["id"] = user
    payload["response_url"] = fake_slack.response_url("click")
    payload["actions"][0].update(
        action_id=wire_ids.SILENCE_ACTION, value=str(alert_id), block_id="b"
    )
    body = interactive_body(payload)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text


def test_the_silence_button_is_logged_as_a_change_by_whoever_clicked(slack_server, fake_slack):
    with slack_server.client() as client:
        fired = client.post(
            "/hooks/generic",
            content=json.dumps({"integration": "crm", "summary": "Nightly load failed"}),
            headers=AUTH,
        )
    assert fired.status_code == 202, fired.text
    [alert_id] = [a.id for a in stored(slack_server, Alert)]
    click_silence(slack_server, fake_slack, alert_id, "U0BACKUP1")
    [change] = stored(slack_server, Change)
    assert (change.integration_id, change.category, change.source, change.author) == (
        "crm",
        "silence",
        "command",
        "U0BACKUP1",
    )
    assert change.summary == (f"Silenced for 2h until 2026-11-26 11:30 UTC: from alert #{alert_id}")
    assert change.happened_at == change.logged_at == NOW
    [told] = fake_slack.responses_to("click")
    assert "are silenced for 2h" in told.args["text"]


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("silence payroll-export 2h vendor window", "payroll-export"),
        ("silence crm two-hours vendor window", "is not a duration"),
        ("silence crm 0s vendor window", "is not a duration"),
        ("silence crm 31d vendor window", "at most 30 days"),
        ("silence crm", "Usage: `/integ silence"),
    ],
)
def test_bad_input_stores_neither_a_silence_nor_a_change(slack_server, typed, answer):
    assert answer in command(slack_server, typed)
    assert stored(slack_server, Silence) == []
    assert stored(slack_server, Change) == []
    assert stored(slack_server, OutboxMessage) == []


# The storage itself.


@pytest.fixture
def sessions(database_url, make_runtime):
    """A migrated database with the example catalog's integrations, in local mode."""
    return make_runtime(make_settings(database_url)).deps.sessions


def entry(session, integration_id="crm", **values):
    fields = {
        "integration_id": integration_id,
        "category": "config",
        "summary": "Raised the batch size to 500",
        "author": "U0OWNER01",
        "source": "shortcut",
        "happened_at": NOW - timedelta(minutes=5),
        "logged_at": NOW,
    }
    return changes.record(session, **{**fields, **values})


def test_one_slack_message_logs_once_per_integration(sessions):
    message = {"message_channel": "C0INTEG01", "message_ts": "1764149400.000100"}
    with transaction(sessions) as session:
        entry(session, **message)
        entry(session, "canvas-enroll", **message)  # the same message, another integration
        entry(session)  # entries from no message never collide
        entry(session)
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        entry(session, source="reaction", **message)
    with sessions() as session:
        rows = session.scalars(select(Change)).all()
    assert sorted(r.integration_id for r in rows) == ["canvas-enroll", "crm", "crm", "crm"]


def test_an_entry_reads_back_as_written_with_its_times_in_utc(sessions):
    with transaction(sessions) as session:
        entry(
            session,
            category="field-mapping",
            summary=AWKWARD,
            permalink="https://example.slack.com/archives/C0INTEG01/p1764149400000100",
            ticket_url="https://jira.example.edu/browse/INTEG-42",
            message_channel="C0INTEG01",
            message_ts="1764149400.000100",
        )
    with sessions() as session:
        [change] = session.scalars(select(Change)).all()
    assert change.summary == AWKWARD
    assert change.happened_at == NOW - timedelta(minutes=5)
    assert change.happened_at.tzinfo is not None and change.logged_at == NOW
    assert change.ticket_url == "https://jira.example.edu/browse/INTEG-42"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"category": "Config"}, "unknown change category"),
        ({"source": "button"}, "unknown change source"),
        ({"message_channel": "C0INTEG01"}, "both its channel and its ts"),
    ],
)
def test_record_refuses_what_no_list_or_constraint_would_handle(sessions, values, complaint):
    with sessions() as session, pytest.raises(ValueError, match=complaint):
        entry(session, **values)


# The migration, on each database the suite runs on.


def test_the_migrations_build_exactly_the_schema_the_models_describe(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_the_change_log_migration_upgrades_a_database_in_use_and_downgrades(
    empty_database_url,
):
    config = alembic_config(empty_database_url)
    alembic.upgrade(config, "0002")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO systems (id, name, spec, added_at, updated_at) "
                    "VALUES ('slate', 'Slate', '{}', :now, :now)"
                ),
                {"now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO integrations (id, name, source_id, target_id, mechanism, "
                    "schedule, timezone, owner, channel, spec, added_at, updated_at) VALUES "
                    "('crm', 'CRM', 'slate', 'slate', 'api', 'realtime', 'UTC', 'U0OWNER01', "
                    "'C0INTEG01', '{}', :now, :now)"
                ),
                {"now": NOW},
            )
        alembic.upgrade(config, "0003")
        schema = inspect(engine)
        added_later = {"logged_by", "freeze"}  # by 0007 and 0012
        assert {c["name"] for c in schema.get_columns("changes")} == (
            set(Change.__table__.columns.keys()) - added_later
        )
        indexes = {i["name"]: i["column_names"] for i in schema.get_indexes("changes")}
        assert indexes["ix_changes_integration_happened"] == ["integration_id", "happened_at"]
        [unique] = schema.get_unique_constraints("changes")
        assert unique["column_names"] == ["integration_id", "message_channel", "message_ts"]
        [foreign] = schema.get_foreign_keys("changes")
        assert (foreign["referred_table"], foreign["referred_columns"]) == ("integrations", ["id"])

        alembic.downgrade(config, "0002")
        assert "changes" not in inspect(engine).get_table_names()
        alembic.upgrade(config, "0003")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM integrations")) == 1
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0003"
    finally:
        engine.dispose()
