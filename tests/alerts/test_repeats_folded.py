"""Repeats of open alerts committed together are folded into one update per alert
(commands/alerts/repeats.py): the alert must end exactly as if each event had been applied
on its own, in order, and each request must still be told what its own events did."""

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from bot.runtime import Runtime
from commands.alerts.ingest import Received, receive
from commands.alerts.payloads import NO_SUMMARY, parse_generic
from storage.db import transaction
from storage.models import Alert, AlertTransition, OutboxMessage
from tests.helpers.runtime import make_settings

FALLBACK = "C0FALLBACK"


def request(*events: dict[str, Any]) -> Received:
    body = json.dumps(list(events)).encode()
    return Received("generic", body, parse_generic(body))


def shaped(received: Received, **changes: Any) -> Received:
    """Events as another hook gives them: Alertmanager's carry labels, and one without a
    summary annotation has NO_SUMMARY."""
    events = [replace(e, **changes) for e in received.events]
    return Received(received.source, received.body, events)


def fire(key: str, **fields: Any) -> dict[str, Any]:
    return {"integration": "crm", "key": key, "status": "firing", "summary": "Failed", **fields}


def resolve(key: str) -> dict[str, Any]:
    return {"integration": "crm", "key": key, "status": "resolved"}


def receive_together(runtime: Runtime, *requests: Received) -> list[dict[str, int]]:
    with transaction(runtime.deps.sessions) as session:
        stored = receive(session, list(requests), runtime.deps.clock(), FALLBACK)
    return [
        {
            "opened": r.opened,
            "repeated": r.repeated,
            "reopened": r.reopened,
            "resolved": r.resolved,
            "ignored": r.ignored,
        }
        for _, r in stored
    ]


def alert(runtime: Runtime, key: str) -> Alert:
    with runtime.deps.sessions() as session:
        found = session.scalars(select(Alert).where(Alert.key == key)).one()
        return found


def outbox_kinds(runtime: Runtime, alert_id: int) -> list[str]:
    with runtime.deps.sessions() as session:
        rows = session.scalars(
            select(OutboxMessage.kind)
            .where(OutboxMessage.alert_id == alert_id)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


def test_repeats_of_an_open_alert_in_one_batch_leave_what_each_in_turn_would(
    database_url: str, make_runtime: Callable[..., Runtime]
):
    runtime = make_runtime(make_settings(database_url))
    receive_together(runtime, request(fire("load", summary="Load failed", severity="error")))
    answers = receive_together(
        runtime,
        shaped(
            request(fire("load", summary="Load failed: 12 rows", details="row 7 bad")),
            labels={"run": "1"},
        ),
        # No summary, new details and URL: the summary given before stays.
        shaped(
            request(fire("load", details="row 9 bad", url="https://jobs.example.edu/9")),
            summary=NO_SUMMARY,
        ),
        # A summary, no details: the details given before stay; severity is the last one.
        request(fire("load", summary="Load failed: 3 rows", severity="critical")),
    )
    assert answers == [{"opened": 0, "repeated": 1, "reopened": 0, "resolved": 0, "ignored": 0}] * 3
    found = alert(runtime, "load")
    assert found.count == 4
    assert (found.summary, found.details, found.url, found.severity, found.labels) == (
        "Load failed: 3 rows",
        "row 9 bad",
        "https://jobs.example.edu/9",
        "critical",
        {"run": "1"},
    )
    assert found.last_seen_at == runtime.deps.clock()
    # The post queued when it opened has not been sent: it will show the latest count, so
    # the repeats queue no update of their own.
    assert outbox_kinds(runtime, found.id) == ["post"]


def test_one_update_is_queued_for_a_posted_alert_however_many_repeats_the_batch_holds(
    database_url: str, make_runtime: Callable[..., Runtime]
):
    runtime = make_runtime(make_settings(database_url))
    receive_together(runtime, request(fire("load")))
    found = alert(runtime, "load")
    with transaction(runtime.deps.sessions) as session:
        # As the outbox leaves it once the message is posted.
        session.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.alert_id == found.id)
            .values(status="sent")
        )
    receive_together(runtime, *[request(fire("load")) for _ in range(5)])
    assert outbox_kinds(runtime, found.id) == ["post", "update"]
    assert alert(runtime, "load").count == 6


def test_an_alert_the_batch_also_resolves_is_applied_event_by_event(
    database_url: str, make_runtime: Callable[..., Runtime]
):
    runtime = make_runtime(make_settings(database_url))
    receive_together(runtime, request(fire("load")), request(fire("other")))
    answers = receive_together(
        runtime,
        request(fire("load", summary="again")),
        request(resolve("load")),
        request(fire("load", summary="back")),
        request(fire("other")),
    )
    assert [(a["repeated"], a["resolved"], a["reopened"]) for a in answers] == [
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
        (1, 0, 0),
    ]
    load = alert(runtime, "load")
    assert (load.status, load.count, load.summary) == ("firing", 3, "back")
    assert alert(runtime, "other").count == 2
    with runtime.deps.sessions() as session:
        moves = session.execute(
            select(AlertTransition.from_status, AlertTransition.to_status)
            .where(AlertTransition.alert_id == load.id)
            .order_by(AlertTransition.id)
        ).all()
    assert [tuple(m) for m in moves] == [
        (None, "firing"),
        ("firing", "resolved"),
        ("resolved", "firing"),
    ]


def test_a_new_alert_and_its_repeats_in_one_batch_open_it_once(
    database_url: str, make_runtime: Callable[..., Runtime]
):
    runtime = make_runtime(make_settings(database_url))
    answers = receive_together(runtime, *[request(fire("new")) for _ in range(3)])
    assert [(a["opened"], a["repeated"]) for a in answers] == [(1, 0), (0, 1), (0, 1)]
    found = alert(runtime, "new")
    assert found.count == 3
    assert outbox_kinds(runtime, found.id) == ["post"]


def test_repeats_of_many_open_alerts_in_one_batch_count_on_each(
    database_url: str, make_runtime: Callable[..., Runtime]
):
    runtime = make_runtime(make_settings(database_url))
    keys = [f"job-{n}" for n in range(12)]
    receive_together(runtime, *[request(fire(key)) for key in keys])
    answers = receive_together(runtime, *[request(fire(key)) for key in keys * 3])
    assert [a["repeated"] for a in answers] == [1] * 36
    assert [alert(runtime, key).count for key in keys] == [4] * 12
