"""Diagrams, drawn and uploaded on threads of their own, apart from the alerts.

`/integ diagram` queues an UPLOAD row holding Graphviz source (commands.catalog.diagram).
Drawing it runs `dot` for up to 20 s, and the upload is three Slack calls. Done on the outbox
worker's one thread, a few diagrams held up every alert queued behind them; so the outbox
worker owns this pool of DIAGRAM_THREADS threads that do nothing else, and its own thread
never takes an UPLOAD row (`claims.candidates` leaves them out).

Each diagram is claimed in two steps (commands.outbox.claims), by a claimant of its own
(`<worker id>/diagrams`, so that the messages' hand-back at shutdown leaves these alone):

1. the row alone (`claim_upload`), for the 60 s lease: the picture is drawn while its channel
   stays free, so alerts to that channel go on at the channel's pace meanwhile;
2. once it is drawn, its channel (`hold_for_upload`), as for any other write, renewing the
   lease. While another write holds the channel the thread asks again every
   CHANNEL_POLL_SECONDS; nothing else waits for it. The upload (or, where Graphviz is missing,
   the text version) is made and recorded like any other attempt, which frees the channel
   1.1 s after the call returned.

A picture that cannot be drawn is recorded like any failed attempt: failed for good when
Graphviz refuses the source, due again after backoff when `dot` timed out. A process that dies
while drawing or uploading leaves a claim whose lease runs out, and whoever looks next draws
the diagram again (an upload in doubt may show twice, as bot/workers/outbox.py says). A pool
that is stopping gives back what it still has in hand, so that the next start draws it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.deps import Deps
from commands.outbox import claims
from commands.outbox.calls import Call, Job
from commands.outbox.results import Outcome
from storage.db import transaction, unavailable

log = logging.getLogger(__name__)

# Two: one long drawing does not hold up the next diagram, and `dot` never takes more than
# two of the cores that also serve Slack's requests.
DIAGRAM_THREADS = 2
# An idle thread looks this often for diagrams queued by other processes or due again after a
# failed try; one queued in this process wakes it at once (`notify`).
IDLE_POLL_SECONDS = 1.0
# At most this often an idle thread looks when woken: every hook wakes the outbox.
MIN_LOOK_GAP = 0.2
# How often a drawn diagram asks again for a channel that another write holds.
CHANNEL_POLL_SECONDS = 0.2
LOOK_AHEAD = 10  # candidates read per look
CLAIMANT_SUFFIX = "/diagrams"


@dataclass
class DiagramPool:
    deps: Deps
    # Who the claims name: the outbox worker's id and CLAIMANT_SUFFIX.
    claimant: str
    # The outbox worker's steps, shared with the messages: the call for a claimed row (for an
    # upload, drawing the picture) or, when there is none, the outcome to record; making a
    # call for a job that holds its channel and recording it; recording an outcome. The last
    # two say whether Slack accepted the write.
    prepare: Callable[[Job], Call | Outcome]
    send: Callable[[Job, Call], bool]
    record: Callable[[Job, Outcome], bool]
    threads: int = DIAGRAM_THREADS
    idle_poll: float = IDLE_POLL_SECONDS
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _wake: threading.Condition = field(default_factory=threading.Condition, init=False)
    _generation: int = field(default=0, init=False)
    _running: list[threading.Thread] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # The diagrams this process is drawing or uploading, as claimed now.
    _in_hand: dict[int, Job] = field(default_factory=dict, init=False)

    # -- the threads ------------------------------------------------------------------------

    def start(self) -> None:
        if any(thread.is_alive() for thread in self._running):
            return
        self._stopping.clear()
        self._running = [
            threading.Thread(target=self._loop, name=f"diagrams-{self.claimant}-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in self._running:
            thread.start()

    def ask_to_stop(self) -> None:
        """Tell the threads to finish what they are doing and take nothing more."""
        self._stopping.set()
        self.notify()

    def stop(self, timeout: float) -> None:
        """Stop the threads: a picture being uploaded has `timeout` seconds to be sent and
        recorded; one being drawn is given back once drawn. Whatever is still in hand when
        the time is up is given back, so that the next start takes it at once."""
        self.ask_to_stop()
        deadline = time.monotonic() + timeout
        for thread in self._running:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._running = []
        with self._lock:
            left = list(self._in_hand.values())
        for job in left:
            self._give_back(job)

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                seen = self._generation
            if self.deps.database.down:
                # As the outbox: nothing can be claimed or recorded until the database is back.
                self._stopping.wait(1.0)
                continue
            since = self.deps.clock()
            try:
                job = self._claim_next()
                if job is not None:
                    self._finish(job, wait=True)
                    continue
            except Exception as exc:
                # The database or a bug: the rows are safe (a claim runs out by itself), so
                # look again later rather than let the thread die; an outage is said once.
                if unavailable(exc):
                    self.deps.database.failed(exc, since)
                else:
                    log.exception("diagrams %s: run failed", self.claimant)
                self._stopping.wait(1.0)
                continue
            if self._stopping.wait(MIN_LOOK_GAP):
                return
            with self._wake:
                if self._generation == seen and not self._stopping.is_set():
                    self._wake.wait(self.idle_poll)

    # -- one pass, in the caller's thread ----------------------------------------------------

    def run_once(self, limit: int = 50) -> int:
        """Draw and send, in the calling thread, the diagrams due now whose channels are
        free; how many Slack accepted. `OutboxWorker.run_once` does this after the messages,
        for the shell and for tests that drive time by hand; a diagram whose channel is busy
        is given back, to be drawn again by a later pass."""
        tried: set[int] = set()
        sent = 0
        while len(tried) < limit:
            job = self._claim_next(skip=frozenset(tried))
            if job is None:
                break
            tried.add(job.id)
            sent += self._finish(job, wait=False)
        return sent

    # -- one diagram -------------------------------------------------------------------------

    def _claim_next(self, skip: frozenset[int] = frozenset()) -> Job | None:
        with self._lock:
            skip |= frozenset(self._in_hand)
        with transaction(self.deps.sessions) as session:
            found = claims.upload_candidates(
                session,
                self.deps.clock(),
                self.deps.lease_clock(session),
                LOOK_AHEAD,
                skip=skip,
            )
        for message_id in found:
            try:
                with transaction(self.deps.sessions) as session:
                    job = claims.claim_upload(
                        session,
                        message_id,
                        self.deps.clock(),
                        self.deps.lease_clock(session),
                        self.claimant,
                    )
            except claims.Skipped:
                continue  # another thread or process got there first
            with self._lock:
                self._in_hand[job.id] = job
            return job
        return None

    def _finish(self, job: Job, *, wait: bool) -> bool:
        try:
            return self._draw_and_send(job, wait=wait)
        finally:
            with self._lock:
                self._in_hand.pop(job.id, None)

    def _draw_and_send(self, job: Job, *, wait: bool) -> bool:
        started = time.monotonic()
        prepared = self.prepare(job)
        log.debug("outbox #%d: drawn in %.1fs", job.id, time.monotonic() - started)
        if isinstance(prepared, Outcome):
            return self.record(job, prepared)
        if wait and self._stopping.is_set():
            self._give_back(job)
            return False
        held = self._hold_channel(job, wait=wait)
        if held is None:
            return False
        with self._lock:
            self._in_hand[job.id] = held
        return self.send(held, prepared)

    def _hold_channel(self, job: Job, *, wait: bool) -> Job | None:
        """The job holding its channel for the upload, or None: the claim was lost, or the
        channel stayed busy (at once without `wait`, else until stopping) and the diagram
        was given back."""
        while True:
            try:
                with transaction(self.deps.sessions) as session:
                    lease_now = self.deps.lease_clock(session)
                    return claims.hold_for_upload(session, job, lease_now, self.claimant)
            except claims.Skipped:
                pass  # another write holds the channel: alerts go first
            except claims.Lost:
                log.warning("outbox #%d: claim lost while drawing; left to its claimant", job.id)
                return None
            if not wait or self._stopping.wait(CHANNEL_POLL_SECONDS):
                self._give_back(job)
                return None

    def _give_back(self, job: Job) -> None:
        try:
            with transaction(self.deps.sessions) as session:
                claims.give_back_upload(session, job, self.claimant, self.deps.lease_clock(session))
        except Exception as exc:  # the lease runs out by itself
            log.warning("outbox #%d: diagram not given back: %s", job.id, exc)
