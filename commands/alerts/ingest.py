"""Alert intake: hook requests become one alert per (integration, key), an immutable
transition per state change, and queued Slack writes.

`receive` stores each hook request's raw body and what it means in the caller's
transaction, so the 202 that follows the commit promises both. A failure storm is thousands
of events a minute, nearly all repeats of an alert already open, so every common case is a
statement or two built once here, sent straight to the connection; only an alert firing
again after it was resolved goes through the ORM.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Insert, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from commands.alerts.payloads import NO_SUMMARY, AlertEvent
from commands.alerts.refires import show_refire
from commands.alerts.repeats import AlertKey, fold_repeats, repeated_values
from commands.alerts.transitions import (
    ACKNOWLEDGED,
    FIRING,
    RESOLVED,
    queue_change,
    queue_change_of,
    record_transition,
    record_transition_of,
)
from commands.hours.working import held_until
from commands.outages.detect import Threshold, fold_new_alert
from commands.outages.state import mark_stale
from commands.outbox import queue as outbox
from storage import queries
from storage.db import table_of
from storage.models import Alert, ReceivedEvent
from storage.queries import Route

log = logging.getLogger(__name__)

UNNAMED = "(none)"  # the integration of an event that names none


@dataclass(frozen=True)
class Received:
    """One hook request as it came in: its raw body and the events parsed from it."""

    source: str
    body: bytes
    events: Sequence[AlertEvent]


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


_received = table_of(ReceivedEvent)
_RECEIVE = (
    insert(_received)
    .values(
        received_at=bindparam("p_at", type_=_received.c.received_at.type),
        source=bindparam("p_source"),
        body=bindparam("p_body", type_=_received.c.body.type),
        alerts=bindparam("p_alerts"),
    )
    .returning(_received.c.id, sort_by_parameter_order=True)
)

_alerts = table_of(Alert)
_NOW = bindparam("p_now", type_=_alerts.c.last_seen_at.type)
_NAME_AND_KEY = (
    _alerts.c.integration_name == bindparam("p_name"),
    _alerts.c.key == bindparam("p_key"),
)

# A repeat of an open alert, in one statement. The condition on status also keeps it right
# against a concurrent resolve: PostgreSQL re-checks it once the row lock is free, and a
# repeat of an alert resolved meanwhile matches nothing and reopens it on the slow path.
_REPEAT_OPEN = (
    update(_alerts)
    .where(*_NAME_AND_KEY, _alerts.c.status != RESOLVED)
    .values(repeated_values(1))
    .returning(_alerts.c.id, _alerts.c.channel)
)

# Resolved by its source, from one given open status, so the transition records where it
# came from without reading the row first.
_RESOLVE_FROM = (
    update(_alerts)
    .where(*_NAME_AND_KEY, _alerts.c.status == bindparam("p_from"))
    .values(status=RESOLVED, resolved_at=_NOW, resolved_by=None, last_seen_at=_NOW)
    .returning(_alerts.c.id, _alerts.c.channel, _alerts.c.outage_id)
)


def _create_statement(dialect: str) -> Insert:
    # Another process may create the same alert at the same moment; the unique constraint
    # decides, and the loser carries on with the winner's row. RETURNING tells which one
    # this is (psycopg reports rowcount -1 for INSERT … ON CONFLICT).
    dialect_insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        dialect_insert(_alerts)
        .values(
            integration_name=bindparam("p_name"),
            integration_id=bindparam("p_integration"),
            key=bindparam("p_key"),
            status=FIRING,
            severity=bindparam("p_severity"),
            summary=bindparam("p_summary"),
            details=bindparam("p_details"),
            url=bindparam("p_url"),
            source=bindparam("p_source"),
            count=1,
            first_seen_at=_NOW,
            last_seen_at=_NOW,
            fired_at=_NOW,
            labels=bindparam("p_labels", type_=JSON(none_as_null=True)),
            # A channel on the alert means "its message is posted or on its way".
            channel=bindparam("p_channel"),
        )
        .on_conflict_do_nothing(index_elements=["integration_name", "key"])
        .returning(_alerts.c.id)
    )


_CREATE = {name: _create_statement(name) for name in ("sqlite", "postgresql")}


def receive(
    session: Session,
    requests: Sequence[Received],
    now: datetime,
    fallback_channel: str | None,
    threshold: Threshold | None = None,
) -> list[tuple[int, IngestResult]]:
    """Store hook requests as received and apply their events in order; for each, (received
    event id, what happened). Nothing here commits."""
    rows = session.connection().execute(
        _RECEIVE,
        [
            {"p_at": now, "p_source": r.source, "p_body": r.body, "p_alerts": len(r.events)}
            for r in requests
        ],
    )
    event_ids = list(rows.scalars())
    routes = queries.routes(session, {_name(e) for r in requests for e in r.events}, now)
    folded = fold_repeats(session, (r.events for r in requests), now, _name)
    return [
        (event_id, ingest(session, r.events, now, fallback_channel, routes, folded, threshold))
        for event_id, r in zip(event_ids, requests, strict=True)
    ]


def ingest(
    session: Session,
    events: Sequence[AlertEvent],
    now: datetime,
    fallback_channel: str | None,
    routes: dict[str, Route] | None = None,
    folded: AbstractSet[AlertKey] = frozenset(),
    threshold: Threshold | None = None,
) -> IngestResult:
    """Apply events in order. Those of `folded` alerts were counted already (fold_repeats)
    and are only reported here."""
    result = IngestResult()
    if routes is None:
        routes = queries.routes(session, {_name(event) for event in events}, now)
    for event in events:
        name = _name(event)
        route = routes.get(name)
        if route is None:
            result.unknown_integrations.add(name)
        if (name, event.key) in folded:
            result.repeated += 1
        elif event.status == RESOLVED:
            if _resolve_open(session, event, name, now):
                result.resolved += 1
            else:
                # Never seen, or already resolved: the raw event is kept, nothing changes.
                result.ignored += 1
        elif _repeat_open(session, event, name, now):
            result.repeated += 1
        elif _open_new(session, event, name, route, now, fallback_channel, threshold):
            result.opened += 1
        else:
            _fire_again(session, event, name, route, now, fallback_channel, result, threshold)
    return result


def _name(event: AlertEvent) -> str:
    return event.integration or UNNAMED


def _event_values(event: AlertEvent, name: str, now: datetime) -> dict[str, Any]:
    return {
        "p_name": name,
        "p_key": event.key,
        "p_now": now,
        "p_severity": event.severity,
        "p_details": event.details or None,
        "p_url": event.url or None,
        "p_labels": event.labels or None,
    }


def _repeat_open(session: Session, event: AlertEvent, name: str, now: datetime) -> bool:
    """Count a firing event against its open alert, if there is one."""
    values = _event_values(event, name, now)
    values["p_summary"] = None if event.summary == NO_SUMMARY else event.summary
    row = session.connection().execute(_REPEAT_OPEN, values).first()
    if row is None:
        return False
    alert_id, channel = row
    if channel is not None:  # never posted (silenced, or no channel): nothing to update
        outbox.queue_update(session, alert_id=alert_id, channel=channel, now=now)
    return True


def _open_new(
    session: Session,
    event: AlertEvent,
    name: str,
    route: Route | None,
    now: datetime,
    fallback_channel: str | None,
    threshold: Threshold | None,
) -> bool:
    """Create the alert and queue its message, unless it exists already."""
    channel = route.channel if route is not None else fallback_channel
    # Silenced: recorded and counted, posted when the silence ends (channel left unset).
    post_to = None if route is not None and route.silenced else channel
    values = _event_values(event, name, now)
    values.update(
        p_integration=route.id if route is not None else None,
        p_summary=event.summary,
        p_details=event.details,
        p_url=event.url,
        p_source=event.source,
        p_channel=post_to,
    )
    dialect = session.get_bind().dialect.name
    inserted = session.connection().execute(_CREATE[dialect], values).first()
    if inserted is None:
        return False
    alert_id = inserted[0]
    record_transition_of(
        session, alert_id, None, FIRING, now, None, f"{event.source} alert received"
    )
    if channel is None:
        log.warning(
            "alert #%s for unknown integration %r is kept but not posted: "
            "INTEG_FALLBACK_CHANNEL is not set",
            alert_id,
            name,
        )
    elif route is not None and fold_new_alert(session, alert_id, route.systems, now, threshold):
        # Shown in its system's outage message instead (commands/outages).
        _unposted(session, alert_id)
    elif post_to is not None and held_until(
        session, route.id if route else None, event.severity, now
    ):
        # Outside working hours and below critical: the tick posts it when they start.
        _unposted(session, alert_id)
    elif post_to is not None:
        outbox.enqueue(session, kind=outbox.POST, channel=post_to, now=now, alert_id=alert_id)
    return True


def _unposted(session: Session, alert_id: int) -> None:
    session.connection().execute(
        update(_alerts).where(_alerts.c.id == alert_id).values(channel=None)
    )


def _resolve_open(session: Session, event: AlertEvent, name: str, now: datetime) -> bool:
    for previous in (FIRING, ACKNOWLEDGED):
        values = {"p_name": name, "p_key": event.key, "p_now": now, "p_from": previous}
        row = session.connection().execute(_RESOLVE_FROM, values).first()
        if row is not None:
            alert_id, channel, outage_id = row
            record_transition_of(
                session, alert_id, previous, RESOLVED, now, None, "resolved by its source"
            )
            if outage_id is not None:
                mark_stale(session, outage_id)  # its message will list it recovered
            queue_change_of(
                session, alert_id, channel, now, ":white_check_mark: Resolved by its source."
            )
            return True
    return False


def _fire_again(
    session: Session,
    event: AlertEvent,
    name: str,
    route: Route | None,
    now: datetime,
    fallback_channel: str | None,
    result: IngestResult,
    threshold: Threshold | None = None,
) -> None:
    """A firing event for an alert that exists and was not open a moment ago: it was
    resolved, or another process changed it since the statements above looked."""
    alert = _locked_alert(session, name, event.key)
    assert alert is not None, "the alert's row exists: its creation conflicted"
    _refresh(alert, event, now)
    alert.count += 1
    if alert.status != RESOLVED:
        result.repeated += 1
        queue_change(session, alert, now, None)
    else:
        # Fired again after being resolved: the same alert reopens, its history intact.
        alert.status = FIRING
        alert.acknowledged_at = alert.acknowledged_by = None
        alert.resolved_at = alert.resolved_by = None
        alert.root_cause = alert.root_cause_note = None
        alert.escalated_at = None
        alert.fired_at = now  # escalation counts from here (commands/alerts/schedule.py)
        # Details describe one failure: the earlier one's would be shown as this one's.
        alert.details = event.details or None
        record_transition(
            session, alert, RESOLVED, FIRING, now, None, "fired again after resolving"
        )
        result.reopened += 1
        alert.outage_id = None
        session.flush()
        if route is not None and fold_new_alert(session, alert.id, route.systems, now, threshold):
            session.refresh(alert)  # folded under its system's outage: not shown on its own
        elif alert.message_ts is None and not outbox.post_pending(session, alert.id):
            # Never posted: silenced or without a channel then, or its post failed for good
            # (a wrong channel since fixed, say). Post it now, as a new alert would be, to
            # the channel the catalog names today.
            channel = route.channel if route is not None else fallback_channel
            if channel is not None and not (route is not None and route.silenced):
                alert.channel = channel
                outbox.enqueue(
                    session, kind=outbox.POST, channel=channel, now=now, alert_id=alert.id
                )
        elif alert.message_ts is not None and alert.channel is not None:
            show_refire(session, alert, now)
        else:
            # Its post is still queued: it will show the alert as it is when sent.
            queue_change(session, alert, now, ":leftwards_arrow_with_hook: Fired again; reopened.")
    # The statements above write through the connection, past the ORM's autoflush; what is
    # left unflushed here would later overwrite what they counted.
    session.flush()


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


def _refresh(alert: Alert, event: AlertEvent, now: datetime) -> None:
    if event.summary != NO_SUMMARY:
        alert.summary = event.summary
    alert.details = event.details or alert.details
    alert.severity = event.severity
    alert.url = event.url or alert.url
    alert.last_seen_at = now
    if event.labels:
        alert.labels = event.labels
