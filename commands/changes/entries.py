"""The change log: every change that affects an integration, one row each.

Silences write to it, and `/integ log`, the message shortcut and the :memo: reaction
(commands/changes/from_chat.py) add theirs through the same `record`, so every entry is checked
the same way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from storage.models import Change, ChangeCategory, ChangeSource
from storage.types import storable

CATEGORIES: tuple[str, ...] = tuple(c.value for c in ChangeCategory)
SOURCES: tuple[str, ...] = tuple(s.value for s in ChangeSource)


def record(
    session: Session,
    *,
    integration_id: str,
    category: str,
    summary: str,
    author: str | None,
    source: str,
    happened_at: datetime,
    logged_at: datetime,
    permalink: str | None = None,
    ticket_url: str | None = None,
    message_channel: str | None = None,
    message_ts: str | None = None,
    logged_by: str | None = None,
) -> Change:
    """Add one entry to the session's transaction; the caller's transaction commits it.

    The summary is kept exactly as given: escaping belongs to whoever shows it, and an entry
    altered on the way in could not be shown faithfully anywhere else (CSV, the wiki). The
    one exception is what no database here can hold (NUL, a lone surrogate; see `storable`),
    so that an entry is stored the same on SQLite and PostgreSQL rather than refused on one.
    """
    # The columns are plain strings, so the database would accept a typo; refuse it here,
    # where the caller can still answer the person instead of storing a category no list
    # or filter will ever show.
    if category not in CATEGORIES:
        raise ValueError(f"unknown change category {category!r}; one of {', '.join(CATEGORIES)}")
    if source not in SOURCES:
        raise ValueError(f"unknown change source {source!r}; one of {', '.join(SOURCES)}")
    # Half a message reference would slip past the once-per-message unique constraint,
    # which treats any NULL as distinct.
    if (message_channel is None) != (message_ts is None):
        raise ValueError("a logged message needs both its channel and its ts")
    change = Change(
        integration_id=integration_id,
        # Plain str, so the object holds what a reload gives, whatever the driver would
        # make of a StrEnum member.
        category=str(category),
        summary=storable(summary),
        author=author,
        logged_by=logged_by,
        source=str(source),
        happened_at=happened_at,
        logged_at=logged_at,
        permalink=permalink,
        ticket_url=ticket_url,
        message_channel=message_channel,
        message_ts=message_ts,
    )
    session.add(change)
    return change
