"""Alerts in Slack, end to end: a hook posts one message through the outbox to the fake
Web API; buttons and the resolve modal, sent as Slack sends them, change it in place."""

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot import wire_ids
from storage.models import Alert, AlertTransition
from tests.helpers.runtime import BOT_TOKEN, WEBHOOK_TOKEN, make_settings, start_server, stop_server
from tests.helpers.slack_signing import (
    SIGNING_SECRET,
    interactive_body,
    load_payload,
    signed_headers,
)

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
FIRING = {
    "integration": "crm",
    "summary": "Nightly load failed: 12 rows rejected",
    "details": "ORA-00001 <@U999> <!channel> & more",
    "key": "nightly",
    "severity": "critical",
}


def fire(server, payload=FIRING):
    with server.client() as client:
        response = client.post("/hooks/generic", content=json.dumps(payload), headers=AUTH)
    assert response.status_code == 202, response.text


def deliver(server, rounds=8):
    """Send everything queued, as the worker thread would, letting the injected clock run
    past Slack's one-message-a-second pacing of each channel."""
    clock = server.runtime.deps.clock
    for _ in range(rounds):
        server.runtime.outbox.run_once()
        clock.now += timedelta(seconds=1.1)


def the_alert(server):
    with server.runtime.deps.sessions() as session:
        return session.scalars(select(Alert)).one()


def transitions(server):
    with server.runtime.deps.sessions() as session:
        return [
            (t.from_status, t.to_status, t.actor)
            for t in session.scalars(select(AlertTransition).order_by(AlertTransition.id))
        ]


def click(server, fake_slack, action_id, alert_id, user="U0OWNER01"):
    payload = load_payload("block_actions")
    payload["user"]["id"] = user
    payload["response_url"] = fake_slack.response_url("click")
    payload["actions"][0].update(action_id=action_id, value=str(alert_id), block_id="b")
    body = interactive_body(payload)
    with server.client() as client:
        return client.post("/slack/events", content=body, headers=signed_headers(body))


def submit_resolve(server, alert_id, cause, note, user="U0OWNER01"):
    payload = load_payload("view_submission")
    payload["user"]["id"] = user
    payload["view"]["callback_id"] = wire_ids.RESOLVE_VIEW
    payload["view"]["private_metadata"] = str(alert_id)
    values = {"note": {"note": {"type": "plain_text_input", "value": note}}}
    if cause:
        values["cause"] = {"cause": {"type": "static_select", "selected_option": {"value": cause}}}
    payload["view"]["state"]["values"] = values
    body = interactive_body(payload)
    with server.client() as client:
        return client.post("/slack/events", content=body, headers=signed_headers(body))


def test_an_alert_is_posted_once_with_its_buttons_and_escaped_details(slack_server, fake_slack):
    fire(slack_server)
    deliver(slack_server)
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.args["channel"] == "C0INTEG01"
    blocks = json.dumps(post.args["blocks"])
    assert "Nightly load failed: 12 rows rejected" in blocks
    assert "&lt;@U999&gt; &lt;!channel&gt; &amp; more" in blocks
    assert "<!channel>" not in blocks and "<@U999>" not in blocks
    assert "<@U0OWNER01>" in blocks  # only the bot mentions the owner
    for action in (wire_ids.ACK_ACTION, wire_ids.RESOLVE_ACTION, wire_ids.SILENCE_ACTION):
        assert action in blocks
    alert = the_alert(slack_server)
    assert (alert.channel, alert.message_ts) == ("C0INTEG01", post.response["ts"])


def test_a_repeat_updates_the_message_rather_than_posting_again(slack_server, fake_slack):
    fire(slack_server)
    deliver(slack_server)
    fire(slack_server, {**FIRING, "summary": "Nightly load failed: 14 rows rejected"})
    fire(slack_server, {**FIRING, "summary": "Nightly load failed: 15 rows rejected"})
    deliver(slack_server)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) >= 1
    last = json.dumps(updates[-1].args["blocks"])
    assert "15 rows rejected" in last and "Seen 3 times" in last


def test_the_acknowledge_button_acknowledges_and_updates_the_message(slack_server, fake_slack):
    fire(slack_server)
    deliver(slack_server)
    alert = the_alert(slack_server)
    assert click(slack_server, fake_slack, wire_ids.ACK_ACTION, alert.id).status_code == 200
    assert click(slack_server, fake_slack, wire_ids.ACK_ACTION, alert.id).status_code == 200
    deliver(slack_server)
    assert the_alert(slack_server).status == "acknowledged"
    assert transitions(slack_server) == [
        (None, "firing", None),
        ("firing", "acknowledged", "U0OWNER01"),
    ]
    [update] = fake_slack.calls_to("chat.update")
    assert update.args["ts"] == alert.message_ts
    assert "Acknowledged by <@U0OWNER01>" in json.dumps(update.args["blocks"])
    replies = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert [r.args["thread_ts"] for r in replies] == [alert.message_ts]
    # The double click is told, only to the clicker, that it was done already.
    [told] = fake_slack.responses_to("click")
    assert "already acknowledged" in told.args["text"]


