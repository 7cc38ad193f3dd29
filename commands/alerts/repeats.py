"""Repeats of open alerts, folded: one read and one update per alert for a whole batch.

Nearly every event of a failure storm repeats an alert that is already open. The intake
writer commits the requests of many senders together; here every firing event of such a
batch whose alert is open (and which no event of the batch resolves) is counted with one
UPDATE per alert, and its message's update queued once, each sent as one executemany. On
PostgreSQL that is three round trips for the batch instead of two per event; on SQLite a
third of the statements' Python. What the alert ends with is what the events one after
another would have left: the last severity, the last summary, details, URL and labels given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import JSON, bindparam, func, select, update
from sqlalchemy.orm import Session

from commands.alerts.payloads import NO_SUMMARY, AlertEvent
from commands.alerts.transitions import RESOLVED
from commands.outbox import queue as outbox
from storage.db import table_of
from storage.models import Alert

AlertKey = tuple[str, str]  # (integration name, key)

# Keys per read: well under SQLite's and PostgreSQL's limits on bound parameters.
READ_CHUNK = 400

_alerts = table_of(Alert)
_OPEN_AMONG = (
    select(_alerts.c.id, _alerts.c.integration_name, _alerts.c.key, _alerts.c.channel)
    .where(
        # Names and keys apart, not (name, key) IN (…): SQLite searches the unique index
        # for this form and scans the whole table for the other. The pairs are picked out
        # of what it finds (_open_alerts).
        _alerts.c.integration_name.in_(bindparam("p_names", expanding=True)),
        _alerts.c.key.in_(bindparam("p_keys", expanding=True)),
        _alerts.c.status != RESOLVED,
    )
    # Two processes' batches lock their rows in one order, so they wait rather than
    # deadlock; SQLite renders no FOR UPDATE, and this transaction holds its write lock.
    .order_by(_alerts.c.id)
    .with_for_update()
)


def repeated_values(count: Any) -> dict[str, Any]:
    """What a repeat sets on its open alert, from the parameters p_now, p_severity,
    p_summary, p_details, p_url and p_labels: `count` added, the rest the event's, where
    None keeps what the alert has (the same rules as ingest._refresh)."""
    return {
        "count": _alerts.c.count + count,
        "last_seen_at": bindparam("p_now", type_=_alerts.c.last_seen_at.type),
        "severity": bindparam("p_severity"),
        "summary": func.coalesce(
            bindparam("p_summary", type_=_alerts.c.summary.type), _alerts.c.summary
        ),
        "details": func.coalesce(
            bindparam("p_details", type_=_alerts.c.details.type), _alerts.c.details
        ),
        "url": func.coalesce(bindparam("p_url", type_=_alerts.c.url.type), _alerts.c.url),
        "labels": func.coalesce(
            bindparam("p_labels", type_=JSON(none_as_null=True)), _alerts.c.labels
        ),
    }


_REPEAT_BY_ID = (
    update(_alerts)
    .where(_alerts.c.id == bindparam("p_id"))
    .values(repeated_values(bindparam("p_count")))
)


@dataclass
class _Repeats:
    """An open alert and the batch's events for it, in order."""

    alert_id: int
    channel: str | None
    events: list[AlertEvent] = field(default_factory=list)


def fold_repeats(
    session: Session, batches: Iterable[Sequence[AlertEvent]], now: datetime, name_of: Any
) -> set[AlertKey]:
    """Count every firing event of `batches` that repeats an open alert, which none of the
    batch's events resolves; the alerts so counted, by (integration name, key). The caller
    counts their events as repeats and applies the rest one by one. Nothing here commits."""
    events = [event for batch in batches for event in batch]
    resolved = {(name_of(e), e.key) for e in events if e.status == RESOLVED}
    wanted = {(name_of(e), e.key) for e in events if e.status != RESOLVED} - resolved
    if not wanted:
        return set()
    open_alerts = _open_alerts(session, wanted)
    if not open_alerts:
        return set()
    for event in events:
        repeats = open_alerts.get((name_of(event), event.key))
        if repeats is not None:
            repeats.events.append(event)
    connection = session.connection()
    connection.execute(_REPEAT_BY_ID, [_values(r, now) for r in open_alerts.values()])
    outbox.queue_updates(
        session,
        [(r.alert_id, r.channel) for r in open_alerts.values() if r.channel is not None],
        now,
    )
    return set(open_alerts)


def _open_alerts(session: Session, keys: set[AlertKey]) -> dict[AlertKey, _Repeats]:
    found: dict[AlertKey, _Repeats] = {}
    ordered = iter(sorted(keys))
    connection = session.connection()
    while chunk := list(islice(ordered, READ_CHUNK)):
        names = sorted({name for name, _ in chunk})
        alert_keys = sorted({key for _, key in chunk})
        rows = connection.execute(_OPEN_AMONG, {"p_names": names, "p_keys": alert_keys})
        for alert_id, name, key, channel in rows:
            if (name, key) in keys:
                found[(name, key)] = _Repeats(alert_id, channel)
    return found


def _values(repeats: _Repeats, now: datetime) -> dict[str, Any]:
    """What the events one after another leave on the alert; None keeps the alert's own."""
    last = repeats.events[-1]
    summary = details = url = labels = None
    for event in repeats.events:
        if event.summary != NO_SUMMARY:
            summary = event.summary
        details = event.details or details
        url = event.url or url
        labels = event.labels or labels
    return {
        "p_id": repeats.alert_id,
        "p_count": len(repeats.events),
        "p_now": now,
        "p_severity": last.severity,
        "p_summary": summary,
        "p_details": details,
        "p_url": url,
        "p_labels": labels,
    }
