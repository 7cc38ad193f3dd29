"""Review nudges, with time driven by the injected clock: one nudge when a
review falls due, with the integration's facts; answered in Slack through the real app."""

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot import wire_ids
from bot.listeners.reviews import REVIEW_ACTIONS
from bot.listeners.slash_commands import answer
from commands.alerts.actions import acknowledge, resolve
from commands.alerts.ingest import ingest
from commands.alerts.payloads import parse_generic
from commands.catalog.state import review_due
from commands.reviews.messages import CHECKLIST_KEYS, review_modal
from commands.reviews.nudges import due_nudges, post_nudges
from storage.db import transaction
from storage.models import Alert, Change, Integration, OutboxMessage, Review, ReviewNudge
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings
from tests.helpers.slack_answers import block_kit_problems, shown, strings_in
from tests.helpers.slack_signing import (
    interactive_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

DUE_DAY = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # crm's first_due in the example catalog


def fire(runtime, key="nightly", integration="crm", summary="Load failed"):
    body = json.dumps(
        {"integration": integration, "summary": summary, "key": key, "status": "firing"}
    ).encode()
    with transaction(runtime.deps.sessions) as session:
        ingest(session, parse_generic(body), runtime.deps.clock(), None)


def alert_id(runtime, key="nightly"):
    with runtime.deps.sessions() as session:
        return session.scalars(select(Alert.id).where(Alert.key == key)).one()


def nudges(runtime, integration=None):
    with runtime.deps.sessions() as session:
        rows = session.scalars(select(ReviewNudge).order_by(ReviewNudge.id)).all()
    return [n for n in rows if integration is None or n.integration_id == integration]


def outbox_row(runtime, outbox_id):
    with runtime.deps.sessions() as session:
        return session.get(OutboxMessage, outbox_id)


def review_messages(runtime, channel="C0INTEG01"):
    """The review nudges queued for a channel (not their thread notes or edits)."""
    with runtime.deps.sessions() as session:
        ids = set(session.scalars(select(ReviewNudge.outbox_id)))
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [m for m in rows if m.id in ids and m.channel == channel]


def cycle(runtime, clock, key="nightly"):
    """The alert fires, is acknowledged after 10 minutes and resolved an hour after firing."""
    fire(runtime, key)
    clock.now += timedelta(minutes=10)
    with transaction(runtime.deps.sessions) as session:
        acknowledge(session, alert_id(runtime, key), "U0OWNER01", clock.now)
    clock.now += timedelta(minutes=50)
    with transaction(runtime.deps.sessions) as session:
        resolve(session, alert_id(runtime, key), "U0OWNER01", "data", "a bad row", clock.now)
    clock.now += timedelta(hours=2)


def test_a_monthly_review_falls_due_and_one_nudge_is_queued_with_its_facts(
    database_url, make_runtime, clock
):
    runtime = make_runtime(make_settings(database_url))
    for _ in range(3):
        cycle(runtime, clock)
    with transaction(runtime.deps.sessions) as session:
        session.add(
            Change(
                integration_id="crm",
                category="config",
                summary="moved to SFTP",
                author="U0OWNER01",
                happened_at=clock.now,
                logged_at=clock.now,
                source="command",
            )
        )
    runtime.tick()
    assert nudges(runtime) == []  # not due yet on 2026-11-26
    clock.now = DUE_DAY
    runtime.tick()
    runtime.tick()
    [nudge] = nudges(runtime, "crm")
    assert (nudge.due_on, nudge.status) == (date(2026, 12, 1), "open")
    [message] = review_messages(runtime)
    assert message.id == nudge.outbox_id and message.kind == "message"
    text = "\n".join(strings_in(message.payload["blocks"]))
    assert "<@U0OWNER01>, the monthly review of `crm`" in text
    assert "due since 2026-12-01" in text
    # Three firings of `nightly`, and the heartbeat the example catalog gives crm, missed.
    assert "*Alerts:* 2 (4 firings)" in text
    assert "*Heartbeat misses:* 1 · *Probe failures:* 0" in text
    assert "time to acknowledge median 10m, mean 10m (3)" in text
    assert "time to resolve median 1h, mean 1h (3)" in text
    assert "`nightly` ×3" in text
    assert "*Root causes:* data ×1" in text
    assert "*Changes logged:* 1 (config ×1)" in text
    assert ":white_check_mark: backups" in text and ":white_check_mark: runbook" in text
    assert "Does the test system still match production?" in text
    actions = {e.get("action_id") for e in message.payload["blocks"][-1]["elements"]}
    assert actions == {
        wire_ids.REVIEW_DONE_ACTION,
        wire_ids.REVIEW_SNOOZE_ACTION,
        wire_ids.REVIEW_REASSIGN_ACTION,
    }
    assert block_kit_problems(message.payload) == []
    # The quarterly and yearly reviews not yet due get no nudge.
    assert nudges(runtime, "hr-feed") == [] and nudges(runtime, "workday-okta") == []


def test_a_restart_or_a_second_process_does_not_post_a_nudge_again(
    database_url, make_runtime, clock
):
    settings = make_settings(database_url)
    first, second = make_runtime(settings), make_runtime(settings)
    clock.now = DUE_DAY
    first.tick()
    second.tick()
    first.close()
    restarted = make_runtime(settings)
    restarted.tick()
    clock.now += timedelta(days=1)
    restarted.tick()
    assert len(nudges(restarted, "crm")) == 1
    assert len(review_messages(restarted)) == 1
    # A process that read the due reviews before the other's row was there claims nothing:
    # the insert is the claim.
    [posted] = nudges(restarted, "crm")
    with transaction(restarted.deps.sessions) as session:
        stale = [("crm", posted.due_on)]
        assert post_nudges(session, stale, clock.now, REVIEW_ACTIONS) == 0
    assert len(nudges(restarted, "crm")) == 1


def test_two_processes_ticking_at_the_same_moment_post_each_nudge_once(
    database_url, make_runtime, clock
):
    if database_url.startswith("sqlite"):
        pytest.skip("one SQLite file serves one process; replicas share a PostgreSQL")
    settings = make_settings(database_url)
    runtimes = [make_runtime(settings) for _ in range(4)]
    clock.now = DUE_DAY
    start = threading.Barrier(len(runtimes))
    errors = []

    def tick(runtime):
        start.wait()
        try:
            with transaction(runtime.deps.sessions) as session:
                post_nudges(session, due_nudges(session, clock.now), clock.now, REVIEW_ACTIONS)
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(r,)) for r in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(nudges(runtimes[0], "crm")) == 1
    assert len(review_messages(runtimes[0])) == 1
    due = [n.integration_id for n in nudges(runtimes[0])]
    assert sorted(due) == sorted(set(due))


