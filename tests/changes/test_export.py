"""The change log as CSV: every entry, oldest first, summaries exactly as stored (but never
a formula a spreadsheet would run)."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from commands.changes.export import HEADER, write_changes_csv
from tests.helpers.changes import HOSTILE, NOW, log
from tests.helpers.runtime import make_settings


def export(runtime, since=None, integration=None):
    out = io.StringIO(newline="")
    with runtime.deps.sessions() as session:
        written = write_changes_csv(session, out, since, integration)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows[0] == list(HEADER)
    assert written == len(rows) - 1
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


@pytest.fixture
def runtime(database_url, make_runtime):
    return make_runtime(make_settings(database_url))


def test_every_change_is_exported_oldest_first_with_times_in_utc(runtime):
    later = log(
        runtime,
        "crm",
        "moved the nightly run to 03:00",
        at=datetime(2026, 11, 25, 8, 15, 30, 250000, tzinfo=UTC),
        category="schedule",
        source="shortcut",
        permalink="https://integ-test.slack.com/archives/C0INTEG01/p1796530385194939",
        ticket_url="https://tickets.example.edu/CHG-42",
        message_channel="C0INTEG01",
        message_ts="1796530385.194939",
        edited_at=NOW,
        logged_by="U0BACKUP1",
    )
    earlier = log(
        runtime,
        "grades",
        "Silenced for 2h",
        at=datetime(2026, 11, 20, 23, 0, tzinfo=UTC),
        category="silence",
        author=None,
        source="bot",
        deleted_at=NOW + timedelta(minutes=5),
    )
    assert export(runtime) == [
        {
            "id": str(earlier),
            "integration": "grades",
            "category": "silence",
            "happened_at": "2026-11-20T23:00:00Z",
            "logged_at": "2026-11-26T09:30:00Z",
            "author": "",
            "logged_by": "",
            "source": "bot",
            "summary": "Silenced for 2h",
            "permalink": "",
            "ticket_url": "",
            "edited_at": "",
            # Deleted in Slack, kept in the record: the export is the audit trail.
            "deleted_at": "2026-11-26T09:35:00Z",
            "freeze": "",
        },
        {
            "id": str(later),
            "integration": "crm",
            "category": "schedule",
            "happened_at": "2026-11-25T08:15:30.250000Z",
            "logged_at": "2026-11-26T09:30:00Z",
            "author": "U0OWNER01",
            "logged_by": "U0BACKUP1",
            "source": "shortcut",
            "summary": "moved the nightly run to 03:00",
            "permalink": "https://integ-test.slack.com/archives/C0INTEG01/p1796530385194939",
            "ticket_url": "https://tickets.example.edu/CHG-42",
            "edited_at": "2026-11-26T09:30:00Z",
            "deleted_at": "",
            "freeze": "",
        },
    ]


def test_the_export_can_be_narrowed_to_a_time_and_an_integration_named_without_case(runtime):
    log(runtime, "crm", "crm old", at=NOW - timedelta(days=40))
    log(runtime, "crm", "crm new", at=NOW - timedelta(days=1))
    log(runtime, "grades", "grades new", at=NOW - timedelta(hours=1))
    since = NOW - timedelta(days=30)
    assert [r["summary"] for r in export(runtime, since=since)] == ["crm new", "grades new"]
    assert [r["summary"] for r in export(runtime, integration="CRM")] == ["crm old", "crm new"]
    by_name = export(runtime, since=since, integration="slate to banner admissions")
    assert [r["summary"] for r in by_name] == ["crm new"]
    assert export(runtime, integration="hr-feed") == []


def test_an_unknown_integration_is_refused_before_anything_is_written(runtime):
    out = io.StringIO(newline="")
    with runtime.deps.sessions() as session, pytest.raises(ValueError) as refused:
        write_changes_csv(session, out, None, "crn")
    assert str(refused.value) == "no integration called 'crn'; did you mean crm?"
    assert out.getvalue() == ""
    with runtime.deps.sessions() as session, pytest.raises(ValueError, match="'zzzzzz'$"):
        write_changes_csv(session, out, None, "zzzzzz")


@pytest.mark.parametrize(
    "summary",
    [
        HOSTILE,
        "He said \"ship it\", then: SELECT * FROM changes WHERE id = '1'; --",
        "two lines\r\nand a bare\nnewline, a tab\there, a comma, and a trailing space ",
        "<!channel> <@U0OTHER1> <https://evil.example|x> &amp; *bold* :tada: 🎉 «ß»",
        " =leading space keeps it text",
        "'already quoted",
    ],
)
def test_a_summary_comes_back_from_csv_reader_exactly_as_stored(runtime, summary):
    log(runtime, "crm", summary)
    [row] = export(runtime)
    assert row["summary"] == summary


@pytest.mark.parametrize(
    "summary",
    ['=HYPERLINK("https://evil.example","x")', "+1 555 0100", "-2", "@SUM(A1:A9)", "\tx"],
)
def test_a_summary_that_a_spreadsheet_would_run_as_a_formula_is_written_as_text(runtime, summary):
    log(runtime, "crm", summary, ticket_url="=cmd|' /C calc'!A0")
    [row] = export(runtime)
    assert row["summary"] == "'" + summary
    assert row["ticket_url"] == "'=cmd|' /C calc'!A0"
