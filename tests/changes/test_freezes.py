"""Change freezes: a change logged during one is still recorded, but the answer warns,
the confirmation in the channel mentions the approver, and the entry is marked, in the list
and the export. Freezes come as days in the catalog or as an ICS calendar's events (a file
here; a URL the same way), fetched on the tick; a copy that fails keeps the last good one."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.listeners.slash_commands import answer
from commands.catalog.spec import CatalogInvalid, parse_catalog
from commands.changes.export import write_changes_csv
from storage.models import CalendarCopy, Change, OutboxMessage
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example University//Academic Calendar//EN
BEGIN:VEVENT
UID:term-start-2026@example.edu
DTSTAMP:20261101T000000Z
DTSTART;VALUE=DATE:20261210
DTEND;VALUE=DATE:20261212
SUMMARY:Spring term start
END:VEVENT
BEGIN:VEVENT
UID:payroll@example.edu
DTSTAMP:20261101T000000Z
DTSTART:20261215T140000Z
DTEND:20261215T180000Z
RRULE:FREQ=MONTHLY;COUNT=12
SUMMARY:Payroll run
END:VEVENT
END:VCALENDAR
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def calendar(tmp_path: Path) -> Path:
    path = tmp_path / "academic.ics"
    path.write_text(ICS)
    return path


@pytest.fixture
def runtime(database_url, make_runtime, clock, tmp_path, calendar):
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    data["freezes"] = [
        {
            "name": "Registration",
            "from": "2026-11-30",
            "until": "2026-12-02",
            "approver": "U0REGISTRAR",
            "timezone": "America/Chicago",
        },
        {"name": "Academic calendar", "ics": str(calendar), "approver": "U0PROVOST1"},
    ]
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    clock.now = at("2026-11-26T15:00")
    built = make_runtime(make_settings(database_url, catalog=path))
    built.tick()  # fetches the calendar
    return built


def log(runtime, text: str = "crm config moved the nightly drop to 03:00"):
    return answer(runtime.deps, f"log {text}", "U0OWNER01", "C0INTEG01")


def changes(runtime) -> list[Change]:
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(Change).order_by(Change.id)))


def test_outside_a_freeze_nothing_is_said(runtime):
    reply = log(runtime)
    assert "freeze" not in reply.text.lower() and ":snowflake:" not in str(reply.blocks)
    assert changes(runtime)[-1].freeze is None


def test_a_change_in_a_date_freeze_warns_mentions_the_approver_and_is_marked(runtime, clock):
    clock.now = at("2026-12-03T05:30")  # 23:30 on the 2nd in Chicago: still frozen
    reply = log(runtime)
    shown = str(reply.blocks)
    assert ":snowflake: *Logged during the Registration change freeze*" in shown
    assert "<@U0REGISTRAR> approves changes meanwhile" in shown
    [change] = changes(runtime)
    assert change.freeze == "Registration" and change.summary == "moved the nightly drop to 03:00"
    with runtime.deps.sessions() as session:
        [posted] = [
            m for m in session.scalars(select(OutboxMessage)) if "Change #" in str(m.payload)
        ]
    assert "<@U0REGISTRAR>" in str(posted.payload)
    listed = answer(runtime.deps, "changes crm", "U0OWNER01", None)
    assert ":snowflake: during the Registration freeze" in str(listed.blocks)
    out = io.StringIO()
    with runtime.deps.sessions() as session:
        write_changes_csv(session, out, None, None)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["freeze"] == "Registration"
    clock.now = at("2026-12-03T06:00")  # midnight in Chicago: the freeze is over
    assert ":snowflake:" not in str(log(runtime).blocks)


def test_an_ics_calendar_event_is_a_freeze_its_recurrences_too(runtime, clock):
    clock.now = at("2026-12-11T12:00")
    shown = str(log(runtime).blocks)
    assert "Academic calendar: Spring term start change freeze" in shown
    assert "<@U0PROVOST1>" in shown
    clock.now = at("2027-02-15T15:00")  # the third monthly payroll run
    assert "Academic calendar: Payroll run" in str(log(runtime).blocks)
    clock.now = at("2027-02-15T19:00")
    assert ":snowflake:" not in str(log(runtime).blocks)


def test_a_calendar_that_stops_parsing_keeps_its_last_good_copy(runtime, clock, calendar):
    calendar.write_text("<html>Service unavailable</html>")
    clock.now = at("2026-12-11T12:00")
    runtime.tick()  # more than an hour since the last fetch: tried again, and refused
    with runtime.deps.sessions() as session:
        [copy] = session.scalars(select(CalendarCopy)).all()
    assert copy.last_error and "iCalendar" in copy.last_error
    assert copy.fetched_at == at("2026-11-26T15:00") and "Spring term start" in (copy.body or "")
    assert "Spring term start" in str(log(runtime).blocks)


def test_a_freeze_without_its_approver_or_dates_is_refused_with_its_line(tmp_path):
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    data["freezes"] = [{"name": "Payroll", "from": "2026-12-01"}]
    raw = yaml.safe_dump(data, sort_keys=False).encode()
    with pytest.raises(CatalogInvalid) as refused:
        parse_catalog(raw, "catalog.yml")
    said = str(refused.value)
    assert "freezes" in said and "approver" in said
