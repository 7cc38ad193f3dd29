"""Recording what Slack said about one claimed row: a row per attempt, the row finished or
put back with a due time, and when its channel may be written to next.

One transaction per result, opened by the worker; nothing here talks to Slack or commits.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from commands.home.queue import ALL_HOMES
from commands.outbox.calls import Delivered, Job
from commands.outbox.queue import POST, REFIRE
from storage import leases
from storage.db import insert_for
from storage.models import (
    Alert,
    ChannelPace,
    OutboxAttempt,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
)

log = logging.getLogger(__name__)

# Slack allows about one write per second per channel and answers 429 beyond that. The next
# write to a channel starts PACE after the previous call to it *returned*: Slack received that
# call before it answered, so the two arrive at least PACE apart whatever the network and
# rendering add. Counting from the claim instead let 12-21% of a storm's calls arrive less
# than a second apart (bench/README.md, storm finding 4). channel_pace is on the database's
# clock, which every replica shares; the 0.1 s over Slack's second is a margin for the time
# between reading that clock and the call leaving.
PACE = timedelta(seconds=1.1)
# A person's Home is published at most this often: a storm for their integrations becomes a
# Home that catches up every two seconds, not a publish per event. Short enough that an
# alert shows there within three seconds of arriving.
HOME_PACE = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)
# A Retry-After outside this range is a broken header, not advice worth following.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 3600.0


class Result(enum.StrEnum):
    """What became of one attempt; also the label of the attempts metric."""

    OK = "ok"
    RATELIMITED = "ratelimited"
    RETRY = "retry"
    FAILED = "failed"


@dataclass
class Outcome:
    result: Result
    delivered: Delivered | None = None
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    # Slack may have the message, and nobody has looked: the next claim must look first.
    unresolved: bool = False


def record(
    session: Session,
    job: Job,
    outcome: Outcome,
    now: datetime,
    worker: str,
    *,
    lease_now: datetime,
) -> None:
    """Store the attempt and move the row on: sent, failed for good, or due again later.
    `lease_now` is the database's clock, on which the channel's next write is set."""
    row = session.get_one(OutboxMessage, job.id)
    # Counted before this attempt's row is added, so it counts the earlier ones only.
    failures = failures_before(session, job.id) + 1 if outcome.result == Result.RETRY else 0
    session.add(
        OutboxAttempt(
            message_id=job.id,
            at=now,
            ok=outcome.result == Result.OK,
            http_status=outcome.http_status,
            error=outcome.error,
            retry_after=outcome.retry_after,
            worker=worker,
        )
    )
    row.attempts = (row.attempts or 0) + 1
    # Read after the call returned, so the channel's next write starts at least PACE after
    # Slack had this one (see PACE).
    free_at = lease_now + (HOME_PACE if job.kind == OutboxKind.HOME else PACE)
    if outcome.result == Result.OK:
        record_sent(session, row, job, outcome, now)
    elif outcome.result == Result.RATELIMITED:
        retry_after = timedelta(seconds=outcome.retry_after or MIN_RETRY_AFTER)
        # Not a failure: Slack said when, so the message simply waits, and so does every
        # other message for that channel (in every process, via the table).
        release(row, due_at=now + retry_after, error=outcome.error)
        free_at = max(free_at, lease_now + retry_after)
        if job.kind == OutboxKind.HOME:
            # views.publish is limited per workspace: every Home waits, not this one only.
            pace(session, ALL_HOMES, lease_now + retry_after)
        log.info("outbox #%d: rate limited on %s for %ss", job.id, row.channel, retry_after)
    elif outcome.result == Result.RETRY:
        backoff = min(timedelta(seconds=2 ** (failures - 1)), MAX_BACKOFF)
        # A 429 on a read (the history lookup) delays this row only: it says nothing about
        # writing to the channel.
        backoff = max(backoff, timedelta(seconds=outcome.retry_after or 0))
        release(row, due_at=now + backoff, error=outcome.error, unresolved=outcome.unresolved)
        log.warning(
            "outbox #%d (%s to %s): %s; retry %d in %ss",
            job.id,
            job.kind,
            row.channel,
            outcome.error,
            failures,
            backoff.total_seconds(),
        )
    else:
        row.status = OutboxStatus.FAILED.value
        row.claimed_until = None
        row.last_error = outcome.error
        log.error(
            "outbox #%d (%s to %s) failed for good: %s",
            job.id,
            job.kind,
            row.channel,
            outcome.error,
        )
    if job.holds_channel:
        # A diagram that could not be drawn made no call and never held its channel.
        free_channel(session, row.channel, held_until=job.held_until, free_at=free_at)


def record_sent(
    session: Session, row: OutboxMessage, job: Job, outcome: Outcome, now: datetime
) -> None:
    assert outcome.delivered is not None
    row.status = OutboxStatus.SENT.value
    row.sent_at = now
    row.claimed_until = None
    row.result_ts = outcome.delivered.ts or None
    row.last_error = None
    if job.kind == POST and job.alert_id is not None and outcome.delivered.ts:
        # Conditional, so that a message posted twice (a timeout whose post did reach Slack;
        # it had no recorded result to look for) never moves the alert off the message
        # people already see.
        session.execute(
            update(Alert)
            .where(Alert.id == job.alert_id, Alert.message_ts.is_(None))
            .values(channel=outcome.delivered.channel, message_ts=outcome.delivered.ts)
            .execution_options(synchronize_session=False)
        )
    elif job.kind == REFIRE and job.alert_id is not None and outcome.delivered.ts:
        # The alert is its new message from now on; conditional on the message it moves
        # from, so that a repost found again after a crash does not move it twice.
        previous = str(job.payload.get("previous_ts") or "")
        session.execute(
            update(Alert)
            .where(Alert.id == job.alert_id, Alert.message_ts == previous)
            .values(channel=outcome.delivered.channel, message_ts=outcome.delivered.ts)
            .execution_options(synchronize_session=False)
        )


def pace(session: Session, channel: str, until: datetime) -> None:
    """No write to `channel` before `until` (a key of its own, such as every Home's)."""
    if not leases.set_if(
        session,
        ChannelPace,
        ChannelPace.channel == channel,
        ChannelPace.next_at < until,
        next_at=until,
    ):
        session.execute(
            insert_for(session)(ChannelPace)
            .values(channel=channel, next_at=until)
            .on_conflict_do_nothing(index_elements=["channel"])
        )


def free_channel(
    session: Session, channel: str, *, held_until: datetime, free_at: datetime
) -> None:
    """End this claim's hold: the channel's next write may start at `free_at`.

    Only while the hold is still this claim's: one that ran out was free to be taken, and the
    new holder's (later) `held_until` must not be cut short by a result recorded this late.
    """
    session.execute(
        update(ChannelPace)
        .where(ChannelPace.channel == channel, ChannelPace.next_at <= held_until)
        .values(next_at=free_at)
        .execution_options(synchronize_session=False)
    )


def release(
    row: OutboxMessage, *, due_at: datetime, error: str | None, unresolved: bool = False
) -> None:
    """Back to pending and unclaimed, so any worker may send it once it is due; clearing
    claimed_by also lets `enqueue` fold new updates into this one again.

    `unresolved` keeps claimed_by: Slack may have the message and nobody could look, so the
    next claim must see an earlier claim without a result and look first.
    """
    row.due_at = due_at
    if not unresolved:
        row.claimed_by = None
    row.claimed_until = None
    row.last_error = error


def failures_before(session: Session, message_id: int) -> int:
    """Failed attempts that count towards backoff: 429s do not, Slack said when to return."""
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxAttempt)
            .where(
                OutboxAttempt.message_id == message_id,
                OutboxAttempt.ok.is_(False),
                or_(OutboxAttempt.http_status.is_(None), OutboxAttempt.http_status != 429),
            )
        )
        or 0
    )


def pending_count(session: Session) -> int:
    """Rows waiting to be sent, for the gauge."""
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING.value)
        )
        or 0
    )
