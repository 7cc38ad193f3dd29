"""Reviews: each completed review, the nudge that asks for one, and the weekly digest."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class Review(Base):
    """A completed review of one integration."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), index=True)
    reviewed_at: Mapped[datetime]
    reviewed_by: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)


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
    # The MESSAGE outbox row that posts it; its result_ts is the message to edit. Indexed:
    # the retention duty keeps outbox rows still referenced (commands/retention/purge.py).
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
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
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
