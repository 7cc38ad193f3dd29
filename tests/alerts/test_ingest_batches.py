"""Hook requests committed together: every request keeps its own answer and its own effect,
however many senders there are and whatever else shares its transaction."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from bot.workers.intake_writer import StoreFailed
from commands.alerts.payloads import parse_generic
from storage.models import Alert, AlertTransition, OutboxMessage, ReceivedEvent
from tests.helpers.runtime import WEBHOOK_TOKEN

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
FIRING = {
    "integration": "crm",
    "status": "firing",
    "summary": "Nightly load failed",
    "key": "nightly-load",
    "severity": "critical",
}


def rows(server, model):
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def count(server, model) -> int:
    with server.runtime.deps.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def send_concurrently(server, bodies: list[Any], senders: int = 20) -> list[Any]:
    local = threading.local()

    def send(payload: Any):
        if not hasattr(local, "client"):
            local.client = server.client()
        return local.client.post("/hooks/generic", content=json.dumps(payload), headers=AUTH)

    with ThreadPoolExecutor(senders) as pool:
        return list(pool.map(send, bodies))


def test_fire_resolve_fire_and_repeat_in_one_request_record_each_step_in_order(slack_server):
    steps = [FIRING, {**FIRING, "status": "resolved"}, FIRING, {**FIRING, "summary": "Again"}]
    response = slack_server.client().post("/hooks/generic", content=json.dumps(steps), headers=AUTH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["opened"], answer["resolved"], answer["reopened"], answer["repeated"]) == (
        1,
        1,
        1,
        1,
    )
    [alert] = rows(slack_server, Alert)
    assert (alert.status, alert.count, alert.summary) == ("firing", 3, "Again")
    moves = [(t.from_status, t.to_status) for t in rows(slack_server, AlertTransition)]
    assert moves == [(None, "firing"), ("firing", "resolved"), ("resolved", "firing")]
    # One message for the alert, then updates of it; never a second post.
    kinds = [m.kind for m in rows(slack_server, OutboxMessage)]
    assert kinds.count("post") == 1 and "update" not in kinds[: kinds.index("post")]


def test_twenty_senders_repeating_one_alert_count_every_event_and_queue_one_post(
    slack_server,
):
    answers = send_concurrently(slack_server, [FIRING] * 200)
    assert [a.status_code for a in answers] == [202] * 200
    assert sorted(a.json()["opened"] for a in answers) == [0] * 199 + [1]
    event_ids = [a.json()["event_id"] for a in answers]
    assert len(set(event_ids)) == 200
    assert count(slack_server, ReceivedEvent) == 200
    [alert] = rows(slack_server, Alert)
    assert alert.count == 200
    assert [m.kind for m in rows(slack_server, OutboxMessage)].count("post") == 1
    assert len(rows(slack_server, AlertTransition)) == 1


def test_many_senders_with_new_resolved_and_repeated_alerts_lose_nothing(slack_server):
    bodies: list[Any] = []
    for n in range(60):
        key = f"job-{n % 12}"
        status = "resolved" if n % 7 == 6 else "firing"
        bodies.append({**FIRING, "key": key, "status": status, "summary": f"run {n}"})
    answers = send_concurrently(slack_server, bodies)
    assert all(a.status_code == 202 for a in answers)
    # Every firing event is counted on its alert, whichever path took it.
    firing = sum(1 for b in bodies if b["status"] == "firing")
    ignored_resolves = sum(a.json()["alerts"] == 1 and _ignored(a.json()) for a in answers)
    assert sum(alert.count for alert in rows(slack_server, Alert)) == firing
    assert count(slack_server, ReceivedEvent) == 60
    resolved = sum(a.json()["resolved"] for a in answers)
    assert resolved + ignored_resolves == sum(1 for b in bodies if b["status"] == "resolved")
    # Each alert's transitions alternate: nothing recorded twice, nothing skipped.
    by_alert: dict[int, list[tuple[str | None, str]]] = {}
    for t in rows(slack_server, AlertTransition):
        by_alert.setdefault(t.alert_id, []).append((t.from_status, t.to_status))
    for moves in by_alert.values():
        assert moves[0] == (None, "firing")
        for (_, before), (after_from, _) in zip(moves, moves[1:], strict=False):
            assert before == after_from


def _ignored(answer: dict[str, Any]) -> bool:
    return answer["opened"] + answer["repeated"] + answer["reopened"] + answer["resolved"] == 0


def batches_counted() -> float:
    return REGISTRY.get_sample_value("integ_intake_batch_requests_count") or 0.0


def test_a_request_that_cannot_be_stored_fails_alone_and_the_rest_of_its_batch_is_kept(
    slack_server,
):
    writer = slack_server.runtime.intake
    good = json.dumps(FIRING).encode()
    before = batches_counted()
    futures = []
    for n in range(40):
        if n == 20:
            # A body the database refuses (received_events.body is NOT NULL): what any
            # failure to store one request looks like to the writer.
            futures.append(writer.submit("generic", None, parse_generic(good)))  # type: ignore[arg-type]
        else:
            futures.append(writer.submit("generic", good, parse_generic(good)))
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=30))
        except StoreFailed:
            outcomes.append(None)
    assert outcomes[20] is None
    assert all(outcome is not None for n, outcome in enumerate(outcomes) if n != 20)
    assert count(slack_server, ReceivedEvent) == 39
    [alert] = rows(slack_server, Alert)
    assert alert.count == 39
    # The writer took them in fewer transactions than requests: they were batched.
    assert batches_counted() - before < 40


def test_requests_queued_when_the_writer_stops_are_still_committed(slack_server):
    writer = slack_server.runtime.intake
    good = json.dumps(FIRING).encode()
    futures = [writer.submit("generic", good, parse_generic(good)) for _ in range(30)]
    writer.stop()
    assert [f.result(timeout=0).__class__ for f in futures] == [tuple] * 30
    assert count(slack_server, ReceivedEvent) == 30


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_an_event_for_an_unknown_integration_takes_the_same_paths(slack_server, status):
    first = slack_server.client().post(
        "/hooks/generic", content=json.dumps({**FIRING, "integration": "payroll"}), headers=AUTH
    )
    again = slack_server.client().post(
        "/hooks/generic",
        content=json.dumps({**FIRING, "integration": "payroll", "status": status}),
        headers=AUTH,
    )
    assert first.json()["opened"] == 1
    assert again.json()["unknown_integrations"] == ["payroll"]
    [alert] = rows(slack_server, Alert)
    assert alert.integration_id is None and alert.channel is None
    assert alert.status == status and alert.count == (2 if status == "firing" else 1)
