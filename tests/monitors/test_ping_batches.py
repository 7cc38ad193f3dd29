"""Pings committed many to a transaction with the hooks (the intake writer): each is stored as
one ping alone would be, whatever else shares its batch, and a heartbeat remembered from an
earlier ping is never trusted over what the database says now."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from commands.alerts.payloads import parse_generic
from commands.monitors.heartbeats import Schedule, record_ping
from commands.monitors.ping_batches import HeartbeatIndex, Ping, record_pings
from storage.db import transaction
from storage.models import Alert, Heartbeat, HeartbeatPing, Integration, ReceivedEvent
from tests.helpers.runtime import WEBHOOK_TOKEN, make_settings, start_server, stop_server

KEY = "3f6c0d2e-crm-nightly"  # crm's heartbeat in the example catalog: 02:00 Chicago, 1h grace


def ping(key: str = KEY, kind: str = "success", body: str | None = None) -> Ping:
    return Ping(key, kind, "GET", "curl/8.5.0", "10.0.0.7", body)


def heartbeat_of(runtime, integration_id: str = "crm") -> Heartbeat:
    with runtime.deps.sessions() as session:
        return session.get_one(Heartbeat, integration_id)


def pings_stored(runtime) -> list[tuple[str, str]]:
    with runtime.deps.sessions() as session:
        return [
            (p.integration_id, p.kind)
            for p in session.scalars(select(HeartbeatPing).order_by(HeartbeatPing.id))
        ]


def take(runtime, pings: list[Ping], index: HeartbeatIndex | None = None):
    with transaction(runtime.deps.sessions) as session:
        return record_pings(session, pings, runtime.deps.clock(), index or HeartbeatIndex())


@pytest.fixture
def runtime(database_url, make_runtime):
    return make_runtime(make_settings(database_url))


def test_a_batched_ping_leaves_the_heartbeat_as_a_ping_alone_does(runtime, clock):
    other = heartbeat_of(runtime, "canvas-enroll")
    with transaction(runtime.deps.sessions) as session:
        # The same ping to two heartbeats, one through each path.
        alone = record_ping(
            session,
            other.key,
            "success",
            now=clock.now,
            method="GET",
            user_agent="curl/8.5.0",
            remote_addr="10.0.0.7",
            body=None,
        )
    [batched] = take(runtime, [ping()])
    assert alone is not None and batched is not None
    assert (batched.integration_id, batched.kind, batched.alert) == ("crm", "success", None)
    crm, canvas = heartbeat_of(runtime), heartbeat_of(runtime, "canvas-enroll")
    assert crm.status == canvas.status == "up"
    assert crm.last_ping_at == canvas.last_ping_at == clock.now
    # crm runs at 02:00 America/Chicago: the next run is tomorrow's, due an hour later.
    assert crm.expected_at == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert crm.due_at == crm.expected_at + timedelta(hours=1)
    with runtime.deps.sessions() as session:
        rows = list(session.scalars(select(HeartbeatPing).order_by(HeartbeatPing.id)))
    assert [(r.integration_id, r.method, r.user_agent, r.remote_addr) for r in rows] == [
        ("canvas-enroll", "GET", "curl/8.5.0", "10.0.0.7"),
        ("crm", "GET", "curl/8.5.0", "10.0.0.7"),
    ]


def test_pings_of_one_batch_apply_in_order_and_an_unknown_key_stores_nothing(runtime, clock):
    results = take(
        runtime,
        [ping(kind="start"), ping(key="no-such-key"), ping(kind="success", body="42 rows")],
    )
    assert [r.kind if r else None for r in results] == ["start", None, "success"]
    beat = heartbeat_of(runtime)
    assert (beat.status, beat.last_start_at, beat.last_ping_at) == ("up", clock.now, clock.now)
    assert pings_stored(runtime) == [("crm", "start"), ("crm", "success")]


def test_a_success_after_a_failure_resolves_the_alert_in_the_same_batch(runtime, clock):
    index = HeartbeatIndex()
    take(runtime, [ping()], index)  # remembered, and up
    results = take(runtime, [ping(kind="fail", body="ORA-00942"), ping(kind="success")], index)
    assert results[0] is not None and results[0].alert is not None
    assert results[1] is not None and results[1].alert is not None  # the resolve
    assert heartbeat_of(runtime).status == "up"
    with runtime.deps.sessions() as session:
        [alert] = session.scalars(select(Alert).where(Alert.integration_id == "crm"))
    assert alert.status == "resolved"


def test_a_key_rotated_since_it_was_remembered_is_refused_and_forgotten(runtime, clock):
    index = HeartbeatIndex()
    take(runtime, [ping()], index)
    assert index.remembers(KEY)
    with transaction(runtime.deps.sessions) as session:  # another replica rotates the key
        session.execute(update(Heartbeat).where(Heartbeat.key == KEY).values(key="new-key"))
    assert take(runtime, [ping()], index) == [None]
    assert not index.remembers(KEY)
    assert pings_stored(runtime) == [("crm", "success")]


def test_a_schedule_changed_since_it_was_remembered_is_read_afresh(runtime, clock):
    index = HeartbeatIndex()
    take(runtime, [ping()], index)
    # The catalog moved crm to every 30 minutes: a sync wrote the new spec and schedule.
    with transaction(runtime.deps.sessions) as session:
        crm = session.get_one(Integration, "crm")
        crm.spec = {**crm.spec, "heartbeat": {"key": KEY, "every": "30m", "grace": "5m"}}
        schedule = Schedule.of(crm.spec)
        assert schedule is not None
        session.execute(
            update(Heartbeat)
            .where(Heartbeat.integration_id == "crm")
            .values(schedule=schedule.signature)
        )
    clock.now += timedelta(minutes=1)
    take(runtime, [ping()], index)
    beat = heartbeat_of(runtime)
    assert beat.expected_at == clock.now + timedelta(minutes=30)
    assert beat.due_at == clock.now + timedelta(minutes=35)


def test_pings_and_hooks_sent_together_are_each_answered_after_their_commit(
    database_url, make_runtime
):
    running = start_server(make_runtime(make_settings(database_url)))
    try:
        hook = json.dumps({"integration": "crm", "key": "load", "summary": "Load failed"})
        assert parse_generic(hook.encode())  # a valid hook body

        async def send_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
                sends = [client.get(f"/ping/{KEY}") for _ in range(30)]
                sends += [
                    client.post(
                        "/hooks/generic",
                        content=hook,
                        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                    )
                    for _ in range(30)
                ]
                return await asyncio.gather(*sends)

        answers = asyncio.run(send_all())
    finally:
        stop_server(running)
    assert [a.status_code for a in answers] == [200] * 30 + [202] * 30
    assert {a.text for a in answers[:30]} == {"OK\n"}
    runtime = running.runtime
    assert pings_stored(runtime) == [("crm", "success")] * 30
    with runtime.deps.sessions() as session:
        assert len(list(session.scalars(select(ReceivedEvent)))) == 30
