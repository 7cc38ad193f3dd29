"""What one person's Home shows, read from the database in a few queries.

Everything here is facts; `commands.home.view` decides how much of it fits and how it
looks. Most urgent first: open alerts (firing before acknowledged, critical first), then
monitors that are failing, vendor incidents, reviews, and planned work this week.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from commands.catalog.state import Health, health, review_due
from commands.catalog.views import integration_spec, system_spec
from commands.home.audience import Mine
from commands.maintenance.occurrences import HORIZON, occurrences
from commands.monitors.statuspage import parse_time
from storage import queries
from storage.models import (
    Alert,
    Heartbeat,
    HeartbeatStatus,
    Integration,
    MaintenanceWindow,
    NoticeKind,
    Probe,
    System,
    VendorNotice,
)

# Reviews are shown this long before they are due: enough to plan one in.
REVIEW_AHEAD = timedelta(days=14)
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
# More than a Home shows (commands/home/view.py); the rest are counted, not read.
ALERTS_LISTED = 30


@dataclass(frozen=True)
class MyIntegration:
    mine: Mine
    health: Health
    open_alerts: int
    review_due: date

    @property
    def integ(self) -> Integration:
        return self.mine.integ


@dataclass(frozen=True)
class Monitor:
    """A heartbeat or probe of one of the person's integrations that is not well."""

    integration_id: str
    what: str  # "heartbeat" | "probe"
    failing: bool  # False: late, not failed yet
    since: datetime | None
    error: str | None = None


@dataclass(frozen=True)
class ReviewDue:
    integ: Integration
    due: date
    overdue: bool


@dataclass(frozen=True)
class Planned:
    """Planned work this week: a maintenance window (open or coming) or a vendor's."""

    starts_at: datetime
    ends_at: datetime | None
    what: str  # plain words, escaped by the view
    reason: str | None
    open_now: bool


@dataclass(frozen=True)
class Overview:
    """Every integration, counted by state; narrowed to one system when one is picked."""

    total: int
    counts: Counter[str]
    systems: list[System]
    system: System | None
    rows: list[tuple[Integration, Health, int, bool]]  # the picked system's: health, open, overdue


@dataclass(frozen=True)
class HomeContent:
    now: datetime
    mine: list[MyIntegration]
    alerts: list[Alert]  # the first ALERTS_LISTED, most urgent first
    open_alerts: int
    monitors: list[Monitor]
    incidents: list[VendorNotice]
    reviews: list[ReviewDue]
    planned: list[Planned]
    overview: Overview
    notice: str | None = None


def gather(
    session: Session,
    everything: Sequence[Integration],
    mine: list[Mine],
    now: datetime,
    system_filter: str | None = None,
    notice: str | None = None,
) -> HomeContent:
    """What the Home of the person who answers for `mine` shows, out of `everything` (the
    catalog's integrations, read once for both)."""
    counts = queries.open_alert_counts(session)
    silenced = queries.silenced_integrations(session, now)
    reviewed = queries.last_reviews(session)
    today = now.date()
    mine_ids = [m.integ.id for m in mine]
    mine_rows = [
        MyIntegration(
            m,
            health(counts.get(m.integ.id, 0), m.integ.id in silenced),
            counts.get(m.integ.id, 0),
            review_due(m.integ, reviewed.get(m.integ.id)),
        )
        for m in mine
    ]
    systems = sorted({s.id: s for m in mine for s in m.integ.systems}.values(), key=_by_id)
    reviews = sorted(
        (
            ReviewDue(row.integ, row.review_due, row.review_due < today)
            for row in mine_rows
            if row.review_due <= today + REVIEW_AHEAD
        ),
        key=lambda r: (r.due, r.integ.id),
    )
    alerts, open_alerts = _open_alerts(session, mine_ids)
    return HomeContent(
        now=now,
        mine=mine_rows,
        alerts=alerts,
        open_alerts=open_alerts,
        monitors=_monitors(session, mine_ids, now),
        incidents=_notices(session, [s.id for s in systems], NoticeKind.INCIDENT),
        reviews=reviews,
        planned=_planned(session, [m.integ for m in mine], systems, now),
        overview=_overview(session, everything, counts, silenced, reviewed, today, system_filter),
        notice=notice,
    )


def _by_id(system: System) -> str:
    return system.id


def _open_alerts(session: Session, integration_ids: list[str]) -> tuple[list[Alert], int]:
    """The first ALERTS_LISTED open alerts, and how many are open."""
    if not integration_ids:
        return [], 0
    where = (Alert.integration_id.in_(integration_ids), Alert.status.in_(queries.OPEN_STATUSES))
    count = session.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
    # Firing before acknowledged (someone is on those), then the most severe, the oldest.
    first = session.scalars(
        select(Alert)
        .where(*where)
        .order_by(
            case((Alert.status == "firing", 0), else_=1),
            case(SEVERITY_RANK, value=Alert.severity, else_=len(SEVERITY_RANK)),
            Alert.first_seen_at,
            Alert.id,
        )
        .limit(ALERTS_LISTED)
    ).all()
    return list(first), count


