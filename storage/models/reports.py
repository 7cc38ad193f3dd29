"""The monthly reliability reports posted to the digest channel."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class MonthlyReport(Base):
    """One month's report, posted once. The unique month is the claim, as for the weekly
    digest: whoever inserts the row queues the message, so a restart or a second process
    never posts the same month twice."""

    __tablename__ = "monthly_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The first day of the month it covers.
    month: Mapped[date] = mapped_column(Date, unique=True)
    posted_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
