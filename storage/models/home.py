"""The App Home: who has opened theirs, and which integrations each one shows.

A person who never opened the Home tab has no row here, and so costs nothing: only the
integrations a published Home shows ask for it to be published again when they change.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class HomeView(Base):
    """One person's Home tab: when they last opened it, what it is filtered to, and the
    last thing it said to them about a button they clicked there."""

    __tablename__ = "home_views"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime]
    # The system the "all integrations" overview is narrowed to, picked in the Home.
    system_filter: Mapped[str | None] = mapped_column(String(64))
    # A click in the Home has no response_url to answer on: its answer (mrkdwn) is shown
    # at the top of the Home for a while instead.
    notice: Mapped[str | None] = mapped_column(Text)
    notice_at: Mapped[datetime | None]
    # Set while a publish of this Home is queued and not yet rendered: a change then has
    # nothing to ask for, since that publish will show it (commands/home/queue.py).
    publish_queued_at: Mapped[datetime | None]
    # When it was last rendered for a publish; a Home in use is refreshed when this is old.
    rendered_at: Mapped[datetime | None]


class HomeIntegration(Base):
    """An integration one person's Home shows as theirs (owner, backup or team member),
    as of its last publish: a change to it publishes that Home again."""

    __tablename__ = "home_integrations"
    __table_args__ = (Index("ix_home_integrations_integration", "integration_id"),)

    user_id: Mapped[str] = mapped_column(
        ForeignKey("home_views.user_id", ondelete="CASCADE"), primary_key=True
    )
    # No foreign key: an integration removed from the catalog keeps its row until the
    # Home is next published, which is what tells its owner it is gone.
    integration_id: Mapped[str] = mapped_column(String(64), primary_key=True)
