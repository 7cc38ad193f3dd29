"""Retention: when the duty that deletes old pings, hook bodies and outbox rows next runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class RetentionRun(Base):
    """The retention duty's schedule, shared by every process: whoever moves `next_at` on
    with a compare-and-set runs it, so replicas on one database do not all delete at once.
    The counts of the last run are there for whoever wonders whether it runs at all."""

    __tablename__ = "retention_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Rows deleted by the last run that finished, by table.
    deleted: Mapped[dict[str, Any]] = mapped_column(default=dict)
