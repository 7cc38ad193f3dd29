"""The audit trail: every permission decision that refused, and every resolve, silence,
unsilence and reassign, with who, what, when and from where. Kept: it is what a security
review asks for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class AuditEntry(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_integration_at", "integration_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    # No foreign key: a refusal may name an integration the catalog no longer holds.
    integration_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(200))  # "alert #17", "review #3"
    allowed: Mapped[bool]
    surface: Mapped[str] = mapped_column(String(20))  # slash, button, modal, shell, …
    channel_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
