"""HTTP probes: which integrations have one, when each is next checked, and what a
check's result means for the integration's alert.

The request itself is made in bot/workers/probes.py, which hands back a `CheckOutcome`; this
module owns the rows and the rules. Each probe's row in `probes` is its state and its due
row at once: a process claims it with a conditional UPDATE that must change exactly one row,
checks it, and records the result with a second conditional UPDATE naming its own claim. So
any number of processes on one PostgreSQL check each probe once per period, and a restart
resumes from the stored due time.

An alert is raised through the normal pipeline (`alert_intake.ingest`) once `failures`
checks in a row have failed; each further failure is a repeat of it, and the first success
resolves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from commands.alerts.ingest import IngestResult, ingest
from commands.alerts.payloads import MAX_DETAILS, MAX_SUMMARY, AlertEvent
from commands.alerts.transitions import RESOLVED
from commands.catalog.spec import ProbeSpec
from commands.catalog.views import integration_spec_of
from commands.core.durations import format_duration, parse_duration
from storage import leases
from storage.db import insert_for
from storage.models import Alert, AlertSource, AlertStatus, Integration, Probe
from storage.types import storable

SOURCE = AlertSource.PROBE.value
# One alert per integration for its probe: every failure streak reopens the same row, so its
# history (transitions, time to resolve, "fired 3 times in 30 days") stays together.
ALERT_KEY = "probe"
SEVERITY = "error"
# A claim lasts three timeouts (httpx applies the timeout to connecting, to sending and to
# the wait for the answer separately; the runner cuts the body off at one timeout) plus this
# margin for name resolution, which no timeout covers, and for recording. So only a dead
# process leaves a claim to expire, and another process checks the probe once it has.
LEASE_MARGIN = timedelta(seconds=60)
# The errors of the current streak shown in the alert, newest first.
ERRORS_SHOWN = 5
# What a probed server says is untrusted and may be huge; a line of it is enough to tell a
# maintenance page from a stack trace.
MAX_EXCERPT = 160
_ERROR_LINE = "• "
_ELLIPSIS = "…"


@dataclass(frozen=True)
class CheckOutcome:
    """What one request came to."""

    ok: bool
    latency_ms: float | None = None
    status_code: int | None = None
    # One line in plain words naming the cause, e.g. "HTTP 503 from https://… (expected 200)"
    # or "connection refused by 10.0.0.5:443"; None when ok.
    error: str | None = None
    # The start of the server's answer, whitespace collapsed, when it is worth showing.
    excerpt: str | None = None


@dataclass(frozen=True)
class ClaimedProbe:
    """A probe this worker holds, copied out of the claiming transaction."""

    integration_id: str
    spec: ProbeSpec
    # The due time this check stands for: the next one is counted from it, not from the
    # moment the check ran, so the schedule does not drift by the check's own latency.
    scheduled_at: datetime
    claimed_until: datetime
    failures: int
    last_error: str | None
    last_checked_at: datetime | None

    @property
    def every(self) -> timedelta:
        return parse_duration(self.spec.every)

    @property
    def timeout(self) -> timedelta:
        return parse_duration(self.spec.timeout)


@dataclass(frozen=True)
class Recorded:
    """What recording one check changed."""

    failures: int
    due_at: datetime
    alert: IngestResult | None  # None when no alert event was sent

    @property
    def alert_changed(self) -> bool:
        return self.alert is not None and self.alert.alerts > 0


# -- which integrations have a probe --------------------------------------------------------


def sync_probes(session: Session, now: datetime) -> None:
    """Make the probe rows follow the catalog: a row (due now) for every live integration
    whose spec has a probe, none for the others.

    Cheap enough for every tick: two narrow SELECTs, and writes only where they differ.
    A probe that goes away with an open alert has it resolved, since nothing would ever
    resolve it otherwise (as Alertmanager does when a rule is deleted).
    """
    wanted: dict[str, ProbeSpec] = {}
    live = select(Integration.id, Integration.spec).where(Integration.removed_at.is_(None))
    for integration_id, stored in session.execute(live):
        probe = integration_spec_of(stored, integration_id).probe
        if probe is not None:
            wanted[integration_id] = probe
    rows = session.execute(select(Probe.integration_id, Probe.due_at))
    existing: dict[str, datetime] = {ident: due_at for ident, due_at in rows}

    added = sorted(wanted.keys() - existing.keys())
    if added:
        # Two processes syncing at once insert the same rows; the primary key decides and
        # the loser's insert does nothing instead of failing its transaction.
        session.execute(
            insert_for(session)(Probe)
            .values([{"integration_id": ident, "due_at": now, "failures": 0} for ident in added])
            .on_conflict_do_nothing(index_elements=["integration_id"])
        )

    gone = sorted(existing.keys() - wanted.keys())
    if gone:
        session.execute(
            delete(Probe)
            .where(Probe.integration_id.in_(gone))
            .execution_options(synchronize_session=False)
        )
        ingest(session, [_resolved(ident, None) for ident in gone], now, None)

    for ident, due_at in existing.items():
        spec = wanted.get(ident)
        if spec is None:
            continue
        every = parse_duration(spec.every)
        if due_at > now + every:
            # `every` was shortened in the catalog: check at the new pace from now on rather
            # than wait out a period the catalog no longer asks for. Conditional, so a check
            # recorded meanwhile by another process is not undone.
            session.execute(
                update(Probe)
                .where(Probe.integration_id == ident, Probe.due_at == due_at)
                .values(due_at=now)
                .execution_options(synchronize_session=False)
            )


# -- claiming --------------------------------------------------------------------------------


def due_probes(session: Session, now: datetime, lease_now: datetime) -> list[str]:
    """Probes due and not held by a live claim, the longest-waiting first."""
    return list(
        session.scalars(
            select(Probe.integration_id)
            .where(leases.claimable(Probe, now, lease_now))
            .order_by(Probe.due_at, Probe.integration_id)
        )
    )


def claim_probe(
    session: Session, integration_id: str, worker_id: str, now: datetime, lease_now: datetime
) -> ClaimedProbe | None:
    """Take the probe for one check; None if it is not due, another worker holds it, or its
    integration no longer has one. The lease is on the database's clock (`lease_now`)."""
    row = session.execute(
        select(
            Probe.due_at,
            Probe.failures,
            Probe.last_error,
            Probe.last_checked_at,
            Integration.spec,
        )
        .join(Integration, Integration.id == Probe.integration_id)
        .where(Probe.integration_id == integration_id, Integration.removed_at.is_(None))
    ).first()
    if row is None:
        return None
    due_at, failures, last_error, last_checked_at, spec = row
    parsed = integration_spec_of(spec, integration_id).probe
    if parsed is None or due_at > now:
        return None
    claimed_until = lease_now + 3 * parse_duration(parsed.timeout) + LEASE_MARGIN
    # The due time read above is part of the condition: if another worker checked the probe
    # since, it moved due_at and this changes nothing.
    claimed = leases.claim(
        session,
        Probe,
        Probe.integration_id == integration_id,
        Probe.due_at == due_at,
        now=now,
        lease_now=lease_now,
        worker=worker_id,
        until=claimed_until,
    )
    if not claimed:
        return None
    return ClaimedProbe(
        integration_id=integration_id,
        spec=parsed,
        scheduled_at=due_at,
        claimed_until=claimed_until,
        failures=failures,
        last_error=last_error,
        last_checked_at=last_checked_at,
    )


