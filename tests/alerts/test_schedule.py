"""Escalation, silences ending and recurring failures, with time driven by the clock."""

import json
from datetime import timedelta

from sqlalchemy import select

from bot import wire_ids
from commands.alerts.actions import acknowledge, resolve
from commands.alerts.ingest import ingest
from commands.alerts.messages import AlertActions, render_current
from commands.alerts.payloads import parse_generic
from commands.alerts.silences import silence
from storage.db import transaction
from storage.models import Alert, OutboxMessage
from tests.helpers.runtime import make_settings


def fire(runtime, key="nightly", status="firing"):
    body = json.dumps(
        {"integration": "crm", "summary": "Load failed", "key": key, "status": status}
    ).encode()
    with transaction(runtime.deps.sessions) as session:
        ingest(session, parse_generic(body), runtime.deps.clock(), None)


def queued(runtime, kind=None):
    with runtime.deps.sessions() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [m for m in rows if kind is None or m.kind == kind]


def alert(runtime):
    """The alert `fire` raised (the example catalog's heartbeats raise their own as time
    passes)."""
    with runtime.deps.sessions() as session:
        return session.scalars(select(Alert).where(Alert.source == "generic")).one()


def test_an_unacknowledged_alert_escalates_to_the_backups_once(database_url, make_runtime, clock):
    runtime = make_runtime(make_settings(database_url))
    fire(runtime)
    clock.now += timedelta(minutes=29)
    runtime.tick()
    assert queued(runtime, "reply") == []
    clock.now += timedelta(minutes=2)
    runtime.tick()
    runtime.tick()
    [reply] = queued(runtime, "reply")
    assert "<@U0BACKUP1>" in reply.payload["text"]
    assert "admissions-it@example.edu" in reply.payload["text"]
    assert "escalation after 30m" in reply.payload["text"]
    assert alert(runtime).escalated_at == clock.now - timedelta(minutes=0)


def test_an_acknowledged_alert_does_not_escalate(database_url, make_runtime, clock):
    runtime = make_runtime(make_settings(database_url))
    fire(runtime)
    with transaction(runtime.deps.sessions) as session:
        acknowledge(session, alert(runtime).id, "U0OWNER01", clock.now)
    clock.now += timedelta(hours=2)
    runtime.tick()
    assert [m.payload.get("text", "") for m in queued(runtime, "reply")] == [
        ":eyes: Acknowledged by <@U0OWNER01>."
    ]


def test_two_processes_ticking_escalate_once(database_url, make_runtime, clock):
    settings = make_settings(database_url)
    first, second = make_runtime(settings), make_runtime(settings)
    fire(first)
    clock.now += timedelta(hours=1)
    first.tick()
    second.tick()
    assert len(queued(first, "reply")) == 1


def test_alerts_held_by_a_silence_are_posted_when_it_ends(database_url, make_runtime, clock):
    runtime = make_runtime(make_settings(database_url))
    with transaction(runtime.deps.sessions) as session:
        silence(session, "crm", "1h", "vendor maintenance", "U0OWNER01", clock.now)
    fire(runtime)
    fire(runtime)
    runtime.tick()
    assert queued(runtime, "post") == []
    assert alert(runtime).count == 2
    clock.now += timedelta(minutes=61)
    runtime.tick()
    runtime.tick()
    [post] = [m for m in queued(runtime, "post") if m.alert_id == alert(runtime).id]
    assert post.channel == "C0INTEG01"


def test_the_third_firing_in_thirty_days_asks_for_a_root_cause_analysis(
    database_url, make_runtime, clock
):
    runtime = make_runtime(make_settings(database_url))
    for _ in range(2):
        fire(runtime)
        clock.now += timedelta(days=3)
        with transaction(runtime.deps.sessions) as session:
            resolve(session, alert(runtime).id, "U0OWNER01", "data", "bad row", clock.now)
        clock.now += timedelta(days=3)
    actions = AlertActions(
        wire_ids.ACK_ACTION,
        wire_ids.RESOLVE_ACTION,
        wire_ids.SILENCE_ACTION,
        wire_ids.RUNBOOK_ACTION,
    )
    with runtime.deps.sessions() as session:
        second = json.dumps(render_current(session, alert(runtime), clock.now, actions).blocks)
    assert "times in 30 days" not in second
    fire(runtime)
    with runtime.deps.sessions() as session:
        third = json.dumps(render_current(session, alert(runtime), clock.now, actions).blocks)
    assert "fired 3 times in 30 days" in third
