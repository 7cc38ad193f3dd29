"""Working hours, with the clock injected: a warning at 02:00 waits for 08:00 local time,
across both DST changes and over a holiday; a critical failure is posted at once; escalation
to the backups waits for working hours; `/integ status` says when held alerts are shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.listeners.slash_commands import answer
from commands.alerts.payloads import parse_generic
from storage.models import Alert, OutboxMessage
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings

HOURS = {
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "from": "08:00",
    "to": "17:00",
    "timezone": "America/Chicago",
    "holidays": ["2026-12-25"],
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def runtime(database_url, make_runtime, clock, tmp_path: Path):
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    data["hours"] = HOURS
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return make_runtime(make_settings(database_url, catalog=path))


def fire(runtime, severity: str, key: str = "load") -> None:
    body = json.dumps(
        {"integration": "crm", "key": key, "summary": f"{severity} {key}", "severity": severity}
    ).encode()
    runtime.intake.submit("generic", body, parse_generic(body)).result(10)


def posted(runtime, key: str = "load") -> bool:
    with runtime.deps.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.key == key)).one()
        kinds = session.scalars(
            select(OutboxMessage.kind).where(OutboxMessage.alert_id == alert.id)
        ).all()
        return "post" in kinds


def escalated(runtime, key: str = "load") -> bool:
    with runtime.deps.sessions() as session:
        alert = session.scalars(select(Alert).where(Alert.key == key)).one()
        return alert.escalated_at is not None


@pytest.mark.parametrize(
    ("fired", "before", "opens"),
    [
        # Wednesday 02:00 CST: shown at 08:00 CST, 14:00 UTC.
        ("2026-12-02T08:00", "2026-12-02T13:59", "2026-12-02T14:00"),
        # Friday 20:00 CST before the clocks go forward (14 March 2027): Monday 08:00 CDT.
        ("2027-03-13T02:00", "2027-03-15T12:59", "2027-03-15T13:00"),
        # Friday 18:00 CDT before they go back (1 November 2026): Monday 08:00 CST.
        ("2026-10-30T23:00", "2026-11-02T13:59", "2026-11-02T14:00"),
        # Thursday 24 December 18:00 CST, Christmas a holiday: Monday 28 December.
        ("2026-12-25T00:00", "2026-12-28T13:59", "2026-12-28T14:00"),
    ],
)
def test_a_warning_outside_hours_is_posted_when_the_next_working_period_starts(
    runtime, clock, fired, before, opens
):
    clock.now = at(fired)
    fire(runtime, "warning")
    assert not posted(runtime)
    clock.now = at(before)
    runtime.tick()
    assert not posted(runtime)
    clock.now = at(opens)
    runtime.tick()
    assert posted(runtime)


def test_a_critical_failure_at_night_is_posted_at_once(runtime, clock):
    clock.now = at("2026-12-02T08:00")  # 02:00 in Chicago
    fire(runtime, "critical")
    assert posted(runtime)


def test_escalation_to_the_backups_waits_for_working_hours(runtime, clock):
    # crm escalates after 30 minutes; an error at 16:50 CST is due at 17:20, after hours.
    clock.now = at("2026-12-02T22:50")
    fire(runtime, "error")
    assert posted(runtime)
    clock.now = at("2026-12-02T23:25")
    runtime.tick()
    assert not escalated(runtime)
    clock.now = at("2026-12-03T14:00")  # Thursday 08:00 CST
    runtime.tick()
    assert escalated(runtime)


def test_status_says_when_held_alerts_will_be_shown(runtime, clock):
    clock.now = at("2026-12-05T03:00")  # Friday 21:00 CST
    shown = str(answer(runtime.deps, "status crm", "U0OWNER01", None).blocks)
    assert (
        "Outside working hours: alerts below critical are shown from Mon 2026-12-07 14:00" in shown
    )
    clock.now = at("2026-12-07T15:00")
    assert "Outside working hours" not in str(
        answer(runtime.deps, "status crm", "U0OWNER01", None).blocks
    )


def test_holidays_from_an_ics_calendar_hold_alerts_over_them(
    database_url, make_runtime, clock, tmp_path: Path
):
    calendar = tmp_path / "holidays.ics"
    calendar.write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Example//Holidays//EN\n"
        "BEGIN:VEVENT\nUID:new-year@example.edu\nDTSTAMP:20261101T000000Z\n"
        "DTSTART;VALUE=DATE:20261231\nDTEND;VALUE=DATE:20270102\nSUMMARY:New Year\n"
        "END:VEVENT\nEND:VCALENDAR\n"
    )
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    data["hours"] = {**HOURS, "holidays": [], "holidays_ics": str(calendar)}
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    clock.now = at("2026-12-31T03:00")  # Wednesday 30 December, 21:00 in Chicago
    runtime = make_runtime(make_settings(database_url, catalog=path))
    runtime.tick()  # fetches the calendar
    fire(runtime, "warning")
    # Thursday 31 and Friday 1 are holidays, then the weekend: Monday 4 January 08:00 CST.
    clock.now = at("2027-01-04T13:59")
    runtime.tick()
    assert not posted(runtime)
    clock.now = at("2027-01-04T14:00")
    runtime.tick()
    assert posted(runtime)
