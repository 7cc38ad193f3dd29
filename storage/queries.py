"""Read queries shared by the commands. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import RowMapping, Select, String, Table, bindparam, func, select
from sqlalchemy.orm import Session

from storage.models import (
    Alert,
    AlertStatus,
    Heartbeat,
    Integration,
    Probe,
    Review,
    Silence,
    StatusPage,
    System,
)

OPEN_STATUSES = (AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value)


@dataclass(frozen=True)
class Route:
    """Where an integration's alerts go: all that intake needs of it."""

    id: str
    channel: str
    silenced: bool
    # Its systems: an outage of either folds its alerts (commands/outages).
    source_id: str = ""
    target_id: str = ""

    @property
    def systems(self) -> tuple[str, str]:
        return (self.source_id, self.target_id)


_SILENCED_NOW = (
    select(Silence.id)
    .where(
        Silence.integration_id == Integration.id,
        Silence.starts_at <= bindparam("now", type_=Silence.starts_at.type),
        Silence.ends_at > bindparam("now", type_=Silence.ends_at.type),
    )
    .exists()
)
_ROUTES = select(
    Integration.id, Integration.channel, _SILENCED_NOW, Integration.source_id, Integration.target_id
).where(Integration.id.in_(bindparam("names", expanding=True)), Integration.removed_at.is_(None))


def routes(session: Session, names: set[str], now: datetime) -> dict[str, Route]:
    """The live integrations among `names`, by name, in one statement."""
    rows = session.connection().execute(_ROUTES, {"names": sorted(names), "now": now})
    return {
        integration_id: Route(integration_id, channel, bool(silenced), source, target)
        for integration_id, channel, silenced, source, target in rows
    }


def integration(session: Session, integration_id: str) -> Integration | None:
    found = session.get(Integration, integration_id)
    return found if found is not None and found.removed_at is None else None


def integrations(session: Session) -> Sequence[Integration]:
    return session.scalars(
        select(Integration).where(Integration.removed_at.is_(None)).order_by(Integration.id)
    ).all()


def integrations_in_channel(session: Session, channel: str) -> Sequence[Integration]:
    return session.scalars(
        select(Integration)
        .where(Integration.removed_at.is_(None), Integration.channel == channel)
        .order_by(Integration.id)
    ).all()


def integrations_touching(session: Session, system_id: str) -> Sequence[Integration]:
    return session.scalars(
        select(Integration)
        .where(
            Integration.removed_at.is_(None),
            (Integration.source_id == system_id) | (Integration.target_id == system_id),
        )
        .order_by(Integration.id)
    ).all()


def system(session: Session, system_id: str) -> System | None:
    found = session.get(System, system_id)
    return found if found is not None and found.removed_at is None else None


def systems(session: Session) -> Sequence[System]:
    return session.scalars(
        select(System).where(System.removed_at.is_(None)).order_by(System.id)
    ).all()


def open_alert_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Alert.integration_name, func.count())
        .where(Alert.status.in_(OPEN_STATUSES))
        .group_by(Alert.integration_name)
    ).all()
    return {name: count for name, count in rows}


def active_silence(session: Session, integration_id: str, now: datetime) -> Silence | None:
    return session.scalars(
        select(Silence)
        .where(
            Silence.integration_id == integration_id,
            Silence.starts_at <= now,
            Silence.ends_at > now,
        )
        .order_by(Silence.ends_at.desc())
        .limit(1)
    ).first()


def silenced_integrations(session: Session, now: datetime) -> set[str]:
    return set(
        session.scalars(
            select(Silence.integration_id).where(Silence.starts_at <= now, Silence.ends_at > now)
        )
    )


def last_reviews(session: Session) -> dict[str, datetime]:
    rows = session.execute(
        select(Review.integration_id, func.max(Review.reviewed_at)).group_by(Review.integration_id)
    ).all()
    return {integration_id: at for integration_id, at in rows}


@dataclass(frozen=True)
class IntegrationSummary:
    open_alerts: int
    latest_open_alert_id: int | None
    silence_id: int | None
    last_reviewed_at: datetime | None
    # Its heartbeat's and probe's columns (None where it has neither), named as in
    # `_MONITOR_COLUMNS`, and how many of its systems' status pages are watched.
    monitors: RowMapping
    watched_pages: int


_heartbeats = cast(Table, Heartbeat.__table__)
_probes = cast(Table, Probe.__table__)
_integrations = cast(Table, Integration.__table__)
_MONITOR_COLUMNS = (
    _heartbeats.c.status.label("hb_status"),
    _heartbeats.c.last_ping_at,
    _heartbeats.c.due_at,
    _probes.c.integration_id.label("probe_id"),
    _probes.c.failures,
    _probes.c.last_error,
    _probes.c.last_latency_ms,
    _probes.c.last_checked_at,
)


def _summary_statement() -> Select[Any]:
    name = bindparam("integration_id", type_=String())
    now = bindparam("now", type_=Silence.__table__.c.starts_at.type)
    open_alert = (Alert.integration_name == name) & Alert.status.in_(OPEN_STATUSES)
    pages = _watched_pages(_integrations.c.source_id, _integrations.c.target_id)
    return (
        select(
            select(func.count()).select_from(Alert).where(open_alert).scalar_subquery(),
            select(Alert.id)
            .where(open_alert)
            .order_by(Alert.last_seen_at.desc())
            .limit(1)
            .scalar_subquery(),
            select(Silence.id)
            .where(Silence.integration_id == name, Silence.starts_at <= now, Silence.ends_at > now)
            .order_by(Silence.ends_at.desc())
            .limit(1)
            .scalar_subquery(),
            select(func.max(Review.reviewed_at))
            .where(Review.integration_id == name)
            .scalar_subquery(),
            pages,
            *_MONITOR_COLUMNS,
        )
        .select_from(
            _integrations.outerjoin(
                _heartbeats, _heartbeats.c.integration_id == _integrations.c.id
            ).outerjoin(_probes, _probes.c.integration_id == _integrations.c.id)
        )
        .where(_integrations.c.id == name)
    )


def _watched_pages(source: Any, target: Any) -> Any:
    return (
        select(func.count())
        .select_from(StatusPage)
        .where(StatusPage.system_id.in_([source, target]))
        .scalar_subquery()
    )


# Built once: `/integ status` is the hottest path, and building and cache-keying the
# statement per request cost more than running it (bench/README.md, findings). One
# statement for everything the command shows that is not the integration itself: each
# round trip to PostgreSQL counts.
_SUMMARY = _summary_statement()


def integration_summary(session: Session, integration_id: str, now: datetime) -> IntegrationSummary:
    """Open alerts, the latest one, the active silence, the last review, the monitors and
    the watched status pages, in one trip."""
    row = (
        session.connection()
        .execute(_SUMMARY, {"integration_id": integration_id, "now": now})
        .mappings()
        .one()
    )
    values: list[Any] = list(row.values())
    last_reviewed = values[3]
    if isinstance(last_reviewed, str):  # SQLite returns max() of a datetime as text
        last_reviewed = datetime.fromisoformat(last_reviewed)
    if last_reviewed is not None and last_reviewed.tzinfo is None:
        last_reviewed = last_reviewed.replace(tzinfo=UTC)
    return IntegrationSummary(values[0] or 0, values[1], values[2], last_reviewed, row, values[4])
