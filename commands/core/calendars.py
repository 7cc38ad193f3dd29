"""The stored copy of an ICS calendar the catalog names, parsed once per copy.

Change freezes and working hours' holidays both read one (bot/calendars.py fetches them);
a hold-or-post decision is taken for every new alert, so the parse is cached by the copy's
text rather than repeated."""

from __future__ import annotations

import logging
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import icalendar
import recurring_ical_events
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import CalendarCopy

log = logging.getLogger(__name__)


def events_between(
    session: Session, source: str, start: date | datetime, end: date | datetime
) -> list[Any]:
    """The events of the stored copy of `source` (recurrences expanded) that overlap
    [start, end); none when there is no copy, or it no longer parses."""
    body = session.scalars(select(CalendarCopy.body).where(CalendarCopy.source == source)).first()
    if not body:
        return []
    try:
        return list(recurring_ical_events.of(_parsed(body)).between(start, end))
    except ValueError as exc:  # a copy that parsed when fetched; kept, but it fails now
        log.warning("calendar %s cannot be read: %s", source, exc)
        return []


@lru_cache(maxsize=8)
def _parsed(body: str) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(body)
