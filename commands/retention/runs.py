"""When the retention duty runs: at most once an hour across every process on a database.

A row holds the next run's time; a process takes the run by moving it on with a
compare-and-set, so replicas ticking together do not all sweep the same tables. A run that
stopped with more to delete (bot/workers/retention.py caps each run) makes the next one due
at once, so a backlog is worked off a slice per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage import leases
from storage.db import insert_for
from storage.models import RetentionRun

NAME = "retention"
EVERY = timedelta(hours=1)


def claim(session: Session, now: datetime, every: timedelta = EVERY) -> bool:
    """Take the run that is due now, if any; True when this call took it."""
    due = session.scalar(select(RetentionRun.next_at).where(RetentionRun.name == NAME))
    if due is None:
        # The first run on this database: whoever inserts the row runs it.
        inserted = session.execute(
            insert_for(session)(RetentionRun)
            .values(name=NAME, next_at=now + every, started_at=now, deleted={})
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(RetentionRun.name)
        )
        return inserted.first() is not None
    if due > now:
        return False  # read without writing: most ticks stop here
    return leases.set_if(
        session,
        RetentionRun,
        RetentionRun.name == NAME,
        RetentionRun.next_at <= now,
        next_at=now + every,
        started_at=now,
    )


def finish(session: Session, now: datetime, deleted: Mapping[str, int], *, done: bool) -> None:
    """Record what the run deleted; when it stopped with more to delete, the next run is
    due now."""
    values: dict[str, object] = {"finished_at": now, "deleted": dict(deleted)}
    if not done:
        values["next_at"] = now
    session.execute(
        update(RetentionRun)
        .where(RetentionRun.name == NAME)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def last_run(session: Session) -> RetentionRun | None:
    return session.get(RetentionRun, NAME)
