"""`/integ changes`: the change log a page at a time, newest first, through the real app:
typed as a signed slash command, paged with the buttons' signed clicks, and read as the
person who asked would see it."""

from datetime import timedelta

import pytest

from bot import wire_ids
from bot.listeners.slash_commands import answer
from commands.changes.listing import PAGE_SIZE, parse
from commands.core.render.plain import blocks_to_text
from tests.helpers.changes import HOSTILE, NOW, log
from tests.helpers.runtime import make_settings
from tests.helpers.slack_answers import block_kit_problems, send
from tests.helpers.slack_signing import interactive_body, load_payload, signed_headers


def shown(reply):
    """The mrkdwn the person sees, in order, and each button's label."""
    parts = []
    for block in reply["blocks"]:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            text = element.get("text")
            parts.append(text["text"] if isinstance(text, dict) else text)
    return "\n".join(parts)


def entries(reply):
    """The summaries shown, in order (each entry's section: a line about it, then it)."""
    return [
        block["text"]["text"].split("\n", 1)[1]
        for block in reply["blocks"]
        if block["type"] == "section" and block["text"]["text"].startswith("*20")
    ]


def buttons(reply):
    return {
        element["text"]["text"]: element
        for block in reply["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


def click(server, fake_slack, button, name="page"):
    """Click a button of the list as Slack sends the click; what replaced the list."""
    payload = load_payload("block_actions")
    payload["user"]["id"] = "U0OWNER01"
    payload["response_url"] = fake_slack.response_url(name)
    payload["container"].update(channel_id="C0INTEG01", is_ephemeral=True)
    payload["channel"]["id"] = "C0INTEG01"
    payload["actions"][0].update(action_id=button["action_id"], value=button["value"], block_id="b")
    before = len(fake_slack.responses_to(name))
    body = interactive_body(payload)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    responses = fake_slack.responses_to(name)
    assert len(responses) == before + 1
    replaced = responses[-1].args
    assert replaced["replace_original"] is True
    assert replaced["response_type"] == "ephemeral"
    assert block_kit_problems(replaced) == []
    return replaced


@pytest.fixture
def client(slack_server):
    with slack_server.client() as http:
        yield http


def test_changes_are_listed_newest_first_ten_a_page_and_the_buttons_page_through_them(
    slack_server, fake_slack, client
):
    runtime = slack_server.runtime
    # Logged oldest first, except one logged last that happened three weeks ago: the order
    # is when changes happened, not when they were logged.
    for n in reversed(range(23)):
        # c09 and c10 happened at the same moment, across the first page boundary; the one
        # logged later comes first, on every page view alike.
        hours = 9 if n == 10 else n
        log(runtime, "crm", f"c{n:02d}", at=NOW - timedelta(hours=hours))
    log(runtime, "crm", "late entry", at=NOW - timedelta(days=21))

    first = send(client, "changes crm")
    assert shown(first).startswith(
        "*Changes to `crm` Slate to Banner admissions* in the last 30 days: 24 logged, "
        "newest first. Page 1 of 3."
    )
    assert entries(first) == [f"c{n:02d}" for n in range(10)]
    assert first["blocks"][-1]["elements"][0]["text"] == "Older: `/integ changes crm 30d 2`"
    # The first page has nothing newer: only Older.
    assert list(buttons(first)) == ["Older →"]
    assert buttons(first)["Older →"]["action_id"] == wire_ids.CHANGES_PAGE_ACTION
    assert buttons(first)["Older →"]["value"] == "crm 30d 2"

    second = click(slack_server, fake_slack, buttons(first)["Older →"])
    assert entries(second) == [f"c{n:02d}" for n in range(10, 20)]
    assert "Page 2 of 3." in shown(second)
    assert list(buttons(second)) == ["← Newer", "Older →"]
    assert buttons(second)["← Newer"]["action_id"] == wire_ids.CHANGES_PAGE_NEWER_ACTION
    assert shown(second).endswith(
        "Newer: `/integ changes crm 30d 1` · Older: `/integ changes crm 30d 3`"
    )

    last = click(slack_server, fake_slack, buttons(second)["Older →"])
    assert entries(last) == ["c20", "c21", "c22", "late entry"]
    assert list(buttons(last)) == ["← Newer"]

    back = click(slack_server, fake_slack, buttons(last)["← Newer"])
    assert entries(back) == entries(second)
    assert len(entries(first)) == PAGE_SIZE


def test_a_typed_page_number_opens_that_page_and_one_past_the_end_the_last(client, slack_server):
    for n in range(12):
        log(slack_server.runtime, "grades", f"g{n:02d}", at=NOW - timedelta(minutes=n))
    assert entries(send(client, "changes grades 30d 2")) == ["g10", "g11"]
    # Any order: a page, a window and a name are told apart by their form.
    assert entries(send(client, "changes 2 GRADES")) == ["g10", "g11"]
    beyond = send(client, "changes grades 9")
    assert entries(beyond) == ["g10", "g11"] and "Page 2 of 2." in shown(beyond)
    assert entries(send(client, "changes grades 0")) == [f"g{n:02d}" for n in range(10)]
    # A single page has no buttons at all: an actions block needs one.
    assert buttons(send(client, "changes grades 7d 1")) != {}
    log(slack_server.runtime, "crm", "alone")
    only = send(client, "changes crm")
    assert entries(only) == ["alone"] and buttons(only) == {}
    assert [b["type"] for b in only["blocks"]] == ["section", "section"]


def test_the_window_defaults_to_30_days_and_an_integration_narrows_the_list(client, slack_server):
    runtime = slack_server.runtime
    log(runtime, "crm", "crm yesterday", at=NOW - timedelta(days=1))
    log(runtime, "grades", "grades two days ago", at=NOW - timedelta(days=2))
    log(runtime, "crm", "crm ten days ago", at=NOW - timedelta(days=10))
    log(runtime, "crm", "crm forty days ago", at=NOW - timedelta(days=40))
    log(runtime, "hr-feed", "hr a year ago", at=NOW - timedelta(days=400))

    every = send(client, "changes")
    assert entries(every) == ["crm yesterday", "grades two days ago", "crm ten days ago"]
    assert shown(every).startswith("*Changes to all integrations* in the last 30 days: 3 logged")
    assert entries(send(client, "changes 7d")) == ["crm yesterday", "grades two days ago"]
    assert entries(send(client, "changes CRM 45D")) == [
        "crm yesterday",
        "crm ten days ago",
        "crm forty days ago",
    ]
    assert entries(send(client, "changes all")) == [
        "crm yesterday",
        "grades two days ago",
        "crm ten days ago",
        "crm forty days ago",
        "hr a year ago",
    ]
    # The integration's channel, linked as Slack sends a channel mention, stands for it.
    assert entries(send(client, "changes <#C0INTEG01|integ-crm> 1d")) == ["crm yesterday"]
    assert shown(send(client, "changes hr-feed")) == (
        "No changes logged for `hr-feed` Workday to Banner HR feed in the last 30 days. "
        "`/integ changes hr-feed all` looks at every one ever logged."
    )
    assert entries(send(client, "changes hr-feed all")) == ["hr a year ago"]


def test_an_unknown_integration_gets_a_suggestion_and_a_bad_query_the_usage(client):
    assert shown(send(client, "changes crn")) == (
        "No integration called `crn`. Did you mean `/integ changes crm`?"
    )
    assert shown(send(client, "changes crm 0d")).startswith(
        "A window is 1 to 36,500 days, like `7d` or `30d`; or `all`."
    )
    told = shown(send(client, "changes crm grades"))
    assert told.startswith("Give one integration.")
    assert "Usage: `/integ changes [integration] [Nd]`" in told
    assert shown(send(client, "changes 7d all")).startswith("Give one window")


def test_a_hostile_summary_is_shown_escaped_and_cut_within_block_kit_limits(
    client, slack_server, fake_slack
):
    runtime = slack_server.runtime
    for n in range(PAGE_SIZE + 1):
        log(
            runtime,
            "crm",
            HOSTILE,
            at=NOW - timedelta(minutes=n),
            permalink="javascript:alert(1)" if n == 0 else None,
            ticket_url="https://tickets.example.edu/CHG-1|<!here>" if n == 0 else None,
            author="U0OTHER2" if n == 0 else "U0OWNER01",
        )
    reply = send(client, "changes crm")  # `send` checks every Block Kit limit
    text = shown(reply)
    for ping in ("<!channel>", "<@U0OTHER1>", "<https://evil.example", "<!here>"):
        assert ping not in text
    assert "&lt;!channel&gt; &lt;@U0OTHER1&gt; &lt;https://evil.example|click&gt; &amp; 100%" in (
        text
    )
    assert 'Vendor\'s "maintenance"; DROP TABLE changes; -- *bold* `code` &gt; quote' in text
    assert ":tada: 🎉" in text
    shown_entries = entries(reply)
    assert len(shown_entries) == PAGE_SIZE
    assert all(e.endswith("…") and len(e) <= 1500 for e in shown_entries)
    # The author is mentioned (an ephemeral answer notifies no one); a link that is not a
    # web address is shown as text, and a real one cannot carry a label of its own.
    first = reply["blocks"][1]["text"]["text"]
    assert "· <@U0OTHER2> · message `javascript:alert(1)`" in first
    assert "<https://tickets.example.edu/CHG-1%7C%3C!here%3E|ticket>" in first
    older = click(slack_server, fake_slack, buttons(reply)["Older →"])
    assert "<!channel>" not in shown(older) and len(entries(older)) == 1


def test_deleted_entries_are_hidden_and_edited_ones_marked_with_their_links(client, slack_server):
    runtime = slack_server.runtime
    log(
        runtime,
        "crm",
        "moved the nightly reconciliation to 03:00",
        at=NOW - timedelta(hours=1),
        category="schedule",
        source="shortcut",
        permalink="https://integ-test.slack.com/archives/C0INTEG01/p1796530385194939",
        ticket_url="https://tickets.example.edu/CHG-42",
        message_channel="C0INTEG01",
        message_ts="1796530385.194939",
        edited_at=NOW,
    )
    log(runtime, "crm", "a message deleted in Slack", deleted_at=NOW)
    log(runtime, "crm", "Silenced for 2h", category="silence", author=None, source="bot")
    reply = send(client, "changes crm")
    assert entries(reply) == ["Silenced for 2h", "moved the nightly reconciliation to 03:00"]
    assert "2 logged" in shown(reply)
    silenced, moved = (b["text"]["text"] for b in reply["blocks"][1:3])
    assert silenced.startswith("*2026-11-26 09:30 UTC* · `crm` · silence · _the bot_\n")
    assert moved.startswith(
        "*2026-11-26 08:30 UTC* · `crm` · schedule · <@U0OWNER01> _(edited)_ · "
        "<https://integ-test.slack.com/archives/C0INTEG01/p1796530385194939|message> · "
        "<https://tickets.example.edu/CHG-42|ticket>\n"
    )
    assert "(edited)" not in silenced


def test_the_console_is_told_the_commands_for_the_other_pages_instead_of_buttons(
    database_url, make_runtime
):
    runtime = make_runtime(make_settings(database_url))
    for n in range(11):
        log(runtime, "payments", f"p{n:02d}", at=NOW - timedelta(minutes=n))
    reply = answer(runtime.deps, "changes payments", "U0SHELL", None)
    assert not any(block["type"] == "actions" for block in reply.blocks)
    text = blocks_to_text(reply.blocks, reply.text)
    assert text.splitlines()[-1].strip() == "Older: `/integ changes payments 30d 2`"
    assert "p00" in text and "p10" not in text
    assert reply.text == "Changes to payments in the last 30 days: page 1 of 2"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("", ("", 30, 1)),
        ("crm", ("crm", 30, 1)),
        ("7D crm 3", ("crm", 7, 3)),
        ("all", ("", None, 1)),
        ("3 all crm", ("crm", None, 3)),
        ("crm 0", ("crm", 30, 1)),
    ],
)
def test_the_arguments_are_told_apart_by_their_form(typed, expected):
    query = parse(typed)
    assert not isinstance(query, str)
    assert (query.integration, query.days, query.page) == expected


@pytest.mark.parametrize("typed", ["crm grades", "7d 30d", "1 2", "36501d", "0d"])
def test_arguments_that_cannot_be_read_are_refused(typed):
    assert isinstance(parse(typed), str)