def test_an_integration_without_a_review_in_the_catalog_is_due_a_year_after_it_was_added(
    database_url, make_runtime, clock
):
    runtime = make_runtime(make_settings(database_url))
    with runtime.deps.sessions() as session:
        integ = session.get(Integration, "crm")
        integ.spec = {k: v for k, v in integ.spec.items() if k != "review"}
        assert review_due(integ, None) == (integ.added_at + timedelta(days=365)).date()


# -- in Slack, through the real app --------------------------------------------------------------


def deliver(server, rounds=8):
    clock = server.runtime.deps.clock
    for _ in range(rounds):
        server.runtime.outbox.run_once()
        clock.now += timedelta(seconds=1.1)


def posted_nudge(server, fake_slack):
    [nudge] = nudges(server.runtime, "crm")
    ts = outbox_row(server.runtime, nudge.outbox_id).result_ts
    assert ts is not None
    [post] = [c for c in fake_slack.calls_to("chat.postMessage") if c.response.get("ts") == ts]
    return nudge, post


def send_interactive(server, payload):
    body = interactive_body(payload)
    with server.client() as client:
        return client.post("/slack/events", content=body, headers=signed_headers(body))


def click(server, fake_slack, action_id, nudge, ts, user="U0OWNER01"):
    payload = load_payload("block_actions")
    payload["user"]["id"] = user
    payload["response_url"] = fake_slack.response_url("click")
    payload["container"].update(message_ts=ts, channel_id="C0INTEG01", is_ephemeral=False)
    payload["channel"]["id"] = "C0INTEG01"
    payload["actions"][0].update(action_id=action_id, value=str(nudge.id), block_id="b")
    return send_interactive(server, payload)


