"""Logging changes from chat, end to end through the real app with Slack's own payload shapes:
`/integ log`, the message shortcut and its form, the :memo: reaction, and edits, deletions
and retried deliveries of the events that follow a logged message."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import wire_ids
from commands.changes import from_chat as change_log
from commands.changes.from_chat import SourceMessage
from commands.changes.messages import change_form
from storage.db import transaction
from storage.models import AuditEntry, Change, Integration, OutboxMessage
from tests.helpers.runtime import make_settings
from tests.helpers.slack_answers import block_kit_problems, strings_in
from tests.helpers.slack_signing import (
    event_body,
    interactive_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

CRM_CHANNEL = "C0INTEG01"
LMS_CHANNEL = "C0LMS0001"  # canvas-enroll and grades both post here
HOSTILE = (
    'Vendor\'s "maintenance"; DROP TABLE changes; -- *bold* _it_ ~gone~ `code` payload=1\n'
    "> quote :tada: 🎉 <!channel> <@U0OTHER1> <https://evil.example|click> & 100%\n\n  indented"
)


def slack_escaped(typed: str) -> str:
    # Slack escapes these three in every text it sends: slash commands and messages alike.
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post(server, body, **headers):
    with server.client() as client:
        return client.post(
            "/slack/events", content=body, headers={**signed_headers(body), **headers}
        )


def command(server, typed, user_id="U0OWNER01", channel_id=CRM_CHANNEL, sent=None):
    """`typed` as Slack sends it; `sent` is the text as sent when it holds Slack's markup."""
    text = sent if sent is not None else slack_escaped(typed)
    body = slash_command_body(text, user_id=user_id, channel_id=channel_id)
    response = post(server, body)
    assert response.status_code == 200, response.text
    return response.json()


def entries(server):
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(Change).order_by(Change.id)))


def deliver(server, rounds=6):
    for _ in range(rounds):
        server.runtime.outbox.run_once()
        server.runtime.deps.clock.now += timedelta(seconds=1.1)


def posts_in(fake_slack, channel):
    return [c for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == channel]


def shown_text(call):
    blocks = call.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return "\n".join(strings_in(blocks))


def as_payload(call):
    blocks = call.args["blocks"]
    return {
        "text": call.args["text"],
        "blocks": json.loads(blocks) if isinstance(blocks, str) else blocks,
    }


# -- /integ log ---------------------------------------------------------------------------------


def test_integ_log_stores_the_change_and_posts_it_with_what_else_it_may_affect(
    slack_server, fake_slack
):
    answer = command(slack_server, "log CRM config: Moved the nightly drop to SFTP")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith(":memo: Logged change #1 for `crm` (config); posted here.")
    [change] = entries(slack_server)
    assert (change.integration_id, change.category, change.source) == ("crm", "config", "command")
    assert change.summary == "Moved the nightly drop to SFTP"
    assert change.author == change.logged_by == "U0OWNER01"
    assert change.happened_at == slack_server.runtime.deps.clock()
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    text = shown_text(confirmation)
    assert ":memo: *Change #1 logged* for `crm` Slate to Banner admissions · Configuration" in text
    assert "> Moved the nightly drop to SFTP" in text
    # crm runs Slate -> Banner; the example catalog has other integrations on Banner.
    assert "Also touches banner: `advising` (owner <@U0CRMADM1>)" in text
    assert block_kit_problems(as_payload(confirmation)) == []


def test_integ_log_keeps_the_text_exactly_as_written_and_shows_it_escaped(slack_server, fake_slack):
    answer = command(slack_server, f"log crm {HOSTILE}")
    assert answer["text"].startswith(":memo: Logged change #1 for `crm` (other)")
    [change] = entries(slack_server)
    assert change.summary == HOSTILE
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    text = shown_text(confirmation)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "&lt;https://evil.example|click&gt;" in text and "<https://evil" not in text
    assert "<@U0OTHER1>" not in text and "&amp; 100%" in text
    assert "> \n>   indented" in text  # each line quoted, the blank one and the indent kept
    assert block_kit_problems(as_payload(confirmation)) == []