def _monitors(session: Session, integration_ids: list[str], now: datetime) -> list[Monitor]:
    if not integration_ids:
        return []
    found: list[Monitor] = []
    for beat in session.scalars(
        select(Heartbeat)
        .where(
            Heartbeat.integration_id.in_(integration_ids),
            or_(Heartbeat.status == HeartbeatStatus.DOWN, Heartbeat.due_at < now),
        )
        .order_by(Heartbeat.due_at, Heartbeat.integration_id)
    ):
        down = beat.status == HeartbeatStatus.DOWN
        found.append(Monitor(beat.integration_id, "heartbeat", down, beat.due_at))
    for probe in session.scalars(
        select(Probe)
        .where(Probe.integration_id.in_(integration_ids), Probe.failures > 0)
        .order_by(Probe.integration_id)
    ):
        found.append(
            Monitor(probe.integration_id, "probe", True, probe.last_ok_at, probe.last_error)
        )
    return sorted(found, key=lambda m: (not m.failing, m.integration_id, m.what))


def _notices(session: Session, system_ids: list[str], kind: NoticeKind) -> list[VendorNotice]:
    if not system_ids:
        return []
    return list(
        session.scalars(
            select(VendorNotice)
            .where(
                VendorNotice.system_id.in_(system_ids),
                VendorNotice.kind == kind,
                VendorNotice.resolved_at.is_(None),
            )
            .order_by(VendorNotice.first_seen_at, VendorNotice.id)
        )
    )


def _planned(
    session: Session, integrations: list[Integration], systems: list[System], now: datetime
) -> list[Planned]:
    """Windows open now or starting within the week, for these integrations and their
    systems: the catalog's, those started from Slack, and the vendors' scheduled ones."""
    until = now + HORIZON
    ids = {i.id for i in integrations}
    system_ids = {s.id for s in systems}
    found: list[Planned] = []
    keys: set[tuple[str, datetime]] = set()
    for window in session.scalars(
        select(MaintenanceWindow).where(
            MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now
        )
    ):
        covered = ids if window.scope == "integration" else system_ids
        if window.scope_id in covered:
            what = _scope_words(window.scope, window.scope_id)
            found.append(Planned(window.starts_at, window.ends_at, what, window.reason, True))
            keys.add((window.scope_id, window.starts_at))
    later = now + timedelta(seconds=1)
    for integ in integrations:
        for spec in integration_spec(integ).maintenance:
            for o in occurrences(spec, integ.timezone, later, until):
                if o.starts_at > now and (integ.id, o.starts_at) not in keys:
                    found.append(Planned(o.starts_at, o.ends_at, integ.id, o.reason, False))
    for system in systems:
        for spec in system_spec(system).maintenance:
            for o in occurrences(spec, "UTC", later, until):
                if o.starts_at > now and (system.id, o.starts_at) not in keys:
                    what = _scope_words("system", system.id)
                    found.append(Planned(o.starts_at, o.ends_at, what, o.reason, False))
    for notice in _notices(session, sorted(system_ids), NoticeKind.MAINTENANCE):
        start = parse_time((notice.detail or {}).get("scheduled_for"))
        end = parse_time((notice.detail or {}).get("scheduled_until"))
        if start is not None and now < start < until:
            what = f"{notice.system_id} (the vendor's): {notice.name}"
            found.append(Planned(start, end, what, None, False))
    return sorted(found, key=lambda p: (not p.open_now, p.starts_at, p.what))


def _scope_words(scope: str, scope_id: str) -> str:
    return scope_id if scope == "integration" else f"{scope_id} and the integrations using it"


def _overview(
    session: Session,
    everything: Sequence[Integration],
    counts: dict[str, int],
    silenced: set[str],
    reviewed: dict[str, datetime],
    today: date,
    system_filter: str | None,
) -> Overview:
    tally: Counter[str] = Counter()
    rows: list[tuple[Integration, Health, int, bool]] = []
    system = queries.system(session, system_filter) if system_filter else None
    for integ in everything:
        state = health(counts.get(integ.id, 0), integ.id in silenced)
        overdue = review_due(integ, reviewed.get(integ.id)) < today
        tally[state.value] += 1
        tally["overdue"] += overdue
        if system is not None and system.id in (integ.source_id, integ.target_id):
            rows.append((integ, state, counts.get(integ.id, 0), overdue))
    return Overview(len(everything), tally, list(queries.systems(session)), system, rows)