def test_resolve_opens_a_modal_and_its_submission_records_the_root_cause(slack_server, fake_slack):
    fire(slack_server)
    deliver(slack_server)
    alert = the_alert(slack_server)
    assert click(slack_server, fake_slack, wire_ids.RESOLVE_ACTION, alert.id).status_code == 200
    [opened] = fake_slack.calls_to("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == wire_ids.RESOLVE_VIEW
    assert view["private_metadata"] == str(alert.id)

    missing = submit_resolve(slack_server, alert.id, "", "")
    assert missing.json()["response_action"] == "errors"
    assert set(missing.json()["errors"]) == {"cause", "note"}
    assert the_alert(slack_server).status == "firing"

    done = submit_resolve(slack_server, alert.id, "vendor", "Slate changed the export format")
    assert done.status_code == 200
    deliver(slack_server)
    resolved = the_alert(slack_server)
    assert (resolved.status, resolved.root_cause, resolved.resolved_by) == (
        "resolved",
        "vendor",
        "U0OWNER01",
    )
    assert resolved.root_cause_note == "Slate changed the export format"
    update = fake_slack.calls_to("chat.update")[-1]
    text = json.dumps(update.args["blocks"])
    assert "Root cause: *vendor*" in text and wire_ids.ACK_ACTION not in text
    reply = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts")][-1]
    assert "<@" not in reply.args["text"]


def test_a_late_acknowledge_after_a_resolve_changes_nothing(slack_server, fake_slack):
    fire(slack_server)
    deliver(slack_server)
    alert = the_alert(slack_server)
    submit_resolve(slack_server, alert.id, "data", "bad row in the feed")
    click(slack_server, fake_slack, wire_ids.ACK_ACTION, alert.id, user="U0BACKUP1")
    assert the_alert(slack_server).status == "resolved"
    assert [t[1] for t in transitions(slack_server)] == ["firing", "resolved"]


def test_rate_limits_and_server_errors_delay_but_never_lose_or_duplicate(
    slack_server, fake_slack, clock
):
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2)
    fake_slack.fail_next("chat.postMessage", status=500)
    fire(slack_server)
    for _ in range(10):
        deliver(slack_server)
        clock.now += timedelta(seconds=5)
    ok_posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.ok]
    assert len(ok_posts) == 1
    assert the_alert(slack_server).message_ts == ok_posts[0].response["ts"]


PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "hooks"


def post_file(server, path, name):
    with server.client() as client:
        headers = {**AUTH}
        return client.post(path, content=(PAYLOADS / name).read_bytes(), headers=headers)


def test_alertmanager_and_grafana_payloads_reach_slack_as_one_message_per_alert(
    slack_server, fake_slack
):
    assert (
        post_file(slack_server, "/hooks/alertmanager", "alertmanager_firing.json").json()["opened"]
        == 2
    )
    assert post_file(slack_server, "/hooks/grafana", "grafana_firing.json").json()["opened"] == 2
    # Alertmanager repeats a group until it resolves: no new messages for that.
    post_file(slack_server, "/hooks/alertmanager", "alertmanager_firing.json")
    deliver(slack_server)
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if not c.args.get("thread_ts")]
    channels = sorted(c.args["channel"] for c in posts)
    assert len(posts) == 4
    assert channels.count("C0INTEG01") == 2  # both crm alerts
    post_file(slack_server, "/hooks/alertmanager", "alertmanager_resolved.json")
    deliver(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        statuses = {
            a.key: a.status
            for a in session.scalars(select(Alert).where(Alert.integration_name == "crm"))
        }
    assert set(statuses.values()) == {"resolved"}
    replies = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert any("Resolved by its source" in r.args["text"] for r in replies)


def test_an_unknown_integration_goes_to_the_fallback_channel_saying_which_name(
    database_url, fake_slack, make_runtime
):
    settings = make_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
        INTEG_FALLBACK_CHANNEL="C0FALLBACK",
    )
    server = start_server(make_runtime(settings))
    try:
        fire(server, {**FIRING, "integration": "Payroll-Export"})
        deliver(server)
    finally:
        stop_server(server)
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.args["channel"] == "C0FALLBACK"
    assert "unknown integration `payroll-export`" in json.dumps(post.args["blocks"])


def test_hooks_answer_503_and_say_why_when_no_webhook_token_is_configured(
    database_url, make_runtime
):
    settings = make_settings(database_url, INTEG_WEBHOOK_TOKEN="")
    server = start_server(make_runtime(settings))
    try:
        with server.client() as client:
            response = client.post("/hooks/generic", json=FIRING, headers=AUTH)
    finally:
        stop_server(server)
    assert response.status_code == 503
    assert "INTEG_WEBHOOK_TOKEN" in response.json()["error"]


def test_an_alert_whose_post_failed_for_good_is_posted_when_it_fires_again(
    slack_server, fake_slack
):
    # The bot was not in the channel: the post fails for good, and nothing shows the alert.
    fake_slack.fail_next("chat.postMessage", error="not_in_channel")
    fire(slack_server)
    deliver(slack_server, rounds=2)
    assert the_alert(slack_server).message_ts is None
    # Someone invites the bot; the failure resolves, then fires again the next night.
    fire(slack_server, {**FIRING, "status": "resolved"})
    fire(slack_server)
    deliver(slack_server)
    alert = the_alert(slack_server)
    posted = [c for c in fake_slack.calls_to("chat.postMessage") if c.ok]
    assert [c.args["channel"] for c in posted if "thread_ts" not in c.args] == ["C0INTEG01"]
    assert alert.status == "firing" and alert.message_ts == posted[0].response["ts"]