def submit_review(server, view, answers, notes, user="U0OWNER01"):
    payload = load_payload("view_submission")
    payload["user"]["id"] = user
    payload["view"].update(
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        blocks=view["blocks"],
    )
    values = {
        key: {key: {"type": "radio_buttons", "selected_option": {"value": value}}}
        for key, value in answers.items()
    }
    values["notes"] = {"notes": {"type": "plain_text_input", "value": notes}}
    payload["view"]["state"]["values"] = values
    return send_interactive(server, payload)


def nudge_due(server, fake_slack):
    server.runtime.deps.clock.now = DUE_DAY
    server.runtime.tick()
    deliver(server)
    return posted_nudge(server, fake_slack)


def test_mark_reviewed_records_the_answers_moves_the_due_date_and_edits_the_nudge(
    slack_server, fake_slack, clock
):
    nudge, post = nudge_due(slack_server, fake_slack)
    ts = post.response["ts"]
    response = click(slack_server, fake_slack, wire_ids.REVIEW_DONE_ACTION, nudge, ts)
    assert response.status_code == 200
    [opened] = fake_slack.calls_to("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == wire_ids.REVIEW_VIEW
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == [
        *CHECKLIST_KEYS,
        "notes",
    ]
    # Leaving a question unanswered is refused, naming it.
    partial = {key: "yes" for key in CHECKLIST_KEYS[:-1]}
    refused = submit_review(slack_server, view, partial, "")
    assert refused.json()["response_action"] == "errors"
    assert set(refused.json()["errors"]) == {CHECKLIST_KEYS[-1]}

    answers = {key: "yes" for key in CHECKLIST_KEYS} | {"runbook": "no"}
    note = "Runbook still names the old SFTP host <!channel> & «ops»"
    assert submit_review(slack_server, view, answers, note).status_code == 200
    deliver(slack_server)

    with slack_server.runtime.deps.sessions() as session:
        [review] = session.scalars(select(Review)).all()
        integ = session.get(Integration, "crm")
        assert (review.integration_id, review.reviewed_by) == ("crm", "U0OWNER01")
        assert review.answers == answers and review.notes == note
        assert review_due(integ, review.reviewed_at) == date(2026, 12, 31)
    [done] = nudges(slack_server.runtime, "crm")
    assert done.status == "done" and done.review_id == review.id
    [update] = [c for c in fake_slack.calls_to("chat.update") if c.args.get("ts") == ts]
    blocks = update.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    text = "\n".join(strings_in(blocks))
    assert "*Reviewed* by <@U0OWNER01> on 2026-12-01. Next review due 2026-12-31." in text
    assert "*Follow-ups:* Is the runbook current?" in text
    assert "&lt;!channel&gt; &amp; «ops»" in text and "<!channel>" not in text
    assert not any(b["type"] == "actions" for b in blocks)
    # The follow-up is listed by `/integ reviews`; no second nudge for the same cycle.
    listing = shown(answer_dict(slack_server, "reviews"))
    assert "`crm` follow-up from 2026-12-01: Is the runbook current?" in listing
    slack_server.runtime.tick()
    assert len(nudges(slack_server.runtime, "crm")) == 1


def answer_dict(server, text):
    reply = answer(server.runtime.deps, text, "U0OWNER01", "C0INTEG01")
    return {"text": reply.text, "blocks": reply.blocks}


def test_snooze_moves_the_nudge_a_week_twice_then_refuses_and_it_comes_back_when_it_ends(
    slack_server, fake_slack, clock
):
    nudge, post = nudge_due(slack_server, fake_slack)
    ts = post.response["ts"]
    for _ in range(3):
        click(slack_server, fake_slack, wire_ids.REVIEW_SNOOZE_ACTION, nudge, ts)
    told = [r.args["text"] for r in fake_slack.responses_to("click")]
    assert told[0] == told[1] == "Snoozed until 2026-12-08."
    assert "cannot be snoozed again" in told[2]
    [snoozed] = nudges(slack_server.runtime, "crm")
    assert (snoozed.status, snoozed.snoozes, snoozed.snoozed_until) == (
        "snoozed",
        2,
        date(2026, 12, 8),
    )
    deliver(slack_server)
    edits = [c for c in fake_slack.calls_to("chat.update") if c.args.get("ts") == ts]
    assert "Snoozed until 2026-12-08 by <@U0OWNER01> (2 of 2)" in json.dumps(
        edits[-1].args["blocks"], ensure_ascii=False
    )
    # The snooze ends: the nudge is open again and its thread says so, once.
    clock.now = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    slack_server.runtime.tick()
    slack_server.runtime.tick()
    deliver(slack_server)
    assert nudges(slack_server.runtime, "crm")[0].status == "open"
    notes = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert len(notes) == 1 and "The snooze is over: <@U0OWNER01>" in notes[0].args["text"]


def test_an_unanswered_nudge_is_repeated_every_three_days_then_with_the_backups(
    slack_server, fake_slack, clock
):
    nudge, post = nudge_due(slack_server, fake_slack)
    ts = post.response["ts"]

    def reminders():
        return [
            c.args["text"]
            for c in fake_slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == ts
        ]

    for days, expected in [(1, 0), (3, 1), (4, 1), (6, 2), (9, 3), (10, 3)]:
        clock.now = DUE_DAY + timedelta(days=days, minutes=1)
        slack_server.runtime.tick()
        slack_server.runtime.tick()  # a second tick, or a second process, repeats nothing
        deliver(slack_server)
        assert len(reminders()) == expected, days
    first, second, third = reminders()
    assert first.startswith(":alarm_clock: Reminder: this review has been waiting since 2026-12-01")
    assert "<@U0OWNER01>, can you do it?" in first
    assert "Backups" not in first and "Backups" not in second
    assert third.endswith("Backups: <@U0BACKUP1>, admissions-it@example.edu.")
    [row] = nudges(slack_server.runtime, "crm")
    assert row.reminders == 3


def test_a_snooze_ending_and_a_reminder_make_at_most_one_message_a_day(
    slack_server, fake_slack, clock
):
    nudge, post = nudge_due(slack_server, fake_slack)
    ts = post.response["ts"]
    click(slack_server, fake_slack, wire_ids.REVIEW_SNOOZE_ACTION, nudge, ts)
    clock.now = DUE_DAY + timedelta(days=7, hours=1)
    slack_server.runtime.tick()
    deliver(slack_server)
    clock.now += timedelta(hours=12)
    slack_server.runtime.tick()
    deliver(slack_server)
    notes = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert len(notes) == 1 and "snooze is over" in notes[0].args["text"]


def test_reassign_records_who_and_mentions_them_in_the_thread(slack_server, fake_slack, clock):
    nudge, post = nudge_due(slack_server, fake_slack)
    ts = post.response["ts"]
    payload = load_payload("block_actions")
    payload["user"]["id"] = "U0OWNER01"
    payload["response_url"] = fake_slack.response_url("click")
    payload["container"].update(message_ts=ts, channel_id="C0INTEG01", is_ephemeral=False)
    payload["actions"] = [
        {
            "type": "users_select",
            "action_id": wire_ids.REVIEW_REASSIGN_ACTION,
            "block_id": f"review-{nudge.id}",
            "selected_user": "U0BACKUP1",
            "action_ts": "1796530385.194939",
        }
    ]
    assert send_interactive(slack_server, payload).status_code == 200
    deliver(slack_server)
    [reassigned] = nudges(slack_server.runtime, "crm")
    assert (reassigned.assigned_to, reassigned.assigned_by) == ("U0BACKUP1", "U0OWNER01")
    [note] = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert (
        note.args["text"]
        == ":bust_in_silhouette: <@U0OWNER01> asked <@U0BACKUP1> to do this review."
    )
    [update] = [c for c in fake_slack.calls_to("chat.update") if c.args.get("ts") == ts]
    text = json.dumps(update.args["blocks"], ensure_ascii=False)
    assert "<@U0BACKUP1>, the monthly review" in text
    assert "Reassigned to <@U0BACKUP1> by <@U0OWNER01>" in text
    assert fake_slack.responses_to("click")[0].args["text"] == "Reassigned to <@U0BACKUP1>."


def test_integ_review_opens_the_review_form_now_with_the_commands_trigger_id(
    slack_server, fake_slack
):
    # As its owner: only an integration's responders may review it.
    body = slash_command_body("review crm", user_id="U0OWNER01")
    with slack_server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
        assert response.status_code == 200
        [opened] = fake_slack.calls_to("views.open")
        view = opened.args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert view["callback_id"] == wire_ids.REVIEW_VIEW
        assert json.loads(view["private_metadata"]) == {"integration": "crm", "nudge": None}
        body = slash_command_body("review crn")
        missed = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert "Did you mean `/integ review crm`" in shown(missed.json())
    assert len(fake_slack.calls_to("views.open")) == 1


def test_integ_reviews_lists_due_and_overdue_reviews_grouped_by_owner(slack_server, clock):
    clock.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    reply = answer_dict(slack_server, "reviews")
    assert block_kit_problems(reply) == []
    text = shown(reply)
    owner = text.index("*<@U0OWNER01>*")
    assert text.index("`crm` Slate to Banner admissions: *overdue* since 2026-12-01 (2d)") > owner
    assert "`grades` Canvas final grades to Banner: due 2026-12-15" in text
    assert "hr-feed" not in text  # due in January


def mrkdwn_texts(value):
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            yield value["text"]
        for item in value.values():
            yield from mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_texts(item)


# -- Block Kit limits ---------------------------------------------------------------------------


def test_the_nudge_and_the_modal_stay_within_block_kit_limits_with_long_and_hostile_input(
    database_url, make_runtime, clock, tmp_path: Path
):
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text(encoding="utf-8"))
    crm = next(i for i in data["integrations"] if i["id"] == "crm")
    crm["name"] = "Slate → Banner «admissions» 🎓 <@U999> & <!channel> " + "ß" * 40
    crm["runbook"] = ("*Schritt* 🚑 <!here> " * 250)[:5000]
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    for n in range(200):
        key = f"Fehler {n} <!channel> ☃ " + "é" * 300
        for _ in range(3):
            fire(runtime, key=key, summary=key)
            with runtime.deps.sessions() as session:
                alert = session.scalars(select(Alert).where(Alert.key == key)).one()
            with transaction(runtime.deps.sessions) as session:
                resolve(session, alert.id, "U0OWNER01", "data", "x", clock.now)
    clock.now = DUE_DAY
    runtime.tick()
    [message] = review_messages(runtime)
    assert block_kit_problems(message.payload) == []
    # Plain text never pings; every mrkdwn text must have outside text escaped.
    shown_mrkdwn = "\n".join(mrkdwn_texts(message.payload["blocks"]))
    assert "*Alerts:* 201 (601 firings)" in shown_mrkdwn  # and crm's heartbeat, missed
    assert "&lt;@U999&gt; &amp; &lt;!channel&gt;" in shown_mrkdwn
    for ping in ("<!channel>", "<@U999>", "<!here>"):
        assert ping not in shown_mrkdwn
    for block in message.payload["blocks"]:
        for element in block.get("elements", []):
            assert len(str(element.get("value", ""))) <= 2000
    with runtime.deps.sessions() as session:
        modal = review_modal(session.get(Integration, "crm"), wire_ids.REVIEW_VIEW, 1)
    assert len(modal["blocks"]) <= 100 and len(modal["title"]["text"]) <= 24
    assert block_kit_problems({"text": "x", "blocks": modal["blocks"][:1]}) == []
    assert "<!channel>" not in "\n".join(mrkdwn_texts(modal["blocks"]))
    for block in modal["blocks"][1:]:
        assert len(block["label"]["text"]) <= 2000
