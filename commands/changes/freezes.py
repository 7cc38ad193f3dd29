"""Change freezes: periods (registration, payroll, term start) in which a change is still
logged but with a warning, the approver mentioned, and the entry marked.

A freeze is days in the catalog (`from`, `until`, inclusive, in its time zone) or the
events of an ICS calendar, such as the academic calendar's. A calendar's text is fetched
by the tick (bot/calendars.py) and kept in `calendars`: when a fetch fails, the last good
copy still answers. Nothing here fetches or commits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.time_spec import FreezeSpec
from commands.core.calendars import events_between
from storage.models import CalendarCopy, CatalogSetting
from storage.models.catalog import FREEZES_SETTING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveFreeze:
    name: str  # the freeze's, and the calendar event's when it came from one
    approver: str
    until: datetime  # UTC


def freezes(session: Session) -> list[FreezeSpec]:
    """The catalog's freezes, as last synced."""
    row = session.get(CatalogSetting, FREEZES_SETTING)
    if row is None or not isinstance(row.value, list):
        return []
    return [FreezeSpec.model_validate(item) for item in row.value]


def calendar_sources(session: Session) -> list[str]:
    return sorted({f.ics for f in freezes(session) if f.ics})


def active_freeze(session: Session, at: datetime) -> ActiveFreeze | None:
    """The freeze in force at `at`, if any (the first the catalog lists)."""
    for freeze in freezes(session):
        if freeze.start is not None and freeze.until is not None:
            zone = ZoneInfo(freeze.timezone)
            begins = datetime.combine(freeze.start, time(), zone)
            ends = datetime.combine(freeze.until + timedelta(days=1), time(), zone)
            if begins <= at < ends:
                return ActiveFreeze(freeze.name, freeze.approver, ends.astimezone(at.tzinfo))
        elif freeze.ics:
            event = _event_at(session, freeze.ics, at)
            if event is not None:
                summary, ends = event
                name = f"{freeze.name}: {summary}" if summary else freeze.name
                return ActiveFreeze(name, freeze.approver, ends)
    return None


def _event_at(session: Session, source: str, at: datetime) -> tuple[str, datetime] | None:
    for event in events_between(session, source, at, at + timedelta(seconds=1)):
        ends = event.get("DTEND")
        end = ends.dt if ends is not None else None
        if isinstance(end, datetime):
            end_at = end if end.tzinfo is not None else end.replace(tzinfo=at.tzinfo)
        elif end is not None:  # an all-day event: it ends at midnight of its end date
            end_at = datetime.combine(end, time(), at.tzinfo)
        else:
            end_at = at
        return str(event.get("SUMMARY") or ""), end_at
    return None


def parses(body: str) -> str | None:
    """Why an ICS text cannot be used, or None: checked when fetched, so that a broken
    download never replaces a good copy."""
    try:
        icalendar.Calendar.from_ical(body)
    except ValueError as exc:
        return f"not an iCalendar file: {exc}"[:300]
    return None


def store_copy(
    session: Session, source: str, body: str | None, error: str | None, now: datetime
) -> None:
    """Keep a fetched copy, or the reason the fetch failed beside the last good one."""
    copy = session.scalars(select(CalendarCopy).where(CalendarCopy.source == source)).first()
    if copy is None:
        copy = CalendarCopy(source=source)
        session.add(copy)
    copy.tried_at = now
    copy.last_error = error
    if body is not None and error is None:
        copy.body = body
        copy.fetched_at = now


def copy_age(session: Session, source: str) -> datetime | None:
    """When a fetch of `source` was last tried."""
    return session.scalars(
        select(CalendarCopy.tried_at).where(CalendarCopy.source == source)
    ).first()
