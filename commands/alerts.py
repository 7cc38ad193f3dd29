"""Alert intake: normalised events become one alert per (integration, key), an immutable
transition per state change, and queued Slack writes.

Called in the hook's transaction, after the raw body is added to it, so the 202 that
follows the commit promises both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from commands import outbox
from commands.intake import NO_SUMMARY, AlertEvent
from storage import queries
from storage.models import Alert, AlertStatus, AlertTransition, Integration

log = logging.getLogger(__name__)

FIRING = AlertStatus.FIRING.value
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED.value
RESOLVED = AlertStatus.RESOLVED.value
OPEN = (FIRING, ACKNOWLEDGED)


@dataclass
class IngestResult:
    opened: int = 0
    repeated: int = 0
    reopened: int = 0
    resolved: int = 0
    ignored: int = 0
    unknown_integrations: set[str] = field(default_factory=set)

    @property
    def alerts(self) -> int:
        return self.opened + self.repeated + self.reopened + self.resolved


def ingest(
    session: Session,
    events: Sequence[AlertEvent],
    now: datetime,
    fallback_channel: str | None,
) -> IngestResult:
    result = IngestResult()
    integrations: dict[str, Integration | None] = {}
    for event in events:
        name = event.integration or "(none)"
        if name not in integrations:
            integrations[name] = queries.integration(session, name)
        integ = integrations[name]
        if integ is None:
            result.unknown_integrations.add(name)
        _apply(session, event, name, integ, now, fallback_channel, result)
    return result


def _apply(
    session: Session,
    event: AlertEvent,
    name: str,
    integ: Integration | None,
    now: datetime,
    fallback_channel: str | None,
    result: IngestResult,
) -> None:
    alert = _locked_alert(session, name, event.key)
    if alert is None:
        if event.status == RESOLVED:
            # A resolution for something never seen: the raw event is kept, nothing opens.
            result.ignored += 1
            return
        created = _create(session, event, name, integ, now)
        if created is not None:
            record_transition(
                session, created, None, FIRING, now, None, f"{event.source} alert received"
            )
            result.opened += 1
            _queue_post(session, created, integ, now, fallback_channel)
            return
        # Another process created it since we looked: this event is a repeat of that alert.
        alert = _locked_alert(session, name, event.key)
        assert alert is not None

    if event.status == RESOLVED:
        if alert.status == RESOLVED:
            result.ignored += 1
            return
        previous = alert.status
        alert.status = RESOLVED
        alert.resolved_at = now
        alert.resolved_by = None
        alert.last_seen_at = now
        record_transition(session, alert, previous, RESOLVED, now, None, "resolved by its source")
        result.resolved += 1
        queue_change(session, alert, now, ":white_check_mark: Resolved by its source.")
        return

    _refresh(alert, event, now)
    if alert.status in OPEN:
        alert.count += 1
        result.repeated += 1
        queue_change(session, alert, now, None)
        return
    # Fired again after being resolved: the same alert reopens, its history intact.
    alert.count += 1
    alert.status = FIRING
    alert.acknowledged_at = alert.acknowledged_by = None
    alert.resolved_at = alert.resolved_by = None
    alert.root_cause = alert.root_cause_note = None
    alert.escalated_at = None
    record_transition(session, alert, RESOLVED, FIRING, now, None, "fired again after resolving")
    result.reopened += 1
    if alert.message_ts is None:
        _queue_post(session, alert, integ, now, fallback_channel)
    else:
        queue_change(session, alert, now, ":leftwards_arrow_with_hook: Fired again; reopened.")


def _locked_alert(session: Session, name: str, key: str) -> Alert | None:
    # FOR UPDATE serialises concurrent events for one alert on PostgreSQL; SQLite has one
    # writer at a time, and this transaction already holds the write lock (the raw event
    # was inserted first).
    return session.scalars(
        select(Alert)
        .where(Alert.integration_name == name, Alert.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _create(
    session: Session, event: AlertEvent, name: str, integ: Integration | None, now: datetime
) -> Alert | None:
    """The new alert, or None when another process inserted it first."""
    values = {
        "integration_name": name,
        "integration_id": integ.id if integ is not None else None,
        "key": event.key,
        "status": FIRING,
        "severity": event.severity,
        "summary": event.summary,
        "details": event.details,
        "url": event.url,
        "source": event.source,
        "count": 1,
        "first_seen_at": now,
        "last_seen_at": now,
        "labels": event.labels or None,
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Another process may create the same alert at the same moment; the unique constraint
    # decides, and the loser carries on with the winner's row as a repeat. RETURNING tells
    # which one this is (psycopg reports rowcount -1 for INSERT … ON CONFLICT).
    inserted = session.execute(
        insert(Alert)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["integration_name", "key"])
        .returning(Alert.id)
    ).first()
    if inserted is None:
        return None
    alert = _locked_alert(session, name, event.key)
    assert alert is not None
    return alert


def _refresh(alert: Alert, event: AlertEvent, now: datetime) -> None:
    if event.summary != NO_SUMMARY:
        alert.summary = event.summary
    alert.details = event.details or alert.details
    alert.severity = event.severity
    alert.url = event.url or alert.url
    alert.last_seen_at = now
    if event.labels:
        alert.labels = event.labels


def record_transition(
    session: Session,
    alert: Alert,
    from_status: str | None,
    to_status: str,
    now: datetime,
    actor: str | None,
    reason: str,
) -> None:
    session.add(
        AlertTransition(
            alert_id=alert.id,
            at=now,
            actor=actor,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
    )


def _queue_post(
    session: Session,
    alert: Alert,
    integ: Integration | None,
    now: datetime,
    fallback_channel: str | None,
) -> None:
    channel = integ.channel if integ is not None else fallback_channel
    if channel is None:
        log.warning(
            "alert #%s for unknown integration %r is kept but not posted: "
            "INTEG_FALLBACK_CHANNEL is not set",
            alert.id,
            alert.integration_name,
        )
        return
    if integ is not None and queries.active_silence(session, integ.id, now) is not None:
        return  # recorded and counted; posted when the silence ends (channel still unset)
    # A channel on the alert means "its message is posted or on its way".
    alert.channel = channel
    outbox.enqueue(session, kind=outbox.POST, channel=channel, now=now, alert_id=alert.id)


def queue_change(session: Session, alert: Alert, now: datetime, note: str | None) -> None:
    """Update the alert's message in place, and say what happened in its thread."""
    # Queuing the post sets the channel, so no channel means it was never queued.
    channel = alert.channel
    if channel is None:
        return  # never posted (silenced, or no channel): nothing to update
    outbox.enqueue(session, kind=outbox.UPDATE, channel=channel, now=now, alert_id=alert.id)
    if note:
        outbox.enqueue(
            session,
            kind=outbox.REPLY,
            channel=channel,
            now=now,
            alert_id=alert.id,
            payload={"text": note},
        )
