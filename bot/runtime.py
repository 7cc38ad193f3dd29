"""The composition root: settings, database, catalog, Slack app and HTTP app, built once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from bot.deps import Deps, utcnow
from bot.listeners.reviews import REVIEW_ACTIONS
from bot.settings import Settings
from bot.slack_app import build_bolt_app
from bot.web.app import build_http_app
from bot.workers.catalog_watcher import CatalogWatcher
from bot.workers.intake_writer import IntakeWriter
from bot.workers.outbox import OutboxWorker, build_sender, default_worker_id
from bot.workers.probes import ProbeRunner
from bot.workers.status_pages import StatusPoller
from commands.alerts.schedule import escalate_due, post_after_silence
from commands.core import slack_events
from commands.monitors.heartbeats import raise_missed
from commands.reviews.digest import DigestSchedule, post_digest
from commands.reviews.nudges import review_tick
from storage.db import make_engine, make_session_factory, transaction
from storage.migrate import upgrade

log = logging.getLogger(__name__)

MISSED_BATCH = 100  # missed heartbeat runs raised per transaction


class StartupError(Exception):
    """Start-up cannot go on; the message is one line for the operator."""


@dataclass
class Runtime:
    deps: Deps
    engine: Engine
    watcher: CatalogWatcher
    bolt: App | None
    http_app: Starlette
    intake: IntakeWriter
    scheduler: BackgroundScheduler | None = None
    # Sends every Slack write queued in the outbox (prints them in local mode).
    outbox: OutboxWorker | None = None
    probes: ProbeRunner | None = None
    status_pages: StatusPoller | None = None

    def tick(self) -> None:
        """Scheduled work looked for on each wake-up; later features add theirs here."""
        self.watcher.check()
        queued = 0
        while True:  # in batches, each its own transaction (see raise_missed)
            with transaction(self.deps.sessions) as session:
                raised = raise_missed(session, self.deps.clock(), MISSED_BATCH)
            queued += raised
            if raised < MISSED_BATCH:
                break
        with transaction(self.deps.sessions) as session:
            now = self.deps.clock()
            queued += escalate_due(session, now) + post_after_silence(session, now)
        with transaction(self.deps.sessions) as session:
            queued += review_tick(session, self.deps.clock(), REVIEW_ACTIONS)
        with transaction(self.deps.sessions) as session:
            slack_events.prune(session, self.deps.clock())
        settings = self.deps.settings
        if settings.integ_digest_channel is not None:
            schedule = DigestSchedule(
                settings.integ_digest_weekday,
                settings.integ_digest_hour,
                settings.integ_digest_timezone,
            )
            with transaction(self.deps.sessions) as session:
                queued += post_digest(
                    session, self.deps.clock(), settings.integ_digest_channel, schedule
                )
        if queued and self.outbox is not None:
            self.outbox.notify()

    def check_probes(self) -> None:
        """Check the probes that are due; a job of its own, because a probe may take its
        whole timeout and escalations must not wait for it."""
        if self.probes is not None:
            self.probes.run_due()

    def poll_status_pages(self) -> None:
        """Poll the vendor status pages that are due; a job of its own, for the same reason
        as the probes: a vendor's page that hangs must not hold up anything else."""
        if self.status_pages is not None:
            self.status_pages.run_due()

    def start_scheduler(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        jobs = (
            (self.tick, "tick"),
            (self.check_probes, "probes"),
            # The rows say when each page is due (INTEG_STATUS_POLL_SECONDS); this only looks.
            (self.poll_status_pages, "status_pages"),
        )
        for job, name in jobs:
            scheduler.add_job(
                job,
                "interval",
                seconds=self.deps.settings.integ_tick_seconds,
                id=name,
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self.scheduler = scheduler
        self.start_workers()

    def start_workers(self) -> None:
        """Threads that run continuously rather than on ticks: the outbox sender."""
        if self.outbox is not None:
            self.outbox.start()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        # Requests already queued are committed and answered before the engine goes.
        self.intake.stop()
        if self.outbox is not None:
            # First, so that a send in flight is recorded even if waiting for a slow probe
            # below outlasts the time the process is given to stop; whatever the monitors
            # queue meanwhile waits in the outbox for the next start.
            self.outbox.stop()
        if self.probes is not None:
            self.probes.close()
        if self.status_pages is not None:
            self.status_pages.close()
        self.engine.dispose()


def open_database(settings: Settings) -> Engine:
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise StartupError(f"DATABASE_URL: cannot open {where}: {reason}") from None
    return engine


def build_runtime(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Runtime:
    engine = open_database(settings)
    deps = Deps(settings=settings, sessions=make_session_factory(engine), clock=clock)
    watcher = CatalogWatcher(settings.catalog_path, deps.sessions, clock)
    watcher.check()
    worker_id = default_worker_id()
    outbox = OutboxWorker(deps, build_sender(settings), worker_id=worker_id)
    bolt = build_bolt_app(deps, outbox.notify) if not settings.local_mode else None
    socket_only = bool(settings.slack_app_token) and not settings.slack_signing_secret
    # Hooks commit, then wake the worker, so an alert reaches Slack without waiting a poll.
    intake = IntakeWriter(deps, on_commit=outbox.notify)
    http_app = build_http_app(
        deps, bolt, intake=intake, socket_mode_only=socket_only, notify_outbox=outbox.notify
    )
    return Runtime(
        deps=deps,
        engine=engine,
        watcher=watcher,
        bolt=bolt,
        http_app=http_app,
        intake=intake,
        outbox=outbox,
        probes=ProbeRunner(deps, outbox.notify, worker_id),
        status_pages=StatusPoller(deps, outbox.notify, worker_id),
    )
