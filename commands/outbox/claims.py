"""Which outbox rows may be sent now, and claiming one of them for one worker.

A claim is one transaction: a conditional UPDATE of the row that must change exactly one row
(`storage.leases`), plus a hold on its channel so that no other write to that channel starts
while this one is in flight. Nothing here talks to Slack or commits.

A claim's lease and a channel's hold and pace are times on the database's clock
(`lease_now`), shared by every replica; when a row is due is the process's (`now`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select, true, update
from sqlalchemy.orm import Session, aliased

from commands.home import queue as home
from commands.home.queue import ALL_HOMES, HOME, user_of
from commands.outbox.calls import Job
from commands.outbox.queue import EDIT, POST, REPLY, UPDATE, UPLOAD, edit_of
from storage import leases
from storage.db import insert_for
from storage.models import Alert, ChannelPace, OutboxMessage, OutboxStatus

# A crashed worker's claims become claimable again after this. It is far longer than one
# Slack call can take (the client times out after 10 s), so a live worker never loses one.
# A claim holds its channel for as long, so no other write to it starts while one is in
# flight, however slow Slack is to answer.
LEASE = timedelta(seconds=60)

_PENDING = OutboxStatus.PENDING.value


class Skipped(Exception):
    """Roll the claim back: its channel is not ready or another worker got there first."""


class Lost(Exception):
    """The claim is no longer this worker's: its lease ran out and another worker took the
    row, or it was handed back. Leave the row to whoever has it now."""


def candidates(
    session: Session, now: datetime, lease_now: datetime, limit: int, *, homes: bool = False
) -> list[int]:
    """The first eligible message of each channel that may be written to now.

    One per channel because pacing allows no more this second anyway; and picking per
    channel keeps a storm in one channel from hiding the messages of all the others.
    `homes`: the Home tabs' publishes instead, which a thread of their own sends, so that
    rendering them never holds up an alert (bot/workers/outbox.py).
    """
    m = OutboxMessage
    earlier = aliased(OutboxMessage)
    alert_kinds = (UPDATE.value, REPLY.value)
    # An update or reply needs the alert's message; until it exists the row waits, and
    # does not hold back what comes after it (the post that will create the message).
    waiting = and_(m.kind.in_(alert_kinds), m.alert_id.is_not(None), Alert.message_ts.is_(None))
    earlier_waiting = and_(earlier.kind.in_(alert_kinds), Alert.message_ts.is_(None))
    # An edit needs the message it changes: it waits while the MESSAGE row that posts it
    # is pending, and only the lowest pending edit of one message may go, so that an
    # older text never lands after a newer one. The kind is tested first so that the
    # subqueries run for edits only: an alert storm queues thousands of other rows.
    original = aliased(OutboxMessage)
    edit_free = or_(
        m.kind != EDIT.value,
        and_(
            ~exists().where(original.id == edit_of(m.payload), original.status == _PENDING),
            ~exists().where(
                earlier.kind == EDIT.value,
                edit_of(earlier.payload) == edit_of(m.payload),
                earlier.status == _PENDING,
                earlier.id < m.id,
            ),
        ),
    )
    query = (
        select(func.min(m.id))
        .select_from(m)
        .outerjoin(Alert, Alert.id == m.alert_id)
        .where(
            m.status == _PENDING,
            # Diagrams are drawn first, on threads of their own (`upload_candidates`).
            m.kind == HOME.value if homes else m.kind.not_in((UPLOAD.value, HOME.value)),
            # Slack limits views.publish per workspace: a 429 on one Home holds them all.
            ~exists().where(ChannelPace.channel == ALL_HOMES, ChannelPace.next_at > lease_now)
            if homes
            else true(),
            leases.claimable(m, now, lease_now),
            not_(waiting),
            # Order per alert: only its lowest pending message may go.
            ~exists().where(
                earlier.alert_id == m.alert_id,
                earlier.status == _PENDING,
                earlier.id < m.id,
                not_(earlier_waiting),
            ),
            edit_free,
            ~exists().where(ChannelPace.channel == m.channel, ChannelPace.next_at > lease_now),
        )
        .group_by(m.channel)
        .order_by(func.min(m.id))
        .limit(limit)
    )
    return [int(i) for i in session.scalars(query)]


def claim(
    session: Session, message_id: int, now: datetime, lease_now: datetime, worker: str
) -> tuple[Job, int]:
    """Claim the row and hold its channel; the job, and how many queued updates of its alert
    this send makes unnecessary (marked sent). Raises `Skipped` when the row or its channel
    is not to be had, and the caller rolls back."""
    m = OutboxMessage
    # Read before the claim overwrites it. Every recorded result either finishes the row
    # or clears claimed_by (`results.release`), so a pending row that still names a
    # claimant is one whose last claim ended without a result. A race with another claimant
    # cannot mislead this: whoever changes the row in between makes the claim match nothing.
    earlier_claimant = session.scalar(select(m.claimed_by).where(m.id == message_id))
    held_until = lease_now + LEASE
    taken = leases.claim(
        session,
        m,
        m.id == message_id,
        m.status == _PENDING,
        now=now,
        lease_now=lease_now,
        worker=worker,
        until=held_until,
    )
    if not taken:
        raise Skipped  # another worker claimed it between our look and our claim
    row = session.get_one(m, message_id)
    if not hold_channel(session, row.channel, lease_now, held_until):
        raise Skipped  # rolls the claim back: the message stays pending for the next look
    job = Job(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        alert_id=row.alert_id,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
        held_until=held_until,
        unresolved=earlier_claimant is not None,
    )
    superseded = 0
    # A post that may be on Slack already might not be rendered now at all: if it is found,
    # the message shows the alert as it was when the earlier claim rendered it, and the
    # updates queued since must still be sent.
    renders_now = not (job.unresolved and job.kind == POST)
    if job.kind in (POST, UPDATE) and job.alert_id is not None:
        # Wait for any transaction changing the alert to finish before the claim commits.
        # Such a transaction may have seen this row still unclaimed and so queued no update
        # of its own; rendered after this claim, the message then shows its change too.
        # (PostgreSQL: FOR SHARE. SQLite has one writer, so it cannot interleave anyway.)
        session.execute(select(Alert.id).where(Alert.id == job.alert_id).with_for_update(read=True))
        if renders_now:
            superseded = supersede(session, job, now, lease_now, worker)
    home_of = user_of(job.channel) if job.kind == HOME else None
    if home_of is not None:
        superseded = home.claimed(session, home_of, job.id, now, lease_now)
    return job, superseded


def supersede(session: Session, job: Job, now: datetime, lease_now: datetime, worker: str) -> int:
    """Mark the alert's other queued updates sent: this send renders the alert after the
    claim commits, so it shows every change they were queued for. Updates queued after a
    reply stay, so that the reply still comes before them. How many were marked."""
    m = OutboxMessage
    boundary = session.scalar(
        select(func.min(m.id)).where(
            m.alert_id == job.alert_id,
            m.status == _PENDING,
            m.id > job.id,
            m.kind != UPDATE.value,
        )
    )
    where = [
        m.alert_id == job.alert_id,
        m.kind == UPDATE.value,
        m.status == _PENDING,
        m.id != job.id,
        leases.claimable(m, now, lease_now),
    ]
    if boundary is not None:
        where.append(m.id < boundary)
    done = session.execute(
        update(m)
        .where(*where)
        .values(
            status=OutboxStatus.SENT.value,
            sent_at=now,
            claimed_by=worker,
            claimed_until=None,
            last_error=f"superseded by outbox #{job.id}",
        )
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


def hold_channel(session: Session, channel: str, lease_now: datetime, until: datetime) -> bool:
    """Take the channel for one write, until its result is recorded (`results.free_channel`)
    or `until`; False when it is not free now (both on the database's clock).

    Both statements are conditional, so two processes racing for one channel cannot both
    win: on PostgreSQL the loser waits for the winner's row lock and then finds next_at moved.
    """
    if leases.set_if(
        session,
        ChannelPace,
        ChannelPace.channel == channel,
        ChannelPace.next_at <= lease_now,
        next_at=until,
    ):
        return True
    # RETURNING, not rowcount: on psycopg this INSERT … ON CONFLICT reports rowcount -1.
    created = session.execute(
        insert_for(session)(ChannelPace)
        .values(channel=channel, next_at=until)
        .on_conflict_do_nothing(index_elements=["channel"])
        .returning(ChannelPace.channel)
    )
    return created.first() is not None


def hand_back(session: Session, worker: str, lease_now: datetime) -> int:
    """At shutdown, give back what this worker still holds, so that a restart (or another
    replica) sends it at once instead of when the lease runs out; how many rows.

    claimed_by stays: a call may have reached Slack before the process stopped, and a pending
    row that still names a claimant is looked for in the channel before it is posted again.
    """
    m = OutboxMessage
    held = session.execute(
        select(m.channel, m.claimed_until).where(
            m.claimed_by == worker, m.status == _PENDING, m.claimed_until.is_not(None)
        )
    ).all()
    for channel, held_until in held:
        session.execute(
            update(ChannelPace)
            .where(ChannelPace.channel == channel, ChannelPace.next_at <= held_until)
            .values(next_at=lease_now)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        update(m)
        .where(m.claimed_by == worker, m.status == _PENDING)
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return len(held)


# -- diagrams -------------------------------------------------------------------------------
#
# An UPLOAD row is drawn (Graphviz, up to 20 s) before it is uploaded, on threads of their own
# (bot/workers/diagrams.py). It is claimed in two steps, so that drawing it holds up neither
# the messages nor its channel: `claim_upload` takes the row alone, and `hold_for_upload`
# takes the channel once the picture is ready, renewing the lease, like any other write.


def upload_candidates(
    session: Session,
    now: datetime,
    lease_now: datetime,
    limit: int,
    *,
    skip: frozenset[int] = frozenset(),
) -> list[int]:
    """Diagrams due now and held by no live claim, oldest first, leaving out `skip` (those
    this process has in hand). Their channels may be busy: drawing writes nothing to them."""
    m = OutboxMessage
    query = (
        select(m.id)
        .where(m.kind == UPLOAD.value, m.status == _PENDING, leases.claimable(m, now, lease_now))
        .order_by(m.id)
        .limit(limit)
    )
    if skip:
        query = query.where(m.id.not_in(sorted(skip)))
    return [int(i) for i in session.scalars(query)]


def claim_upload(
    session: Session, message_id: int, now: datetime, lease_now: datetime, worker: str
) -> Job:
    """Claim a diagram's row to draw it, for a lease of LEASE, without its channel; raises
    `Skipped` when another worker got there first."""
    m = OutboxMessage
    # As in `claim`: a pending row that still names a claimant was left without a result.
    earlier_claimant = session.scalar(select(m.claimed_by).where(m.id == message_id))
    until = lease_now + LEASE
    taken = leases.claim(
        session,
        m,
        m.id == message_id,
        m.kind == UPLOAD.value,
        m.status == _PENDING,
        now=now,
        lease_now=lease_now,
        worker=worker,
        until=until,
    )
    if not taken:
        raise Skipped
    row = session.get_one(m, message_id)
    return Job(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        alert_id=row.alert_id,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
        held_until=until,
        unresolved=earlier_claimant is not None,
        holds_channel=False,
    )


def _still_mine(job: Job, worker: str) -> list[ColumnElement[bool]]:
    """The row as this worker's claim left it; the lease's end tells this claim from a later
    one of the same worker."""
    m = OutboxMessage
    return [
        m.id == job.id,
        m.status == _PENDING,
        m.claimed_by == worker,
        m.claimed_until == job.held_until,
    ]


def hold_for_upload(session: Session, job: Job, lease_now: datetime, worker: str) -> Job:
    """The drawn diagram's claim renewed and its channel held for the upload, as `claim`
    holds it for a message: the job as it is now. Raises `Skipped` while another write holds
    the channel (the caller rolls back and asks again) and `Lost` when the claim is no longer
    this worker's. A claim whose lease ran out while nobody took the row is still good."""
    until = lease_now + LEASE
    if not leases.set_if(session, OutboxMessage, *_still_mine(job, worker), claimed_until=until):
        raise Lost
    if not hold_channel(session, job.channel, lease_now, until):
        raise Skipped  # rolls the renewal back too
    return replace(job, held_until=until, holds_channel=True)


def give_back_upload(session: Session, job: Job, worker: str, lease_now: datetime) -> bool:
    """Give a claimed diagram back (its worker is stopping): due at once for whoever looks
    next, and its channel free now if this claim held it. claimed_by stays when a call may
    have been in flight, or an earlier claim had left the row in doubt, so that a text
    version is looked for before it is posted again (a picture is simply uploaded again).
    False when the claim was no longer this worker's."""
    in_doubt = job.unresolved or job.holds_channel
    if not leases.set_if(
        session,
        OutboxMessage,
        *_still_mine(job, worker),
        claimed_by=worker if in_doubt else None,
        claimed_until=None,
    ):
        return False
    if job.holds_channel:
        session.execute(
            update(ChannelPace)
            .where(ChannelPace.channel == job.channel, ChannelPace.next_at <= job.held_until)
            .values(next_at=lease_now)
            .execution_options(synchronize_session=False)
        )
    return True
