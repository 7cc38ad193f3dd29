"""Monitors: heartbeats and their pings, probes, vendor status pages and their notices."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.leases import Leased
from storage.models.base import Base

# Each monitor's state row is also its due row: `due_at` says when it next needs looking at,
# and a process claims it with a conditional UPDATE of `claimed_by`/`claimed_until`, so any
# number of processes on one PostgreSQL do each check once, and a restart resumes from the
# stored due time rather than skipping or repeating one.


class HeartbeatStatus(enum.StrEnum):
    NEW = "new"  # no ping yet; the first deadline still applies
    UP = "up"  # the last run reported success in time
    RUNNING = "running"  # /start came, the end has not (yet)
    DOWN = "down"  # a run missed its deadline or reported /fail: an alert is open


class NoticeKind(enum.StrEnum):
    """What a vendor's status page announced."""

    INCIDENT = "incident"
    MAINTENANCE = "maintenance"


class Heartbeat(Base):
    """An integration's dead-man's switch: what it last heard, and when the run it awaits
    must have reported by (expected time plus grace)."""

    __tablename__ = "heartbeats"

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), primary_key=True)
    # The secret in the ping URL; unique across the catalog.
    key: Mapped[str] = mapped_column(String(100), unique=True)
    # When the key was last set, so `/integ heartbeat` can say how old the secret is.
    key_changed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(10), default=HeartbeatStatus.NEW)
    last_ping_at: Mapped[datetime | None]  # last success
    last_start_at: Mapped[datetime | None]
    last_fail_at: Mapped[datetime | None]
    # The run awaited (a cron time, or the last success plus `every`), and when its
    # absence becomes an alert. NULL while nothing is awaited.
    expected_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    # The schedule the deadline was computed from; when the catalog changes it, the
    # deadline is computed again rather than kept from the old schedule.
    schedule: Mapped[str | None] = mapped_column(String(200))


class HeartbeatPing(Base):
    """One ping as received: the run's record, and its log when the job sent one."""

    __tablename__ = "heartbeat_pings"
    __table_args__ = (Index("ix_heartbeat_pings_integration_at", "integration_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    # Indexed on its own for the retention duty, which deletes pings older than a setting.
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(10))  # success | start | fail
    method: Mapped[str] = mapped_column(String(8))
    user_agent: Mapped[str | None] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)  # at most 100 kB


class Probe(Leased, Base):
    """An integration's HTTP probe: when it is next checked and how the last checks went."""

    __tablename__ = "probes"
    __table_args__ = (Index("ix_probes_due_at", "due_at"),)

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)  # consecutive
    last_checked_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)


class StatusPage(Leased, Base):
    """A vendor's public status page (Statuspage API) and when it is next polled."""

    __tablename__ = "status_pages"
    __table_args__ = (Index("ix_status_pages_due_at", "due_at"),)

    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    last_polled_at: Mapped[datetime | None]
    indicator: Mapped[str | None] = mapped_column(String(20))  # none | minor | major | critical
    description: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)


class VendorNotice(Base):
    """An incident or scheduled maintenance seen on a vendor's status page."""

    __tablename__ = "vendor_notices"
    __table_args__ = (
        UniqueConstraint("system_id", "notice_id", name="uq_vendor_notices_system_notice"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    notice_id: Mapped[str] = mapped_column(String(100))  # the page's own id
    kind: Mapped[str] = mapped_column(String(12))  # incident | maintenance
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(30))
    impact: Mapped[str | None] = mapped_column(String(20))
    url: Mapped[str | None] = mapped_column(Text)
    # The page's updated_at for what was last shown, so a repeat poll changes nothing.
    page_updated_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    # The latest state as read from the page, rendered when its messages are posted.
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class VendorNoticePost(Base):
    """A notice's message in one integration channel: posted once, then updated."""

    __tablename__ = "vendor_notice_posts"
    __table_args__ = (
        UniqueConstraint("notice_id", "channel", name="uq_vendor_notice_posts_notice_channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("vendor_notices.id"))
    channel: Mapped[str] = mapped_column(String(64))
    # The outbox row that posts it; its result_ts is the message to update. Indexed: the
    # retention duty keeps outbox rows still referenced (commands/retention/purge.py).
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
