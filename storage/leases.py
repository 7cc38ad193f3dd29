"""Work claimed by a conditional UPDATE, so that any number of processes on one database do
each piece of it once.

A row that is work carries when it is next due (`due_at`) and, while a worker has it, who
(`claimed_by`) and until when (`claimed_until`). A worker claims it with an UPDATE whose WHERE
says "due, and not held by a live claim" and counts the rows it changed: exactly one means
the row is its own, anything else means another worker got there first. A worker that dies
keeps nothing: its claim runs out and the next look takes the row. The result is written back
with another conditional UPDATE naming the claim, so a claim that ran out and was taken over
cannot overwrite the newer result.

Nothing here commits; each function runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, String, and_, or_, update
from sqlalchemy.orm import Mapped, Session, mapped_column


class Leased:
    """The columns of a row that is claimed for a while by one worker (a mixin for models)."""

    due_at: Mapped[datetime] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column()


def unclaimed(model: type[Leased], now: datetime) -> ColumnElement[bool]:
    """Not held by a live claim: never claimed, released, or a claim that ran out."""
    return or_(model.claimed_until.is_(None), model.claimed_until < now)


def claimable(model: type[Leased], now: datetime) -> ColumnElement[bool]:
    """Due now and not held by a live claim."""
    return and_(model.due_at <= now, unclaimed(model, now))


def claim(
    session: Session,
    model: type[Leased],
    *where: ColumnElement[bool],
    now: datetime,
    worker: str,
    until: datetime,
) -> bool:
    """Claim the row `where` selects for `worker` until `until`, if it is claimable now;
    True when this call took it."""
    return set_if(
        session,
        model,
        *where,
        claimable(model, now),
        claimed_by=worker,
        claimed_until=until,
    )


def set_if(session: Session, model: type[Any], *where: ColumnElement[bool], **values: Any) -> bool:
    """Compare and set: write `values` to the one row `where` selects, if it still matches;
    True when exactly one row changed. The conditions are the values the caller read (a
    due time, a claimant), so a row that another worker changed meanwhile is left alone."""
    result = session.execute(
        update(model).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return changed_one(result)


def changed_one(result: Any) -> bool:
    """Whether a conditional UPDATE changed exactly one row."""
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
