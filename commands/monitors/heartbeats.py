"""Heartbeats: the dead-man's switch for batch jobs.

A job pings `/ping/<key>` when it succeeds (and optionally `/start` when it begins, `/fail`
when it fails). Each heartbeat awaits one run at a time: `expected_at` is when that run is
due (a cron time in the integration's time zone, or the last success plus `every`), and
`due_at` is when its absence becomes an alert (expected plus grace, or start plus grace for
a run that started and has not finished). A missed run raises an alert through the normal
alert pipeline, so it is posted, escalated, acknowledged and resolved like any other; the
next success resolves it.

A missed deadline is taken by a compare-and-set on `due_at` in the same transaction as the
alert it raises, so two processes raise it once, and a restart finds the stored deadline
rather than skipping or repeating it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim
from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.alerts.ingest import IngestResult, ingest
from commands.alerts.payloads import AlertEvent
from commands.catalog.spec import IntegrationSpec
from commands.catalog.views import integration_spec, integration_spec_of
from commands.core.durations import format_duration, parse_duration
from storage import leases
from storage.models import (
    AlertSource,
    AlertStatus,
    Heartbeat,
    HeartbeatPing,
    HeartbeatStatus,
    Integration,
    Silence,
)
from storage.types import storable

ALERT_KEY = "heartbeat"
MAX_BODY = 100_000  # characters of a ping's body kept as the run's log
# A run whose schedule is further behind than this is not replayed run by run after an
# outage of the bot: the next deadline is taken from now.
MAX_CATCH_UP = 1000

SUCCESS = "success"
START = "start"
FAIL = "fail"
KINDS = (SUCCESS, START, FAIL)


@dataclass(frozen=True)
class Schedule:
    """When runs of one heartbeat are expected, from its catalog entry."""

    cron: str | None
    every: timedelta | None
    grace: timedelta
    timezone: str

    @classmethod
    def of(cls, entry: IntegrationSpec | Mapping[str, Any]) -> Schedule | None:
        """`entry` may also be `Integration.spec` as selected, read through its typed view."""
        spec = entry if isinstance(entry, IntegrationSpec) else integration_spec_of(entry)
        beat = spec.heartbeat
        if beat is None:
            return None
        return cls(
            cron=beat.cron,
            every=parse_duration(beat.every) if beat.every else None,
            grace=parse_duration(beat.grace),
            timezone=spec.timezone,
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first expected run strictly after `moment`, in UTC."""
        if self.every is not None:
            return moment + self.every
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        # cronsim walks local wall-clock time, so a 02:30 job on the night clocks spring
        # forward runs at 03:00, and one in the repeated hour in autumn runs once.
        local = next(CronSim(self.cron, moment.astimezone(zone)))
        return local.astimezone(UTC)

    def runs_after(self, moment: datetime) -> Iterator[datetime]:
        """The expected runs after `moment`, in order, in UTC."""
        if self.every is not None:
            every = self.every
            return (moment + every * n for n in itertools.count(1))
        assert self.cron is not None
        runs = CronSim(self.cron, moment.astimezone(ZoneInfo(self.timezone)))
        return (run.astimezone(UTC) for run in runs)

    def local(self, moment: datetime) -> str:
        """How the integration's people would say this time: `02:00 America/Chicago`."""
        shown = moment.astimezone(ZoneInfo(self.timezone))
        return f"{shown:%Y-%m-%d %H:%M} {self.timezone}"

    @property
    def signature(self) -> str:
        """What the deadline depends on, to notice when the catalog changes it."""
        every = int(self.every.total_seconds()) if self.every is not None else None
        grace = int(self.grace.total_seconds())
        return f"cron={self.cron} every={every} grace={grace} tz={self.timezone}"[:200]

    def describe(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}, grace {format_duration(self.grace)}"
        return f"cron `{self.cron}` ({self.timezone}), grace {format_duration(self.grace)}"


# -- the catalog's heartbeats as rows -----------------------------------------------------------


