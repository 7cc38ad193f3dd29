"""The catalog's times: maintenance windows, working hours and change freezes."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from commands.catalog.fields import Cron, Duration, SlackUser, Strict


class WindowSpec(Strict):
    """A maintenance window: every cron occurrence for a while, or once, from a local time
    until another (commands/maintenance)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    every: Cron | None = None
    length: Duration | None = Field(default=None, alias="for")
    start: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    reason: str | None = Field(default=None, max_length=300)
    # In the integration's time zone when not given; a system's windows in UTC.
    timezone: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> WindowSpec:
        repeating = self.every is not None or self.length is not None
        once = self.start is not None or self.until is not None
        if repeating == once:
            raise ValueError("give every and for, or from and until")
        if repeating and (self.every is None or self.length is None):
            raise ValueError("a repeating window needs both every and for")
        if once and (self.start is None or self.until is None):
            raise ValueError("a one-off window needs both from and until")
        if self.start is not None and self.until is not None and self.until <= self.start:
            raise ValueError("until must come after from")
        if self.timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _working_days() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class HoursSpec(Strict):
    """Working hours: outside them, alerts below critical wait for the next working period
    and escalation waits too (commands/hours)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: list[Weekday] = Field(default_factory=_working_days, min_length=1)
    start: str = Field(default="08:00", alias="from", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="17:00", alias="to", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    holidays: list[date] = Field(default_factory=list)
    # An ICS calendar (a URL or a file path) whose events are days off, fetched as a
    # freeze's calendar is.
    holidays_ics: str | None = None

    @model_validator(mode="after")
    def _checked(self) -> HoursSpec:
        if self.end <= self.start:
            raise ValueError("to must come after from (hours within one day)")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        return self


class FreezeSpec(Strict):
    """A change freeze: days (from and until, inclusive, in `timezone`), or the events of an
    ICS calendar (a file path or an http(s) URL), with who approves changes meanwhile."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    approver: SlackUser
    start: date | None = Field(default=None, alias="from")
    until: date | None = None
    ics: str | None = Field(default=None, min_length=1)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _dates_or_calendar(self) -> FreezeSpec:
        days = self.start is not None or self.until is not None
        if days == (self.ics is not None):
            raise ValueError("give from and until, or ics")
        if days and (self.start is None or self.until is None):
            raise ValueError("a freeze needs both from and until")
        if self.start is not None and self.until is not None and self.until < self.start:
            raise ValueError("until must not come before from")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        return self
