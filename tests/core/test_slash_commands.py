"""`/integ` end to end: commands signed as Slack signs them, sent over real HTTP to the real
server, and the answer read as the person who typed them would see it.

Every answer is checked against Slack's 3-second deadline and Block Kit's limits; a message
past either is one the person never sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from storage.db import transaction
from storage.models import Alert, Silence
from tests.helpers.slack_answers import (
    block_kit_problems,
    send,
    shown,
    strings_in,
)


def add_alert(server: Any, integration: str, summary: str, *, at: datetime, **extra: Any) -> None:
    with transaction(server.runtime.deps.sessions) as session:
        session.add(
            Alert(
                integration_name=integration,
                integration_id=integration,
                key=summary,
                summary=summary,
                first_seen_at=at - timedelta(minutes=20),
                last_seen_at=at - timedelta(minutes=5),
                **extra,
            )
        )


def add_silence(server: Any, integration: str, start: datetime, end: datetime, reason: str) -> None:
    with transaction(server.runtime.deps.sessions) as session:
        session.add(
            Silence(
                integration_id=integration,
                starts_at=start,
                ends_at=end,
                reason=reason,
                created_by="U0OWNER01",
            )
        )


@pytest.fixture
def client(slack_server) -> Iterator[httpx.Client]:
    """One connection for the whole test: building an httpx client takes tens of ms."""
    with slack_server.client() as http:
        yield http


# -- the checker itself --------------------------------------------------------------------


def test_the_block_kit_checker_accepts_valid_blocks_and_names_each_broken_limit():
    valid = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "a"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "small print"}]},
            {"type": "divider"},
        ],
    }
    assert block_kit_problems(valid) == []
    broken = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "mrkdwn", "text": "h" * 151}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
            {"type": "banner"},
        ]
        + [{"type": "divider"}] * 45,
    }
    problems = "\n".join(block_kit_problems(broken))
    for expected in [
        "51 blocks",
        "blocks[0].text: type 'mrkdwn'",
        "blocks[0].text: 151 characters",
        "blocks[1].text: 3001 characters",
        "blocks[2]: 11 fields",
        "blocks[3].fields[0]: 2001 characters",
        "blocks[4].text: text must be a non-empty string",
        "unknown block type 'banner'",
    ]:
        assert expected in problems


# -- help and list -------------------------------------------------------------------------


def test_help_lists_every_verb_of_the_contract(client):
    answer = send(client, "help")
    text = shown(answer)
    assert "9 integrations" in text
    for verb in [
        "help",
        "list",
        "status",
        "owners",
        "runbook",
        "info",
        "support",
        "alerts",
        "ack",
        "resolve",
        "silence",
        "log",
        "changes",
        "reviews",
        "review",
        "impact",
        "diagram",
        "heartbeat",
    ]:
        assert f"`/integ {verb}" in text


def test_an_empty_command_answers_with_help(client):
    assert send(client, "") == send(client, "help")
    assert send(client, "   ") == send(client, "help")


def test_list_shows_every_integration_with_its_flow_and_mechanism(client):
    answer = send(client, "list")
    text = shown(answer)
    assert "*9 integrations*" in text
    assert (
        ":large_green_circle: `crm` Slate to Banner admissions: "
        "Slate CRM → Ellucian Banner (Student, Finance AR), api"
    ) in text
    for integration in [
        "canvas-enroll",
        "grades",
        "hr-feed",
        "ar-journal",
        "payments",
        "student-accounts",
        "workday-okta",
        "advising",
    ]:
        assert f"`{integration}`" in text


def test_list_filtered_by_a_system_shows_only_the_integrations_touching_it(client):
    text = shown(send(client, "list banner"))
    assert "*8 integrations*" in text
    assert "`crm`" in text and "`hr-feed`" in text and "`advising`" in text
    # Workday to Okta does not touch Banner.
    assert "workday-okta" not in text


def test_list_with_a_filter_nothing_matches_says_so(client):
    answer = send(client, "list mainframe")
    assert shown(answer) == "No integration matches `mainframe`."


# -- status --------------------------------------------------------------------------------


def test_status_of_a_healthy_integration_shows_its_flow_schedule_and_owner(client):
    answer = send(client, "status crm")
    assert answer["text"] == "Slate to Banner admissions (crm) is ok"
    text = shown(answer)
    assert ":large_green_circle: *Slate to Banner admissions* (`crm`) is *ok*." in text
    assert "*Flow:*\nSlate CRM → Ellucian Banner (Student, Finance AR)" in text
    assert "*Mechanism:*\napi" in text
    assert "*Schedule:*\nreal-time" in text
    assert "*Owner:*\n<@U0OWNER01>" in text
    assert "*Next review:*\n2026-12-01" in text
    assert "overdue" not in text


def test_status_of_a_scheduled_integration_shows_its_cron_and_timezone(client):
    text = shown(send(client, "status hr-feed"))
    assert "*Schedule:*\n`30 5 * * 1-5` (America/Chicago)" in text
    assert "*Owner:*\n<@U0HRIS001>" in text


def test_status_without_a_name_gives_an_overview_of_every_integration(client):
    answer = send(client, "status")
    text = shown(answer)
    assert "*9 integrations:* 9 ok, 0 failing, 0 silenced, 0 with a review overdue." in text
    assert "Everything is ok." in text


def test_status_without_a_name_in_an_integrations_channel_means_that_integration(client):
    answer = send(client, "status", channel_id="C0INTEG01")
    assert answer["text"] == "Slate to Banner admissions (crm) is ok"


def test_status_of_an_integration_with_an_open_alert_shows_it_failing_and_the_alert(
    slack_server, client, clock
):
    add_alert(slack_server, "crm", "Nightly load failed: 12 rows rejected", at=clock.now)
    answer = send(client, "status crm")
    assert answer["text"] == "Slate to Banner admissions (crm) is failing"
    text = shown(answer)
    assert ":red_circle: *Slate to Banner admissions* (`crm`) is *failing*." in text
    assert ":rotating_light: 1 open alert;" in text
    assert "(firing): Nightly load failed: 12 rows rejected" in text
    assert "since 2026-11-26 09:10 UTC" in text


def test_an_acknowledged_alert_still_counts_as_failing_but_a_resolved_one_does_not(
    slack_server, client, clock
):
    add_alert(slack_server, "payments", "Connector down", at=clock.now, status="acknowledged")
    add_alert(slack_server, "grades", "Passback stalled", at=clock.now, status="resolved")
    assert send(client, "status payments")["text"].endswith("is failing")
    assert send(client, "status grades")["text"].endswith("is ok")


def test_status_of_a_silenced_integration_says_so_and_until_when(slack_server, client, clock):
    add_silence(
        slack_server,
        "hr-feed",
        clock.now - timedelta(hours=1),
        clock.now + timedelta(hours=2),
        "Workday maintenance window",
    )
    answer = send(client, "status hr-feed")
    assert answer["text"] == "Workday to Banner HR feed (hr-feed) is silenced"
    text = shown(answer)
    assert ":no_bell: *Workday to Banner HR feed* (`hr-feed`) is *silenced*." in text
    assert "Silenced until 2026-11-26 11:30 UTC: Workday maintenance window" in text


def test_a_silence_that_has_ended_or_not_yet_begun_does_not_silence(slack_server, client, clock):
    add_silence(
        slack_server,
        "hr-feed",
        clock.now - timedelta(hours=3),
        clock.now - timedelta(hours=1),
        "yesterday",
    )
    add_silence(
        slack_server,
        "hr-feed",
        clock.now + timedelta(hours=1),
        clock.now + timedelta(hours=3),
        "tonight",
    )
    assert send(client, "status hr-feed")["text"].endswith("is ok")


def test_status_says_a_review_is_overdue_once_the_clock_passes_its_due_date(
    slack_server, client, clock
):
    assert "overdue" not in shown(send(client, "status crm"))
    clock.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    answer = send(client, "status crm")
    assert answer["text"] == "Slate to Banner admissions (crm) is ok, review overdue"
    text = shown(answer)
    assert "its review is *overdue* (due 2026-12-01)" in text
    assert "*Next review:*\n2026-12-01 (overdue)" in text


def test_the_overview_counts_failing_silenced_and_overdue_integrations(slack_server, client, clock):
    clock.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    add_alert(slack_server, "grades", "Passback stalled", at=clock.now)
    add_silence(
        slack_server,
        "hr-feed",
        clock.now - timedelta(hours=1),
        clock.now + timedelta(hours=1),
        "maintenance",
    )
    text = shown(send(client, "status"))
    # Due 2026-12-01: crm, canvas-enroll, ar-journal and payments.
    assert "*9 integrations:* 7 ok, 1 failing, 1 silenced, 4 with a review overdue." in text
    assert ":red_circle: `grades` Canvas final grades to Banner: 1 open alert(s)" in text
    assert ":no_bell: `hr-feed`" in text
    assert ":large_green_circle: `crm` Slate to Banner admissions: review overdue" in text
    assert "`advising`" not in text


def test_alert_text_from_outside_is_escaped_and_cannot_ping_a_channel(slack_server, client, clock):
    add_alert(
        slack_server, "crm", "<!channel> load failed & <https://evil.example|see>", at=clock.now
    )
    answer = send(client, "status crm")
    text = shown(answer)
    assert "&lt;!channel&gt; load failed &amp; &lt;https://evil.example|see&gt;" in text
    assert not any("<!channel>" in s or "<https://evil" in s for s in strings_in(answer))


# -- owners, runbook, info, support --------------------------------------------------------


def test_owners_mentions_the_owner_and_backups_and_shows_vendor_support(client):
    text = shown(send(client, "owners crm"))
    assert "*Owner:* <@U0OWNER01>" in text
    # A Slack id is mentioned; an e-mail address is shown as text.
    assert "*Backups:* <@U0BACKUP1>, admissions-it@example.edu" in text
    assert "*Slate CRM* (Technolutions) support:" in text
    assert "<https://knowledge.technolutions.com|https://knowledge.technolutions.com>" in text
    assert "slate-support@technolutions.example.com, +1 800 555 0101" in text
    assert "*Ellucian Banner (Student, Finance AR)* (Ellucian) support:" in text


def test_runbook_given_as_a_url_answers_with_a_link(client):
    text = shown(send(client, "runbook crm"))
    assert text == (
        ":book: Runbook for *Slate to Banner admissions*: "
        "<https://wiki.example.edu/integ/crm|https://wiki.example.edu/integ/crm>"
    )


def test_runbook_given_as_text_answers_with_the_text(client):
    text = shown(send(client, "runbook canvas-enroll"))
    assert text.startswith(":book: Runbook for *Banner to Canvas enrollments (SIS import)*:\n")
    assert "*If the nightly SIS import did not arrive or failed*" in text
    assert "`sudo -u banjobs /u01/sis/canvas/bin/export.sh --term current --post`" in text


def test_info_shows_the_catalog_entry_with_fields_monitors_and_test_instances(client):
    answer = send(client, "info crm")
    assert answer["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Slate to Banner admissions (crm)", "emoji": True},
    }
    text = shown(answer)
    assert "*Backups:*\n<@U0BACKUP1>, admissions-it@example.edu" in text
    assert "*Escalate after:*\n30m" in text
    assert "*Review:*\nmonthly, next 2026-12-01" in text
    assert "*Fields (5):*" in text
    assert "`application.status` → `SARADAP.APST_CODE`" in text
    assert "`person.birthdate` → `SPBPERS.BIRTH_DATE`" in text
    assert "*Heartbeat:* `0 2 * * *`, grace 1h" in text
    assert "*Probe:* <https://api.example.edu/admissions/v1/health|" in text
    assert "Test instance: <https://slate-test.example.edu|https://slate-test.example.edu>" in text
    assert "Test instance: <https://banner-test.example.edu/applicationNavigator|" in text
    assert "*Runbook:*\n<https://wiki.example.edu/integ/crm|" in text


def test_info_of_an_integration_with_a_text_runbook_includes_the_text(client):
    text = shown(send(client, "info ar-journal"))
    assert "*Fields (3):*" in text
    assert "`TBRACCD.AMOUNT` → `Journal_Line.Debit_Amount`" in text
    assert "*Runbook:*\n*Journal file missing or rejected by Workday*" in text


def test_support_for_an_integration_names_its_owners_and_both_vendors(client):
    text = shown(send(client, "support crm"))
    assert "*Support for Slate to Banner admissions* (`crm`)" in text
    assert "*Owner:* <@U0OWNER01>  *Backups:* <@U0BACKUP1>" in text
    assert "Vendor support: <https://knowledge.technolutions.com|" in text
    assert "Test instance: <https://slate-test.example.edu|" in text
    assert "*Ellucian Banner (Student, Finance AR)* (Ellucian), `banner`" in text


def test_support_for_a_system_shows_the_vendor_and_every_integration_touching_it(client):
    text = shown(send(client, "support canvas"))
    assert "*Canvas LMS* (Instructure), `canvas`" in text
    assert "canvas-support@instructure.example.com, +1 800 555 0104" in text
    assert "Test instance: <https://example.test.instructure.com|" in text
    assert "Status page: <https://status.instructure.com|" in text
    assert (
        "`canvas-enroll` Banner to Canvas enrollments (SIS import): *Owner:* <@U0LMSADM1>" in text
    )
    assert "`grades` Canvas final grades to Banner: *Owner:* registrar-it@example.edu" in text


def test_support_for_a_system_no_integration_touches_says_so(client):
    text = shown(send(client, "support mulesoft"))
    assert "*MuleSoft Anypoint (campus ESB)* (Salesforce (MuleSoft)), `mulesoft`" in text
    assert "No integration touches this system yet." in text


def test_a_verb_that_needs_a_name_explains_its_usage_when_given_none(client):
    for verb in ["owners", "runbook", "info", "support"]:
        assert shown(send(client, verb)).startswith(f"Usage: `/integ {verb} ")


# -- names: case, near misses, unknown and planned verbs -----------------------------------


def test_names_and_verbs_are_matched_without_case(client):
    expected = "Slate to Banner admissions (crm) is ok"
    assert send(client, "status CRM")["text"] == expected
    assert send(client, "STATUS Crm")["text"] == expected
    assert send(client, "Owners HR-FEED")["text"] == "Owners of Workday to Banner HR feed"
    assert send(client, "support CANVAS")["text"] == "Support for Canvas LMS"


def test_a_misspelt_integration_answers_with_the_closest_match(client):
    assert shown(send(client, "status crn")) == (
        "No integration called `crn`. Did you mean `/integ status crm`?"
    )
    assert "`/integ owners hr-feed`" in shown(send(client, "owners hr-fed"))
    assert "`/integ runbook payments`" in shown(send(client, "runbook paymnets"))
    assert "`/integ info canvas-enroll`" in shown(send(client, "info canvas-enrol"))


def test_a_misspelt_system_answers_with_the_closest_match(client):
    assert "`/integ support slate`" in shown(send(client, "support slaet"))


def test_a_name_nothing_resembles_points_to_the_list(client):
    assert shown(send(client, "status zzzzzz")) == (
        "No integration called `zzzzzz`. `/integ list` shows every integration."
    )


def test_an_unknown_verb_answers_with_the_verb_that_was_meant(client):
    text = shown(send(client, "stauts crm"))
    assert text.startswith("I don't know `stauts`. Did you mean `/integ status`?")
    assert "`/integ owners`" in shown(send(client, "onwers crm"))


def test_an_unknown_verb_with_no_near_miss_points_to_help(client):
    assert shown(send(client, "frobnicate")) == (
        "I don't know `frobnicate`. `/integ help` lists what I understand."
    )


# The verbs of /integ as the README lists them, word for word.
CONTRACT_VERBS = (
    "help, list, status [i], owners i, runbook i, info i, support i|system, alerts [i], ack ID, "
    "resolve ID cause, silence i duration [reason], log i text, changes [i] [Nd], reviews, "
    "review i, impact system|i, diagram [system], heartbeat i"
)


def test_every_verb_of_the_contract_answers_and_none_is_unknown(client):
    verbs = [usage.split()[0] for usage in CONTRACT_VERBS.split(", ")]
    assert len(verbs) == 18
    for verb in verbs:
        text = shown(send(client, verb.upper()))
        assert not text.startswith("I don't know"), (verb, text)
        assert "not available" not in text, (verb, text)


def test_the_command_typed_twice_is_read_once(client):
    assert send(client, "/integ status crm")["text"] == ("Slate to Banner admissions (crm) is ok")
