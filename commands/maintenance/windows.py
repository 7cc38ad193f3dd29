"""Opening and closing maintenance windows, and holding alerts back while they are open.

A window covers one integration, or every integration touching a system. It comes from the
catalog (`maintenance:` on an integration or a system), from `/integ maintenance`, or from
a vendor's scheduled maintenance on its status page. Each occurrence is a row whose unique
key is the claim: the process that inserts it tells the channels and holds back the alerts
of the integrations it covers, with a Silence of kind "maintenance" each, so alerts are
recorded and counted, neither posted nor escalated, and posted on the first tick after the
window ends if they still fire (alerts.schedule.post_after_silence). A heartbeat deadline
inside a window is judged at its end plus the grace (monitors.heartbeats).

Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec, system_spec
from commands.core.render.mrkdwn import escape
from commands.home import queue as home
from commands.maintenance.occurrences import Occurrence, open_at
from commands.monitors.statuspage import parse_time
from commands.outages.state import channels_for, touching
from commands.outbox import queue as outbox
from storage.db import insert_for
from storage.models import Integration, MaintenanceWindow, Silence, System, VendorNotice

MAINTENANCE = "maintenance"
INTEGRATION = "integration"
SYSTEM = "system"


def open_catalog_windows(session: Session, now: datetime) -> int:
    """Start every catalog window open now that has not been started; how many."""
    started = 0
    for integ in session.scalars(select(Integration).where(Integration.removed_at.is_(None))):
        for n, window in enumerate(integration_spec(integ).maintenance):
            occurrence = open_at(window, integ.timezone, now)
            if occurrence is not None:
                key = f"catalog:{INTEGRATION}:{integ.id}:{n}:{occurrence.starts_at.isoformat()}"
                started += start_window(
                    session, key, INTEGRATION, integ.id, occurrence, "catalog", None, now
                )
    for system in session.scalars(select(System).where(System.removed_at.is_(None))):
        for n, window in enumerate(system_spec(system).maintenance):
            occurrence = open_at(window, "UTC", now)
            if occurrence is not None:
                key = f"catalog:{SYSTEM}:{system.id}:{n}:{occurrence.starts_at.isoformat()}"
                started += start_window(
                    session, key, SYSTEM, system.id, occurrence, "catalog", None, now
                )
    return started


def vendor_windows(session: Session, now: datetime) -> int:
    """A vendor's scheduled maintenance is a window of its system, from its scheduled start
    to its scheduled end, ended early when the page says it is completed."""
    changed = 0
    for notice in session.scalars(select(VendorNotice).where(VendorNotice.kind == MAINTENANCE)):
        start = parse_time((notice.detail or {}).get("scheduled_for"))
        end = parse_time((notice.detail or {}).get("scheduled_until"))
        if start is None or end is None or end <= start:
            continue
        key = f"vendor:{notice.id}"
        if notice.resolved_at is not None:
            changed += end_windows(session, [key], notice.resolved_at)
        elif start <= now < end:
            occurrence = Occurrence(start, end, f"{notice.name} (the vendor's maintenance)")
            changed += start_window(
                session, key, SYSTEM, notice.system_id, occurrence, "vendor", None, now
            )
    return changed


def start_window(
    session: Session,
    key: str,
    scope: str,
    scope_id: str,
    occurrence: Occurrence,
    source: str,
    created_by: str | None,
    now: datetime,
) -> int:
    """Claim the window by its key, hold back the alerts of what it covers and tell their
    channels; 1 if this call started it, 0 if it had been."""
    window_id = session.execute(
        insert_for(session)(MaintenanceWindow)
        .values(
            key=key,
            scope=scope,
            scope_id=scope_id,
            starts_at=occurrence.starts_at,
            ends_at=occurrence.ends_at,
            reason=occurrence.reason,
            source=source,
            created_by=created_by,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(MaintenanceWindow.id)
    ).scalar()
    if window_id is None:
        return 0
    window = session.get_one(MaintenanceWindow, window_id)
    integrations = covered(session, scope, scope_id)
    home.integrations_changed(session, [i.id for i in integrations], now)
    for integ in integrations:
        session.add(
            Silence(
                integration_id=integ.id,
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                reason=occurrence.reason,
                created_by=created_by,
                kind=MAINTENANCE,
                window_id=window_id,
            )
        )
    _tell(session, window, started=True, now=now)
    session.flush()
    return 1


def end_windows(session: Session, keys: Sequence[str], now: datetime) -> int:
    """End the windows of these keys now, if they are open; how many."""
    windows = session.scalars(
        select(MaintenanceWindow).where(
            MaintenanceWindow.key.in_(list(keys)), MaintenanceWindow.ends_at > now
        )
    ).all()
    for window in windows:
        window.ends_at = max(now, window.starts_at)
        session.execute(
            update(Silence)
            .where(Silence.window_id == window.id, Silence.ends_at > window.ends_at)
            .values(ends_at=window.ends_at)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return len(windows)


def tell_ended(session: Session, now: datetime) -> int:
    """Tell the channels of each window that ended, once across processes; how many."""
    told = 0
    for window in session.scalars(
        select(MaintenanceWindow).where(
            MaintenanceWindow.ends_at <= now, MaintenanceWindow.end_told_at.is_(None)
        )
    ).all():
        claimed = session.execute(
            update(MaintenanceWindow)
            .where(MaintenanceWindow.id == window.id, MaintenanceWindow.end_told_at.is_(None))
            .values(end_told_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            _tell(session, window, started=False, now=now)
            ids = [i.id for i in covered(session, window.scope, window.scope_id)]
            home.integrations_changed(session, ids, now)
            told += 1
    return told


def active_windows(session: Session, now: datetime) -> Sequence[MaintenanceWindow]:
    return session.scalars(
        select(MaintenanceWindow)
        .where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)
        .order_by(MaintenanceWindow.ends_at)
    ).all()


def covered(session: Session, scope: str, scope_id: str) -> Sequence[Integration]:
    if scope == SYSTEM:
        return touching(session, scope_id)
    integ = session.get(Integration, scope_id)
    return [integ] if integ is not None and integ.removed_at is None else []


def describe(session: Session, window: MaintenanceWindow) -> str:
    """What the window covers, in mrkdwn: `crm`, or Banner and the integrations using it."""
    if window.scope == INTEGRATION:
        return f"`{escape(window.scope_id)}`"
    system = session.get(System, window.scope_id)
    name = escape(system.name if system is not None else window.scope_id)
    using = ", ".join(f"`{escape(i.id)}`" for i in covered(session, SYSTEM, window.scope_id))
    return f"*{name}*" + (f" (so {using})" if using else "")


def _tell(session: Session, window: MaintenanceWindow, *, started: bool, now: datetime) -> None:
    what = describe(session, window)
    if started:
        reason = f": {escape(window.reason)}." if window.reason else "."
        text = (
            f":wrench: *Maintenance* of {what} from {window.starts_at:%Y-%m-%d %H:%M} until "
            f"{window.ends_at:%Y-%m-%d %H:%M} UTC{reason} Alerts are recorded but neither "
            "posted nor escalated until it ends; a heartbeat due meanwhile is judged then."
        )
    else:
        text = f":white_check_mark: Maintenance of {what} is over. What still fails is posted now."
    for channel in _channels(session, window):
        outbox.queue_message(session, channel=channel, now=now, text=text)


def _channels(session: Session, window: MaintenanceWindow) -> list[str]:
    if window.scope == SYSTEM:
        system = session.get(System, window.scope_id)
        return sorted(channels_for(session, system)) if system is not None else []
    return sorted({i.channel for i in covered(session, INTEGRATION, window.scope_id)})
