"""Queueing Slack writes. The worker in bot/ sends them; nothing here talks to Slack.

Alert messages are queued by alert id and rendered when sent, so a burst of repeats becomes
one update showing the latest count instead of one Slack call per repeat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import OutboxMessage, OutboxStatus

POST = "post"  # the alert's message, first time
UPDATE = "update"  # chat.update of the alert's message
REPLY = "reply"  # a message in the alert's thread; payload holds its text
MESSAGE = "message"  # a plain message to a channel; payload holds text and blocks


def enqueue(
    session: Session,
    *,
    kind: str,
    channel: str,
    now: datetime,
    alert_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxMessage | None:
    """Queue one write. An update is not queued twice while one is already waiting: the
    waiting one will render the alert as it is when it is sent."""
    if kind == UPDATE and alert_id is not None:
        waiting = session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.alert_id == alert_id,
                OutboxMessage.kind.in_((POST, UPDATE)),
                OutboxMessage.status == OutboxStatus.PENDING.value,
                OutboxMessage.claimed_by.is_(None),
            )
        )
        if waiting is not None:
            return None
    message = OutboxMessage(
        created_at=now,
        due_at=now,
        kind=kind,
        channel=channel,
        alert_id=alert_id,
        payload=payload or {},
        status=OutboxStatus.PENDING.value,
        attempts=0,
    )
    session.add(message)
    session.flush()
    return message
