"""Alert work done on each tick: escalation to backups, and posting what a silence held.

Each item is claimed with a conditional UPDATE that must change exactly one row, so any
number of bot processes on one database do each thing once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec
from commands.core.durations import format_duration, parse_duration
from commands.core.render.mrkdwn import mention
from commands.outbox import queue as outbox
from storage import leases, queries
from storage.models import Alert, AlertStatus, AlertTransition, Integration, OutboxMessage

FIRING = AlertStatus.FIRING.value
OPEN = (AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value)


def escalate_due(session: Session, now: datetime) -> int:
    """Post once in the thread of each alert left unacknowledged past its integration's
    `escalate_after`, mentioning the backups. Returns how many were escalated."""
    fired_at = (
        select(AlertTransition.alert_id, func.max(AlertTransition.at).label("at"))
        .where(AlertTransition.to_status == FIRING)
        .group_by(AlertTransition.alert_id)
        .subquery()
    )
    # A silence can hold an alert back for hours; the clock starts when people could see it.
    shown_at = (
        select(OutboxMessage.alert_id, func.max(OutboxMessage.created_at).label("at"))
        .where(OutboxMessage.kind == outbox.POST)
        .group_by(OutboxMessage.alert_id)
        .subquery()
    )
    rows = session.execute(
        select(Alert, Integration, fired_at.c.at, shown_at.c.at)
        .join(Integration, Integration.id == Alert.integration_id)
        .join(fired_at, fired_at.c.alert_id == Alert.id)
        .outerjoin(shown_at, shown_at.c.alert_id == Alert.id)
        .where(
            Alert.status == FIRING,
            Alert.escalated_at.is_(None),
            Alert.channel.is_not(None),
            Integration.removed_at.is_(None),
        )
    ).all()
    escalated = 0
    for alert, integ, fired, shown in rows:
        since = max(fired, shown) if shown is not None else fired
        after = integration_spec(integ).escalate_after
        if not after or now - since < parse_duration(after):
            continue
        if queries.active_silence(session, integ.id, now) is not None:
            continue
        claimed = leases.set_if(
            session,
            Alert,
            Alert.id == alert.id,
            Alert.escalated_at.is_(None),
            Alert.status == FIRING,
            escalated_at=now,
        )
        if not claimed:
            continue  # another process escalated it, or it was acknowledged meanwhile
        backups = integration_spec(integ).backups
        who = ", ".join(mention(b) for b in backups) if backups else mention(integ.owner)
        text = (
            f":rotating_light: Not acknowledged after {format_duration(now - since)} "
            f"(escalation after {after}). {who}, can you take a look?"
        )
        outbox.enqueue(
            session,
            kind=outbox.REPLY,
            channel=alert.channel or integ.channel,
            now=now,
            alert_id=alert.id,
            payload={"text": text},
        )
        escalated += 1
    return escalated


def post_after_silence(session: Session, now: datetime) -> int:
    """Open alerts held back by a silence that has ended get their message now."""
    rows = session.execute(
        select(Alert, Integration)
        .join(Integration, Integration.id == Alert.integration_id)
        .where(
            Alert.status.in_(OPEN),
            Alert.channel.is_(None),
            Integration.removed_at.is_(None),
        )
    ).all()
    posted = 0
    for alert, integ in rows:
        if queries.active_silence(session, integ.id, now) is not None:
            continue
        claimed = leases.set_if(
            session,
            Alert,
            Alert.id == alert.id,
            Alert.channel.is_(None),
            channel=integ.channel,
        )
        if not claimed:
            continue
        outbox.enqueue(session, kind=outbox.POST, channel=integ.channel, now=now, alert_id=alert.id)
        posted += 1
    return posted
