"""The period a report covers: the last N days, or the last whole calendar month."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT = "30d"
MAX_DAYS = 3660


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    label: str  # as people read it: "the last 30 days", "November 2026"

    @property
    def length(self) -> timedelta:
        return self.end - self.start


class PeriodInvalid(ValueError):
    pass


def parse_period(text: str, now: datetime) -> Period:
    """`30d`, `90d` (any number of days up to ten years), or `month`: the last whole
    calendar month (UTC) before `now`."""
    word = (text or DEFAULT).strip().lower()
    if word == "month":
        return last_month(now)
    found = re.fullmatch(r"(\d{1,4})d", word)
    if found is None or not 1 <= int(found.group(1)) <= MAX_DAYS:
        raise PeriodInvalid(
            f"`{text}` is not a period: say `30d`, `90d` (days, 1 to {MAX_DAYS}) or `month`"
        )
    days = int(found.group(1))
    return Period(now - timedelta(days=days), now, f"the last {days} days")


def last_month(now: datetime) -> Period:
    first_of_this = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first_of_last = (first_of_this - timedelta(days=1)).replace(day=1)
    return Period(first_of_last, first_of_this, f"{first_of_last:%B %Y}")
