"""What happened to an integration since its last review: the facts a nudge puts in front of
the reviewer, so that the review confirms something rather than guessing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commands.catalog.spec import SystemSpec
from commands.catalog.views import integration_spec, system_spec
from storage.models import (
    Alert,
    AlertSource,
    AlertStatus,
    AlertTransition,
    Change,
    Integration,
    NoticeKind,
    VendorNotice,
)

FIRING = AlertStatus.FIRING.value
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED.value
RESOLVED = AlertStatus.RESOLVED.value
RECURRING = 3  # firings of one key in the period that make it worth a root-cause look
SHOWN = 5  # names listed per kind of fact; the rest are counted


@dataclass(frozen=True)
class Facts:
    since: datetime
    alerts: int = 0  # distinct alerts that fired
    firings: int = 0
    ack_times: list[timedelta] = field(default_factory=list)
    resolve_times: list[timedelta] = field(default_factory=list)
    recurring: list[tuple[str, int]] = field(default_factory=list)  # (key, firings)
    root_causes: list[tuple[str, int]] = field(default_factory=list)
    heartbeat_misses: int = 0
    probe_failures: int = 0
    changes: int = 0
    change_categories: list[tuple[str, int]] = field(default_factory=list)
    vendor_incidents: list[str] = field(default_factory=list)
    vendor_incident_count: int = 0
    filled_in: dict[str, bool] = field(default_factory=dict)


def facts_since(session: Session, integ: Integration, since: datetime) -> Facts:
    alerts = _alert_facts(session, integ.id, since)
    changes = session.execute(
        select(Change.category, func.count())
        .where(
            Change.integration_id == integ.id,
            Change.happened_at >= since,
            Change.deleted_at.is_(None),
        )
        .group_by(Change.category)
        .order_by(func.count().desc(), Change.category)
    ).all()
    incidents = session.scalars(
        select(VendorNotice.name)
        .where(
            VendorNotice.system_id.in_({integ.source_id, integ.target_id}),
            VendorNotice.kind == NoticeKind.INCIDENT.value,
            VendorNotice.first_seen_at >= since,
        )
        .order_by(VendorNotice.first_seen_at.desc())
    ).all()
    return Facts(
        since=since,
        changes=sum(n for _, n in changes),
        change_categories=[(c, n) for c, n in changes],
        vendor_incidents=list(incidents[:SHOWN]),
        vendor_incident_count=len(incidents),
        filled_in=filled_in(integ),
        **alerts,
    )


def filled_in(integ: Integration) -> dict[str, bool]:
    """Whether the catalog names an owner, backups and support: who to call, one command away."""
    spec = integration_spec(integ)
    systems = [system_spec(s) for s in (integ.source, integ.target)]
    return {
        "owner": bool(integ.owner),
        "backups": bool(spec.backups),
        "support": all(_has_support(s) for s in systems),
        "runbook": bool((spec.runbook or "").strip()),
        "test instance": all(s.test_instance for s in systems),
    }


def _has_support(system: SystemSpec) -> bool:
    # `support: {}` in the catalog is no support at all.
    support = system.support
    return support is not None and any(v is not None for v in support.model_dump().values())


class _AlertFacts(TypedDict):
    alerts: int
    firings: int
    ack_times: list[timedelta]
    resolve_times: list[timedelta]
    recurring: list[tuple[str, int]]
    root_causes: list[tuple[str, int]]
    heartbeat_misses: int
    probe_failures: int


def _alert_facts(session: Session, integration_id: str, since: datetime) -> _AlertFacts:
    # Every transition of every alert that was active in the period, in order, so that
    # each firing can be paired with the acknowledgement and resolution that followed it.
    rows = session.execute(
        select(
            Alert.id,
            Alert.key,
            Alert.source,
            Alert.root_cause,
            Alert.resolved_at,
            AlertTransition.at,
            AlertTransition.from_status,
            AlertTransition.to_status,
        )
        .join(AlertTransition, AlertTransition.alert_id == Alert.id)
        .where(
            Alert.integration_id == integration_id,
            Alert.last_seen_at >= since,
            AlertTransition.at >= since,
        )
        .order_by(Alert.id, AlertTransition.at, AlertTransition.id)
    ).all()
    firings: Counter[int] = Counter()
    keys: dict[int, str] = {}
    sources: dict[int, str] = {}
    causes: dict[int, str] = {}
    ack_times: list[timedelta] = []
    resolve_times: list[timedelta] = []
    started: dict[int, datetime] = {}
    acked: set[int] = set()
    for alert_id, key, source, cause, resolved_at, at, from_status, to_status in rows:
        keys[alert_id], sources[alert_id] = key, source
        if cause and resolved_at is not None and resolved_at >= since:
            causes[alert_id] = cause
        if to_status == FIRING and from_status != ACKNOWLEDGED:
            firings[alert_id] += 1
            started[alert_id] = at
            acked.discard(alert_id)
        elif to_status == ACKNOWLEDGED and alert_id in started and alert_id not in acked:
            ack_times.append(at - started[alert_id])
            acked.add(alert_id)
        elif to_status == RESOLVED and alert_id in started:
            resolve_times.append(at - started.pop(alert_id))
    recurring = sorted(
        ((keys[a], n) for a, n in firings.items() if n >= RECURRING), key=lambda kn: -kn[1]
    )
    return {
        "alerts": len(firings),
        "firings": sum(firings.values()),
        "ack_times": ack_times,
        "resolve_times": resolve_times,
        "recurring": recurring,
        "root_causes": Counter(causes.values()).most_common(),
        "heartbeat_misses": sum(
            n for a, n in firings.items() if sources[a] == AlertSource.HEARTBEAT
        ),
        "probe_failures": sum(n for a, n in firings.items() if sources[a] == AlertSource.PROBE),
    }


def median(times: list[timedelta]) -> timedelta | None:
    if not times:
        return None
    ordered = sorted(times)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mean(times: list[timedelta]) -> timedelta | None:
    return sum(times, timedelta()) / len(times) if times else None
