"""The retention duty on a tick: pings, hook bodies and finished outbox rows older than their
settings are deleted; what is recent, still to be sent, or history stays."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import event, func, select

from bot.listeners.reviews import REVIEW_ACTIONS
from bot.workers.retention import Retention
from commands.alerts.actions import resolve
from commands.changes.entries import record as log_change
from commands.permissions import audit
from commands.permissions.people import Actor, Surface
from commands.permissions.rules import Action
from commands.retention import runs
from commands.reviews.actions import record_review
from storage.db import transaction
from storage.models import (
    Alert,
    AlertTransition,
    AuditEntry,
    Change,
    HeartbeatPing,
    OutboxAttempt,
    OutboxMessage,
    ReceivedEvent,
    Review,
)
from tests.helpers.retention import hook, ping, send_all

DAY = timedelta(days=1)
CHANNEL = "C0INTEG01"  # crm's channel in examples/catalog.yml


def rows(runtime, *columns):
    with runtime.deps.sessions() as session:
        return session.execute(select(*columns).order_by(*columns)).all()


def outbox(runtime, below=None):
    """(alert key, kind, status) of the outbox rows of the alerts the test raised; with
    `below`, only rows queued before the outbox id `below`."""
    query = (
        select(Alert.key, OutboxMessage.kind, OutboxMessage.status)
        .join(Alert, Alert.id == OutboxMessage.alert_id)
        .where(Alert.source == "generic")
        .order_by(OutboxMessage.id)
    )
    if below is not None:
        query = query.where(OutboxMessage.id < below)
    with runtime.deps.sessions() as session:
        found = session.execute(query).all()
    return [tuple(row) for row in found]


def next_outbox_id(runtime):
    with runtime.deps.sessions() as session:
        return (session.scalar(select(func.max(OutboxMessage.id))) or 0) + 1


def test_old_pings_hook_bodies_and_finished_outbox_rows_go_and_the_rest_stays(
    runtime, fake_slack, clock
):
    start = clock.now
    ping(runtime)
    hook(runtime, "nightly")  # posted, then sent: a finished row
    send_all(runtime, clock)
    fake_slack.fail_next("chat.postMessage", error="channel_not_found")
    hook(runtime, "broken")  # its post fails for good: finished too
    send_all(runtime, clock)
    # Its update waits for a message that will never exist: pending, however old.
    hook(runtime, "broken")
    send_all(runtime, clock)
    assert outbox(runtime) == [
        ("nightly", "post", "sent"),
        ("broken", "post", "failed"),
        ("broken", "update", "pending"),
    ]
    clock.now = start + 20 * DAY
    ping(runtime)
    hook(runtime, "nightly")  # a repeat: its update is sent, twenty days old at the sweep
    send_all(runtime, clock)
    clock.now = start + 31 * DAY
    ping(runtime)
    transitions = rows(runtime, AlertTransition.id)
    queued_before = next_outbox_id(runtime)

    runtime.tick()  # also escalates the alerts, left unacknowledged for a month

    assert [at for (at,) in rows(runtime, HeartbeatPing.at)] == [start + 20 * DAY, clock.now]
    received = rows(runtime, ReceivedEvent.received_at)
    assert [at for (at,) in received] == [start + 20 * DAY]
    assert outbox(runtime, below=queued_before) == [
        ("broken", "update", "pending"),
        ("nightly", "update", "sent"),
    ]
    with runtime.deps.sessions() as session:
        attempts = session.execute(
            select(OutboxMessage.kind, OutboxAttempt.ok)
            .join(OutboxMessage, OutboxMessage.id == OutboxAttempt.message_id)
            .join(Alert, Alert.id == OutboxMessage.alert_id)
            .where(Alert.source == "generic")
        ).all()
        nightly = session.scalars(select(Alert).where(Alert.key == "nightly")).one()
    assert [tuple(a) for a in attempts] == [("update", True)]
    # The alerts and every transition stay; the posted one still knows its message.
    assert nightly.count == 2 and nightly.message_ts is not None
    assert set(transitions) <= set(rows(runtime, AlertTransition.id))


def test_alerts_transitions_changes_reviews_and_the_audit_trail_are_kept(runtime, clock):
    start = clock.now
    hook(runtime, "nightly")
    with transaction(runtime.deps.sessions) as session:
        [alert_id] = session.scalars(select(Alert.id).where(Alert.source == "generic"))
        resolve(session, alert_id, "U0OWNER01", "data", "bad row in the feed", clock.now)
        log_change(
            session,
            integration_id="crm",
            category="config",
            summary="Raised the batch size to 500",
            author="U0OWNER01",
            source="command",
            happened_at=clock.now,
            logged_at=clock.now,
        )
        audit.record(
            session,
            Actor("U0OWNER01", CHANNEL, Surface.SLASH),
            Action.RESOLVE,
            "crm",
            f"alert #{alert_id}",
            clock.now,
        )
        record_review(session, "crm", "U0OWNER01", {}, "All good", clock.now, REVIEW_ACTIONS)
    kept = (Change.id, Review.id, AuditEntry.id)
    before = {column: rows(runtime, column) for column in kept}
    assert all(len(found) == 1 for found in before.values())
    alerts, transitions = rows(runtime, Alert.id), rows(runtime, AlertTransition.id)
    clock.now = start + 400 * DAY

    runtime.tick()

    assert {column: rows(runtime, column) for column in kept} == before
    # The tick raises the heartbeats' missed runs as well: new alerts, kept like the rest.
    assert set(alerts) <= set(rows(runtime, Alert.id))
    assert set(transitions) <= set(rows(runtime, AlertTransition.id))
    # The hook's raw body is gone; what it meant is in the alert and its transitions.
    assert rows(runtime, ReceivedEvent.id) == []


def test_a_limit_smaller_than_the_rows_deletes_them_all_over_several_transactions(runtime, clock):
    start = clock.now
    for minute in range(23):
        clock.now = start + timedelta(minutes=minute)
        ping(runtime)
    clock.now = start + 31 * DAY
    commits = []

    def committed(conn):
        if threading.get_ident() == here:  # the runtime's own threads commit too, at times
            commits.append(conn)

    here = threading.get_ident()
    policy = Retention.from_deps(runtime.deps).policy  # the settings' 30 days
    sweep = Retention(runtime.deps.sessions, runtime.deps.clock, policy, batch=5, max_batches=2)
    event.listen(runtime.engine, "commit", committed)
    try:
        first = sweep.run_once()
        # Two batches of five, then the run stops and leaves the next one due at once.
        assert first is not None and first["heartbeat_pings"] == 10
        assert len(rows(runtime, HeartbeatPing.id)) == 13
        with runtime.deps.sessions() as session:
            last = runs.last_run(session)
        assert last is not None and last.next_at == clock.now
        clock.now += timedelta(seconds=30)
        assert sweep.run_once() == {
            "heartbeat_pings": 10,
            "received_events": 0,
            "outbox": 0,
            "home_views": 0,
        }
        clock.now += timedelta(seconds=30)
        assert sweep.run_once() == {
            "heartbeat_pings": 3,
            "received_events": 0,
            "outbox": 0,
            "home_views": 0,
        }
    finally:
        event.remove(runtime.engine, "commit", committed)
    assert rows(runtime, HeartbeatPing.id) == []
    # Every batch its own transaction: per run a claim and a record of what it deleted, the
    # pings in 2 + 2 + 1 batches, and one batch each of the three other tables.
    assert len(commits) == 3 * 2 + (2 + 2 + 1) + 3 * 3


def test_two_processes_ticking_together_sweep_once_an_hour(runtime, make_runtime, clock):
    other = make_runtime(runtime.deps.settings)
    first, second = Retention.from_deps(runtime.deps), Retention.from_deps(other.deps)
    assert first.run_once() is not None
    assert second.run_once() is None
    clock.now += timedelta(minutes=59)
    assert (first.run_once(), second.run_once()) == (None, None)
    clock.now += timedelta(minutes=2)
    assert second.run_once() is not None
    assert first.run_once() is None
    with runtime.deps.sessions() as session:
        last = runs.last_run(session)
    assert last is not None
    assert (last.started_at, last.next_at) == (clock.now, clock.now + timedelta(hours=1))