def test_integ_log_takes_three_thousand_characters_and_refuses_more_storing_nothing(
    slack_server, fake_slack
):
    long = "ü" * 2999 + "🎉"
    command(slack_server, f"log crm {long}")
    [change] = entries(slack_server)
    assert change.summary == long
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert block_kit_problems(as_payload(confirmation)) == []

    answer = command(slack_server, f"log crm {long}x")
    assert "3,001 characters; the log takes up to 3,000" in answer["text"]
    assert "Nothing was logged" in answer["text"]
    assert len(entries(slack_server)) == 1


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("log", "Usage: `/integ log"),
        ("log crm", "Usage: `/integ log"),
        ("log crmm moved it", "Did you mean `/integ log crm`"),
    ],
)
def test_integ_log_without_an_integration_or_a_text_stores_nothing(slack_server, typed, expected):
    assert expected in command(slack_server, typed)["text"]
    assert entries(slack_server) == []


def test_integ_log_from_the_integrations_channel_link_and_in_another_channel(
    slack_server, fake_slack
):
    # A channel picked from Slack's autocomplete arrives as a link to it.
    answer = command(
        slack_server,
        "log #integ-crm schedule moved to 03:00",
        channel_id="C0ELSEWHERE",
        sent="log <#C0INTEG01|integ-crm> schedule moved to 03:00",
    )
    assert "posted in <#C0INTEG01>." in answer["text"]
    [change] = entries(slack_server)
    assert (change.category, change.summary) == ("schedule", "moved to 03:00")


# -- the message shortcut -----------------------------------------------------------------------


def form_problems(view):
    """What Slack would refuse in a modal: the limits of views.open that the form touches."""
    problems = []
    for key in ("title", "submit", "close"):
        if len(view[key]["text"]) > 24:
            problems.append(f"{key} over 24 characters")
    if len(view["private_metadata"]) > 3000:
        problems.append("private_metadata over 3000 characters")
    if len(view["blocks"]) > 100:
        problems.append("over 100 blocks")
    others = [b for b in view["blocks"] if b["type"] != "input"]
    problems += block_kit_problems({"text": "form", "blocks": others})
    for block in (b for b in view["blocks"] if b["type"] == "input"):
        element = block["element"]
        if len(block["label"]["text"]) > 2000:
            problems.append(f"{block['block_id']}: label over 2000 characters")
        options = element.get("options", [])
        groups = element.get("option_groups", [])
        if len(options) > 100 or len(groups) > 100 or (options and groups):
            problems.append(f"{block['block_id']}: over 100 options, or options and groups")
        for group in groups:
            if len(group["options"]) > 100 or len(group["label"]["text"]) > 75:
                problems.append(f"{block['block_id']}: a group over its limits")
            options = options + group["options"]
        for option in options + [
            element.get("initial_option") or {"text": {"text": ""}, "value": ""}
        ]:
            if len(option["text"]["text"]) > 75 or len(option["value"]) > 150:
                problems.append(f"{block['block_id']}: option {option['value']!r} too long")
        if len(element.get("initial_value", "")) > element.get("max_length", 3000):
            problems.append(f"{block['block_id']}: initial value over max_length")
    return problems


def shortcut(server, fake_slack, message, channel=CRM_CHANNEL, user="U0BACKUP1"):
    payload = load_payload("message_shortcut")
    payload["callback_id"] = wire_ids.LOG_CHANGE_SHORTCUT
    payload["user"]["id"] = user
    payload["channel"] = {"id": channel, "name": "integ-crm"}
    payload["message_ts"] = message["ts"]
    payload["message"] = message
    payload["response_url"] = fake_slack.response_url("shortcut")
    response = post(server, interactive_body(payload))
    assert response.status_code == 200, response.text
    opened = fake_slack.calls_to("views.open")[-1]
    view = opened.args["view"]
    return json.loads(view) if isinstance(view, str) else view


def submit(server, view, *, integration, category, summary, ticket=None, user="U0BACKUP1"):
    payload = load_payload("view_submission")
    payload["user"]["id"] = user
    payload["view"].update(
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        blocks=view["blocks"],
    )
    values = {
        "integration": {
            "integration": {
                "type": "static_select",
                "selected_option": {"value": integration} if integration else None,
            }
        },
        "category": {
            "category": {
                "type": "static_select",
                "selected_option": {"value": category} if category else None,
            }
        },
        "summary": {"summary": {"type": "plain_text_input", "value": summary}},
        "ticket": {"ticket": {"type": "url_text_input", "value": ticket}},
    }
    payload["view"]["state"]["values"] = values
    response = post(server, interactive_body(payload))
    assert response.status_code == 200, response.text
    return response.json() if response.content else {}


