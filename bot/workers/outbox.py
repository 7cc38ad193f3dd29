"""The outbox worker: the only code that writes to Slack.

Everything the bot means to say is first a row in `outbox` (committed together with the
change that caused it, by `commands.outbox.queue.enqueue`). This worker claims due rows, sends
them and records each attempt, so a Slack outage, a 429 or a restart delays a message but
never loses it, and two workers (threads or processes on one database) never send one twice.

Each message takes three short steps and never holds a transaction across the Slack call:
claim (`commands.outbox.claims`: one transaction, a conditional UPDATE that must change exactly
one row, plus a hold on the channel), send (a renderer for the row's kind prepares the call,
a sender makes it), record the result (`commands.outbox.results`: one transaction, which also
says when the channel may be written to next).

Slack's chat.postMessage has no idempotency key, so every message the outbox creates carries
its row id in Slack message metadata. When a worker dies after Slack accepted a post but
before the ts was recorded, whoever claims the row after the lease looks for that id in the
channel's history and records what it finds instead of posting the message a second time.

An upload (a diagram) is rendered from its Graphviz source just before it is sent, and sent
with files_upload_v2, on threads of their own (bot/workers/diagrams.py), so that drawing one
never holds up an alert; this thread never takes one. A file carries no message metadata, so
there is nothing to look for: an upload in doubt (a timeout or 5xx after Slack may have shared
it, or a worker dying before the result was recorded) is uploaded again by the next claim, and
may show twice. A diagram twice is a small price, and a retry that never uploaded would be a
worse one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import OperationalError

from bot import charts, graphviz
from bot.deps import Deps
from bot.workers.diagrams import CLAIMANT_SUFFIX, DiagramPool
from bot.workers.pictures import upload_call
from bot.workers.senders import PermanentError, RateLimited, Sender, SendError, TransientError
from commands.outbox import claims, results
from commands.outbox.calls import (
    Call,
    Job,
    Later,
    Renderer,
    Unsendable,
)
from commands.outbox.results import Outcome, Result
from storage.db import transaction, unavailable
from storage.models import OutboxKind

log = logging.getLogger(__name__)

KINDS = frozenset(kind.value for kind in OutboxKind)

POLL_SECONDS = 0.2
# How long stopping waits for a Slack call in flight (Docker allows 10 s for all of it).
STOP_WAIT = 2.0
MIN_PASS_GAP = 0.1
PENDING_GAUGE_EVERY = 5.0  # seconds between counts of pending rows for the gauge
RECORD_TRIES = 3
# How far before a row was created to look for its message: our hosts' clocks and Slack's
# differ by far less, and a message cannot be older than the row that asked for it.
LOOKBACK = timedelta(minutes=1)

# Metrics live beside the one worker that moves them.
OUTBOX_SENT = Counter("integ_outbox_sent_total", "Outbox messages delivered to Slack", ["kind"])
OUTBOX_ATTEMPTS = Counter(
    "integ_outbox_attempts_total",
    "Slack calls made by the outbox, by result (ok, ratelimited, retry, failed)",
    ["result"],
)
OUTBOX_SUPERSEDED = Counter(
    "integ_outbox_superseded_total",
    "Queued updates not sent because an earlier send already showed the alert's state",
)
OUTBOX_PENDING = Gauge("integ_outbox_pending", "Outbox messages waiting to be sent")
OUTBOX_DELAY = Histogram(
    "integ_outbox_delay_seconds",
    "Time from queueing a message to Slack accepting it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


@dataclass
class OutboxWorker:
    deps: Deps
    sender: Sender
    worker_id: str
    poll_seconds: float = POLL_SECONDS
    # How each kind of row becomes a Slack call (bot.runtime.outbox_renderers); uploads are
    # rendered here, since drawing is I/O. Required: a worker missing a kind would mark every
    # row of it failed for good.
    renderers: Mapping[OutboxKind, Renderer] = field(kw_only=True)
    # Graphviz source to PNG for uploads; a seam so that a test can stand in for `dot`.
    render_png: Callable[[str], bytes] = graphviz.render_png
    # A chart spec to PNG (matplotlib in a child process); a seam as `render_png` is.
    render_chart: Callable[[dict[str, Any]], bytes] = charts.render_chart_png
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _wake_homes: threading.Event = field(default_factory=threading.Event, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    # The messages' thread, and the Home tabs' (a Home's render reads the whole catalog:
    # on a thread of its own it never holds up an alert).
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _gauge_at: float = field(default=0.0, init=False)
    # Draws and uploads the diagrams, started and stopped with this worker.
    diagrams: DiagramPool = field(init=False)

    def __post_init__(self) -> None:
        self.diagrams = DiagramPool(
            self.deps,
            claimant=f"{self.worker_id}{CLAIMANT_SUFFIX}",
            prepare=self._prepared,
            send=self._send_prepared,
            record=self._record,
        )

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(homes, wake), name=f"{name}-{self.worker_id}", daemon=True
            )
            for homes, wake, name in (
                (False, self._wake, "outbox"),
                (True, self._wake_homes, "outbox-home"),
            )
        ]
        for thread in self._threads:
            thread.start()
        self.diagrams.start()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = STOP_WAIT) -> None:
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        self._wake_homes.set()
        # Told now, so that the diagrams wind down together with this thread, in `timeout`.
        self.diagrams.ask_to_stop()
        if self._threads:
            # A Slack call in flight that ends in time is recorded. One that does not is
            # handed back, so that the process stops within Docker's 10 s and the next start
            # sends it at once (after looking whether Slack got it) rather than when the
            # lease runs out.
            for thread in self._threads:
                thread.join(max(deadline - time.monotonic(), 0.0))
            if any(thread.is_alive() for thread in self._threads):
                self._hand_back()
            self._threads = []
        self.diagrams.stop(max(deadline - time.monotonic(), 0.0))

    def _hand_back(self) -> None:
        try:
            with transaction(self.deps.sessions) as session:
                count = claims.hand_back(session, self.worker_id, self.deps.lease_clock(session))
        except Exception as exc:  # stopping anyway: the leases expire by themselves
            log.warning("outbox worker %s: claims not handed back: %s", self.worker_id, exc)
            return
        log.info("outbox worker %s: handed back %d claimed messages", self.worker_id, count)

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()
        self._wake_homes.set()
        self.diagrams.notify()

    def _loop(self, homes: bool, wake: threading.Event) -> None:
        limit = 50
        while not self._stopping.is_set():
            # Cleared before looking, so a notify() that arrives while sending is not lost.
            wake.clear()
            started = time.monotonic()
            if self.deps.database.down:
                # Nothing could be claimed or recorded; the database is asked again every
                # second (DatabaseHealth), and the rows wait for it.
                self._stopping.wait(1.0)
                continue
            since = self.deps.clock()
            try:
                sent = self._send_messages(limit, homes=homes)
            except Exception as exc:
                # The database or a bug; the rows are safe, so log and look again later
                # rather than let the thread die and leave every message unsent.
                if unavailable(exc):
                    self.deps.database.failed(exc, since)  # one warning for the outage
                else:
                    log.exception("outbox worker %s: run failed", self.worker_id)
                self._stopping.wait(1.0)
                continue
            if sent < limit:
                wake.wait(self.poll_seconds)
                # Every hook notifies; during an intake burst that meant dozens of passes a
                # second for a few sends (bench/README.md, intake findings). Pacing allows
                # one write per channel per second, so looking at most every 100 ms loses
                # nothing, and a lone alert after a quiet spell is not held back at all.
                self._stopping.wait(MIN_PASS_GAP - (time.monotonic() - started))

    # -- one pass ---------------------------------------------------------------------------

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now, diagrams too, in the calling thread; return how many
        messages Slack accepted. The running worker splits this: its thread sends the
        messages, the diagram threads the diagrams."""
        sent = self._send_messages(limit) + self._send_messages(limit, homes=True)
        return sent + self.diagrams.run_once(limit)

    def _send_messages(self, limit: int, *, homes: bool = False) -> int:
        if not homes:
            self._update_gauge()
        sent = 0
        for message_id in self._candidates(self.deps.clock(), limit, homes):
            # The time of the claim itself, not of the pass: after a few slow calls earlier in
            # the pass, an old time would start this claim's lease already part spent.
            job = self._claim(message_id, self.deps.clock())
            if job is not None and self._deliver(job):
                sent += 1
        return sent

    def _candidates(self, now: datetime, limit: int, homes: bool = False) -> list[int]:
        with transaction(self.deps.sessions) as session:
            lease_now = self.deps.lease_clock(session)
            return claims.candidates(session, now, lease_now, limit, homes=homes)

    def _claim(self, message_id: int, now: datetime) -> Job | None:
        try:
            with transaction(self.deps.sessions) as session:
                lease_now = self.deps.lease_clock(session)
                job, superseded = claims.claim(session, message_id, now, lease_now, self.worker_id)
        except claims.Skipped:
            return None
        if superseded:
            OUTBOX_SUPERSEDED.inc(superseded)
        return job

    # -- sending ----------------------------------------------------------------------------

    def _deliver(self, job: Job) -> bool:
        prepared = self._prepared(job)
        if isinstance(prepared, Outcome):
            return self._record(job, prepared)
        return self._send_prepared(job, prepared)

    def _prepared(self, job: Job) -> Call | Outcome:
        """The call to make for a claimed row or, when none can be made, what to record."""
        try:
            return self._prepare(job)
        except (Unsendable, PermanentError) as exc:
            return Outcome(Result.FAILED, error=str(exc))
        except TransientError as exc:  # a diagram that took too long to render
            return Outcome(Result.RETRY, error=exc.error, unresolved=job.unresolved)
        except Later as exc:
            return Outcome(Result.RETRY, error=str(exc), unresolved=job.unresolved)
        except Exception as exc:
            log.exception("outbox #%d: could not be prepared", job.id)
            error = f"{type(exc).__name__}: {exc}"
            return Outcome(Result.RETRY, error=error, unresolved=job.unresolved)

    def _send_prepared(self, job: Job, call: Call) -> bool:
        """Make the call of a job that holds its channel, and record how it went."""
        if job.unresolved and call.creates_message:
            # Only a call that creates a message can leave a duplicate; an update is the same
            # however often it is made, so it is simply made again. An upload has nothing to
            # look for, so it is made again too (the module docstring says why).
            found = self._find_earlier_post(job, call)
            if found is not None:
                return self._record(job, found)
        return self._record(job, self._send(call))

    def _find_earlier_post(self, job: Job, call: Call) -> Outcome | None:
        """Ask Slack whether the earlier claim's post got there; None means post it now."""
        method = "conversations.replies" if call.thread_ts else "conversations.history"
        try:
            found = self.sender.find_posted(
                channel=call.channel,
                outbox_id=job.id,
                since=job.created_at - LOOKBACK,
                thread_ts=call.thread_ts,
            )
        except PermanentError as exc:
            # Slack will never answer this question (the bot is not in the channel, or lacks
            # the history scope for it; chat:write.public posts where it has not joined), or
            # the message is further back than we read. Waiting would never post the message
            # at all, so it is posted: at worst it shows twice, which beats not at all.
            log.warning(
                "outbox #%d: cannot tell whether an earlier claim posted it (%s); posting",
                job.id,
                exc.error,
            )
            return None
        except SendError as exc:
            # A 429, 5xx or timeout says nothing about the message; posting now could show it
            # twice. Ask again later, and keep the row marked so that the next claim asks too.
            return Outcome(
                Result.RETRY,
                error=f"{method}: {exc.error}",
                http_status=exc.http_status,
                retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
                unresolved=True,
            )
        except Exception as exc:
            error = f"{method}: {type(exc).__name__}: {exc}"
            return Outcome(Result.RETRY, error=error, unresolved=True)
        if found is None:
            return None
        log.info("outbox #%d: already on Slack as %s, posted by an earlier claim", job.id, found.ts)
        # The attempt is recorded as a success with a note, so the history says why no call
        # was made this time.
        return Outcome(
            Result.OK, delivered=found, http_status=200, error=f"found by outbox id in {method}"
        )

    def _send(self, call: Call) -> Outcome:
        try:
            if call.file is not None:
                delivered = self.sender.upload(
                    channel=call.channel,
                    content=call.file.content,
                    filename=call.file.filename,
                    title=call.file.title,
                    initial_comment=call.text,
                    alt_text=call.file.alt_text,
                )
            elif call.home_of is not None:
                delivered = self.sender.publish_home(user_id=call.home_of, view=call.view or {})
            elif call.ts is not None:
                delivered = self.sender.update(
                    channel=call.channel, ts=call.ts, text=call.text, blocks=call.blocks
                )
            else:
                delivered = self.sender.post(
                    channel=call.channel,
                    text=call.text,
                    blocks=call.blocks,
                    thread_ts=call.thread_ts,
                    metadata=call.metadata,
                    reply_broadcast=call.reply_broadcast,
                )
        except RateLimited as exc:
            return Outcome(
                Result.RATELIMITED, error=exc.error, http_status=429, retry_after=exc.retry_after
            )
        except TransientError as exc:
            # A timeout, a 5xx or a broken connection does not say whether Slack made the
            # message: one that creates a message is looked for before it is sent again.
            return Outcome(
                Result.RETRY,
                error=exc.error,
                http_status=exc.http_status,
                unresolved=call.creates_message,
            )
        except PermanentError as exc:
            return Outcome(Result.FAILED, error=exc.error, http_status=exc.http_status)
        except Exception as exc:
            # Whatever else the transport raises (a reset socket, a proxy answering HTML):
            # retried, because a lost alert is worse than a late one, and looked for first.
            error = f"{type(exc).__name__}: {exc}"
            return Outcome(Result.RETRY, error=error, unresolved=call.creates_message)
        return Outcome(Result.OK, delivered=delivered, http_status=200)

    def _prepare(self, job: Job) -> Call:
        """Render what to send now, after the claim committed (a Home's render also records
        what it shows: commands/home)."""
        if job.kind == OutboxKind.UPLOAD:
            return self._prepare_upload(job)
        renderer = self.renderers.get(OutboxKind(job.kind)) if job.kind in KINDS else None
        if renderer is None:
            raise Unsendable(f"unknown outbox kind {job.kind!r}")
        now = self.deps.clock()
        with transaction(self.deps.sessions) as session:
            return renderer(session, job, now)

    def _prepare_upload(self, job: Job) -> Call:
        return upload_call(job, self.render_png, self.render_chart)

    # -- recording --------------------------------------------------------------------------

    def _record(self, job: Job, outcome: Outcome) -> bool:
        # Slack has the message now (or said why not). If this record is lost, the lease
        # runs out and the next claim must ask Slack about it (and resend an update), so a
        # database hiccup is worth a few tries.
        for attempt in range(RECORD_TRIES):
            try:
                return self._record_once(job, outcome)
            except OperationalError:
                if attempt == RECORD_TRIES - 1:
                    raise
                log.warning("outbox #%d: recording the result failed; trying again", job.id)
                time.sleep(0.5 * (attempt + 1))
        return False  # not reached: the last try returns or raises

    def _record_once(self, job: Job, outcome: Outcome) -> bool:
        now = self.deps.clock()
        with transaction(self.deps.sessions) as session:
            results.record(
                session,
                job,
                outcome,
                now,
                self.worker_id,
                lease_now=self.deps.lease_clock(session),
            )
        OUTBOX_ATTEMPTS.labels(outcome.result.value).inc()
        if outcome.result == Result.OK:
            OUTBOX_SENT.labels(job.kind).inc()
            if job.kind != OutboxKind.HOME:  # a Home is not a message people wait for
                OUTBOX_DELAY.observe(max((now - job.created_at).total_seconds(), 0.0))
            return True
        return False

    def _update_gauge(self) -> None:
        if time.monotonic() - self._gauge_at < PENDING_GAUGE_EVERY:
            return
        self._gauge_at = time.monotonic()
        with transaction(self.deps.sessions) as session:
            OUTBOX_PENDING.set(results.pending_count(session))
