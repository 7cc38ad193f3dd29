"""The retention duty: at most once an hour (across every process on the database), delete
the pings, raw hook bodies and finished outbox rows older than their settings, in batches
that are each their own short transaction (commands/retention).

Between two batches it pauses as long as the batch took (at most 0.1 s): SQLite has one
write lock, and a ping or hook that waited for it during a batch gets it in the gap rather
than losing every gap to the next batch. A run stops after MAX_BATCHES batches of a table;
the rest is deleted by the next runs, one tick after another, so a backlog (the first run on
a database a year old) never holds up a tick for long.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from bot.deps import Deps
from commands.retention import runs
from commands.retention.purge import Policy, Sweep, sweeps
from storage.db import transaction
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

BATCH = 1000  # rows per transaction
# Per table per run: 100,000 rows, a few seconds of a tick. 500 heartbeats pinging once a
# minute make 30,000 pings an hour, well within one run; a backlog (the first run on a
# database a year old) is worked off a slice per tick.
MAX_BATCHES = 100
MAX_PAUSE = 0.1  # seconds between two batches, at most


class Retention:
    """The duty; `run_once` is also what the year-long benchmark calls."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        policy: Policy,
        *,
        batch: int = BATCH,
        max_batches: int = MAX_BATCHES,
        pause: bool = True,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.batch = batch
        self.max_batches = max_batches
        self.pause = pause

    @classmethod
    def from_deps(cls, deps: Deps) -> Retention:
        s = deps.settings
        policy = Policy.of_days(
            s.integ_retain_pings_days,
            s.integ_retain_hook_bodies_days,
            s.integ_retain_outbox_days,
            s.integ_retain_homes_days,
        )
        return cls(deps.sessions, deps.clock, policy)

    def __call__(self) -> int:
        """As a duty: it queues nothing for Slack."""
        self.run_once()
        return 0

    def run_once(self) -> Counter[str] | None:
        """Run if the run is due and this process takes it: rows deleted by table, else None."""
        now = self.clock()
        with transaction(self.sessions) as session:
            if not runs.claim(session, now):
                return None
        deleted: Counter[str] = Counter()
        done = True
        for sweep in sweeps(self.policy):
            done = self._drain(sweep, now - sweep.keep, deleted) and done
        with transaction(self.sessions) as session:
            runs.finish(session, self.clock(), deleted, done=done)
        for table, count in deleted.items():
            metrics.RETENTION_DELETED.labels(table).inc(count)
        if any(deleted.values()):
            counts = ", ".join(f"{count:,} {table}" for table, count in deleted.items() if count)
            log.info("retention: deleted %s%s", counts, "" if done else "; more next tick")
        return deleted

    def _drain(self, sweep: Sweep, before: datetime, deleted: Counter[str]) -> bool:
        """Delete the sweep's rows older than `before`, a batch per transaction; False when
        it stopped at MAX_BATCHES with more left."""
        for _ in range(self.max_batches):
            started = time.perf_counter()
            with write_transaction(self.sessions) as session:
                batch = sweep.batch(session, before, self.batch)
            deleted[sweep.table] += batch.rows
            if batch.attempts:
                deleted["outbox_attempts"] += batch.attempts
            if batch.rows < self.batch:
                return True
            if self.pause:
                time.sleep(min(time.perf_counter() - started, MAX_PAUSE))
        return False