def test_the_shortcut_opens_a_prefilled_form_and_its_submission_stores_the_entry(
    slack_server, fake_slack
):
    written = "Switched the SFTP host to sftp2 & rotated <keys>\nsecond line"
    message = fake_slack.add_message(CRM_CHANNEL, slack_escaped(written), "U0OWNER01")
    view = shortcut(slack_server, fake_slack, message)
    assert view["callback_id"] == wire_ids.LOG_CHANGE_VIEW
    assert form_problems(view) == []
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    # The channel belongs to crm alone, so crm is chosen; the text is as the person wrote it.
    assert blocks["integration"]["element"]["initial_option"]["value"] == "crm"
    assert blocks["summary"]["element"]["initial_value"] == written
    categories = [o["value"] for o in blocks["category"]["element"]["options"]]
    assert categories == [
        "config",
        "field-mapping",
        "schedule",
        "credentials",
        "vendor-update",
        "resync",
        "other",
    ]

    ack = submit(
        slack_server,
        view,
        integration="crm",
        category="credentials",
        summary=written,
        ticket="https://tickets.example.edu/INC-42",
    )
    assert ack.get("response_action") is None
    [change] = entries(slack_server)
    assert (change.integration_id, change.category, change.source) == (
        "crm",
        "credentials",
        "shortcut",
    )
    assert change.summary == written
    assert (change.author, change.logged_by) == ("U0OWNER01", "U0BACKUP1")
    assert change.happened_at == datetime.fromtimestamp(float(message["ts"]), tz=UTC)
    assert change.permalink == (
        f"https://{fake_slack.team_domain}.slack.com/archives/{CRM_CHANNEL}/"
        f"p{message['ts'].replace('.', '')}"
    )
    assert change.ticket_url == "https://tickets.example.edu/INC-42"
    assert (change.message_channel, change.message_ts) == (CRM_CHANNEL, message["ts"])
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert confirmation.args["thread_ts"] == message["ts"]
    text = shown_text(confirmation)
    assert "by <@U0OWNER01> (logged by <@U0BACKUP1>)" in text
    assert "&amp; rotated &lt;keys&gt;" in text

    # The same message again: the form says it is logged already, and nothing is added.
    again = submit(slack_server, view, integration="crm", category="config", summary="again")
    assert again["response_action"] == "errors"
    assert "already, as change #1" in again["errors"]["integration"]
    assert len(entries(slack_server)) == 1


def test_the_shortcut_on_a_reply_in_a_thread_confirms_in_that_thread(slack_server, fake_slack):
    parent = fake_slack.add_message(CRM_CHANNEL, "Vendor upgrade tonight", "U0OWNER01")
    reply = fake_slack.add_message(
        CRM_CHANNEL, "Done: v24.2 installed", "U0BACKUP1", thread_ts=parent["ts"]
    )
    view = shortcut(slack_server, fake_slack, reply)
    submit(slack_server, view, integration="crm", category="vendor-update", summary="v24.2")
    [change] = entries(slack_server)
    assert change.message_ts == reply["ts"] and change.author == "U0BACKUP1"
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert confirmation.args["thread_ts"] == parent["ts"]


def test_the_shortcut_in_a_shared_channel_preselects_nothing_and_refuses_bad_answers(
    slack_server, fake_slack
):
    message = fake_slack.add_message(LMS_CHANNEL, "changed the term mapping", "U0LMSADM1")
    view = shortcut(slack_server, fake_slack, message, channel=LMS_CHANNEL)
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert "initial_option" not in blocks["integration"]["element"]
    refused = submit(
        slack_server, view, integration=None, category=None, summary="  ", ticket="ftp://x"
    )
    assert refused["response_action"] == "errors"
    assert set(refused["errors"]) == {"integration", "category", "summary", "ticket"}
    refused = submit(slack_server, view, integration="grades", category="other", summary="x" * 3001)
    assert set(refused["errors"]) == {"summary"}
    assert entries(slack_server) == []


