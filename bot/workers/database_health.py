"""What this process knows about its database: answering, or down since when.

Whatever meets the database failing for want of it (`storage.db.unavailable`: down,
unreachable, locked, out of connections, too slow) says so here: the intake writer, the
pings, the tick's duties, the outbox worker, /healthz. From then on, until the database
answers again:

- hooks and pings are answered 503 with `Retry-After` at once, without waiting on a database
  that is known not to answer (their senders retry: nothing is lost, nothing hangs);
- the tick and the outbox worker skip their turns instead of each waiting out a timeout;
- one thread asks the database every `PROBE_SECONDS` (a bounded check, `check_answers`) and
  ends the outage when it answers.

A database that stops answering without closing its connections (a frozen server, a pooler
queueing every query) hangs a query already sent, where no driver timeout applies: work not
done after STUCK_SECONDS is taken as the database not answering, and the request waiting on
it gets its 503 (`run`, and the intake writer). Should that work complete later after all,
the sender's retry is stored a second time: twice is better than a hang.

An outage is logged as one warning line when it starts and one line when it ends, never a
traceback per request. The last outages are remembered (in the injected clock's time) so that
the missed-heartbeat duty does not judge a deadline that fell while pings were being refused
(`commands.monitors.heartbeats.raise_missed`). The memory is this process's: a restart
forgets it, and another process judges by what it saw itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple, TypeVar

import anyio
import anyio.to_thread
from anyio import CapacityLimiter
from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from storage.db import check_answers, describe, error_kind, unavailable

log = logging.getLogger(__name__)

# While the database is down, how often it is asked again: the longest it stays refused
# after it is back.
PROBE_SECONDS = 1.0
# How long /healthz waits for its check before it answers 503 anyway. The check itself waits
# as long as any of the bot's work would (storage.db), and only its failure counts as the
# database not answering: a check that is merely slow does not refuse every hook.
CHECK_SECONDS = 2.0
# Database work not done in this long is stuck: longer than any of the database's own
# timeouts (storage.db) lets work wait.
STUCK_SECONDS = 15.0
# What a 503 for a database that does not answer tells the sender to wait (`Retry-After`).
RETRY_AFTER_SECONDS = 10
# Outages remembered for the heartbeats; an old one matters only for the grace after it.
REMEMBERED = 20


class Outage(NamedTuple):
    """When this process saw the database stop answering, and answer again (None: not yet)."""

    started: datetime
    ended: datetime | None


T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database does not answer just now; nothing was stored. Try again later (503)."""

    retry_after = RETRY_AFTER_SECONDS


class Stuck(Exception):
    """Database work that neither ended nor failed within STUCK_SECONDS."""

    def __init__(self) -> None:
        super().__init__(f"no answer within {STUCK_SECONDS:g} s")


