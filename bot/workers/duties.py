"""The scheduled duties: what each tick of the scheduler looks for.

Each duty opens its own short transactions, so one that fails (a bug, a locked database)
rolls back only its own work; it is logged and counted in `integ_duty_runs_total` and the
duties after it still run. The work itself is rows with a due time, claimed atomically
(`storage.leases`), so any number of processes may run the same duties at once.

A database that does not answer is not a failure of each duty: the first duty to meet it
says so (`DatabaseHealth`, one warning line), and the duties are skipped, counted as
`skipped`, until it answers again, rather than each waiting out the database's timeouts on
every tick. The first tick after it is back runs them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from bot import metrics
from bot.calendars import refresh_duty as calendar_duty
from bot.deps import Deps
from bot.listeners.reviews import REVIEW_ACTIONS
from bot.reliability_metrics import refresh_duty
from bot.workers.catalog_watcher import CatalogWatcher
from bot.workers.database_health import DatabaseHealth
from bot.workers.retention import Retention
from commands.alerts.schedule import due_escalations, escalate, post_after_silence
from commands.core import slack_events
from commands.home.queue import due_refreshes
from commands.maintenance.windows import open_catalog_windows, tell_ended, vendor_windows
from commands.monitors.heartbeats import raise_missed
from commands.outages.detect import (
    Threshold,
    detect,
    outage_threshold,
    recover,
    refresh_stale,
)
from commands.reports.monthly import monthly_due, posted, queue_monthly, render_monthly
from commands.reviews.digest import DigestSchedule, post_digest
from commands.reviews.nudges import due_nudges, post_nudges, review_tick
from storage.db import describe, transaction, unavailable
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

# Missed runs raised, alerts escalated and review nudges posted per transaction: a few
# milliseconds of work each (a nudge renders a whole message), so that a ping or hook
# waiting for SQLite's write lock waits for one batch, not the tick.
MISSED_BATCH = 10
ESCALATION_BATCH = 10
NUDGE_BATCH = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Duty:
    name: str
    # Does the work; how many outbox rows it queued, so the caller knows to wake the worker.
    run: Callable[[], int]


def run_duties(duties: list[Duty], database: DatabaseHealth | None = None) -> int:
    """Run each duty once, in order; how many outbox rows they queued between them."""
    queued = 0
    for duty in duties:
        if database is not None and database.down:
            metrics.DUTY_RUNS.labels(duty.name, "skipped").inc()
            continue
        started = time.perf_counter()
        since = database.clock() if database is not None else None
        try:
            queued += duty.run()
        except Exception as exc:
            if database is not None and unavailable(exc):
                database.failed(exc, since)
                log.warning(
                    "duty %s: the database does not answer (%s); the duties wait for it",
                    duty.name,
                    describe(exc),
                )
            else:
                log.exception("duty %s failed; the other duties still run", duty.name)
            metrics.DUTY_RUNS.labels(duty.name, "failed").inc()
        else:
            metrics.DUTY_RUNS.labels(duty.name, "ok").inc()
        finally:
            metrics.DUTY_SECONDS.labels(duty.name).observe(time.perf_counter() - started)
    return queued


def in_batches(
    deps: Deps, due: Sequence[T], size: int, write: Callable[[Session, list[T]], int]
) -> int:
    """`write` the due items, read beforehand, `size` to a transaction; how many it queued."""
    done = 0
    for start in range(0, len(due), size):
        with write_transaction(deps.sessions) as session:
            done += write(session, list(due[start : start + size]))
    return done


def tick_duties(deps: Deps, watcher: CatalogWatcher) -> list[Duty]:
    """Everything a tick does, in the order it is done."""

    def in_transaction(work: Callable[..., int], *args: object) -> Callable[[], int]:
        def run() -> int:
            with write_transaction(deps.sessions) as session:
                return work(session, deps.clock(), *args)

        return run

    def catalog() -> int:
        watcher.check()
        return 0

    def missed_heartbeats() -> int:
        queued = 0
        while True:  # in batches, each its own transaction (see raise_missed)
            with write_transaction(deps.sessions) as session:
                # A deadline that fell while the database was down waits for the pings
                # refused meanwhile to be retried (see raise_missed).
                outages = deps.database.outages()
                raised = raise_missed(session, deps.clock(), MISSED_BATCH, outages)
            queued += raised
            if raised < MISSED_BATCH:
                return queued

    def escalations() -> int:
        now = deps.clock()
        with deps.sessions() as session:
            due = due_escalations(session, now)
        return in_batches(deps, due, ESCALATION_BATCH, lambda s, chunk: escalate(s, chunk, now))

    def reviews() -> int:
        now = deps.clock()
        queued = in_transaction(review_tick, REVIEW_ACTIONS)()
        with deps.sessions() as session:
            due = due_nudges(session, now)
        return queued + in_batches(
            deps, due, NUDGE_BATCH, lambda s, chunk: post_nudges(s, chunk, now, REVIEW_ACTIONS)
        )

    def pruned_slack_events() -> int:
        with transaction(deps.sessions) as session:
            slack_events.prune(session, deps.clock())
        return 0

    duties = [
        Duty("catalog", catalog),
        # Before the heartbeats and the silences: a window opening now holds back what this
        # tick would raise, and one that ended lets out what it held.
        Duty("maintenance", in_transaction(_maintenance)),
        # The change freezes' ICS calendars, each at most hourly (bot/calendars.py).
        Duty("calendars", calendar_duty(deps)),
        Duty("missed_heartbeats", missed_heartbeats),
        Duty("escalations", escalations),
        Duty("outages", in_transaction(_outages, outage_threshold(deps.settings))),
        Duty("silences_ended", in_transaction(post_after_silence)),
        # Home tabs in use whose last publish is a few minutes old (commands/home/queue.py).
        Duty("homes", in_transaction(due_refreshes)),
        Duty("reviews", reviews),
        Duty("slack_events_pruned", pruned_slack_events),
        # At most once an hour across every process; see bot/workers/retention.py.
        Duty("retention", Retention.from_deps(deps)),
        # At most every ten minutes in this process; see bot/reliability_metrics.py.
        Duty("reliability_gauges", refresh_duty(deps)),
    ]
    settings = deps.settings
    if settings.integ_digest_channel is not None:
        schedule = DigestSchedule(
            settings.integ_digest_weekday,
            settings.integ_digest_hour,
            settings.integ_digest_timezone,
        )
        duties.append(
            Duty("digest", in_transaction(post_digest, settings.integ_digest_channel, schedule))
        )
        duties.append(Duty("monthly_report", _monthly_report(deps, settings.integ_digest_channel)))
    return duties


def _maintenance(session: Session, now: datetime) -> int:
    """Maintenance windows opening and ending (commands/maintenance)."""
    return (
        open_catalog_windows(session, now) + vendor_windows(session, now) + tell_ended(session, now)
    )


def _outages(session: Session, now: datetime, threshold: Threshold) -> int:
    """Systems whose integrations (heartbeats and probes among them) fail together, and
    outages opened by failures that are over (commands/outages)."""
    return (
        detect(session, now, threshold)
        + recover(session, now, threshold)
        + refresh_stale(session, now)
    )


def _monthly_report(deps: Deps, channel: str) -> Callable[[], int]:
    """Post last month's reliability report on this month's first working day. The report
    is computed outside the transaction that claims the month: on SQLite that transaction
    holds the write lock, and a month of a large catalog takes a fifth of a second."""
    settings = deps.settings

    def run() -> int:
        now = deps.clock()
        due = monthly_due(now, settings.integ_digest_hour, settings.integ_digest_timezone)
        if due is None:
            return 0
        with deps.sessions() as session:
            if posted(session, due.month):
                return 0
            monthly = render_monthly(session, due, now)
        with write_transaction(deps.sessions) as session:
            return queue_monthly(session, due, channel, monthly, now)

    return run
