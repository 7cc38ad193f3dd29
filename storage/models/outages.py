"""Outages of a system: one message per channel for many failing integrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class SystemOutage(Base):
    """A system that is down: its vendor's status page shows an incident, or enough of the
    integrations touching it failed within a few minutes. The alerts of those integrations
    are folded under it (`Alert.outage_id`) while it lasts."""

    __tablename__ = "system_outages"
    __table_args__ = (
        # One open outage per system, whichever process opens it first.
        Index(
            "uq_system_outages_open",
            "system_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system_id: Mapped[str] = mapped_column(ForeignKey("systems.id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    cause: Mapped[str] = mapped_column(String(20))  # "vendor" | "failures"
    reason: Mapped[str] = mapped_column(Text)
    # The vendor's incident that opened it; its messages are the outage's messages.
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("vendor_notices.id"))
    # Its messages no longer show its alerts as they are: the tick edits them. An alert
    # folded under it only sets this, since a storm folds thousands and each edit of every
    # channel's message costs more than the alert itself.
    stale: Mapped[bool] = mapped_column(default=False)


class SystemOutagePost(Base):
    """An outage's message in one channel (one opened by failures; a vendor incident's
    outage shows in the incident's own messages)."""

    __tablename__ = "system_outage_posts"
    __table_args__ = (UniqueConstraint("outage_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("system_outages.id"))
    channel: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
