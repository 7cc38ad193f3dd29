"""Acknowledge, resolve, silence and list alerts from the command line, as stored."""

import json

from sqlalchemy import select

from storage.models import Alert, AlertTransition, Change, OutboxMessage, Silence
from tests.helpers.runtime import WEBHOOK_TOKEN
from tests.helpers.slack_signing import signed_headers, slash_command_body

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
FIRING = {"integration": "crm", "summary": "Nightly load failed", "key": "nightly"}


def fire(server, payload=FIRING):
    with server.client() as client:
        response = client.post("/hooks/generic", content=json.dumps(payload), headers=AUTH)
    assert response.status_code == 202, response.text


def command(server, text, user_id="U0OWNER01"):
    body = slash_command_body(text, user_id=user_id)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    return response.json()["text"]


def stored(server, model):
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def test_ack_acknowledges_once_and_a_second_ack_changes_nothing(slack_server):
    fire(slack_server)
    [alert] = stored(slack_server, Alert)
    assert command(slack_server, f"ack {alert.id}") == f"You acknowledged alert #{alert.id}."
    again = command(slack_server, f"ack #{alert.id}", user_id="U0BACKUP1")
    assert again == f"Alert #{alert.id} was already acknowledged by <@U0OWNER01>."
    [alert] = stored(slack_server, Alert)
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", "U0OWNER01")
    steps = [(t.from_status, t.to_status, t.actor) for t in stored(slack_server, AlertTransition)]
    assert steps == [(None, "firing", None), ("firing", "acknowledged", "U0OWNER01")]


def test_resolve_records_the_root_cause_and_an_ack_after_it_loses(slack_server):
    fire(slack_server)
    [alert] = stored(slack_server, Alert)
    answer = command(slack_server, f"resolve {alert.id} credentials rotated the SFTP key")
    assert answer == f"You resolved alert #{alert.id} (credentials)."
    late_ack = command(slack_server, f"ack {alert.id}", user_id="U0BACKUP1")
    assert late_ack == f"Alert #{alert.id} is already resolved by <@U0OWNER01>."
    [alert] = stored(slack_server, Alert)
    assert (alert.status, alert.root_cause, alert.root_cause_note) == (
        "resolved",
        "credentials",
        "rotated the SFTP key",
    )
    assert [t.to_status for t in stored(slack_server, AlertTransition)] == ["firing", "resolved"]
    reply = [m for m in stored(slack_server, OutboxMessage) if m.kind == "reply"][-1]
    assert "Root cause: *credentials*" in reply.payload["text"]
    assert "<@" not in reply.payload["text"]  # nobody is pinged because a problem went away


def test_resolve_refuses_an_unknown_cause_and_changes_nothing(slack_server):
    fire(slack_server)
    [alert] = stored(slack_server, Alert)
    answer = command(slack_server, f"resolve {alert.id} gremlins")
    assert answer.startswith("The root cause must be one of: vendor, data, credentials")
    assert stored(slack_server, Alert)[0].status == "firing"


def test_ack_of_an_alert_that_does_not_exist_says_so(slack_server):
    assert command(slack_server, "ack 999") == "There is no alert #999."
    assert command(slack_server, "ack soon").startswith("Usage: `/integ ack")


def test_silence_holds_back_posts_but_still_records_and_counts(slack_server):
    answer = command(slack_server, "silence crm 2h vendor maintenance window")
    assert answer.startswith(
        ":no_bell: Alerts for *Slate to Banner admissions* are silenced for 2h"
    )
    [silence] = stored(slack_server, Silence)
    assert (silence.reason, silence.created_by) == ("vendor maintenance window", "U0OWNER01")
    [change] = stored(slack_server, Change)  # the silence is logged as a change
    assert (change.category, change.author, change.integration_id) == (
        "silence",
        "U0OWNER01",
        "crm",
    )
    fire(slack_server)
    fire(slack_server)
    [alert] = stored(slack_server, Alert)
    assert alert.count == 2
    # The channel is told of the silence once; the alerts themselves are not posted.
    [told] = stored(slack_server, OutboxMessage)
    assert (told.kind, told.channel, told.alert_id) == ("message", "C0INTEG01", None)
    assert told.payload["text"].startswith(
        ":no_bell: <@U0OWNER01> silenced alerts for *Slate to Banner admissions* for 2h"
    )
    assert "is *silenced*" in json.dumps(command_json(slack_server, "status crm"))


def command_json(server, text):
    body = slash_command_body(text)
    with server.client() as client:
        return client.post("/slack/events", content=body, headers=signed_headers(body)).json()


def test_silence_refuses_a_bad_duration(slack_server):
    answer = command(slack_server, "silence crm two-hours")
    assert "is not a duration" in answer
    assert stored(slack_server, Silence) == []
    assert stored(slack_server, Change) == []


def test_alerts_lists_open_alerts_newest_first(slack_server):
    fire(slack_server)
    fire(slack_server, {**FIRING, "key": "other", "summary": "API returns 503"})
    answer = command_json(slack_server, "alerts crm")
    text = json.dumps(answer["blocks"])
    assert text.index("API returns 503") < text.index("Nightly load failed")
    assert command(slack_server, "alerts canvas-enroll") == (
        "Open alerts of Banner to Canvas enrollments (SIS import): none. :large_green_circle:"
    )


def test_concurrent_clicks_on_one_alert_record_one_transition(slack_server):
    import threading

    from commands.alerts.actions import acknowledge, resolve
    from storage.db import transaction

    fire(slack_server)
    [alert] = stored(slack_server, Alert)
    deps = slack_server.runtime.deps
    outcomes = []
    start = threading.Barrier(8)

    def act(n):
        start.wait()
        with transaction(deps.sessions) as session:
            if n % 2:
                outcome = acknowledge(session, alert.id, f"U0USER{n}", deps.clock())
            else:
                outcome = resolve(session, alert.id, f"U0USER{n}", "data", "x", deps.clock())
        outcomes.append(outcome.changed)

    threads = [threading.Thread(target=act, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    steps = [t.to_status for t in stored(slack_server, AlertTransition)]
    # At most one acknowledge and exactly one resolve, whatever the interleaving.
    assert steps.count("resolved") == 1 and steps.count("acknowledged") <= 1
    assert outcomes.count(True) == len(steps) - 1
    assert stored(slack_server, Alert)[0].status == "resolved"
