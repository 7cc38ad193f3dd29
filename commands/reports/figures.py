"""The figures of a reliability report, from the alerts' history.

Each time an alert starts firing (opened, or firing again after it was resolved) begins an
*episode*, which its first acknowledgement acknowledges and its resolve ends. Over a period:

- **alerts opened**: episodes that began in it;
- **MTTA** and **MTTR**: the mean time from an episode's start to its acknowledgement and to
  its resolve, over the episodes begun in the period that were acknowledged or resolved in it;
- **time failing**: how long at least one of its alerts was open within the period (episodes
  that began earlier count from the period's start; overlapping alerts count once), and the
  **availability** that leaves;
- **vendor share**: the part of the time failing during which a status page of one of its
  systems showed an incident;
- **root causes**: the causes recorded on its alerts resolved in the period;
- **heartbeat runs**: the success pings received in the period (as far back as pings are
  kept), and the heartbeat alerts opened in it: a run missed, late or failed;
- **probe availability**: the part of the period its probe's alert was not open.

A system's figures are those of every integration touching it, time failing counted once.
Everything is read in three statements and added up here, so a year of a large catalog's
history takes about a second (bench/README.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from commands.reports.intervals import Span, clip, overlap, total, union
from commands.reports.periods import Period
from storage.models import (
    Alert,
    AlertSource,
    AlertStatus,
    AlertTransition,
    Heartbeat,
    HeartbeatPing,
    Integration,
    Probe,
    System,
    VendorNotice,
)

FIRING = AlertStatus.FIRING.value
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED.value
RESOLVED = AlertStatus.RESOLVED.value
HEARTBEAT = AlertSource.HEARTBEAT.value
PROBE = AlertSource.PROBE.value


@dataclass
class Episode:
    start: datetime
    source: str = ""  # the alert's source: a hook's, or "heartbeat", "probe"
    acknowledged: datetime | None = None
    end: datetime | None = None


@dataclass
class Figures:
    """One integration's, or one system's, figures over a period."""

    name: str
    period: Period
    opened: int = 0
    acknowledged: int = 0
    resolved: int = 0
    time_to_ack: timedelta = field(default_factory=timedelta)  # summed; see mtta
    time_to_resolve: timedelta = field(default_factory=timedelta)
    failing: timedelta = field(default_factory=timedelta)
    vendor_failing: timedelta = field(default_factory=timedelta)
    root_causes: Counter[str] = field(default_factory=Counter)
    # Heartbeat runs: success pings received in the period (as far back as pings are
    # kept), and heartbeat alerts opened (a run missed, late or failed). None: no heartbeat.
    runs_reported: int | None = None
    runs_alerted: int = 0
    # How long its probe's alert was open in the period; None: it has no probe.
    probe_failing: timedelta | None = None

    @property
    def mtta(self) -> timedelta | None:
        return self.time_to_ack / self.acknowledged if self.acknowledged else None

    @property
    def mttr(self) -> timedelta | None:
        return self.time_to_resolve / self.resolved if self.resolved else None

    @property
    def availability(self) -> float:
        length = self.period.length.total_seconds()
        return 1.0 - self.failing.total_seconds() / length if length > 0 else 1.0

    @property
    def probe_availability(self) -> float | None:
        length = self.period.length.total_seconds()
        if self.probe_failing is None or length <= 0:
            return None
        return 1.0 - self.probe_failing.total_seconds() / length

    @property
    def vendor_share(self) -> float | None:
        seconds = self.failing.total_seconds()
        return self.vendor_failing.total_seconds() / seconds if seconds > 0 else None


@dataclass(frozen=True)
class Report:
    period: Period
    integrations: dict[str, Figures]
    systems: dict[str, Figures]


def compute(session: Session, period: Period, only: Collection[str] | None = None) -> Report:
    """Every live integration's and system's figures over `period`; with `only`, those
    integrations' and their systems' (a slash command about one need not read them all)."""
    members = _integrations(session)
    if only is not None:
        members = {i: pair for i, pair in members.items() if i in only}
    episodes = _episodes(session, period, only)
    causes = _root_causes(session, period, only)
    incidents = _incidents(session, period)
    monitors = _monitors(session, period)
    integrations: dict[str, Figures] = {}
    failing_of: dict[str, list[Span]] = {}
    for ident, (source, target) in members.items():
        figures = Figures(ident, period)
        failing_of[ident] = _add(figures, episodes.get(ident, []), period)
        figures.root_causes.update(causes.get(ident, {}))
        vendor = union(incidents.get(source, []) + incidents.get(target, []))
        figures.vendor_failing = overlap(failing_of[ident], vendor)
        _add_monitors(figures, episodes.get(ident, []), monitors.get(ident), period)
        integrations[ident] = figures
    systems: dict[str, Figures] = {}
    # Every live system, those no integration touches too (their figures are all zero).
    touching: dict[str, list[str]] = (
        {
            system: []
            for system in session.scalars(select(System.id).where(System.removed_at.is_(None)))
        }
        if only is None
        else {}
    )
    for ident, pair in members.items():
        for system in dict.fromkeys(pair):
            touching.setdefault(system, []).append(ident)
    for system, idents in touching.items():
        figures = Figures(system, period)
        spans: list[Span] = []
        for ident in idents:
            one = integrations[ident]
            figures.opened += one.opened
            figures.acknowledged += one.acknowledged
            figures.resolved += one.resolved
            figures.time_to_ack += one.time_to_ack
            figures.time_to_resolve += one.time_to_resolve
            figures.root_causes.update(one.root_causes)
            spans += failing_of[ident]
        failing = union(spans)
        figures.failing = total(failing)
        figures.vendor_failing = overlap(failing, union(incidents.get(system, [])))
        systems[system] = figures
    return Report(period, integrations, systems)


def _add(figures: Figures, episodes: Iterable[Episode], period: Period) -> list[Span]:
    """Count the episodes into `figures`; the integration's failing spans in the period."""
    spans = []
    for episode in episodes:
        spans.append((episode.start, episode.end or period.end))
        if not period.start <= episode.start < period.end:
            continue
        figures.opened += 1
        if episode.acknowledged is not None:
            figures.acknowledged += 1
            figures.time_to_ack += episode.acknowledged - episode.start
        if episode.end is not None:
            figures.resolved += 1
            figures.time_to_resolve += episode.end - episode.start
    failing = clip(union(spans), period.start, period.end)
    figures.failing = total(failing)
    return failing