class DatabaseHealth:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._reason: str | None = None  # why it is down; None while it answers
        self._outages: deque[Outage] = deque(maxlen=REMEMBERED)
        self._prober: threading.Thread | None = None
        self._check: Future[str | None] | None = None  # the check in flight, shared
        self._check_started = 0.0  # time.monotonic()
        self._check_since = clock()
        self._closed = threading.Event()
        metrics.DATABASE_UP.set(1)

    @property
    def down(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why it is down, as a client may be told (`OperationalError`); None when it is not."""
        return self._reason

    def outages(self) -> list[Outage]:
        with self._lock:
            return list(self._outages)

    def failed(self, exc: BaseException, since: datetime | None = None) -> None:
        """The database failed to answer (`storage.db.unavailable(exc)`) work begun at
        `since` (by the injected clock; now if not given). The outage is taken to have begun
        with the earliest work that failed in it: a ping that waited out a timeout before it
        was refused was refused from the moment it came."""
        started = since or self.clock()
        with self._lock:
            if self._reason is not None:
                if started < self._outages[-1].started:
                    self._outages[-1] = Outage(started, None)
                return
            self._reason = error_kind(exc)
            self._outages.append(Outage(started, None))
            if self._prober is None and not self._closed.is_set():
                self._prober = threading.Thread(
                    target=self._probe_until_back, name="database-probe", daemon=True
                )
                self._prober.start()
        metrics.DATABASE_UP.set(0)
        log.warning(
            "the database does not answer (%s): hooks and pings are answered 503 until it "
            "does; it is asked again every %g s",
            describe(exc),
            PROBE_SECONDS,
        )

    def answered(self) -> None:
        """A check got its answer: any outage is over."""
        if self._reason is None:  # the common case, without the lock
            return
        with self._lock:
            if self._reason is None:
                return
            self._reason = None
            started = self._outages[-1].started
            ended = self.clock()
            self._outages[-1] = Outage(started, ended)
        metrics.DATABASE_UP.set(1)
        log.warning("the database answers again (down for %s by the bot's clock)", ended - started)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around one piece of database work: refused at once (DatabaseUnavailable) while the
        database is known to be down; a failure for want of the database is recorded and
        raised as DatabaseUnavailable, without a traceback; anything else goes through."""
        reason = self._reason
        if reason is not None:
            raise DatabaseUnavailable(reason)
        since = self.clock()
        try:
            yield
        except Exception as exc:
            if not unavailable(exc):
                raise
            self.failed(exc, since)
            raise DatabaseUnavailable(error_kind(exc)) from None

    async def run(self, work: Callable[..., T], *args: object, limiter: CapacityLimiter) -> T:
        """`work(*args)` in a worker thread, under `guard`; DatabaseUnavailable too when it is
        stuck (the thread is left to finish on its own)."""
        since = self.clock()

        def guarded() -> T:
            with self.guard():
                return work(*args)

        try:
            with anyio.fail_after(STUCK_SECONDS):
                return await anyio.to_thread.run_sync(
                    guarded, limiter=limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            self.failed(Stuck(), since)
            raise DatabaseUnavailable(Stuck.__name__) from None

    def check(self, wait_seconds: float = CHECK_SECONDS) -> str | None:
        """Ask the database now: None when it answers, else why not (`error_kind`, or no
        answer in time), within `wait_seconds`; the details go to the log.
        Callers at the same time share one check, so a flood of health checks against a
        database that hangs holds one thread, not one each; a check stuck for STUCK_SECONDS
        counts as a failure, and the next caller starts another."""
        with self._lock:
            pending = self._check
            if pending is None or time.monotonic() - self._check_started > STUCK_SECONDS:
                pending = self._check = Future()
                self._check_started, self._check_since = time.monotonic(), self.clock()
                threading.Thread(
                    target=self._run_check, args=(pending,), name="database-check", daemon=True
                ).start()
            started, since = self._check_started, self._check_since
        try:
            return pending.result(timeout=wait_seconds)
        except TimeoutError:
            if time.monotonic() - started > STUCK_SECONDS:
                self.failed(Stuck(), since)
            return f"no answer within {wait_seconds:g} s"

    def close(self) -> None:
        self._closed.set()
        prober = self._prober
        if prober is not None:
            prober.join(CHECK_SECONDS)

    # -- the checks ------------------------------------------------------------------------

    def _run_check(self, pending: Future[str | None]) -> None:
        try:
            reason = self._probe()
        except BaseException as exc:  # never leave the callers waiting on nothing
            reason = error_kind(exc)
        with self._lock:
            if self._check is pending:
                self._check = None
        pending.set_result(reason)

    def _probe(self) -> str | None:
        since = self.clock()
        try:
            with self.sessions() as session:
                check_answers(session)
        except Exception as exc:
            if unavailable(exc):
                self.failed(exc, since)
            else:
                log.warning("database check failed: %s", describe(exc))
            return error_kind(exc)
        self.answered()
        return None

    def _probe_until_back(self) -> None:
        while not self._closed.wait(PROBE_SECONDS):
            with self._lock:
                # Decided under the lock that failed() takes: an outage that starts as this
                # thread ends finds it gone and starts another.
                if self._reason is None:
                    self._prober = None
                    return
            try:
                self.check()  # a check still running after CHECK_SECONDS is joined next time
            except Exception:  # a bug here must not leave the process refusing everything
                log.exception("database probe failed")
