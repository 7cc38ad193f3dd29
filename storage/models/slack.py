"""Slack events already acted on, so that Slack's retries of one are recognised."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class SlackEvent(Base):
    """An Events API delivery already acted on. Slack retries an event it thinks went
    unanswered with the same event_id; inserting the id in the transaction that acts on the
    event makes a retry find it and do nothing. Old rows are pruned."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
