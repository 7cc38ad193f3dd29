"""One thread that commits hook requests and heartbeat pings in batches (group commit).

A hook's 202 and a ping's 200 promise that what was received is committed, so each request
has to wait for a commit. Committing each request on its own makes the commit, and on SQLite
the fight over its single write lock, the cost of every event. Here the endpoints hand their
requests to one writer, which stores everything that queued while the previous batch
committed in one transaction, commits, then answers each request. The promise is unchanged:
a request is answered only after the commit that holds it.

What may wait is bounded, so that a database that stalls costs senders a 503 and a retry,
never a hang or the process's memory: at most MAX_WAITING requests (MAX_WAITING_BYTES of
bodies) queued or being committed, and QUEUE_WAIT_SECONDS in the queue; a request over
either is refused (`Busy`, answered 503 with `Retry-After`) and never stored. While the
database does not answer (`DatabaseHealth`), requests are refused at once, and those
queued when it stopped answering are refused too, rather than each waiting out a timeout.
A request already in a batch being committed is waited for: it may be stored, and its
sender must hear so; the database's timeouts (`storage.db`) bound that wait, and should they
not apply (a database that hangs without closing its connection) STUCK_SECONDS does: the
request is answered 503, and if that commit ends well after all, the retry is stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from bot import metrics
from bot.deps import Deps
from bot.workers.database_health import STUCK_SECONDS, DatabaseUnavailable, Stuck
from commands.alerts.ingest import IngestResult, Received, receive
from commands.alerts.payloads import AlertEvent
from commands.monitors.heartbeats import PingResult
from commands.monitors.ping_batches import HeartbeatIndex, Ping, record_pings
from commands.outages.detect import outage_threshold
from storage.db import error_kind, unavailable
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

# Bounds one transaction: long enough to absorb a burst from many senders, short enough that
# the first request in it is not kept waiting behind a huge commit.
MAX_BATCH = 200
# Requests, and bytes of their bodies, that may wait for the writer (queued, or in the batch
# being committed) before more are refused: at 1,000 events/s about a second of intake.
MAX_WAITING = 1000
MAX_WAITING_BYTES = 64 * 1024 * 1024
# How long a request may sit in the queue before it is withdrawn and refused. A commit takes
# milliseconds (p99 under 0.1 s in bench/README.md), so this is a database that stalls.
QUEUE_WAIT_SECONDS = 1.0
# What a 503 for a full queue tells the sender to wait (`Retry-After`).
RETRY_AFTER_FULL_SECONDS = 5

Stored = tuple[int, IngestResult]


@dataclass
class _Request:
    work: Received | Ping
    size: int = 0
    # (received event id, result) for a hook request; the PingResult, or None, for a ping.
    done: Future[Any] = field(default_factory=Future)


class IntakeWriter:
    def __init__(self, deps: Deps, on_commit: Callable[[], None] = lambda: None) -> None:
        self.deps = deps
        self.on_commit = on_commit
        # The heartbeats pings were sent to, remembered (ping_batches).
        self.heartbeats = HeartbeatIndex()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._waiting = 0  # requests submitted and not yet answered
        self._waiting_bytes = 0
        # When the batch being committed was begun (time.monotonic), None between batches.
        self._committing_since: float | None = None

    def submit(self, source: str, body: bytes, events: list[AlertEvent]) -> Future[Stored]:
        """Queue a hook request; the future gives (received event id, result) once
        committed, or the exception that kept it from being committed (`Busy`: not even
        tried)."""
        return self._submit(_Request(Received(source, body, events), size=len(body or b"")))

    def submit_ping(self, ping: Ping) -> Future[PingResult | None]:
        """Queue a ping; the future gives what it did once committed (None: no heartbeat has
        its key, and nothing was stored), or the exception that kept it from being stored."""
        return self._submit(_Request(ping, size=len(ping.body or "")))

    def _submit(self, request: _Request) -> Future[Any]:
        with self._lock:
            refusal = self._refusal(request.size)
            if refusal is not None:
                request.done.set_exception(refusal)
                return request.done
            self._waiting += 1
            self._waiting_bytes += request.size
            self._ensure_started()
            self._queue.put(request)
        request.done.add_done_callback(lambda _: self._answered(request.size))
        return request.done

    async def stored(self, source: str, body: bytes, events: list[AlertEvent]) -> Stored:
        """Submit a request and wait for its commit: (received event id, result). Raises
        `Busy` when it was refused, or withdrawn from the queue after QUEUE_WAIT_SECONDS,
        and `StoreFailed` when it could not be stored."""
        result: Stored = await self._committed(self.submit(source, body, events))
        return result

    async def pinged(self, ping: Ping) -> PingResult | None:
        """Submit a ping and wait for its commit: what it did, or None when no heartbeat has
        its key. Raises as `stored` does."""
        result: PingResult | None = await self._committed(self.submit_ping(ping))
        return result

    async def _committed(self, future: Future[Any]) -> Any:
        """What the writer made of the request, or why it was not stored: withdrawn from the
        queue after QUEUE_WAIT_SECONDS, or, taken into a batch the database has not
        finished after STUCK_SECONDS, answered as the database not answering. One callback
        and two timers per request: a `wait_for` around a `shield` cost a fifth of a
        hook's time on the event loop (bench/README.md)."""
        since = self.deps.clock()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        timers: list[asyncio.TimerHandle] = []

        def settle(done: Future[Any]) -> None:
            if answer.done():
                return
            if done.cancelled():
                answer.set_exception(self._withdrawn())
            elif (exc := done.exception()) is not None:
                answer.set_exception(exc)
            else:
                answer.set_result(done.result())

        def on_done(done: Future[Any]) -> None:  # in whichever thread finished it
            try:
                loop.call_soon_threadsafe(settle, done)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more

        def stuck() -> None:
            if not answer.done():
                self.deps.database.failed(Stuck(), since)
                answer.set_exception(_database_down(Stuck.__name__))

        def waited_long() -> None:
            # Cancelled while still queued: the writer skips it, and `settle` answers.
            if not future.cancel() and not answer.done():
                # In a batch being committed: it may be stored, and its sender must hear
                # so, unless the database has stopped answering.
                timers.append(loop.call_later(STUCK_SECONDS - QUEUE_WAIT_SECONDS, stuck))

        future.add_done_callback(on_done)
        timers.append(loop.call_later(QUEUE_WAIT_SECONDS, waited_long))
        try:
            return await answer
        finally:
            for timer in timers:
                timer.cancel()

    def _withdrawn(self) -> Busy:
        """Why a request waited QUEUE_WAIT_SECONDS in the queue: a batch the database has
        not finished in that time (it is stuck: the sender waits as for an outage), or a
        queue too long to get through."""
        started = self._committing_since
        if started is not None and time.monotonic() - started >= QUEUE_WAIT_SECONDS:
            return _database_down("the writes ahead of it are not finished")
        return Busy(
            f"not stored: still waiting to be stored after {QUEUE_WAIT_SECONDS:g} s",
            RETRY_AFTER_FULL_SECONDS,
        )

    def _refusal(self, size: int) -> StoreFailed | None:
        # Called under the lock.
        if self._stopped:
            # After stop() nothing would take it: fail it now rather than let it hang.
            return _failure()
        reason = self.deps.database.reason
        if reason is not None:
            return _database_down(reason)
        if self._waiting >= MAX_WAITING or (
            self._waiting and self._waiting_bytes + size > MAX_WAITING_BYTES
        ):
            return Busy(
                f"not stored: {self._waiting} requests are already waiting to be stored",
                RETRY_AFTER_FULL_SECONDS,
            )
        return None

    def _answered(self, size: int) -> None:
        with self._lock:
            self._waiting -= 1
            self._waiting_bytes -= size

    def stop(self, timeout: float = 15) -> None:
        """Store what is queued, then end the thread; later requests fail at once."""
        with self._lock:
            self._stopped = True
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)  # under the lock: nothing is queued after it
        if thread is not None:
            thread.join(timeout)

    def _ensure_started(self) -> None:
        # Called under the lock. Started on first use, so an app built for a test or a
        # one-off command needs no extra step, and one that never receives a hook has no
        # idle thread.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            # Withdrawn ones are dropped; the rest can no longer be withdrawn.
            taken = [r for r in batch if r.done.set_running_or_notify_cancel()]
            try:
                reason = self.deps.database.reason
                if reason is not None:
                    # Queued before it stopped answering: refused now, not tried one by one.
                    _fail(taken, partial(_database_down, reason))
                elif taken:
                    self._store(taken)
            except Exception:
                # Whatever went wrong, this thread goes on: every later hook waits on it.
                log.exception("intake writer: a batch could not be handled")
                _fail([r for r in taken if not r.done.done()], _failure)
            if stopping:
                return

    def _store(self, batch: list[_Request]) -> None:
        metrics.INTAKE_BATCH.observe(len(batch))
        since = self.deps.clock()
        self._committing_since = time.monotonic()
        try:
            self._store_batch(batch, since)
        finally:
            self._committing_since = None

    def _store_batch(self, batch: list[_Request], since: datetime) -> None:
        try:
            results = self._store_together(batch)
        except Exception as exc:
            if unavailable(exc):
                self._database_failed(batch, exc, since)
                return
            if len(batch) == 1:
                log.exception("a hook request or ping could not be stored")
                batch[0].done.set_exception(_failure())
                return
            # One bad request must not fail the others, nor a deadlock between two
            # processes' batches on PostgreSQL: each is tried again in its own transaction.
            log.warning("a batch of %d requests failed; storing one at a time", len(batch))
            for n, request in enumerate(batch):
                try:
                    stored = self._store_together([request])[0]
                except Exception as exc:
                    if unavailable(exc):
                        self._database_failed(batch[n:], exc, since)
                        break
                    log.exception("a hook request or ping could not be stored")
                    request.done.set_exception(_failure())
                else:
                    request.done.set_result(stored)
            self.on_commit()
            return
        for request, stored in zip(batch, results, strict=True):
            request.done.set_result(stored)
        # A ping that changed no alert queued nothing for Slack: a batch of them alone
        # need not wake the outbox.
        if any(not isinstance(r, PingResult) or r.alert is not None for r in results if r):
            self.on_commit()

    def _database_failed(self, batch: list[_Request], exc: Exception, since: datetime) -> None:
        # Nothing of the batch was committed: its senders get 503 and retry. Said once per
        # outage (DatabaseHealth), not a traceback per request.
        self.deps.database.failed(exc, since)
        _fail(batch, partial(_database_down, error_kind(exc)))

    def _store_together(self, batch: list[_Request]) -> list[Any]:
        """Each request's result, in the batch's order, from one transaction."""
        fallback = self.deps.settings.integ_fallback_channel
        threshold = outage_threshold(self.deps.settings)
        hooks = [r.work for r in batch if isinstance(r.work, Received)]
        pings = [r.work for r in batch if isinstance(r.work, Ping)]
        with write_transaction(self.deps.sessions) as session:
            now = self.deps.clock()
            stored = iter(receive(session, hooks, now, fallback, threshold) if hooks else [])
            pinged = iter(record_pings(session, pings, now, self.heartbeats) if pings else [])
        return [next(stored) if isinstance(r.work, Received) else next(pinged) for r in batch]


class StoreFailed(Exception):
    """The request was not committed; the hook answers 500 so the sender retries."""


class Busy(StoreFailed):
    """Not committed, for now: the queue is full or the database does not answer. The hook
    answers 503 with `Retry-After`; nothing was stored."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _failure() -> StoreFailed:
    return StoreFailed("the event could not be stored; nothing was committed for it")


def _database_down(reason: str) -> Busy:
    return Busy(
        f"not stored: the database does not answer ({reason})", DatabaseUnavailable.retry_after
    )


def _fail(requests: list[_Request], error: Callable[[], StoreFailed]) -> None:
    # An exception each: one raised again in many waiters would gather all their frames.
    for request in requests:
        request.done.set_exception(error())
