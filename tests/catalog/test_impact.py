"""`/integ impact`: what a change to a system or an integration would touch,
asked through the real app and read as the person who asked would see it; and the lines the
change log's confirmation borrows."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from bot.listeners.slash_commands import answer
from commands.catalog.impact import LINE_LIMIT, affected_by, impact_lines
from storage.db import transaction
from storage.models import Heartbeat
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings
from tests.helpers.slack_answers import block_kit_problems, send, shown

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # 03:30 in America/Chicago
BANNER = "Ellucian Banner (Student, Finance AR)"


@pytest.fixture
def client(slack_server):
    with slack_server.client() as http:
        yield http


def between(text, start, end):
    """The part of `text` from `start` up to the next `end` after it."""
    begin = text.index(start)
    return text[begin : text.index(end, begin + len(start))]


def test_impact_of_a_system_lists_what_flows_into_and_out_of_it_with_owners_and_test_systems(
    client,
):
    reply = send(client, "impact BANNER")
    assert reply["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"Impact: {BANNER}", "emoji": True},
    }
    text = shown(reply)
    assert f"A change to *{BANNER}* (`banner`) touches 8 integrations: 4 into it, 4 out of it." in (
        text
    )
    into = between(text, f"*Into {BANNER}* (4)", f"*Out of {BANNER}* (4)")
    out = between(text, f"*Out of {BANNER}* (4)", "*Test instances*")
    for integration in ("crm", "grades", "hr-feed", "payments"):
        assert f"• `{integration}` " in into and f"`{integration}`" not in out
    for integration in ("advising", "ar-journal", "canvas-enroll", "student-accounts"):
        assert f"• `{integration}` " in out
    # Real time, watched by its nightly reconciliation job's heartbeat.
    assert (
        "• `crm` *Slate to Banner admissions*, from Slate CRM\n"
        "      api · real-time · next heartbeat expected 2026-11-27 02:00 America/Chicago\n"
        "      owner <@U0OWNER01>, backups <@U0BACKUP1>, admissions-it@example.edu"
    ) in into
    # Real time with no heartbeat: nothing is expected at any particular time.
    assert "      vendor · real-time\n      owner <@U0FINSYS1>, backups <@U0FINSYS2>" in into
    # An owner given as an e-mail address is shown, not mentioned.
    assert "owner registrar-it@example.edu, backups <@U0LMSADM1>" in into
    assert (
        "• `ar-journal` *Banner AR to Workday journal entries*, to Workday HCM and Financials\n"
        "      flat-file · `0 23 * * 1-5` (America/Chicago) · "
        "next run expected 2026-11-26 23:00 America/Chicago"
    ) in out
    tests = text[text.index("*Test instances*") :]
    assert tests.splitlines()[1] == (
        f"• *{BANNER}* (`banner`): <https://banner-test.example.edu/applicationNavigator|"
        "https://banner-test.example.edu/applicationNavigator>"
    )
    for other in ("slate", "canvas", "workday", "touchnet", "okta", "salesforce"):
        assert tests.count(f"(`{other}`)") == 1
    assert "mulesoft" not in tests  # nothing in the catalog flows between it and Banner


def test_a_next_run_without_a_heartbeat_is_read_from_the_cron_schedule_in_its_time_zone(client):
    text = shown(send(client, "impact workday"))
    # workday-okta: "0 */4 * * *" in UTC, no heartbeat; the next after 09:30 is 12:00.
    assert (
        "• `workday-okta` *Workday to Okta employee provisioning*, to Okta Workforce Identity\n"
        "      vendor · `0 */4 * * *` (UTC) · next run 2026-11-26 12:00 UTC\n"
        "      owner <@U0IAM0001>, backups <@U0IAM0002>"
    ) in text


def test_a_run_awaited_and_not_yet_reported_says_when_it_becomes_an_alert(slack_server, client):
    with transaction(slack_server.runtime.deps.sessions) as session:
        row = session.get(Heartbeat, "canvas-enroll")
        row.expected_at = NOW - timedelta(minutes=30)
        row.due_at = NOW + timedelta(minutes=30)
    text = shown(send(client, "impact canvas"))
    assert (
        "flat-file · `0 2 * * *` (America/Chicago) · next run expected 2026-11-26 03:00 "
        "America/Chicago (not reported yet; an alert if nothing by 2026-11-26 04:00 "
        "America/Chicago)"
    ) in text


def test_impact_of_an_integration_shows_what_else_shares_its_source_and_its_target(client):
    reply = send(client, "impact hr-feed")
    assert reply["text"] == (
        "Impact of a change to Workday to Banner HR feed: 9 other integrations share its systems"
    )
    text = shown(reply)
    assert (
        "A change to\n• `hr-feed` *Workday to Banner HR feed*: Workday HCM and Financials → "
        f"{BANNER}\n      vendor · `30 5 * * 1-5` (America/Chicago) · next run expected "
        "2026-11-26 05:30 America/Chicago\n      owner <@U0HRIS001>, backups <@U0HRIS002>"
    ) in text
    workday = between(
        text, "*Also touching Workday HCM and Financials* (`workday`, its source): 2", "*Also"
    )
    assert "• `ar-journal` *Banner AR to Workday journal entries*, from " + BANNER in workday
    assert "• `workday-okta` *Workday to Okta employee provisioning*, to Okta" in workday
    banner = between(text, f"*Also touching {BANNER}* (`banner`, its target): 7", "*Test")
    for integration in ("advising", "ar-journal", "canvas-enroll", "crm", "grades", "payments"):
        assert f"• `{integration}` " in banner
    assert "`hr-feed`" not in banner
    tests = text[text.index("*Test instances*") :]
    assert "(`workday`)" in tests and "(`banner`)" in tests and "(`okta`)" not in tests
    lonely = shown(send(client, "impact crm"))
    assert "*Also touching Slate CRM* (`slate`, its source): nothing else." in lonely


def test_names_match_without_case_and_a_near_miss_gets_a_suggestion(client):
    assert send(client, "impact Okta")["text"].startswith(
        "Impact of a change to Okta Workforce Identity: 2 integrations"
    )
    assert send(client, "impact HR-FEED")["text"].startswith("Impact of a change to Workday")
    assert shown(send(client, "impact banenr")) == (
        "No system or integration called `banenr`. Did you mean `/integ impact banner`?"
    )
    assert "`/integ impact hr-feed`" in shown(send(client, "impact hr-fed"))
    assert shown(send(client, "impact zzzzzz")).startswith(
        "No system or integration called `zzzzzz`."
    )
    # No name: the integration whose channel this is, else how to ask.
    here = send(client, "impact", channel_id="C0INTEG01")
    assert here["text"].startswith("Impact of a change to Slate to Banner admissions")
    assert shown(send(client, "impact", channel_id="C0NOWHERE")).startswith(
        "Usage: `/integ impact <system|integration>`"
    )
    assert shown(send(client, "impact mulesoft")).startswith(
        "No integration touches *MuleSoft Anypoint (campus ESB)* (`mulesoft`)"
    )


def catalog_with(tmp_path, extra_systems=(), extra_integrations=()):
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text(encoding="utf-8"))
    data["systems"] += list(extra_systems)
    data["integrations"] += list(extra_integrations)
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def integration(ident, source, target, name=None, owner="U0LIB0001"):
    return {
        "id": ident,
        "name": name or f"{source} to {target}",
        "source": source,
        "target": target,
        "mechanism": "flat-file",
        "schedule": "0 4 * * *",
        "owner": owner,
        "channel": "C0LIB0001",
    }


def test_affected_by_and_impact_lines_name_every_integration_sharing_a_system(
    database_url, make_runtime, tmp_path
):
    library = {"id": "library", "name": "Alma library system", "vendor": "Ex Libris"}
    catalog = catalog_with(
        tmp_path, [library], [integration("library-sync", "library", "mulesoft")]
    )
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    with runtime.deps.sessions() as session:
        assert [(i.id, s) for i, s in affected_by(session, "hr-feed")] == [
            ("ar-journal", "workday"),
            ("workday-okta", "workday"),
            ("advising", "banner"),
            ("ar-journal", "banner"),
            ("canvas-enroll", "banner"),
            ("crm", "banner"),
            ("grades", "banner"),
            ("payments", "banner"),
            ("student-accounts", "banner"),
        ]
        assert impact_lines(session, "hr-feed") == [
            "Also touches workday: `ar-journal` (owner <@U0FINSYS1>), "
            "`workday-okta` (owner <@U0IAM0001>)",
            "Also touches banner: `advising` (owner <@U0CRMADM1>), "
            "`ar-journal` (owner <@U0FINSYS1>), `canvas-enroll` (owner <@U0LMSADM1>), "
            "`crm` (owner <@U0OWNER01>), `grades` (owner registrar-it@example.edu), "
            "`payments` (owner <@U0FINSYS1>), `student-accounts` (owner <@U0IAM0001>)",
        ]
        assert impact_lines(session, "crm")[0].startswith("Also touches banner: `advising`")
        assert len(impact_lines(session, "crm")) == 1  # nothing else touches slate
        assert impact_lines(session, "library-sync") == []
        assert affected_by(session, "library-sync") == []
        assert impact_lines(session, "no-such-thing") == []


def test_a_large_catalog_with_hostile_names_stays_within_block_kit_limits(
    database_url, make_runtime, tmp_path
):
    hostile = "Feed <!channel> & <@U999> <https://evil.example|x> 🎓 " + "ß" * 120
    many = [
        integration(f"feed-{n:03d}", "banner", "salesforce", name=f"{hostile} {n}")
        for n in range(120)
    ]
    catalog = catalog_with(tmp_path, extra_integrations=many)
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    for typed in ("impact banner", "impact advising", "impact salesforce"):
        reply = answer(runtime.deps, typed, "U0OWNER01", None)
        message = {"text": reply.text, "blocks": reply.blocks}
        assert block_kit_problems(message) == [], typed
        text = shown(message)
        for ping in ("<!channel>", "<@U999>", "<https://evil.example"):
            assert ping not in text
        assert "Feed &lt;!channel&gt; &amp; &lt;@U999&gt;" in text
    with runtime.deps.sessions() as session:
        [banner, salesforce] = impact_lines(session, "advising")  # its source first
    assert salesforce.endswith(f"and {120 - LINE_LIMIT} more (`/integ impact salesforce`)")
    assert salesforce.count("(owner <@U0LIB0001>)") == LINE_LIMIT
    assert banner.endswith(f"and {127 - LINE_LIMIT} more (`/integ impact banner`)")
