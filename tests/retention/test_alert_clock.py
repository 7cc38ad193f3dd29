"""Escalation reads when an alert fired and when its message was queued from the alert's own
row (`fired_at`, `shown_at`), so it needs no history and outlives the outbox rows the
retention duty deletes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from commands.alerts.actions import resolve
from commands.alerts.silences import silence
from commands.retention.purge import purge_outbox
from storage.db import transaction
from storage.models import Alert, OutboxMessage
from tests.helpers.retention import hook, send_all

MINUTE = timedelta(minutes=1)  # crm escalates after 30m (examples/catalog.yml)


def the_alert(runtime):
    with runtime.deps.sessions() as session:
        return session.scalars(select(Alert).where(Alert.source == "generic")).one()


def escalations(runtime):
    with runtime.deps.sessions() as session:
        replies = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.alert_id == the_alert(runtime).id, OutboxMessage.kind == "reply"
            )
        ).all()
    return [m.payload["text"] for m in replies if "Not acknowledged" in m.payload["text"]]


def test_an_alert_row_says_when_it_last_fired_and_when_its_message_was_queued(runtime, clock):
    start = clock.now
    hook(runtime, "nightly")
    assert (the_alert(runtime).fired_at, the_alert(runtime).shown_at) == (start, start)
    send_all(runtime, clock)
    clock.now = start + 60 * MINUTE
    with transaction(runtime.deps.sessions) as session:
        resolve(session, the_alert(runtime).id, "U0OWNER01", "data", "bad row", clock.now)
    clock.now = start + 180 * MINUTE
    # Fires again two hours after its resolve: reopened and shown anew, as a new message
    # (commands/alerts/refires.py), so both times are now.
    hook(runtime, "nightly")
    reopened = the_alert(runtime)
    assert (reopened.status, reopened.fired_at, reopened.shown_at) == (
        "firing",
        clock.now,
        clock.now,
    )

    clock.now += 29 * MINUTE
    runtime.tick()
    assert escalations(runtime) == []
    clock.now += 2 * MINUTE
    runtime.tick()
    assert len(escalations(runtime)) == 1
    assert "Not acknowledged after 31m" in escalations(runtime)[0]


def test_escalation_counts_from_when_a_silence_let_the_message_out_after_its_row_is_gone(
    runtime, clock
):
    start = clock.now
    with transaction(runtime.deps.sessions) as session:
        silence(session, "crm", "1h", "vendor maintenance", "U0OWNER01", clock.now)
    hook(runtime, "nightly")
    assert the_alert(runtime).shown_at is None  # held back: nobody has seen it
    clock.now = start + 61 * MINUTE
    runtime.tick()
    assert the_alert(runtime).shown_at == clock.now
    shown = clock.now
    send_all(runtime, clock)
    # The post's row deleted, as the retention duty would once it is old enough: the alert's
    # row still says when it was shown.
    with transaction(runtime.deps.sessions) as session:
        purge_outbox(session, clock.now, 100)
        assert session.scalars(select(OutboxMessage)).all() == []

    clock.now = shown + 29 * MINUTE
    runtime.tick()
    assert escalations(runtime) == []
    clock.now = shown + 31 * MINUTE
    runtime.tick()
    assert len(escalations(runtime)) == 1
    assert "Not acknowledged after 31m" in escalations(runtime)[0]
