"""Events API deliveries acted on, so that Slack's retries of one are recognised."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.db import insert_for
from storage.models import SlackEvent

# Slack retries a delivery three times within about an hour; a day leaves room for clocks.
KEEP = timedelta(days=1)


def seen(session: Session, event_id: str) -> bool:
    """Whether the event was acted on already: a cheap look before any Slack call."""
    return session.get(SlackEvent, event_id) is not None


def first_delivery(session: Session, event_id: str, now: datetime) -> bool:
    """Claim the event in the caller's transaction; False when it was claimed before, by
    this process or another, and so must not be acted on again."""
    claimed = session.execute(
        insert_for(session)(SlackEvent)
        .values(event_id=event_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(SlackEvent.event_id)
    ).scalar()
    return claimed is not None


def prune(session: Session, now: datetime) -> int:
    """Forget deliveries older than KEEP; how many."""
    old = select(SlackEvent.event_id).where(SlackEvent.received_at < now - KEEP)
    result = session.execute(
        delete(SlackEvent)
        .where(SlackEvent.event_id.in_(old))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
