"""The outbox: a row per intended Slack write, a row per attempt, and each channel's pace."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.leases import Leased
from storage.models.base import Base


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxKind(enum.StrEnum):
    """What the worker does with a row."""

    POST = "post"  # the alert's message, first time
    UPDATE = "update"  # chat.update of the alert's message
    REPLY = "reply"  # a message in the alert's thread; payload holds its text
    # An alert that fired again after it was resolved, shown again: a new message in the
    # channel, or a reply in its thread also sent to the channel (payload: commands.alerts.
    # refires).
    REFIRE = "refire"
    MESSAGE = "message"  # a plain message to a channel; payload holds text and blocks
    # chat.update of a MESSAGE row's message; payload holds {"of": <that row's id>, text, blocks}
    EDIT = "edit"
    # A picture for a channel: the worker renders the payload's Graphviz source to PNG and
    # uploads it.
    UPLOAD = "upload"
    # views.publish of one person's Home tab, rendered when sent; its channel is
    # "home:<user id>", so that publishes to one person are paced like a channel's writes.
    HOME = "home"


class OutboxMessage(Leased, Base):
    """One intended Slack write. The worker claims it, sends it, records each attempt.

    A row is claimed with a conditional UPDATE that must change exactly one row, so two
    workers (or two processes) never send the same message.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
        # The retention duty deletes sent and failed rows older than a setting.
        Index("ix_outbox_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(10))  # an OutboxKind
    channel: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
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