def sync_heartbeats(session: Session, now: datetime) -> None:
    """Give every live integration with a heartbeat its row, keep keys current, and drop the
    rows of heartbeats taken out of the catalog. Cheap enough for every tick."""
    live = session.execute(
        select(Integration.id, Integration.spec).where(Integration.removed_at.is_(None))
    )
    specs = {
        integration_id: spec
        for integration_id, stored in live
        if (spec := integration_spec_of(stored, integration_id)).heartbeat is not None
    }
    rows = {row.integration_id: row for row in session.scalars(select(Heartbeat))}
    for integration_id, stale in rows.items():
        if integration_id not in specs:
            session.delete(stale)
            # Nothing would ever resolve its alert now: a job taken out of the catalog is
            # no longer missing.
            _raise(
                session,
                integration_id,
                AlertStatus.RESOLVED,
                "The heartbeat was taken out of the catalog.",
                None,
                now,
            )
    session.flush()  # a key freed by a removed row may be taken by another below
    for integration_id, spec in specs.items():
        schedule = Schedule.of(spec)
        assert schedule is not None and spec.heartbeat is not None
        key = spec.heartbeat.key
        row = rows.get(integration_id)
        if row is None:
            expected = schedule.next_after(now)
            session.add(
                Heartbeat(
                    integration_id=integration_id,
                    key=key,
                    status=HeartbeatStatus.NEW.value,
                    expected_at=expected,
                    due_at=expected + schedule.grace,
                    schedule=schedule.signature,
                    key_changed_at=now,
                )
            )
            continue
        if row.key != key:
            # The old key stops working with this transaction: a leaked URL is dead at once.
            row.key, row.key_changed_at = key, now
        if row.schedule != schedule.signature:
            # A new schedule applies from now: the run awaited is the next one it names.
            row.schedule = schedule.signature
            row.expected_at = schedule.next_after(now)
            row.due_at = row.expected_at + schedule.grace
    session.flush()


# -- pings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PingResult:
    integration_id: str
    kind: str
    alert: IngestResult | None  # what the ping did to the heartbeat's alert, if anything