# -- recording -------------------------------------------------------------------------------


def next_due(scheduled_at: datetime, every: timedelta, now: datetime) -> datetime:
    """The next due time on the probe's grid: one period after the check it follows, or,
    when that is already past (a long outage, a stopped process), the first one after now.
    Periods missed while nothing ran are skipped, not made up in a burst."""
    due = scheduled_at + every
    if due > now:
        return due
    return scheduled_at + every * ((now - scheduled_at) // every + 1)


def record_check(
    session: Session,
    probe: ClaimedProbe,
    outcome: CheckOutcome,
    worker_id: str,
    checked_at: datetime,
    now: datetime,
    fallback_channel: str | None,
) -> Recorded | None:
    """Store one check's result, release the claim and raise or resolve the alert.

    None when the claim was lost (it expired and another worker took the probe, or the probe
    was removed meanwhile): that worker's check is the one that counts.
    """
    failures = 0 if outcome.ok else probe.failures + 1
    due_at = next_due(probe.scheduled_at, probe.every, now)
    values: dict[str, Any] = {
        "due_at": due_at,
        "claimed_by": None,
        "claimed_until": None,
        "failures": failures,
        "last_checked_at": checked_at,
        "last_status_code": outcome.status_code,
        "last_latency_ms": outcome.latency_ms,
        "last_error": None if outcome.ok else error_line(outcome),
    }
    if outcome.ok:
        values["last_ok_at"] = checked_at
    done = leases.set_if(
        session,
        Probe,
        Probe.integration_id == probe.integration_id,
        Probe.claimed_by == worker_id,
        Probe.due_at == probe.scheduled_at,
        **values,
    )
    if not done:
        return None

    event: AlertEvent | None = None
    if not outcome.ok and failures >= probe.spec.failures:
        event = _firing(session, probe, outcome, failures, checked_at)
    elif outcome.ok and probe.failures > 0:
        # Sent after any failed streak, not only one long enough to have raised: the alert
        # may have been raised under a lower `failures` before a catalog edit. An event for
        # an alert that is not open changes nothing.
        event = _resolved(probe.integration_id, probe.spec.url)
    result = ingest(session, [event], now, fallback_channel) if event is not None else None
    return Recorded(failures=failures, due_at=due_at, alert=result)


def judge_response(spec: ProbeSpec, status_code: int, body: str | None) -> str | None:
    """Why an answer is a failure, in plain words; None when it is what the probe expects.

    `body` is what was read of the answer (the runner reads it only when a text is
    expected or the status already failed).
    """
    wrong_status = status_error(spec, status_code)
    if wrong_status is not None:
        return wrong_status
    if spec.expect_text is not None and spec.expect_text not in (body or ""):
        return (
            f"missing expected text: HTTP {status_code} from {spec.url} "
            f"did not contain {spec.expect_text!r}"
        )
    return None


def status_error(spec: ProbeSpec, status_code: int) -> str | None:
    """Why a status is a failure; without `expect_status` any 2xx is healthy."""
    if spec.expect_status is not None:
        if status_code != spec.expect_status:
            return f"HTTP {status_code} from {spec.url} (expected {spec.expect_status})"
    elif not 200 <= status_code < 300:
        return f"HTTP {status_code} from {spec.url} (expected 2xx)"
    return None


def excerpt(text: str) -> str | None:
    """A short, single-line start of an untrusted answer; None when it has nothing to say."""
    collapsed = re.sub(r"\s+", " ", storable(text)).strip()
    return _cut(collapsed, MAX_EXCERPT) if collapsed else None


def error_line(outcome: CheckOutcome) -> str:
    error = storable(outcome.error or "failed")
    return f'{error}; it answered "{outcome.excerpt}"' if outcome.excerpt else error


def _firing(
    session: Session,
    probe: ClaimedProbe,
    outcome: CheckOutcome,
    failures: int,
    checked_at: datetime,
) -> AlertEvent:
    times = "once" if failures == 1 else f"{failures} times"
    summary = f"Probe failed {times}: {outcome.error or 'failed'}"
    lines = [f"{_ERROR_LINE}{_when(checked_at)}: {error_line(outcome)}"]
    lines += _earlier_errors(session, probe)[: ERRORS_SHOWN - 1]
    header = (
        f"{failures} checks in a row failed (checked every {format_duration(probe.every)}"
        f" with a {format_duration(probe.timeout)} timeout; an alert after {probe.spec.failures})."
        "\nLast errors, newest first:"
    )
    return AlertEvent(
        source=SOURCE,
        integration=probe.integration_id,
        key=ALERT_KEY,
        status=AlertStatus.FIRING,
        summary=_cut(summary, MAX_SUMMARY),
        details=_cut("\n".join([header, *lines]), MAX_DETAILS),
        severity=SEVERITY,
        url=probe.spec.url,
        occurred_at=None,
        labels={},
    )


def _earlier_errors(session: Session, probe: ClaimedProbe) -> list[str]:
    """The streak's earlier errors: from the open alert's details when it is a repeat, else
    the one failure before this (the row keeps only the last error)."""
    details = session.scalar(
        select(Alert.details).where(
            Alert.integration_name == probe.integration_id,
            Alert.key == ALERT_KEY,
            Alert.status != RESOLVED,
        )
    )
    if details:
        return [line for line in details.splitlines() if line.startswith(_ERROR_LINE)]
    if probe.failures > 0 and probe.last_error and probe.last_checked_at is not None:
        return [f"{_ERROR_LINE}{_when(probe.last_checked_at)}: {probe.last_error}"]
    return []


def _resolved(integration_id: str, url: str | None) -> AlertEvent:
    return AlertEvent(
        source=SOURCE,
        integration=integration_id,
        key=ALERT_KEY,
        status=AlertStatus.RESOLVED,
        summary="Probe succeeded",
        details=None,
        severity=SEVERITY,
        url=url,
        occurred_at=None,
        labels={},
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def probe_state(session: Session, integration_id: str) -> Probe | None:
    """An integration's probe row (last check, failures, next due), for `/integ status`."""
    return session.get(Probe, integration_id)
