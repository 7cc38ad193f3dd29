"""One thread that commits hook requests in batches (group commit).

A 202 promises that what was received is committed, so each hook request has to wait for a
commit. Committing each request on its own makes the commit, and on SQLite the fight over
its single write lock, the cost of every event. Here the hook threads hand their requests
to one writer, which stores everything that queued while the previous batch committed in
one transaction, commits, then answers each request. The promise is unchanged: a request is
answered only after the commit that holds it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from bot import metrics
from bot.deps import Deps
from commands.alerts.ingest import IngestResult, Received, receive
from commands.alerts.payloads import AlertEvent
from storage.db import transaction

log = logging.getLogger(__name__)

# Bounds one transaction: long enough to absorb a burst from many senders, short enough that
# the first request in it is not kept waiting behind a huge commit.
MAX_BATCH = 200

Stored = tuple[int, IngestResult]


@dataclass
class _Request:
    received: Received
    done: Future[Stored] = field(default_factory=Future)


class IntakeWriter:
    def __init__(self, deps: Deps, on_commit: Callable[[], None] = lambda: None) -> None:
        self.deps = deps
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, source: str, body: bytes, events: list[AlertEvent]) -> Future[Stored]:
        """Queue a request; the future gives (received event id, result) once committed,
        or the exception that kept it from being committed."""
        request = _Request(Received(source, body, events))
        with self._lock:
            if self._stopped:
                # After stop() nothing would take it: fail it now rather than let it hang.
                request.done.set_exception(_failure())
                return request.done
            self._ensure_started()
            self._queue.put(request)
        return request.done

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
        if self._thread is None:
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
            self._store(batch)
            if stopping:
                return

    def _store(self, batch: list[_Request]) -> None:
        metrics.INTAKE_BATCH.observe(len(batch))
        try:
            results = self._store_together(batch)
        except Exception:
            if len(batch) == 1:
                log.exception("a hook request could not be stored")
                batch[0].done.set_exception(_failure())
                return
            # One bad request must not fail the others, nor a deadlock between two
            # processes' batches on PostgreSQL: each is tried again in its own transaction.
            log.warning("a batch of %d hook requests failed; storing one at a time", len(batch))
            for request in batch:
                try:
                    stored = self._store_together([request])[0]
                except Exception:
                    log.exception("a hook request could not be stored")
                    request.done.set_exception(_failure())
                else:
                    request.done.set_result(stored)
            self.on_commit()
            return
        for request, stored in zip(batch, results, strict=True):
            request.done.set_result(stored)
        self.on_commit()

    def _store_together(self, batch: list[_Request]) -> list[Stored]:
        fallback = self.deps.settings.integ_fallback_channel
        with transaction(self.deps.sessions) as session:
            now = self.deps.clock()
            return receive(session, [request.received for request in batch], now, fallback)


class StoreFailed(Exception):
    """The request was not committed; the hook answers 500 so the sender retries."""


def _failure() -> StoreFailed:
    return StoreFailed("the event could not be stored; nothing was committed for it")