def record_ping(
    session: Session,
    key: str,
    kind: str,
    *,
    now: datetime,
    method: str,
    user_agent: str | None,
    remote_addr: str | None,
    body: str | None,
    summary: str | None = None,
) -> PingResult | None:
    """Take one ping; None when no heartbeat has this key (nothing is stored then). A
    failure's alert says `summary` when given (an e-mail's subject), else when it failed."""
    if kind not in KINDS:
        raise ValueError(f"unknown ping kind {kind!r}")
    row = session.scalars(
        select(Heartbeat)
        .where(Heartbeat.key == key)
        .with_for_update()
        # Read afresh: pings taken in the same transaction may have moved it (ping_batches).
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    integration = session.get(Integration, row.integration_id)
    schedule = Schedule.of(integration_spec(integration)) if integration is not None else None
    if schedule is None:  # the catalog dropped it since the last sync
        return None
    session.add(
        HeartbeatPing(
            integration_id=row.integration_id,
            at=now,
            kind=kind,
            method=method,
            user_agent=(user_agent or "")[:500] or None,
            remote_addr=remote_addr,
            body=storable(body or "")[:MAX_BODY] or None,
        )
    )
    alert: IngestResult | None = None
    if kind == START:
        row.last_start_at = now
        if row.status != HeartbeatStatus.DOWN.value:
            row.status = HeartbeatStatus.RUNNING.value
        # A run that started must also finish: it is late once the grace has passed.
        row.due_at = now + schedule.grace
    elif kind == SUCCESS:
        was_down = row.status == HeartbeatStatus.DOWN.value
        row.last_ping_at = now
        row.status = HeartbeatStatus.UP.value
        row.expected_at = schedule.next_after(now)
        row.due_at = row.expected_at + schedule.grace
        if was_down:
            alert = _raise(
                session,
                row.integration_id,
                AlertStatus.RESOLVED,
                "The job reported success.",
                None,
                now,
            )
            alert = alert if alert.resolved else None
    else:  # FAIL
        row.last_fail_at = now
        row.status = HeartbeatStatus.DOWN.value
        row.expected_at = schedule.next_after(now)
        row.due_at = row.expected_at + schedule.grace
        summary = summary or f"The job reported failure at {schedule.local(now)}"
        alert = _raise(
            session, row.integration_id, AlertStatus.FIRING, summary, storable(body or ""), now
        )
    session.flush()
    return PingResult(row.integration_id, kind, alert)


# -- deadlines ---------------------------------------------------------------------------------


# When the bot's database stopped answering and when it answered again (None: not yet).
Outage = tuple[datetime, datetime | None]


def raise_missed(
    session: Session, now: datetime, limit: int = 100, outages: Sequence[Outage] = ()
) -> int:
    """Raise an alert for up to `limit` heartbeats whose run did not report by its deadline;
    how many were raised. Each is taken by a compare-and-set on its deadline, in this
    transaction. The caller commits after each call and calls again while it returns
    `limit`: a night of missed runs in one transaction would hold SQLite's only write lock,
    and so every ping and hook, for seconds.

    A deadline that fell during one of `outages` of the database, or within the grace after
    it, is judged only at the end of the outage plus the grace (`judged_at`): a ping sent
    meanwhile was refused (503) and will be retried by the job, and must not find an alert
    raised because it was refused. The deadline itself is not moved."""
    query = (
        select(Heartbeat, Integration.spec)
        .join(Integration, Integration.id == Heartbeat.integration_id)
        .where(Heartbeat.due_at <= now, Integration.removed_at.is_(None))
        .order_by(Heartbeat.due_at, Heartbeat.integration_id)
    )
    raised = passed = 0
    # Rows passed over stay due, ahead of the rest: read on past them, so that a run of
    # deadlines waiting for an outage's grace does not hold up the ones behind it.
    while raised < limit:
        due = session.execute(query.offset(passed).limit(limit - raised)).all()
        if not due:
            return raised
        for row, spec in due:
            if _raised(session, row, spec, now, outages):
                raised += 1
            else:
                passed += 1
    return raised


def _after_maintenance(
    session: Session, integration_id: str, due_at: datetime, judged: datetime, grace: timedelta
) -> datetime:
    """A deadline that fell inside a maintenance window of the integration (or of one of its
    systems) is judged at the window's end plus the grace: the job may not run meanwhile."""
    ends = session.scalars(
        select(Silence.ends_at).where(
            Silence.integration_id == integration_id,
            Silence.kind == "maintenance",
            Silence.starts_at <= due_at,
            Silence.ends_at > due_at,
        )
    ).all()
    return max([judged, *(end + grace for end in ends)])


def judged_at(due_at: datetime, grace: timedelta, outages: Sequence[Outage]) -> datetime | None:
    """When a deadline may be judged missed: its own time or, when it fell after an outage of
    the database began, no sooner than the end of the outage plus the grace; None while that
    outage lasts. (A deadline before the outage began was missed whatever happened after.)"""
    judged = due_at
    for started, ended in outages:
        if due_at >= started:
            if ended is None:
                return None
            judged = max(judged, ended + grace)
    return judged


def _raised(
    session: Session, row: Heartbeat, spec: Any, now: datetime, outages: Sequence[Outage]
) -> bool:
    schedule = Schedule.of(spec)
    if schedule is None:
        return False  # the catalog dropped it; the sync removes the row
    assert row.due_at is not None
    judged = judged_at(row.due_at, schedule.grace, outages)
    if judged is not None:
        judged = _after_maintenance(session, row.integration_id, row.due_at, judged, schedule.grace)
    if judged is None or judged > now:
        return False  # pings may have been refused: their retries get the grace
    summary = _missed_summary(row, schedule)
    expected = _next_run(schedule, row, now)
    taken = leases.set_if(
        session,
        Heartbeat,
        Heartbeat.integration_id == row.integration_id,
        Heartbeat.due_at == row.due_at,
        status=HeartbeatStatus.DOWN.value,
        expected_at=expected,
        due_at=expected + schedule.grace,
    )
    session.expire(row)
    if not taken:
        return False  # another process took it, or a ping moved the deadline meanwhile
    _raise(session, row.integration_id, AlertStatus.FIRING.value, summary, None, now)
    return True


def _missed_summary(row: Heartbeat, schedule: Schedule) -> str:
    started = row.last_start_at
    if started is not None and row.due_at == started + schedule.grace:
        # The deadline came from a /start: the run began and has not finished.
        return (
            f"Run started at {schedule.local(started)} has not reported success within "
            f"{format_duration(schedule.grace)}"
        )
    assert row.expected_at is not None
    what = "nightly run" if schedule.cron and _daily(schedule.cron) else "run"
    return (
        f"The {what} expected at {schedule.local(row.expected_at)} did not report "
        f"(grace {format_duration(schedule.grace)})"
    )


def _daily(cron: str) -> bool:
    minute, hour, day, month, weekday = cron.split()
    return day == month == weekday == "*" and hour.isdigit() and (int(hour) < 7 or int(hour) > 19)


def _next_run(schedule: Schedule, row: Heartbeat, now: datetime) -> datetime:
    """The run to await next: the one awaited already if its deadline is still ahead (a
    run that started and did not finish was missed, not the scheduled one), else the next
    scheduled after it; after a long outage of the bot, the next after now, so missed runs
    are not raised one by one."""
    awaited = row.expected_at or now
    candidates = itertools.chain([awaited], schedule.runs_after(awaited))
    for expected in itertools.islice(candidates, MAX_CATCH_UP):
        if expected + schedule.grace > now:
            return expected
    return schedule.next_after(now)


def _raise(
    session: Session,
    integration_id: str,
    status: str,
    summary: str,
    details: str | None,
    now: datetime,
) -> IngestResult:
    event = AlertEvent(
        source=AlertSource.HEARTBEAT.value,
        integration=integration_id,
        key=ALERT_KEY,
        status=status,
        summary=summary,
        details=(details or "")[:2000] or None,
        severity="error",
        url=None,
        occurred_at=None,
        labels={},
    )
    return ingest(session, [event], now, None)
