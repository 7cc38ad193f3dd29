"""Typed SQLAlchemy models.

The catalog file says what exists; these tables say what happened. Rows for systems and
integrations are synced from the catalog and only ever marked removed, so the alerts,
reviews and changes that point at them keep their history.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import UTCDateTime

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class System(Base):
    __tablename__ = "systems"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class Integration(Base):
    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    target_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    mechanism: Mapped[str] = mapped_column(String(20))
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(64))
    # The whole catalog entry as validated, for `/integ info` and later features.
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    source: Mapped[System] = relationship(foreign_keys=[source_id], lazy="joined")
    target: Mapped[System] = relationship(foreign_keys=[target_id], lazy="joined")

    @property
    def systems(self) -> list[System]:
        """Its systems, source first, once each (an integration within one system has one)."""
        if self.source_id == self.target_id:
            return [self.source]
        return [self.source, self.target]


class CatalogLoad(Base):
    """One row per attempt to load the catalog file, accepted or refused."""

    __tablename__ = "catalog_loads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loaded_at: Mapped[datetime]
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    accepted: Mapped[bool]
    errors: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(Base):
    """One failure of one integration, identified by (integration, key)."""

    __tablename__ = "alerts"
    __table_args__ = (
        # `/integ status` asks "is anything open for this integration"; this index answers
        # it without scanning the resolved history, which grows without bound.
        Index("ix_alerts_integration_status", "integration_name", "status"),
        # One row per (integration, key) for ever: repeats count up, a resolved alert that
        # fires again reopens the same row. The constraint is what stops two processes
        # from creating it twice.
        UniqueConstraint("integration_name", "key", name="uq_alerts_integration_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The name as received; an alert for an unknown integration is kept all the same.
    integration_name: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[str | None] = mapped_column(ForeignKey("integrations.id"))
    key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.FIRING)
    severity: Mapped[str] = mapped_column(String(20), default="error")
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="generic")
    count: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    root_cause: Mapped[str | None] = mapped_column(String(40))
    root_cause_note: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    escalated_at: Mapped[datetime | None]


class AlertTransition(Base):
    """An immutable record of one alert state change: who, when, from, to, why."""

    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))


class ChangeCategory(enum.StrEnum):
    CONFIG = "config"
    FIELD_MAPPING = "field-mapping"
    SCHEDULE = "schedule"
    CREDENTIALS = "credentials"
    VENDOR_UPDATE = "vendor-update"
    RESYNC = "resync"
    SILENCE = "silence"
    OTHER = "other"


class ChangeSource(enum.StrEnum):
    """How an entry came into the log, not who made the change (that is `author`)."""

    COMMAND = "command"  # a person through the bot's own surfaces: `/integ`, its buttons
    SHORTCUT = "shortcut"  # the message shortcut's modal
    REACTION = "reaction"  # a :memo: reaction on a message
    BOT = "bot"  # the bot on its own account, with no author


class Change(Base):
    """One change that affects an integration.

    Category and source are plain strings checked in `commands.changes.entries`, not database
    enums: adding a category is then a code change, not a migration on two databases.
    """

    __tablename__ = "changes"
    __table_args__ = (
        # `/integ changes i` and the knowledge-base page read one integration's log, newest
        # first; with integration_id leading, this index also serves every lookup by
        # integration alone, so that column has no index of its own.
        Index("ix_changes_integration_happened", "integration_id", "happened_at"),
        # A Slack message logs once per integration however many people react or Slack
        # retries the event. Entries not made from a message leave both columns NULL, and
        # NULLs never collide in a unique constraint on SQLite or PostgreSQL.
        UniqueConstraint(
            "integration_id",
            "message_channel",
            "message_ts",
            name="uq_changes_integration_message",
        ),
        # Every edit and deletion of any message in the bot's channels looks here first;
        # the constraint above cannot serve that lookup, led as it is by the integration.
        Index("ix_changes_message", "message_channel", "message_ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    category: Mapped[str] = mapped_column(String(20))
    # Exactly as written; escaped when shown, never when stored.
    summary: Mapped[str] = mapped_column(Text)
    # A Slack user id; NULL when no person wrote it: the bot itself, or an app's message.
    author: Mapped[str | None] = mapped_column(String(64))
    # Who put it in the log, when that is not the author: the person who used the shortcut
    # or reacted with :memo: on someone else's message.
    logged_by: Mapped[str | None] = mapped_column(String(64))
    # When the change was made (a logged message's own time), against when it was logged.
    happened_at: Mapped[datetime]
    logged_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(20))
    permalink: Mapped[str | None] = mapped_column(Text)
    ticket_url: Mapped[str | None] = mapped_column(Text)
    message_channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    edited_at: Mapped[datetime | None]
    # Marked, not removed: deleting the Slack message must not erase the history.
    deleted_at: Mapped[datetime | None]


class Review(Base):
    """A completed review of one integration."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), index=True)
    reviewed_at: Mapped[datetime]
    reviewed_by: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)


