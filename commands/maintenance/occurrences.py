"""When a catalog window is open: its occurrences, in the time zone it is written in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from commands.catalog.time_spec import WindowSpec
from commands.core.durations import parse_duration

# How far ahead `/integ maintenance` lists the windows to come.
HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class Occurrence:
    starts_at: datetime  # UTC
    ends_at: datetime
    reason: str | None


def occurrences(
    window: WindowSpec, timezone: str, since: datetime, until: datetime
) -> list[Occurrence]:
    """The occurrences of `window` that are open at some moment in [since, until), in
    order; a repeating one's start is the cron's time in `timezone` (window.timezone first),
    so a 01:00 window stays at 01:00 local across DST changes."""
    zone = ZoneInfo(window.timezone or timezone)
    if window.start is not None and window.until is not None:
        start = _local(window.start, zone)
        end = _local(window.until, zone)
        return [Occurrence(start, end, window.reason)] if start < until and end > since else []
    assert window.every is not None and window.length is not None
    length = parse_duration(window.length)
    found = []
    # An occurrence open at `since` began at most `length` before it.
    cursor = (since - length - timedelta(minutes=1)).astimezone(zone)
    for start_local in CronSim(window.every, cursor):
        start = start_local.astimezone(UTC)
        if start >= until:
            break
        if start + length > since:
            found.append(Occurrence(start, start + length, window.reason))
    return found


def open_at(window: WindowSpec, timezone: str, now: datetime) -> Occurrence | None:
    found = occurrences(window, timezone, now, now + timedelta(microseconds=1))
    return found[0] if found else None


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    return aware.astimezone(UTC)
