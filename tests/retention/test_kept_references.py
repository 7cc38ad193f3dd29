"""Outbox rows that something still refers to outlive the retention window: a review nudge's
message (edited and replied to while the nudge waits) and a digest's message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from commands.retention.purge import KEPT_BY
from storage.models import Base, Digest, OutboxMessage, ReviewNudge
from tests.helpers.retention import send_all
from tests.helpers.runtime import BOT_TOKEN, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET

# The day crm's first review falls due (examples/catalog.yml), before 09:00 so that Monday's
# digest (09:00 UTC the day before) is less than a day late and still posted.
REVIEW_DAY = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_every_foreign_key_to_the_outbox_keeps_its_rows_or_goes_with_them():
    outbox_id = OutboxMessage.__table__.c.id
    referring = {
        f"{fk.parent.table.name}.{fk.parent.name}"
        for table in Base.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column is outbox_id
    }
    kept = {f"{column.table.name}.{column.name}" for column in (c.expression for c in KEPT_BY)}
    # Attempts are deleted with their row; every other reference keeps the row it names.
    assert referring == kept | {"outbox_attempts.message_id"}


def test_a_waiting_nudge_and_a_digest_keep_their_messages_and_old_reminders_go(
    database_url, fake_slack, make_runtime, clock
):
    runtime = make_runtime(
        make_settings(
            database_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake_slack.url,
            INTEG_DIGEST_CHANNEL="C0DIGEST1",
        )
    )
    clock.now = REVIEW_DAY
    runtime.tick()  # the nudges of the reviews due today, and Monday's digest
    send_all(runtime, clock)
    clock.now = REVIEW_DAY + timedelta(days=4)
    runtime.tick()  # nobody answered: a reminder in each nudge's thread
    send_all(runtime, clock)
    with runtime.deps.sessions() as session:
        nudge = session.scalars(
            select(ReviewNudge).where(ReviewNudge.integration_id == "crm")
        ).one()
        digest = session.scalars(select(Digest)).one()
        reminders = session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.channel == "C0INTEG01",
                OutboxMessage.payload["thread_ts"].as_string().is_not(None),
            )
        ).all()
        nudge_ts = session.get_one(OutboxMessage, nudge.outbox_id).result_ts
    assert reminders and nudge_ts is not None
    clock.now = REVIEW_DAY + timedelta(days=40)

    runtime.tick()

    with runtime.deps.sessions() as session:
        assert session.get(OutboxMessage, nudge.outbox_id) is not None
        assert session.get(OutboxMessage, digest.outbox_id) is not None
        assert (
            session.scalars(select(OutboxMessage.id).where(OutboxMessage.id.in_(reminders))).all()
            == []
        )
        # Still waiting, the nudge is reminded again in its thread, found through its row.
        latest = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "C0INTEG01", OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id.desc())
        ).all()
    assert any(
        m.payload.get("thread_ts") == nudge_ts and "Reminder" in m.payload["text"] for m in latest
    )
