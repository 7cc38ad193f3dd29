"""The change log: one row per change that affects an integration."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


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
    # The change freeze in force when it was logged (commands/changes/freezes), if any.
    freeze: Mapped[str | None] = mapped_column(String(300))
