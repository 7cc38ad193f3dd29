"""Alert work done on each tick: escalation to backups, and posting what a silence held.

Each item is claimed with a conditional UPDATE that must change exactly one row, so any
number of bot processes on one database do each thing once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec
from commands.core.durations import format_duration, parse_duration
from commands.core.render.mrkdwn import mention
from commands.home import queue as home
from commands.hours.working import held_until
from commands.outbox import queue as outbox
from storage import leases, queries
from storage.models import Alert, AlertStatus, Integration, SystemOutage

FIRING = AlertStatus.FIRING.value
OPEN = (AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value)


def _under_open_outage() -> Any:
    """The alert is folded under a system outage still open (commands/outages): neither
    posted nor escalated on its own."""
    return exists().where(SystemOutage.id == Alert.outage_id, SystemOutage.ended_at.is_(None))


def due_escalations(session: Session, now: datetime) -> list[int]:
    """The alerts left unacknowledged past their integration's `escalate_after` and not
    silenced, oldest first: what `escalate` is to be given, a few at a time.

    Reads the open alerts' own rows (through the index on status), never their history:
    this runs on every tick, and alert_transitions and the outbox only grow."""
    rows = session.execute(
        select(Alert, Integration)
        .join(Integration, Integration.id == Alert.integration_id)
        .where(
            Alert.status == FIRING,
            Alert.escalated_at.is_(None),
            Alert.channel.is_not(None),
            Alert.fired_at.is_not(None),
            Integration.removed_at.is_(None),
            ~_under_open_outage(),
        )
        .order_by(Alert.id)
    ).all()
    due = []
    for alert, integ in rows:
        since = _clock_start(alert)
        after = integration_spec(integ).escalate_after
        if not after or since is None or now - since < parse_duration(after):
            continue
        if queries.active_silence(session, integ.id, now) is not None:
            continue
        if held_until(session, integ.id, alert.severity, now) is not None:
            continue  # the backups are paged in working hours, unless it is critical
        due.append(alert.id)
    return due


def escalate(session: Session, alert_ids: list[int], now: datetime) -> int:
    """Post once in the thread of each of these alerts, mentioning the backups; how many
    were escalated. Each is taken by a compare-and-set, so one that another process
    escalated, or someone acknowledged, since `due_escalations` read it is left alone."""
    escalated = 0
    for alert_id in alert_ids:
        claimed = leases.set_if(
            session,
            Alert,
            Alert.id == alert_id,
            Alert.escalated_at.is_(None),
            Alert.status == FIRING,
            escalated_at=now,
        )
        if not claimed:
            continue
        alert = session.get_one(Alert, alert_id)
        integ = session.get_one(Integration, alert.integration_id)
        since = _clock_start(alert)
        assert since is not None  # due_escalations took only alerts that fired
        spec = integration_spec(integ)
        who = ", ".join(mention(b) for b in spec.backups) if spec.backups else mention(integ.owner)
        text = (
            f":rotating_light: Not acknowledged after {format_duration(now - since)} "
            f"(escalation after {spec.escalate_after}). {who}, can you take a look?"
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


def _clock_start(alert: Alert) -> datetime | None:
    """When the escalation clock started: the alert's last firing, or later, when a silence
    held its message back, the moment the message was queued (people could see it then)."""
    if alert.fired_at is None or alert.shown_at is None:
        return alert.fired_at
    return max(alert.fired_at, alert.shown_at)


def post_after_silence(session: Session, now: datetime) -> int:
    """Open alerts held back by a silence that has ended get their message now."""
    rows = session.execute(
        select(Alert, Integration)
        .join(Integration, Integration.id == Alert.integration_id)
        .where(
            Alert.status.in_(OPEN),
            Alert.channel.is_(None),
            Integration.removed_at.is_(None),
            # Folded under its system's outage: shown in the outage's message until it ends.
            ~_under_open_outage(),
        )
    ).all()
    posted = 0
    for alert, integ in rows:
        if queries.active_silence(session, integ.id, now) is not None:
            continue
        if held_until(session, integ.id, alert.severity, now) is not None:
            continue  # below critical, outside working hours: shown when they start
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
        home.integrations_changed(session, [integ.id], now)  # no longer silenced
        posted += 1
    return posted