class ReceivedEvent(Base):
    """Every hook request as received, committed before the 202: the promise that nothing
    acknowledged to a sender is ever lost, and the record to replay from."""

    __tablename__ = "received_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(20))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    alerts: Mapped[int] = mapped_column(default=0)


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(Base):
    """One intended Slack write. The worker claims it, sends it, records each attempt.

    A row is claimed with a conditional UPDATE that must change exactly one row, so two
    workers (or two processes) never send the same message.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    # post: an alert's message; update: chat.update of it; reply: in its thread; message: a
    # plain message (payload: text, blocks); edit: chat.update of a message row's result.
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    result_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxAttempt(Base):
    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    at: Mapped[datetime]
    ok: Mapped[bool]
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    retry_after: Mapped[float | None]
    worker: Mapped[str | None] = mapped_column(String(64))


class ChannelPace(Base):
    """When each channel may next be written to: Slack allows about one message a second
    per channel, and a 429's Retry-After applies to every process."""

    __tablename__ = "channel_pace"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[datetime]


# -- monitors: the bot watching integrations itself ---------------------------------
#
# Each monitor's state row is also its due row: `due_at` says when it next needs looking at,
# and a process claims it with a conditional UPDATE of `claimed_by`/`claimed_until`, so any
# number of processes on one PostgreSQL do each check once, and a restart resumes from the
# stored due time rather than skipping or repeating one.


class HeartbeatStatus(enum.StrEnum):
    NEW = "new"  # no ping yet; the first deadline still applies
    UP = "up"  # the last run reported success in time
    RUNNING = "running"  # /start came, the end has not (yet)
    DOWN = "down"  # a run missed its deadline or reported /fail: an alert is open


class Heartbeat(Base):
    """An integration's dead-man's switch: what it last heard, and when the run it awaits
    must have reported by (expected time plus grace)."""

    __tablename__ = "heartbeats"

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), primary_key=True)
    # The secret in the ping URL; unique across the catalog.
    key: Mapped[str] = mapped_column(String(100), unique=True)
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
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(10))  # success | start | fail
    method: Mapped[str] = mapped_column(String(8))
    user_agent: Mapped[str | None] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)  # at most 100 kB


class Probe(Base):
    """An integration's HTTP probe: when it is next checked and how the last checks went."""

    __tablename__ = "probes"

    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(default=0)  # consecutive
    last_checked_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)


class StatusPage(Base):
    """A vendor's public status page (Statuspage API) and when it is next polled."""

    __tablename__ = "status_pages"

    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
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
    # The outbox row that posts it; its result_ts is the message to update.
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))


# -- reviews: the nudge that asks for a review, and what became of it ---------------


class ReviewNudgeStatus(enum.StrEnum):
    OPEN = "open"  # posted, waiting for a review
    SNOOZED = "snoozed"  # put off until `snoozed_until`
    DONE = "done"  # a review was recorded


class ReviewNudge(Base):
    """The one message asking for one review: an integration's review due on one day.

    The unique (integration, due date) is the claim: a nudge is posted only by whoever
    inserted its row, so a restart or a second process never posts the same nudge twice.
    """

    __tablename__ = "review_nudges"
    __table_args__ = (
        UniqueConstraint("integration_id", "due_on", name="uq_review_nudges_integration_due"),
        # The tick looks for snoozes that have ended; open and snoozed rows are few.
        Index("ix_review_nudges_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    due_on: Mapped[date] = mapped_column(Date)
    posted_at: Mapped[datetime]
    # The MESSAGE outbox row that posts it; its result_ts is the message to edit.
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    status: Mapped[str] = mapped_column(String(10), default=ReviewNudgeStatus.OPEN)
    snoozes: Mapped[int] = mapped_column(default=0)
    snoozed_until: Mapped[date | None] = mapped_column(Date)
    snoozed_by: Mapped[str | None] = mapped_column(String(64))
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminded_at: Mapped[datetime | None]
    # Who is asked instead of the owner after a Reassign, and who reassigned it.
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    assigned_by: Mapped[str | None] = mapped_column(String(64))
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"))


# -- the weekly digest ----------------------------------------------------------------------


class Digest(Base):
    """One weekly digest, posted once. The unique scheduled time is the claim, as for review
    nudges: whoever inserts the row queues the message, so a restart or a second process
    never posts the same week twice."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # When it was scheduled (INTEG_DIGEST_WEEKDAY at INTEG_DIGEST_HOUR); it covers the week
    # before this moment.
    scheduled_at: Mapped[datetime] = mapped_column(unique=True)
    posted_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))


# -- Slack events ---------------------------------------------------------------------------


class SlackEvent(Base):
    """An Events API delivery already acted on. Slack retries an event it thinks went
    unanswered with the same event_id; inserting the id in the transaction that acts on the
    event makes a retry find it and do nothing. Old rows are pruned."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