def test_the_form_groups_past_a_hundred_integrations_so_that_each_can_be_chosen():
    many = [
        Integration(id=f"integ-{n:03d}", name=f"Integration {n} " + "é" * 90) for n in range(250)
    ]
    view = change_form(
        many, "integ-170", "moved", "about", wire_ids.LOG_CHANGE_VIEW, {"channel": "C1"}
    )
    assert form_problems(view) == []
    element = next(b for b in view["blocks"] if b.get("block_id") == "integration")["element"]
    groups = element["option_groups"]
    assert [len(g["options"]) for g in groups] == [100, 100, 50]
    assert groups[0]["label"]["text"] == "integ-000 … integ-099"
    values = [o["value"] for g in groups for o in g["options"]]
    assert values == [i.id for i in many]
    assert element["initial_option"]["value"] == "integ-170"


def test_the_shortcut_elsewhere_confirms_in_the_integrations_channel(slack_server, fake_slack):
    message = fake_slack.add_message("C0RANDOM1", "bumped the API version", "U0OWNER01")
    view = shortcut(slack_server, fake_slack, message, channel="C0RANDOM1")
    submit(slack_server, view, integration="crm", category="config", summary="API v2 -> v3")
    deliver(slack_server)
    assert posts_in(fake_slack, "C0RANDOM1") == []
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert "thread_ts" not in confirmation.args
    assert "C0RANDOM1" in shown_text(confirmation)  # the link to the message


def test_a_link_keeps_its_address_and_a_nul_is_dropped_on_every_database(slack_server):
    command(
        slack_server,
        "log crm ticket ABC-1 and\x00 the docs",
        sent="log crm ticket <https://jira.example.edu/ABC-1|ABC-1> and\x00 the "
        "<https://docs.example.edu>",
    )
    [change] = entries(slack_server)
    assert change.summary == (
        "ticket ABC-1 (https://jira.example.edu/ABC-1) and the https://docs.example.edu"
    )


# -- the :memo: reaction ------------------------------------------------------------------------


def reaction(server, message, *, user, event_id, channel=CRM_CHANNEL, name="memo", retry=None):
    payload = load_payload("event_reaction_added")
    payload["event_id"] = event_id
    payload["event"].update(
        user=user,
        reaction=name,
        item={"type": "message", "channel": channel, "ts": message["ts"]},
        item_user=message.get("user"),
    )
    headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    response = post(server, event_body(payload), **(headers if retry else {}))
    assert response.status_code == 200, response.text
    return response


def test_a_memo_reaction_logs_the_message_once_however_many_react(slack_server, fake_slack):
    written = "Re-ran the admissions resync for term 202710 <@U0OTHER1> & co"
    message = fake_slack.add_message(CRM_CHANNEL, slack_escaped(written), "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0001")
    [change] = entries(slack_server)
    assert (change.integration_id, change.source, change.category) == ("crm", "reaction", "other")
    assert change.summary == written
    assert (change.author, change.logged_by) == ("U0OWNER01", "U0BACKUP1")
    assert change.permalink.endswith(f"p{message['ts'].replace('.', '')}")

    # A second person, and Slack retrying the first delivery: still one entry, one message.
    reaction(slack_server, message, user="U0OTHER1", event_id="Ev0002")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0001", retry=1)
    assert len(entries(slack_server)) == 1
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert confirmation.args["thread_ts"] == message["ts"]
    assert "&lt;@U0OTHER1&gt; &amp; co" in shown_text(confirmation)


def test_a_memo_on_a_reply_deep_in_a_long_thread_logs_that_reply(slack_server, fake_slack):
    parent = fake_slack.add_message(CRM_CHANNEL, "Upgrade night", "U0OWNER01")
    replies = [
        fake_slack.add_message(CRM_CHANNEL, f"step {n}", "U0BACKUP1", thread_ts=parent["ts"])
        for n in range(15)
    ]
    reaction(slack_server, replies[7], user="U0OWNER01", event_id="Ev0151")
    [change] = entries(slack_server)
    assert (change.summary, change.message_ts) == ("step 7", replies[7]["ts"])
    deliver(slack_server)
    [confirmation] = posts_in(fake_slack, CRM_CHANNEL)
    assert confirmation.args["thread_ts"] == parent["ts"]


def test_other_reactions_and_channels_of_no_integration_log_nothing_and_call_no_slack(
    slack_server, fake_slack
):
    message = fake_slack.add_message(CRM_CHANNEL, "lunch?", "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0101", name="heart_eyes")
    elsewhere = fake_slack.add_message("C0RANDOM1", "moved the printer", "U0OWNER01")
    reaction(slack_server, elsewhere, user="U0BACKUP1", event_id="Ev0102", channel="C0RANDOM1")
    assert entries(slack_server) == []
    assert fake_slack.calls_to("conversations.replies") == []


