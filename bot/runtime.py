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
from bot.directory import SlackDirectory, build_directory
from bot.listeners.alerts import ALERT_ACTIONS
from bot.listeners.home import HOME_ACTIONS
from bot.mail_server import MailServer
from bot.settings import Settings
from bot.slack_app import build_bolt_app
from bot.web.app import build_http_app
from bot.workers.catalog_watcher import CatalogWatcher
from bot.workers.duties import Duty, run_duties, tick_duties
from bot.workers.intake_writer import IntakeWriter
from bot.workers.mailbox import MailboxPoller
from bot.workers.outbox import STOP_WAIT, OutboxWorker, default_worker_id
from bot.workers.probes import ProbeRunner
from bot.workers.senders import build_sender
from bot.workers.status_pages import StatusPoller
from commands.alerts.outbox_calls import alert_renderers
from commands.core.render.links import MessageLinks
from commands.home.outbox_calls import home_renderer
from commands.outbox.calls import RENDERERS, Renderer
from commands.permissions.people import CONSOLE, UNKNOWN, Directory
from storage.db import make_engine, make_session_factory
from storage.leases import LeaseClock, database_clock
from storage.migrate import upgrade
from storage.models import OutboxKind

log = logging.getLogger(__name__)


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
    duties: list[Duty]
    scheduler: BackgroundScheduler | None = None
    # Sends every Slack write queued in the outbox (prints them in local mode).
    outbox: OutboxWorker | None = None
    probes: ProbeRunner | None = None
    status_pages: StatusPoller | None = None
    # The SMTP listener, when INTEG_SMTP_PORT is set (bot/mail_server.py).
    mail: MailServer | None = None
    # The mailbox read instead or as well, when INTEG_IMAP_URL is set.
    mailbox: MailboxPoller | None = None

    def tick(self) -> None:
        """Run every scheduled duty once; each in its own transactions (see bot.workers.duties)."""
        if run_duties(self.duties, self.deps.database) and self.outbox is not None:
            self.outbox.notify()

    def check_probes(self) -> None:
        """Check the probes that are due; a job of its own, because a probe may take its
        whole timeout and escalations must not wait for it."""
        # While the database does not answer, nothing could be claimed or recorded.
        if self.probes is not None and not self.deps.database.down:
            self.probes.run_due()

    def poll_status_pages(self) -> None:
        """Poll the vendor status pages that are due; a job of its own, for the same reason
        as the probes: a vendor's page that hangs must not hold up anything else."""
        if self.status_pages is not None and not self.deps.database.down:
            self.status_pages.run_due()

    def read_mailbox(self) -> None:
        """Read the mailbox; a job of its own, so that a slow mail server holds up nothing."""
        if self.mailbox is not None:
            self.mailbox.run_due()

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
        if self.mailbox is not None:
            scheduler.add_job(
                self.read_mailbox,
                "interval",
                seconds=self.deps.settings.integ_imap_poll_seconds,
                id="mailbox",
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self.scheduler = scheduler
        self.start_workers()

    def start_workers(self) -> None:
        """Threads that run continuously rather than on ticks: the outbox sender, and the
        SMTP listener when there is one."""
        if self.outbox is not None:
            self.outbox.start()
        if self.mail is not None:
            try:
                self.mail.start()
            except OSError as exc:
                where = f"{self.deps.settings.integ_smtp_host}:{self.deps.settings.integ_smtp_port}"
                reason = exc.strerror or str(exc)
                raise StartupError(f"INTEG_SMTP_PORT: cannot listen on {where}: {reason}") from None

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.mail is not None:
            # First: a message it is storing is answered (250 or 451) before the engine goes.
            self.mail.stop()
        # Requests already queued are committed and answered before the engine goes; one
        # whose commit hangs is not waited for past STOP_WAIT (its sender got no 2xx).
        self.intake.stop(timeout=STOP_WAIT)
        if self.outbox is not None:
            # First, so that a send in flight is recorded even if waiting for a slow probe
            # below outlasts the time the process is given to stop; whatever the monitors
            # queue meanwhile waits in the outbox for the next start.
            self.outbox.stop()
        if self.probes is not None:
            self.probes.close()
        if self.status_pages is not None:
            self.status_pages.close()
        if isinstance(self.deps.directory, SlackDirectory):
            self.deps.directory.close()
        self.deps.database.close()
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


def outbox_renderers(
    links: MessageLinks | None = None, directory: Directory = UNKNOWN
) -> dict[OutboxKind, Renderer]:
    """Every kind of outbox row the worker sends, with how it becomes a Slack call; `links`
    make links to earlier messages (none without it); `directory` says whose Home is whose
    (knowing nobody, a Home waits until it can tell)."""
    return {
        **RENDERERS,
        **alert_renderers(ALERT_ACTIONS, links),
        OutboxKind.HOME: home_renderer(directory, HOME_ACTIONS),
    }


def _directory(settings: Settings) -> Directory:
    """Slack's answers about people, cached; in local mode, where only the console can ask
    anything, the console's (it acts as an admin)."""
    if settings.slack_bot_token is None:
        return CONSOLE
    return build_directory(
        settings.slack_bot_token, settings.slack_api_url, settings.integ_directory_ttl_seconds
    )


def build_runtime(
    settings: Settings,
    clock: Callable[[], datetime] = utcnow,
    lease_clock: LeaseClock = database_clock,
) -> Runtime:
    engine = open_database(settings)
    directory = _directory(settings)
    deps = Deps(
        settings=settings,
        sessions=make_session_factory(engine),
        clock=clock,
        lease_clock=lease_clock,
        directory=directory,
    )
    watcher = CatalogWatcher(settings.catalog_path, deps.sessions, clock)
    watcher.check()
    worker_id = default_worker_id()
    sender = build_sender(settings)
    outbox = OutboxWorker(
        deps,
        sender,
        worker_id=worker_id,
        renderers=outbox_renderers(MessageLinks(sender.workspace_url), directory),
    )
    bolt = build_bolt_app(deps, outbox.notify) if not settings.local_mode else None
    socket_only = bool(settings.slack_app_token) and not settings.slack_signing_secret
    # Hooks commit, then wake the worker, so an alert reaches Slack without waiting a poll.
    intake = IntakeWriter(deps, on_commit=outbox.notify)
    http_app = build_http_app(
        deps,
        bolt,
        intake=intake,
        socket_mode_only=socket_only,
        notify_outbox=outbox.notify,
        warnings=lambda: [w for w in (watcher.warning,) if w],
    )
    return Runtime(
        deps=deps,
        engine=engine,
        watcher=watcher,
        bolt=bolt,
        http_app=http_app,
        intake=intake,
        duties=tick_duties(deps, watcher),
        outbox=outbox,
        probes=ProbeRunner(deps, outbox.notify, worker_id),
        status_pages=StatusPoller(deps, outbox.notify, worker_id),
        mail=MailServer(deps, outbox.notify) if settings.integ_smtp_port is not None else None,
        mailbox=MailboxPoller(deps, outbox.notify) if settings.integ_imap_url is not None else None,
    )
