"""Whether a moment is inside an integration's working hours, and when the next working
period starts.

An integration's hours are its own `hours:` in the catalog, else the catalog's top-level
`hours:`, else none (always working). Outside them, its alerts below `critical` are held
back (posted when the next working period starts, by the tick) and no alert of it is
escalated until then; a `critical` one posts and escalates at once. Holidays are dates, or
the events of an ICS calendar fetched as a change freeze's is (bot/calendars.py).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.time_spec import HoursSpec
from commands.catalog.views import integration_spec
from commands.core.calendars import events_between
from storage.models import CatalogSetting, Integration
from storage.models.catalog import HOURS_SETTING

CRITICAL = "critical"
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A week of days off (holidays around a weekend) is as far as the next start is looked for.
_LOOK_AHEAD_DAYS = 30


def hours_of(session: Session, integ: Integration) -> HoursSpec | None:
    own = integration_spec(integ).hours
    if own is not None:
        return own
    row = session.get(CatalogSetting, HOURS_SETTING)
    return HoursSpec.model_validate(row.value) if row is not None and row.value else None


def holiday_sources(session: Session) -> list[str]:
    """The ICS calendars of holidays the catalog's hours name, for bot/calendars.py."""
    found = set()
    row = session.get(CatalogSetting, HOURS_SETTING)
    if row is not None and row.value and row.value.get("holidays_ics"):
        found.add(str(row.value["holidays_ics"]))
    for integ in session.scalars(select(Integration).where(Integration.removed_at.is_(None))):
        own = integration_spec(integ).hours
        if own is not None and own.holidays_ics:
            found.add(own.holidays_ics)
    return sorted(found)


def next_start(session: Session, hours: HoursSpec, now: datetime) -> datetime | None:
    """None inside working hours; otherwise when the next working period starts (UTC)."""
    zone = ZoneInfo(hours.timezone)
    local = now.astimezone(zone)
    off = _days_off(session, hours, local.date())
    start, end = _clock(hours.start), _clock(hours.end)
    for ahead in range(_LOOK_AHEAD_DAYS):
        day = local.date() + timedelta(days=ahead)
        if _DAY_NAMES[day.weekday()] not in hours.days or day in off:
            continue
        # Built from the wall-clock time, so 08:00 stays 08:00 across a DST change.
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day, end, zone)
        if ahead == 0 and opens <= local < closes:
            return None
        if opens > local:
            return opens.astimezone(now.tzinfo)
    return None  # no working day within a month: do not hold alerts for ever


def held_until(
    session: Session, integration_id: str | None, severity: str, now: datetime
) -> datetime | None:
    """When an alert of this severity, opened now, is to be shown: None for at once."""
    if severity == CRITICAL or integration_id is None:
        return None
    integ = session.get(Integration, integration_id)
    if integ is None:
        return None
    hours = hours_of(session, integ)
    return next_start(session, hours, now) if hours is not None else None


def _event_days(event: icalendar.Event) -> set[date]:
    """The days an event covers: an all-day event's DTEND is the day after its last."""
    start = _day(event.get("DTSTART").dt)
    ends = event.get("DTEND")
    stop = _day(ends.dt) if ends is not None else start + timedelta(days=1)
    stop = max(stop, start + timedelta(days=1))
    return {start + timedelta(days=n) for n in range((stop - start).days)}


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _clock(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def _days_off(session: Session, hours: HoursSpec, first: date) -> set[date]:
    off = set(hours.holidays)
    if hours.holidays_ics:
        last = first + timedelta(days=_LOOK_AHEAD_DAYS)
        for event in events_between(session, hours.holidays_ics, first, last):
            off.update(_event_days(event))
    return off
