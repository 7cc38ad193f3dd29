"""What arrives at `/slack/events` that should not be trusted: forged or stale signatures,
and text no one expected. None of it may change the database, crash the server, miss Slack's
3-second deadline, or make the bot ping a channel or post a link on someone's behalf."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from storage.models import Base, Integration
from tests.helpers.slack_answers import SLACK_DEADLINE, send, shown, strings_in
from tests.helpers.slack_signing import signed_headers, slash_command_body


def row_counts(server: Any) -> dict[str, int]:
    with server.runtime.deps.sessions() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


def integrations_snapshot(server: Any) -> list[tuple[Any, ...]]:
    with server.runtime.deps.sessions() as session:
        rows = session.execute(
            select(
                Integration.id, Integration.name, Integration.updated_at, Integration.removed_at
            ).order_by(Integration.id)
        ).all()
    return [tuple(row) for row in rows]


@pytest.fixture
def client(slack_server) -> Iterator[httpx.Client]:
    with slack_server.client() as http:
        yield http


def post_raw(client: httpx.Client, body: str, headers: dict[str, str]) -> httpx.Response:
    started = time.perf_counter()
    response = client.post("/slack/events", content=body, headers=headers)
    assert time.perf_counter() - started < SLACK_DEADLINE
    return response


# -- signatures ----------------------------------------------------------------------------

FORGED_COMMANDS = ["status crm", "silence crm 8h nobody will notice", "ack 1", "help"]


def _assert_refused_and_nothing_changed(slack_server, client, fake_slack, body, headers):
    counts, calls = row_counts(slack_server), fake_slack.calls
    response = post_raw(client, body, headers)
    assert response.status_code == 401, response.text
    assert "Slate to Banner" not in response.text
    assert row_counts(slack_server) == counts
    assert fake_slack.calls == calls
    assert not [c for c in fake_slack.calls if c.method.startswith("chat.")]


def test_a_command_signed_with_the_wrong_secret_is_refused_and_changes_nothing(
    slack_server, client, fake_slack
):
    for command in FORGED_COMMANDS:
        body = slash_command_body(command)
        headers = signed_headers(body, secret="not-the-signing-secret")
        _assert_refused_and_nothing_changed(slack_server, client, fake_slack, body, headers)


def test_a_command_whose_body_was_altered_after_signing_is_refused(
    slack_server, client, fake_slack
):
    headers = signed_headers(slash_command_body("help"))
    body = slash_command_body("silence crm 8h")
    _assert_refused_and_nothing_changed(slack_server, client, fake_slack, body, headers)


def test_a_command_without_signature_headers_is_refused(slack_server, client, fake_slack):
    body = slash_command_body("status crm")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    _assert_refused_and_nothing_changed(slack_server, client, fake_slack, body, headers)


def test_a_command_signed_more_than_five_minutes_away_from_now_is_refused(
    slack_server, client, fake_slack
):
    # Correctly signed, but replayed later (or sent from a clock far in the future).
    body = slash_command_body("status crm")
    for age_seconds in [5 * 60 + 30, 24 * 3600, -(5 * 60 + 30)]:
        headers = signed_headers(body, timestamp=int(time.time()) - age_seconds)
        _assert_refused_and_nothing_changed(slack_server, client, fake_slack, body, headers)


def test_a_command_signed_a_minute_ago_is_still_answered(client):
    body = slash_command_body("status crm")
    response = post_raw(client, body, signed_headers(body, timestamp=int(time.time()) - 60))
    assert response.status_code == 200
    assert response.json()["text"] == "Slate to Banner admissions (crm) is ok"


# -- hostile and unexpected text -----------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " \t ",
    "\u00a0status\u00a0crm\u00a0",
    "status " + "x" * 10_240,
    "x" * 10_240,
    "🚀" * 2_600,
    "status " + "y" * 3_990,
    "list " + "z" * 3_990,
    "support " + "é" * 3_990,
    "integ " * 600 + "status crm",
    "status 🚀 ünïcödé",
    "list ünïcödé 🚀",
    "🚀 status",
    "status <@U123>",
    "status <@U123|someone>",
    "status <#C0INTEG01|integ-crm>",
    "status <#C0LMS0001|lms>",
    "status <#C999|nowhere>",
    "status &amp;",
    "status &lt;script&gt;alert(1)&lt;/script&gt;",
    "status &amp;lt;b&amp;gt;",
    "status <!channel>",
    "status <!here>",
    "status <!everyone>",
    "status <!subteam^S0123|@oncall>",
    "status &lt;!channel&gt;",
    "list <!here|here>",
    "owners <!channel>",
    "support <!everyone>",
    "runbook <https://evil.example/phish|click me>",
    "info <mailto:a@b.example|a@b.example>",
    "<!channel>",
    "status `crm`",
    "status *crm*",
    "status crm; DROP TABLE integrations; --",
    "status ' OR '1'='1",
    "list %",
    "list _",
    "status \\",
    "status \x00",
    "status crm\x00crm",
    "status \ud7ff\ufffd\u200b",
    "drop table integrations",
    "stauts crm",
    "alerts <!channel>",
    "/integ /integ /integ",
]


def test_hostile_text_is_answered_in_time_and_leaves_server_and_database_intact(
    slack_server, client, database_url
):
    counts, integrations = row_counts(slack_server), integrations_snapshot(slack_server)
    for command in HOSTILE_TEXT:
        answer = send(client, command)  # within 3 s, valid Block Kit, 200
        for s in strings_in(answer):
            assert "<!" not in s, f"/integ {command[:40]!r} answered with a broadcast: {s!r}"
            assert "<@U123" not in s and "<https://evil" not in s and "<mailto:" not in s
        assert "went wrong" not in answer["text"], command[:40]
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["database"] is True
    assert row_counts(slack_server) == counts
    assert integrations_snapshot(slack_server) == integrations
    if database_url.startswith("sqlite"):
        with slack_server.runtime.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_no_break_spaces_tabs_and_nul_characters_separate_words(client):
    for command in [
        "\u00a0status\u00a0crm\u00a0",
        "status\tcrm",
        "status\x00crm",
        "status crm\x00",
    ]:
        assert send(client, command)["text"] == "Slate to Banner admissions (crm) is ok", command


def test_ten_kilobytes_of_text_are_refused_politely(client):
    answer = send(client, "status " + "x" * 10_240)
    assert shown(answer) == (
        "That command is 10,247 characters long, too long to be one I know. "
        "`/integ help` lists what I understand."
    )


def test_an_unknown_unicode_name_is_echoed_back_as_typed(client):
    assert shown(send(client, "status 🚀 ünïcödé")) == (
        "No integration called `🚀`. `/integ list` shows every integration."
    )
    assert shown(send(client, "status ünïcödé")) == (
        "No integration called `ünïcödé`. `/integ list` shows every integration."
    )


def test_a_user_mention_as_the_name_is_not_echoed_as_a_mention(client):
    answer = send(client, "status <@U123>")
    assert shown(answer) == "No integration called `U123`. `/integ list` shows every integration."


def test_a_channel_link_stands_for_the_one_integration_posting_in_that_channel(client):
    for verb, expected in [
        ("status", "Slate to Banner admissions (crm) is ok"),
        ("owners", "Owners of Slate to Banner admissions"),
        ("runbook", "Runbook for Slate to Banner admissions"),
        ("info", "Slate to Banner admissions (crm)"),
        ("support", "Support for Slate to Banner admissions"),
    ]:
        assert send(client, f"{verb} <#C0INTEG01|integ-crm>")["text"] == expected


def test_a_channel_link_to_a_channel_shared_by_two_integrations_suggests_both(client):
    text = shown(send(client, "status <#C0LMS0001|lms>"))
    assert "`/integ status canvas-enroll`" in text
    assert "`/integ status grades`" in text


def test_escaped_ampersands_and_brackets_are_read_as_typed_and_escaped_again(client):
    # Slack sends `&`, `<` and `>` typed by a person as `&amp;`, `&lt;` and `&gt;`.
    assert shown(send(client, "status &amp;")) == (
        "No integration called `&amp;`. `/integ list` shows every integration."
    )
    answer = send(client, "status &lt;script&gt;")
    assert shown(answer) == (
        "No integration called `&lt;script&gt;`. `/integ list` shows every integration."
    )
    assert not any("<script>" in s for s in strings_in(answer))
    # Escaped once by Slack, unescaped once by the bot: `&lt;` typed stays `&lt;` on screen.
    assert "`&amp;lt;b&amp;gt;`" in shown(send(client, "status &amp;lt;b&amp;gt;"))


def test_a_broadcast_in_the_text_is_never_echoed_as_one(client):
    for command in [
        "status <!channel>",
        "status <!here>",
        "status <!everyone>",
        "status <!here|here>",
        "status <!subteam^S0123|@oncall>",
        "list <!here>",
        "owners <!channel>",
        "runbook <!channel>",
        "info <!channel>",
        "support <!everyone>",
        "<!channel> status",
        "alerts <!channel>",
    ]:
        answer = send(client, command)
        assert not any("<!" in s for s in strings_in(answer)), command


def test_a_literal_broadcast_typed_as_text_comes_back_escaped(client):
    answer = send(client, "status &lt;!channel&gt;")
    assert "`&lt;!channel&gt;`" in shown(answer)


def test_a_link_in_the_text_is_not_echoed_as_a_link(client):
    answer = send(client, "runbook <https://evil.example/phish|click>")
    assert shown(answer) == "No integration called `click`. `/integ list` shows every integration."
    assert not any("evil.example" in s for s in strings_in(answer))


# -- local mode ----------------------------------------------------------------------------


def test_in_local_mode_slack_requests_get_503_with_a_reason_and_health_is_200(local_server):
    body = slash_command_body("status crm")
    with local_server.client() as client:
        refused = client.post("/slack/events", content=body, headers=signed_headers(body))
        health = client.get("/healthz")
    assert refused.status_code == 503
    assert "SLACK_BOT_TOKEN is not set" in refused.json()["error"]
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": True, "mode": "local"}