def test_a_memo_in_a_channel_of_two_integrations_asks_for_the_shortcut_once(
    slack_server, fake_slack
):
    message = fake_slack.add_message(LMS_CHANNEL, "moved the grade sync", "U0LMSADM1")
    reaction(slack_server, message, user="U0LMSADM1", event_id="Ev0201", channel=LMS_CHANNEL)
    reaction(slack_server, message, user="U0OWNER01", event_id="Ev0202", channel=LMS_CHANNEL)
    assert entries(slack_server) == []
    deliver(slack_server)
    [note] = posts_in(fake_slack, LMS_CHANNEL)
    assert note.args["thread_ts"] == message["ts"]
    assert "`canvas-enroll`, `grades`" in note.args["text"]


def test_two_reactions_at_the_same_moment_store_one_entry(database_url, make_runtime):
    if database_url.startswith("sqlite"):
        pytest.skip("one SQLite file serves one process; replicas share a PostgreSQL")
    runtimes = [make_runtime(make_settings(database_url)) for _ in range(4)]
    message = SourceMessage(CRM_CHANNEL, "1764150000.000100", "U0OWNER01", "rotated keys")
    start = threading.Barrier(len(runtimes))
    errors = []

    def react(runtime, user):
        start.wait()
        try:
            with transaction(runtime.deps.sessions) as session:
                change_log.log_from_reaction(session, message, user, None, runtime.deps.clock())
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [
        threading.Thread(target=react, args=(r, f"U0USER{n:03d}")) for n, r in enumerate(runtimes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with runtimes[0].deps.sessions() as session:
        assert len(session.scalars(select(Change)).all()) == 1
        confirmations = [
            m
            for m in session.scalars(select(OutboxMessage)).all()
            if "Change #" in str(m.payload.get("text"))
        ]
    assert len(confirmations) == 1


# -- edits, deletions and retries ---------------------------------------------------------------


def changed(server, message, text, previous, *, event_id, subtype=None):
    payload = load_payload("event_message_changed")
    payload["event_id"] = event_id
    event = payload["event"]
    event["channel"] = CRM_CHANNEL
    event["message"].update(ts=message["ts"], text=text, user=message["user"])
    if subtype:
        event["message"]["subtype"] = subtype
    event["previous_message"].update(ts=message["ts"], text=previous, user=message["user"])
    return post(server, event_body(payload))


def deleted(server, message, *, event_id):
    payload = load_payload("event_message_deleted")
    payload["event_id"] = event_id
    payload["event"].update(channel=CRM_CHANNEL, deleted_ts=message["ts"])
    payload["event"]["previous_message"].update(ts=message["ts"], text=message["text"])
    return post(server, event_body(payload))


def test_editing_a_logged_message_updates_its_entry_and_a_retry_does_not_undo_a_later_edit(
    slack_server, fake_slack, clock
):
    message = fake_slack.add_message(CRM_CHANNEL, "moved to sftp1", "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0301")
    assert changed(slack_server, message, "moved to sftp2", "moved to sftp1", event_id="Ev0302")
    [change] = entries(slack_server)
    assert change.summary == "moved to sftp2" and change.edited_at == clock.now
    changed(slack_server, message, "moved to sftp3 &amp; back", "moved to sftp2", event_id="Ev0303")
    # Slack retries the first edit after the second was applied: it must change nothing.
    changed(slack_server, message, "moved to sftp2", "moved to sftp1", event_id="Ev0302")
    [change] = entries(slack_server)
    assert change.summary == "moved to sftp3 & back"


def test_a_message_changed_with_the_same_words_is_not_an_edit(slack_server, fake_slack):
    # Slack sends message_changed when it unfurls a link or the thread gets a reply.
    message = fake_slack.add_message(CRM_CHANNEL, "see <https://status.example>", "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0351")
    same = "see <https://status.example>"
    assert changed(slack_server, message, same, same, event_id="Ev0352").status_code == 200
    [change] = entries(slack_server)
    assert change.edited_at is None and change.summary == "see https://status.example"


def test_an_edit_keeps_a_summary_rewritten_in_the_form_and_says_it_was_edited(
    slack_server, fake_slack, clock
):
    message = fake_slack.add_message(CRM_CHANNEL, "did a thing", "U0OWNER01")
    view = shortcut(slack_server, fake_slack, message)
    submit(slack_server, view, integration="crm", category="config", summary="Rewrote it")
    changed(slack_server, message, "did a different thing", "did a thing", event_id="Ev0401")
    [change] = entries(slack_server)
    assert change.summary == "Rewrote it" and change.edited_at == clock.now


def test_deleting_a_logged_message_marks_its_entry_deleted_and_keeps_it(
    slack_server, fake_slack, clock
):
    message = fake_slack.add_message(CRM_CHANNEL, "temporary mapping", "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0501")
    assert deleted(slack_server, message, event_id="Ev0502").status_code == 200
    [change] = entries(slack_server)
    assert change.deleted_at == clock.now and change.summary == "temporary mapping"


def test_a_thread_parent_deleted_under_its_replies_is_a_deletion(slack_server, fake_slack, clock):
    message = fake_slack.add_message(CRM_CHANNEL, "cutover plan", "U0OWNER01")
    reaction(slack_server, message, user="U0BACKUP1", event_id="Ev0601")
    changed(
        slack_server,
        message,
        "This message was deleted.",
        "cutover plan",
        event_id="Ev0602",
        subtype="tombstone",
    )
    [change] = entries(slack_server)
    assert change.deleted_at == clock.now and change.summary == "cutover plan"


def test_edits_and_deletions_of_messages_never_logged_are_answered_and_store_nothing(
    slack_server, fake_slack
):
    message = fake_slack.add_message(CRM_CHANNEL, "chatter", "U0OWNER01")
    assert (
        changed(slack_server, message, "chatter!", "chatter", event_id="Ev0701").status_code == 200
    )
    assert deleted(slack_server, message, event_id="Ev0702").status_code == 200
    plain = load_payload("event_message_changed")
    plain["event"] = {
        "type": "message",
        "channel": CRM_CHANNEL,
        "user": "U0OWNER01",
        "text": "hello",
        "ts": "1764150000.000200",
    }
    plain["event_id"] = "Ev0703"
    assert post(slack_server, event_body(plain)).status_code == 200
    assert entries(slack_server) == []


# -- who may log ----------------------------------------------------------------------------


def test_a_guests_memo_logs_nothing_and_tells_them_why_privately(slack_server, fake_slack):
    fake_slack.guest("U0GUEST01")
    message = fake_slack.add_message(CRM_CHANNEL, "Rotated the SFTP key", "U0OWNER01")
    reaction(slack_server, message, user="U0GUEST01", event_id="Ev0301")
    reaction(slack_server, message, user="U0GUEST01", event_id="Ev0301", retry=1)
    assert entries(slack_server) == []
    [told] = fake_slack.calls_to("chat.postEphemeral")  # once, though Slack sent it twice
    assert (told.args["channel"], told.args["user"]) == (CRM_CHANNEL, "U0GUEST01")
    assert "everything else is for full members of this workspace" in told.args["text"]
    assert fake_slack.calls_to("conversations.replies") == []  # the message was never read
    with slack_server.runtime.deps.sessions() as session:
        [row] = session.scalars(select(AuditEntry)).all()
    assert (row.actor, row.action, row.allowed, row.surface) == (
        "U0GUEST01",
        "log change",
        False,
        "reaction",
    )


def test_an_external_users_shortcut_opens_no_form_and_tells_them_why(slack_server, fake_slack):
    fake_slack.external("U0EXTERN1")
    message = fake_slack.add_message(CRM_CHANNEL, "Changed the mapping", "U0OWNER01")
    payload = load_payload("message_shortcut")
    payload["callback_id"] = wire_ids.LOG_CHANGE_SHORTCUT
    payload["user"]["id"] = "U0EXTERN1"
    payload["channel"] = {"id": CRM_CHANNEL, "name": "integ-crm"}
    payload["message_ts"] = message["ts"]
    payload["message"] = message
    payload["response_url"] = fake_slack.response_url("shortcut")
    assert post(slack_server, interactive_body(payload)).status_code == 200
    assert fake_slack.calls_to("views.open") == []
    [told] = fake_slack.responses_to("shortcut")
    assert "full members of this workspace" in told.args["text"]
    assert entries(slack_server) == []
