"""Maintenance windows: planned work during which an integration's alerts are held back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class MaintenanceWindow(Base):
    """One window as it happens: an occurrence of a catalog window, one started from Slack,
    or a vendor's scheduled maintenance. Its unique key is the claim, so whichever process
    inserts it first tells the channels it started (commands/maintenance). Each
    integration it covers gets a Silence of kind "maintenance" for its span, which holds
    the alerts back as a silence does."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    scope: Mapped[str] = mapped_column(String(12))  # integration | system
    scope_id: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(12))  # catalog | slack | vendor
    created_by: Mapped[str | None] = mapped_column(String(64))
    # When the channels were told it ended (a compare-and-set: once across processes).
    end_told_at: Mapped[datetime | None]


class CalendarCopy(Base):
    """The last good copy of an ICS calendar the catalog names (a change freeze's), and how
    the last fetch went: a fetch that fails keeps the copy (commands/changes/freezes)."""

    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(1000), unique=True)  # a path or a URL
    body: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime | None]
    tried_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
