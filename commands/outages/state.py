"""Opening, folding into and ending a system's outage. Nothing here commits.

An outage opens when the vendor's status page shows an incident on the system, or when
`INTEG_OUTAGE_INTEGRATIONS` integrations touching it fail within
`INTEG_OUTAGE_WINDOW_MINUTES`. While it is open, the alerts of every integration touching
the system are folded under it (`Alert.outage_id`): recorded and counted as always, listed
in the outage's message, but not posted nor escalated one by one. When it ends, its message
says which integrations recovered; the alerts still open are posted on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from commands.catalog.views import system_spec
from commands.outbox import queue as outbox
from storage import queries
from storage.db import insert_for
from storage.models import Alert, AlertStatus, Integration, System, SystemOutage

RESOLVED = AlertStatus.RESOLVED.value
VENDOR = "vendor"
FAILURES = "failures"


def open_outage_for(session: Session, system_ids: Iterable[str]) -> SystemOutage | None:
    """The open outage of one of these systems, if any (the oldest, if several)."""
    return session.scalars(
        select(SystemOutage)
        .where(SystemOutage.system_id.in_(sorted(set(system_ids))), SystemOutage.ended_at.is_(None))
        .order_by(SystemOutage.id)
        .limit(1)
    ).first()


def open_outage(
    session: Session,
    system_id: str,
    now: datetime,
    *,
    cause: str,
    reason: str,
    notice_id: int | None = None,
) -> tuple[SystemOutage, bool]:
    """The system's open outage, opened now unless one is: (outage, opened by this call).
    Two processes opening one at once get the same row (a unique index on open ones)."""
    inserted = session.execute(
        insert_for(session)(SystemOutage)
        .values(
            system_id=system_id,
            started_at=now,
            ended_at=None,
            cause=cause,
            reason=reason,
            notice_id=notice_id,
        )
        .on_conflict_do_nothing(
            index_elements=["system_id"], index_where=SystemOutage.ended_at.is_(None)
        )
        .returning(SystemOutage.id)
    ).scalar()
    outage = open_outage_for(session, [system_id])
    assert outage is not None, "an open outage exists: this call or another opened it"
    return outage, inserted is not None


def mark_stale(session: Session, outage_id: int) -> None:
    """Its messages are to be edited on the next tick (only the first such mark writes)."""
    session.execute(
        update(SystemOutage)
        .where(SystemOutage.id == outage_id, SystemOutage.stale.is_(False))
        .values(stale=True)
        .execution_options(synchronize_session=False)
    )


def locked(session: Session, outage_id: int) -> SystemOutage:
    """The outage, its row locked until commit on PostgreSQL: its messages are edited in
    the order the edits are queued (outbox.queue_edit), so one transaction at a time."""
    return session.scalars(
        select(SystemOutage)
        .where(SystemOutage.id == outage_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def failing_together(
    session: Session, system_id: str, now: datetime, window: timedelta
) -> list[str]:
    """The integrations touching the system with an open alert that fired within
    `window` and is not folded under another system's open outage: what says the system
    itself may be down."""
    folded = exists().where(SystemOutage.id == Alert.outage_id, SystemOutage.ended_at.is_(None))
    rows = session.scalars(
        select(Alert.integration_id)
        .distinct()
        .join(Integration, Integration.id == Alert.integration_id)
        .where(
            Alert.status != RESOLVED,
            Alert.fired_at >= now - window,
            Integration.removed_at.is_(None),
            or_(Integration.source_id == system_id, Integration.target_id == system_id),
            ~folded,
        )
    )
    return sorted(str(i) for i in rows)


def channels_for(session: Session, system: System) -> dict[str, list[Integration]]:
    """Where the system's outage and incident messages go, with the integrations touching
    it that each names: the system's own channel when the catalog gives one, else the
    channel of each integration touching it."""
    integrations = touching(session, system.id)
    own = system_spec(system).channel
    if own:
        return {own: list(integrations)}
    by_channel: dict[str, list[Integration]] = {}
    for integ in integrations:
        by_channel.setdefault(integ.channel, []).append(integ)
    return by_channel


def touching(session: Session, system_id: str) -> Sequence[Integration]:
    return session.scalars(
        select(Integration)
        .where(
            Integration.removed_at.is_(None),
            or_(Integration.source_id == system_id, Integration.target_id == system_id),
        )
        .order_by(Integration.id)
    ).all()


def fold_open_alerts(session: Session, outage: SystemOutage) -> int:
    """Fold the open alerts of every integration touching the system under the outage;
    how many. Those already posted keep their message, and are no longer escalated."""
    ids = [i.id for i in touching(session, outage.system_id)]
    if not ids:
        return 0
    result = session.execute(
        update(Alert)
        .where(Alert.integration_id.in_(ids), Alert.status != RESOLVED, Alert.outage_id.is_(None))
        .values(outage_id=outage.id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def folded_alerts(session: Session, outage_id: int) -> Sequence[Alert]:
    return session.scalars(
        select(Alert).where(Alert.outage_id == outage_id).order_by(Alert.integration_name, Alert.id)
    ).all()


def end_outage(session: Session, outage: SystemOutage, now: datetime) -> list[Alert]:
    """End the outage; the alerts still open, which the caller shows on their own."""
    outage.ended_at = now
    still = [a for a in folded_alerts(session, outage.id) if a.status != RESOLVED]
    for alert in still:
        if alert.message_ts is None and alert.channel is None and alert.integration_id:
            integ = session.get(Integration, alert.integration_id)
            # A silenced one waits for its silence to end (alerts.schedule.post_after_silence).
            if (
                integ is not None
                and integ.removed_at is None
                and queries.active_silence(session, integ.id, now) is None
            ):
                # Escalation counts from now, when people first see it (enqueue sets it).
                alert.channel = integ.channel
                outbox.enqueue(
                    session, kind=outbox.POST, channel=integ.channel, now=now, alert_id=alert.id
                )
    session.flush()
    return still
