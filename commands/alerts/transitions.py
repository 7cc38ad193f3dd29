"""What every change to an alert writes, wherever it comes from (a hook, a button, a
command, a scheduled job): an immutable transition row, and the Slack writes that show it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from commands.home import queue as home
from commands.outbox import queue as outbox
from storage.db import table_of
from storage.models import Alert, AlertStatus, AlertTransition

FIRING = AlertStatus.FIRING.value
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED.value
RESOLVED = AlertStatus.RESOLVED.value
OPEN = (FIRING, ACKNOWLEDGED)

_TRANSITION = insert(table_of(AlertTransition))


def record_transition(
    session: Session,
    alert: Alert,
    from_status: str | None,
    to_status: str,
    now: datetime,
    actor: str | None,
    reason: str,
) -> None:
    record_transition_of(session, alert.id, from_status, to_status, now, actor, reason)


def record_transition_of(
    session: Session,
    alert_id: int,
    from_status: str | None,
    to_status: str,
    now: datetime,
    actor: str | None,
    reason: str,
) -> None:
    session.connection().execute(
        _TRANSITION,
        {
            "alert_id": alert_id,
            "at": now,
            "actor": actor,
            "from_status": from_status,
            "to_status": to_status,
            "reason": reason,
        },
    )
    # Every change of an alert's state passes here: the Homes that show its integration are
    # published again, asked for once when the transaction commits (commands/home/queue.py).
    home.alert_changed(session, alert_id, now)


def queue_change(session: Session, alert: Alert, now: datetime, note: str | None) -> None:
    """Update the alert's message in place, and say what happened in its thread."""
    queue_change_of(session, alert.id, alert.channel, now, note)


def queue_change_of(
    session: Session, alert_id: int, channel: str | None, now: datetime, note: str | None
) -> None:
    # Queuing the post sets the alert's channel, so no channel means it was never queued.
    if channel is None:
        return  # never posted (silenced, or no channel): nothing to update
    outbox.queue_update(session, alert_id=alert_id, channel=channel, now=now)
    if note:
        outbox.enqueue(
            session,
            kind=outbox.REPLY,
            channel=channel,
            now=now,
            alert_id=alert_id,
            payload={"text": note},
        )
