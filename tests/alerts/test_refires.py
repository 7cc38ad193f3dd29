"""An alert that fires again after it was resolved is shown to the channel again
(commands/alerts/refires.py): a new message when the earlier one is old or buried, a thread
reply sent to the channel when it is recent. End to end through hooks, heartbeat pings, the
outbox and the fake Web API, with the clock driven by hand."""

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot import wire_ids
from storage.models import Alert
from tests.alerts.test_slack_messages import AUTH, FIRING, click, deliver, fire, the_alert

CHANNEL = "C0INTEG01"  # crm's channel in the example catalog
HEARTBEAT_KEY = "3f6c0d2e-crm-nightly"  # crm's heartbeat in the example catalog


def resolve(server) -> None:
    fire(server, {**FIRING, "status": "resolved"})


def top_level(fake_slack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    """What people scrolling the channel see: its messages and the replies also sent to it,
    as conversations.history lists them."""
    return [
        m
        for m in fake_slack.messages(channel)
        if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
    ]


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", [])) + message.get("text", "")


def test_a_failure_a_day_after_its_resolve_is_a_new_message_with_the_new_details(
    slack_server, fake_slack, clock
):
    fire(slack_server)  # Monday night
    deliver(slack_server)
    resolve(slack_server)
    deliver(slack_server)
    [monday] = top_level(fake_slack)
    clock.now += timedelta(days=1)
    fire(
        slack_server,
        {**FIRING, "summary": "Nightly load failed: 40 rows rejected", "details": "ORA-12899"},
    )
    deliver(slack_server)

    [first, again] = top_level(fake_slack)
    assert first["ts"] == monday["ts"]
    text = shown(again)
    assert "Fired again" in text and "resolved once before" in text
    assert "Nightly load failed: 40 rows rejected" in text and "ORA-12899" in text
    # Monday's details were about Monday's failure.
    assert "ORA-00001" not in text
    # A link to Monday's message, as Slack's permalink for it.
    permalink = fake_slack._permalink(CHANNEL, monday["ts"])
    assert f"<{permalink}|Earlier message>" in text
    # And the buttons, since this is the alert's message now.
    assert wire_ids.ACK_ACTION in text
    alert = the_alert(slack_server)
    assert (alert.status, alert.message_ts) == ("firing", again["ts"])

    # Acknowledging acts on the new message; Monday's stays as it was.
    updates_before = len(fake_slack.calls_to("chat.update"))
    assert click(slack_server, fake_slack, wire_ids.ACK_ACTION, alert.id).status_code == 200
    deliver(slack_server)
    edited = [c.args["ts"] for c in fake_slack.calls_to("chat.update")[updates_before:]]
    assert edited and set(edited) == {again["ts"]}


def test_a_failure_minutes_after_its_resolve_is_a_thread_reply_sent_to_the_channel(
    slack_server, fake_slack, clock
):
    fire(slack_server)
    deliver(slack_server)
    resolve(slack_server)
    deliver(slack_server)
    [message] = top_level(fake_slack)
    clock.now += timedelta(minutes=10)
    fire(slack_server, {**FIRING, "summary": "Nightly load failed again", "details": "ORA-12899"})
    deliver(slack_server)

    [parent, reply] = top_level(fake_slack)
    assert parent["ts"] == message["ts"]
    assert reply["thread_ts"] == message["ts"] and reply["subtype"] == "thread_broadcast"
    assert "Nightly load failed again" in shown(reply) and "ORA-12899" in shown(reply)
    in_thread = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    # "Resolved by its source" stays in the thread; the failure is also sent to the channel.
    assert [c.args.get("reply_broadcast", False) for c in in_thread] == [False, True]
    # The message itself shows the alert firing again, with its buttons back.
    last_update = [c for c in fake_slack.calls_to("chat.update") if c.args["ts"] == parent["ts"]]
    assert wire_ids.ACK_ACTION in json.dumps(last_update[-1].args["blocks"])
    assert the_alert(slack_server).message_ts == message["ts"]


def test_a_recent_message_buried_under_five_others_gets_a_new_message(
    slack_server, fake_slack, clock
):
    fire(slack_server)
    deliver(slack_server)
    resolve(slack_server)
    for n in range(5):
        fire(slack_server, {**FIRING, "key": f"other-{n}", "summary": f"Other failure {n}"})
    deliver(slack_server, rounds=12)
    [message, *_others] = top_level(fake_slack)
    clock.now += timedelta(minutes=10)
    fire(slack_server)
    deliver(slack_server)
    newest = top_level(fake_slack)[-1]
    assert "thread_ts" not in newest and "Fired again" in shown(newest)
    assert the_alert_keyed(slack_server, "nightly").message_ts == newest["ts"]
    assert message["ts"] != newest["ts"]


def test_a_heartbeat_failing_again_a_day_later_shows_the_jobs_own_output(
    slack_server, fake_slack, clock
):
    def ping(suffix: str = "", body: bytes = b"") -> None:
        with slack_server.client() as client:
            answered = client.post(f"/ping/{HEARTBEAT_KEY}{suffix}", content=body)
        assert answered.status_code == 200, answered.text

    ping("/fail", b"ORA-01017: invalid username/password; logon denied")
    deliver(slack_server)
    clock.now += timedelta(hours=1)
    ping()  # the rerun succeeded
    deliver(slack_server)
    clock.now += timedelta(days=1)
    ping("/fail", b"export aborted: disk full on /u01")
    deliver(slack_server)
    mine = [m for m in top_level(fake_slack) if "crm" in shown(m) and "job reported" in shown(m)]
    assert len(mine) == 2
    assert "export aborted: disk full on /u01" in shown(mine[-1])
    assert "ORA-01017" not in shown(mine[-1]) and "Fired again" in shown(mine[-1])


def the_alert_keyed(server, key: str) -> Alert:
    with server.runtime.deps.sessions() as session:
        return session.scalars(select(Alert).where(Alert.key == key)).one()


def test_a_repeat_of_a_resolved_alert_within_one_request_is_reposted_once(
    slack_server, fake_slack, clock
):
    fire(slack_server)
    deliver(slack_server)
    resolve(slack_server)
    deliver(slack_server)
    clock.now += timedelta(days=2)
    with slack_server.client() as client:
        body = json.dumps([FIRING, FIRING, FIRING])
        assert client.post("/hooks/generic", content=body, headers=AUTH).status_code == 202
    deliver(slack_server)
    assert len(top_level(fake_slack)) == 2
    assert the_alert(slack_server).count == 4
