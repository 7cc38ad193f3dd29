"""Work claimed by a conditional UPDATE, so that any number of processes on one database do
each piece of it once.

A row that is work carries when it is next due (`due_at`) and, while a worker has it, who
(`claimed_by`) and until when (`claimed_until`). A worker claims it with an UPDATE whose WHERE
says "due, and not held by a live claim" and counts the rows it changed: exactly one means
the row is its own, anything else means another worker got there first. A worker that dies
keeps nothing: its claim runs out and the next look takes the row. The result is written back
with another conditional UPDATE naming the claim, so a claim that ran out and was taken over
cannot overwrite the newer result.

Two clocks are at work. When a row is due is the application's time (`now`, the process's
clock, injected in tests): it says when, not who. Whose a row is, is told by `claimed_until`,
which is written and compared on the database's clock (`lease_now`, from a `LeaseClock`), so
that replicas whose clocks disagree, or a host whose clock steps, still agree on whether a
claim has run out. A skewed host may find work due early or late by its skew; it cannot take
a row another worker holds.

Nothing here commits; each function runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, String, and_, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

# The time leases are measured in, read in the session that claims or compares.
LeaseClock = Callable[[Session], datetime]


def database_clock(session: Session) -> datetime:
    """The database server's time now: the one clock every replica shares.

    SQLite is a file on one host, and every process that opens it shares that host's clock,
    so there it is the host's time."""
    if session.get_bind().dialect.name == "postgresql":
        # statement_timestamp, not now(): now() is the transaction's start, which a long
        # transaction would leave behind.
        value = session.scalar(select(func.statement_timestamp()))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


class Leased:
    """The columns of a row that is claimed for a while by one worker (a mixin for models)."""

    due_at: Mapped[datetime] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column()


def unclaimed(model: type[Leased], lease_now: datetime) -> ColumnElement[bool]:
    """Not held by a live claim: never claimed, released, or a claim that ran out (on the
    database's clock)."""
    return or_(model.claimed_until.is_(None), model.claimed_until < lease_now)


def claimable(model: type[Leased], now: datetime, lease_now: datetime) -> ColumnElement[bool]:
    """Due now and not held by a live claim."""
    return and_(model.due_at <= now, unclaimed(model, lease_now))


def claim(
    session: Session,
    model: type[Leased],
    *where: ColumnElement[bool],
    now: datetime,
    lease_now: datetime,
    worker: str,
    until: datetime,
) -> bool:
    """Claim the row `where` selects for `worker` until `until` (on the database's clock, as
    `lease_now` is), if it is claimable now; True when this call took it."""
    return set_if(
        session,
        model,
        *where,
        claimable(model, now, lease_now),
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