@dataclass(frozen=True)
class _Monitors:
    heartbeat: bool
    probe: bool
    pings: int


def _add_monitors(
    figures: Figures, episodes: list[Episode], monitors: _Monitors | None, period: Period
) -> None:
    by_source = [e for e in episodes if e.source == HEARTBEAT]
    probe = [e for e in episodes if e.source == PROBE]
    if (monitors is not None and monitors.heartbeat) or by_source:
        figures.runs_reported = monitors.pings if monitors is not None else 0
        figures.runs_alerted = sum(1 for e in by_source if period.start <= e.start < period.end)
    if (monitors is not None and monitors.probe) or probe:
        spans = union((e.start, e.end or period.end) for e in probe)
        figures.probe_failing = total(clip(spans, period.start, period.end))


def _monitors(session: Session, period: Period) -> dict[str, _Monitors]:
    """Which integrations have a heartbeat and a probe, and their success pings in the
    period."""
    beats = set(session.scalars(select(Heartbeat.integration_id)))
    probes = set(session.scalars(select(Probe.integration_id)))
    pings = dict(
        session.execute(
            select(HeartbeatPing.integration_id, func.count())
            .where(
                HeartbeatPing.kind == "success",
                HeartbeatPing.at >= period.start,
                HeartbeatPing.at < period.end,
            )
            .group_by(HeartbeatPing.integration_id)
        ).all()
    )
    return {
        ident: _Monitors(ident in beats, ident in probes, int(pings.get(ident, 0)))
        for ident in beats | probes | set(pings)
    }


def _integrations(session: Session) -> dict[str, tuple[str, str]]:
    rows = session.execute(
        select(Integration.id, Integration.source_id, Integration.target_id).where(
            Integration.removed_at.is_(None)
        )
    )
    return {ident: (source, target) for ident, source, target in rows}


def _episodes(
    session: Session, period: Period, only: Collection[str] | None
) -> dict[str, list[Episode]]:
    """Each integration's episodes that may touch the period: those of alerts open now or
    resolved since it began, from their transitions before its end."""
    t, a = AlertTransition, Alert
    wanted = (
        a.integration_id.in_(sorted(only)) if only is not None else a.integration_id.is_not(None)
    )
    rows = session.execute(
        select(a.integration_id, t.alert_id, t.from_status, t.to_status, t.at, a.source)
        .join(a, a.id == t.alert_id)
        .where(
            t.at < period.end,
            wanted,
            or_(a.status != RESOLVED, a.resolved_at >= period.start),
        )
        .order_by(t.alert_id, t.at, t.id)
    )
    found: dict[str, list[Episode]] = defaultdict(list)
    current: Episode | None = None
    alert: int | None = None
    owner = ""
    for integration_id, alert_id, from_status, to_status, at, source in rows:
        if alert_id != alert:
            if current is not None:
                found[owner].append(current)
            current, alert, owner = None, alert_id, str(integration_id)
        if to_status == FIRING and from_status in (None, RESOLVED):
            if current is not None:  # a history with a resolve missing: close it here
                current.end = at
                found[owner].append(current)
            current = Episode(at, source)
        elif current is None:
            continue
        elif to_status == ACKNOWLEDGED and current.acknowledged is None:
            current.acknowledged = at
        elif to_status == RESOLVED:
            current.end = at
            found[owner].append(current)
            current = None
    if current is not None:
        found[owner].append(current)
    return found


def _root_causes(
    session: Session, period: Period, only: Collection[str] | None
) -> dict[str, dict[str, int]]:
    wanted = (
        Alert.integration_id.in_(sorted(only))
        if only is not None
        else Alert.integration_id.is_not(None)
    )
    rows = session.execute(
        select(Alert.integration_id, Alert.root_cause, func.count())
        .where(
            Alert.root_cause.is_not(None),
            wanted,
            Alert.resolved_at >= period.start,
            Alert.resolved_at < period.end,
        )
        .group_by(Alert.integration_id, Alert.root_cause)
    )
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for ident, cause, count in rows:
        found[str(ident)][str(cause)] = int(count)
    return found


def _incidents(session: Session, period: Period) -> dict[str, list[Span]]:
    """Each system's incidents on its status page, as spans within the period."""
    rows = session.execute(
        select(VendorNotice.system_id, VendorNotice.first_seen_at, VendorNotice.resolved_at).where(
            VendorNotice.kind == "incident",
            VendorNotice.first_seen_at < period.end,
            or_(VendorNotice.resolved_at.is_(None), VendorNotice.resolved_at >= period.start),
        )
    )
    found: dict[str, list[Span]] = defaultdict(list)
    for system, start, end in rows:
        found[system] += clip([(start, end or period.end)], period.start, period.end)
    return found
