"""Alert intake over HTTP: what a sender gets back and what is stored."""

import json

from sqlalchemy import func, select

from storage.models import Alert, AlertTransition, OutboxMessage, ReceivedEvent
from tests.helpers.runtime import WEBHOOK_TOKEN

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


def post(server, path, payload, headers=AUTH):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with server.client() as client:
        return client.post(
            path, content=body, headers={**headers, "Content-Type": "application/json"}
        )


def rows(server, model):
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def count(server, model):
    with server.runtime.deps.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


FIRING = {
    "integration": "crm",
    "status": "firing",
    "summary": "Nightly load failed: 12 rows rejected",
    "details": "free text",
    "key": "nightly-load",
    "severity": "critical",
    "url": "https://logs.example.edu/run/1",
}


def test_a_generic_alert_is_committed_with_its_raw_body_before_the_202(slack_server):
    response = post(slack_server, "/hooks/generic", FIRING)
    assert response.status_code == 202, response.text
    assert response.json()["opened"] == 1
    [event] = rows(slack_server, ReceivedEvent)
    assert json.loads(event.body) == FIRING
    [alert] = rows(slack_server, Alert)
    assert (alert.integration_id, alert.key, alert.status, alert.count) == (
        "crm",
        "nightly-load",
        "firing",
        1,
    )
    assert alert.severity == "critical"
    [transition] = rows(slack_server, AlertTransition)
    assert (transition.from_status, transition.to_status) == (None, "firing")
    [queued] = rows(slack_server, OutboxMessage)
    assert (queued.kind, queued.channel, queued.alert_id) == ("post", "C0INTEG01", alert.id)


def test_a_repeat_counts_up_and_never_queues_a_second_post(slack_server):
    post(slack_server, "/hooks/generic", FIRING)
    again = post(slack_server, "/hooks/generic", {**FIRING, "summary": "Now 14 rows rejected"})
    assert again.json()["repeated"] == 1
    [alert] = rows(slack_server, Alert)
    assert alert.count == 2 and alert.summary == "Now 14 rows rejected"
    assert [m.kind for m in rows(slack_server, OutboxMessage)] == ["post"]


def test_resolved_by_the_source_then_firing_again_reopens_the_same_alert(slack_server):
    post(slack_server, "/hooks/generic", FIRING)
    post(slack_server, "/hooks/generic", {**FIRING, "status": "resolved"})
    [alert] = rows(slack_server, Alert)
    assert alert.status == "resolved" and alert.resolved_by is None
    reopened = post(slack_server, "/hooks/generic", FIRING)
    assert reopened.json()["reopened"] == 1
    [alert] = rows(slack_server, Alert)
    assert alert.status == "firing" and alert.count == 2
    steps = [(t.from_status, t.to_status) for t in rows(slack_server, AlertTransition)]
    assert steps == [(None, "firing"), ("firing", "resolved"), ("resolved", "firing")]


def test_a_list_of_generic_alerts_is_taken_in_one_request(slack_server):
    payload = [{**FIRING, "key": f"k{n}"} for n in range(5)]
    response = post(slack_server, "/hooks/generic", payload)
    assert response.status_code == 202 and response.json()["opened"] == 5
    assert count(slack_server, Alert) == 5
    assert count(slack_server, ReceivedEvent) == 1


def test_an_unknown_integration_is_kept_and_named_in_the_answer(slack_server):
    response = post(slack_server, "/hooks/generic", {**FIRING, "integration": "payroll"})
    assert response.status_code == 202
    assert response.json()["unknown_integrations"] == ["payroll"]
    [alert] = rows(slack_server, Alert)
    assert alert.integration_name == "payroll" and alert.integration_id is None
    # No INTEG_FALLBACK_CHANNEL in this server: kept, not posted.
    assert count(slack_server, OutboxMessage) == 0


def test_a_wrong_or_missing_token_gets_401_and_stores_nothing(slack_server):
    assert post(slack_server, "/hooks/generic", FIRING, headers={}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert post(slack_server, "/hooks/alertmanager", FIRING, headers=wrong).status_code == 401
    assert count(slack_server, ReceivedEvent) == 0 and count(slack_server, Alert) == 0


def test_malformed_input_gets_400_with_a_reason_and_stores_nothing(slack_server):
    for body in (b"{not json", b"[]", json.dumps({"status": "firing"}).encode(), b"\xff\xfe"):
        response = post(slack_server, "/hooks/generic", body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert count(slack_server, ReceivedEvent) == 0 and count(slack_server, Alert) == 0


def test_a_body_over_one_mebibyte_gets_413(slack_server):
    body = json.dumps({**FIRING, "details": "x" * (1024 * 1024)}).encode()
    assert post(slack_server, "/hooks/generic", body).status_code == 413
    assert count(slack_server, ReceivedEvent) == 0
