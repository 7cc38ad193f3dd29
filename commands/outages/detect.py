"""When a failure is one of a system's outage: at intake, on the tick, and from the
vendor's status page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from commands.core.durations import format_duration
from commands.outages.messages import refresh
from commands.outages.state import (
    FAILURES,
    RESOLVED,
    VENDOR,
    end_outage,
    failing_together,
    fold_open_alerts,
    mark_stale,
    open_outage,
    open_outage_for,
)
from storage.models import Alert, Integration, SystemOutage, VendorNotice


@dataclass(frozen=True)
class Threshold:
    """`integrations` touching one system failing within `window` make an outage of it;
    0 integrations: never (vendor incidents still do)."""

    integrations: int
    window: timedelta

    @property
    def on(self) -> bool:
        return self.integrations > 0


def outage_threshold(settings: Any) -> Threshold:
    """The threshold `INTEG_OUTAGE_INTEGRATIONS` and `INTEG_OUTAGE_WINDOW_MINUTES` set."""
    return Threshold(
        settings.integ_outage_integrations,
        timedelta(minutes=settings.integ_outage_window_minutes),
    )


def fold_new_alert(
    session: Session,
    alert_id: int,
    systems: tuple[str, str],
    now: datetime,
    threshold: Threshold | None,
) -> bool:
    """For an alert that just started firing (opened, or firing again), before its message
    is queued: True when it is folded under an outage of one of its systems (open already,
    or opened now because enough integrations of that system fail together), and must not
    be posted on its own."""
    outage = open_outage_for(session, systems)
    opened = False
    if outage is None and threshold is not None and threshold.on:
        outage = _open_by_failures(session, systems, now, threshold)
        opened = outage is not None
    if outage is None:
        return False
    session.execute(
        update(Alert)
        .where(Alert.id == alert_id)
        .values(outage_id=outage.id)
        .execution_options(synchronize_session=False)
    )
    if opened:
        refresh(session, outage.id, now)  # its first messages go out at once
    else:
        mark_stale(session, outage.id)  # the tick shows it (refresh_stale)
    return True


def _open_by_failures(
    session: Session, systems: tuple[str, str], now: datetime, threshold: Threshold
) -> SystemOutage | None:
    # An integration has two systems; the one that more failing integrations share is the
    # one that is down (Banner, not each of the systems feeding it).
    counted = {s: failing_together(session, s, now, threshold.window) for s in set(systems)}
    for system_id, failing in sorted(counted.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(failing) < threshold.integrations:
            break
        shown = ", ".join(failing[:5]) + (
            f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        )
        reason = (
            f"{len(failing)} integrations using it failed within "
            f"{format_duration(threshold.window)}: {shown}."
        )
        outage, opened = open_outage(session, system_id, now, cause=FAILURES, reason=reason)
        if opened:
            fold_open_alerts(session, outage)
        return outage
    return None


def detect(session: Session, now: datetime, threshold: Threshold) -> int:
    """On the tick: open an outage for each system whose integrations fail together (the
    failures of heartbeats and probes, which intake does not check); how many opened."""
    if not threshold.on:
        return 0
    recent = (
        select(Integration.source_id, Integration.target_id)
        .join(Alert, Alert.integration_id == Integration.id)
        .where(Alert.status != RESOLVED, Alert.fired_at >= now - threshold.window)
        .distinct()
    )
    systems = sorted({s for pair in session.execute(recent) for s in pair})
    opened = 0
    for system_id in systems:
        if open_outage_for(session, [system_id]) is not None:
            continue
        outage = _open_by_failures(session, (system_id, system_id), now, threshold)
        if outage is not None:
            refresh(session, outage.id, now)
            opened += 1
    return opened


def refresh_stale(session: Session, now: datetime) -> int:
    """On the tick: edit the messages of the outages whose alerts changed since; how many
    writes were queued."""
    stale = session.scalars(
        select(SystemOutage.id).where(SystemOutage.stale.is_(True)).order_by(SystemOutage.id)
    ).all()
    return sum(refresh(session, outage_id, now) for outage_id in stale)


def recover(session: Session, now: datetime, threshold: Threshold) -> int:
    """On the tick: end each outage opened by failures once none of its alerts is open and
    nothing under it fired within the window; how many ended."""
    ended = 0
    for outage in session.scalars(
        select(SystemOutage).where(SystemOutage.ended_at.is_(None), SystemOutage.cause == FAILURES)
    ):
        busy = session.scalar(
            select(Alert.id)
            .where(
                Alert.outage_id == outage.id,
                or_(Alert.status != RESOLVED, Alert.fired_at >= now - threshold.window),
            )
            .limit(1)
        )
        if busy is None:
            end_outage(session, outage, now)
            refresh(session, outage.id, now)
            ended += 1
    return ended


def on_incident(session: Session, notice: VendorNotice, now: datetime) -> SystemOutage | None:
    """A vendor's incident seen open on its status page: the system's outage, opened by it
    unless one is open. None for a maintenance (windows are another matter)."""
    if notice.kind != "incident" or notice.resolved_at is not None:
        return None
    outage, opened = open_outage(
        session,
        notice.system_id,
        now,
        cause=VENDOR,
        reason=f"The vendor's status page shows an incident: {notice.name}",
        notice_id=notice.id,
    )
    if opened:
        fold_open_alerts(session, outage)
    return outage


def on_incident_over(session: Session, notice: VendorNotice, now: datetime) -> SystemOutage | None:
    """The incident is over: end the outage it opened; the alerts still open are posted."""
    outage = session.scalars(
        select(SystemOutage).where(
            SystemOutage.notice_id == notice.id, SystemOutage.ended_at.is_(None)
        )
    ).first()
    if outage is not None:
        end_outage(session, outage, now)
    return outage
