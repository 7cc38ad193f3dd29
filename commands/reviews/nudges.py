"""Scheduled reviews: the nudge when a review falls due, its reminders and the end of its
snoozes, all on the scheduler's tick. What people do with a nudge is in `actions`.

A nudge is claimed by inserting its (integration, due date) row, which is unique, so any
number of processes post it once; every later change of it is a conditional UPDATE, and
its message is edited through the outbox, never posted again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commands.catalog.state import review_due
from commands.catalog.views import integration_spec
from commands.core.render.mrkdwn import mention
from commands.core.replies import Reply
from commands.outbox import queue as outbox
from commands.reviews.facts import Facts, facts_since
from commands.reviews.messages import (
    DueItem,
    ReviewActions,
    render_nudge,
)
from storage import leases, queries
from storage.db import insert_for
from storage.models import Integration, OutboxMessage, Review, ReviewNudge, ReviewNudgeStatus

OPEN = ReviewNudgeStatus.OPEN.value
SNOOZED = ReviewNudgeStatus.SNOOZED.value
DONE = ReviewNudgeStatus.DONE.value
MAX_SNOOZES = 2
SNOOZE = timedelta(days=7)
REMIND_EVERY = timedelta(days=3)
ESCALATE_AFTER_REMINDERS = 2  # repeats to the owner alone before the backups are mentioned
LIST_AHEAD = timedelta(days=14)  # `/integ reviews` shows what falls due this soon


@dataclass(frozen=True)
class Outcome:
    changed: bool
    message: str  # mrkdwn for the person who acted, shown only to them


def latest_reviews(session: Session) -> dict[str, Review]:
    """Each integration's most recent review. Reviews are recorded as they happen, so the
    highest id is the latest; comparing ids avoids SQLite's text max() of datetimes."""
    newest = select(func.max(Review.id)).group_by(Review.integration_id)
    return {
        r.integration_id: r for r in session.scalars(select(Review).where(Review.id.in_(newest)))
    }


def latest_review(session: Session, integration_id: str) -> Review | None:
    return session.scalars(
        select(Review)
        .where(Review.integration_id == integration_id)
        .order_by(Review.id.desc())
        .limit(1)
    ).first()


def _claim(session: Session, integration_id: str, due_on: date, now: datetime) -> int | None:
    """Insert the nudge's row; its id, or None when someone inserted it first."""
    statement = (
        insert_for(session)(ReviewNudge)
        .values(
            integration_id=integration_id,
            due_on=due_on,
            posted_at=now,
            status=OPEN,
            snoozes=0,
            reminders=0,
        )
        .on_conflict_do_nothing(index_elements=["integration_id", "due_on"])
        .returning(ReviewNudge.id)
    )
    return session.execute(statement).scalar()


def render(session: Session, nudge: ReviewNudge, now: datetime, actions: ReviewActions) -> Reply:
    """The nudge's message as it should look now, from its row and the database."""
    integ = session.get(Integration, nudge.integration_id)
    assert integ is not None  # a foreign key
    if nudge.status == DONE and nudge.review_id is not None:
        review = session.get(Review, nudge.review_id)
        if review is not None:
            # A done nudge shows the review, not the facts it was answering.
            return render_nudge(
                integ,
                nudge,
                Facts(since=review.reviewed_at),
                now,
                actions,
                review=review,
                next_due=review_due(integ, review.reviewed_at),
            )
    last = latest_review(session, integ.id)
    since = last.reviewed_at if last is not None else integ.added_at
    return render_nudge(
        integ, nudge, facts_since(session, integ, since), now, actions, last_review=last
    )


def due_nudges(session: Session, now: datetime) -> list[tuple[str, date]]:
    """(integration, due date) of each review fallen due with no nudge yet: read only, for
    `post_nudges` to post a few at a time."""
    today = now.date()
    last = latest_reviews(session)
    # A nudge still waiting (a cadence changed in the catalog moves the due date) is the
    # one to answer; a second would only ask the same question twice.
    waiting = set(
        session.scalars(
            select(ReviewNudge.integration_id).where(ReviewNudge.status.in_((OPEN, SNOOZED)))
        )
    )
    due_now = []
    for integ in queries.integrations(session):
        review = last.get(integ.id)
        due = review_due(integ, review.reviewed_at if review is not None else None)
        if due > today or integ.id in waiting or _posted(session, integ.id, due):
            continue
        due_now.append((integ.id, due))
    return due_now


def post_nudges(
    session: Session, due: list[tuple[str, date]], now: datetime, actions: ReviewActions
) -> int:
    """Post the nudge of each (integration, due date) that no process has posted; how
    many. Each is claimed by inserting its row under its unique key."""
    queued = 0
    for integration_id, due_on in due:
        integ = session.get(Integration, integration_id)
        if integ is None or integ.removed_at is not None:
            continue
        nudge_id = _claim(session, integration_id, due_on, now)
        if nudge_id is None:
            continue  # another process has it
        nudge = session.get(ReviewNudge, nudge_id)
        assert nudge is not None
        reply = render(session, nudge, now, actions)
        nudge.outbox_id = outbox.queue_message(
            session, channel=integ.channel, now=now, text=reply.text, blocks=reply.blocks
        )
        queued += 1
    session.flush()
    return queued


def _posted(session: Session, integration_id: str, due_on: date) -> bool:
    """Whether this due date's nudge exists: one row looked up by its unique key, not every
    nudge ever posted read on every tick."""
    found = session.scalar(
        select(ReviewNudge.id).where(
            ReviewNudge.integration_id == integration_id, ReviewNudge.due_on == due_on
        )
    )
    return found is not None


def end_snoozes(session: Session, now: datetime, actions: ReviewActions) -> int:
    """Snoozes that have run out: the nudge is open again, and says so in its thread."""
    ended = session.scalars(
        select(ReviewNudge).where(
            ReviewNudge.status == SNOOZED, ReviewNudge.snoozed_until <= now.date()
        )
    ).all()
    queued = 0
    for nudge in ended:
        claimed = leases.set_if(
            session,
            ReviewNudge,
            ReviewNudge.id == nudge.id,
            ReviewNudge.status == SNOOZED,
            status=OPEN,
        )
        if not claimed:
            continue
        session.refresh(nudge)
        integ = session.get(Integration, nudge.integration_id)
        assert integ is not None
        # The note counts as a reminder: the next one is a full interval later.
        nudge.last_reminded_at = now
        queued += edit_nudge(session, nudge, now, actions)
        queued += thread_note(
            session,
            nudge,
            f":alarm_clock: The snooze is over: {mention(nudge.assigned_to or integ.owner)}, "
            "this review is waiting for you.",
            now,
        )
    return queued


def send_reminders(session: Session, now: datetime) -> int:
    """Repeat each unanswered nudge in its thread every REMIND_EVERY; from the third repeat
    the backups are mentioned too.

    At most one reminder per integration per day follows from the rest: an integration has
    at most one waiting nudge (due_nudges), and a snooze ending counts as a reminder."""
    today = now.date()
    queued = 0
    for nudge in session.scalars(
        select(ReviewNudge).where(ReviewNudge.status == OPEN).order_by(ReviewNudge.id)
    ).all():
        since = nudge.last_reminded_at or nudge.posted_at
        if now - since < REMIND_EVERY:
            continue
        thread_ts = _nudge_ts(session, nudge)
        integ = session.get(Integration, nudge.integration_id)
        if thread_ts is None or integ is None:
            continue  # not posted yet: nothing to reply to
        claimed = leases.set_if(
            session,
            ReviewNudge,
            ReviewNudge.id == nudge.id,
            ReviewNudge.status == OPEN,
            ReviewNudge.reminders == nudge.reminders,
            reminders=nudge.reminders + 1,
            last_reminded_at=now,
        )
        if not claimed:
            continue  # another process reminded, or it was answered meanwhile
        repeat = nudge.reminders + 1
        waited = (today - nudge.due_on).days
        text = (
            f":alarm_clock: Reminder: this review has been waiting since "
            f"{nudge.due_on:%Y-%m-%d} ({waited} day{'s' if waited != 1 else ''}). "
            f"{mention(nudge.assigned_to or integ.owner)}, can you do it?"
        )
        backups = integration_spec(integ).backups
        if repeat > ESCALATE_AFTER_REMINDERS and backups:
            text += " Backups: " + ", ".join(mention(b) for b in backups) + "."
        queued += thread_note(session, nudge, text, now, thread_ts)
    return queued


def review_tick(session: Session, now: datetime, actions: ReviewActions) -> int:
    """Snoozes ended and reminders due, for one tick; how many Slack writes it queued. The
    nudges themselves are posted a few to a transaction (`due_nudges`, `post_nudges`)."""
    return end_snoozes(session, now, actions) + send_reminders(session, now)


def edit_nudge(session: Session, nudge: ReviewNudge, now: datetime, actions: ReviewActions) -> int:
    if nudge.outbox_id is None:
        return 0
    reply = render(session, nudge, now, actions)
    queued = outbox.queue_edit(
        session, of=nudge.outbox_id, text=reply.text, blocks=reply.blocks, now=now
    )
    return 1 if queued is not None else 0


def _nudge_ts(session: Session, nudge: ReviewNudge) -> str | None:
    if nudge.outbox_id is None:
        return None
    row = session.get(OutboxMessage, nudge.outbox_id)
    return row.result_ts if row is not None else None


def thread_note(
    session: Session, nudge: ReviewNudge, text: str, now: datetime, thread_ts: str | None = None
) -> int:
    """A line in the nudge's thread, once the nudge has been posted (its ts is known)."""
    thread_ts = thread_ts or _nudge_ts(session, nudge)
    integ = session.get(Integration, nudge.integration_id)
    if thread_ts is None or integ is None:
        return 0
    outbox.queue_message(session, channel=integ.channel, now=now, text=text, thread_ts=thread_ts)
    return 1


# -- answering ---------------------------------------------------------------------------------


def waiting_nudge(session: Session, integration_id: str) -> int | None:
    """The nudge a review of this integration would answer, if one is waiting."""
    return session.scalar(
        select(ReviewNudge.id)
        .where(
            ReviewNudge.integration_id == integration_id,
            ReviewNudge.status.in_((OPEN, SNOOZED)),
        )
        .order_by(ReviewNudge.id.desc())
        .limit(1)
    )


# -- `/integ reviews` and `/integ review i` -----------------------------------------------------


def due_items(session: Session, today: date, ahead: timedelta) -> list[DueItem]:
    """Reviews overdue, due within `ahead`, or waiting on a nudge; soonest first."""
    last = latest_reviews(session)
    waiting = {
        n.integration_id: n
        for n in session.scalars(select(ReviewNudge).where(ReviewNudge.status.in_((OPEN, SNOOZED))))
    }
    due: list[DueItem] = []
    for integ in queries.integrations(session):
        review = last.get(integ.id)
        when = review_due(integ, review.reviewed_at if review is not None else None)
        nudge = waiting.get(integ.id)
        if when <= today + ahead or nudge is not None:
            due.append(
                DueItem(
                    integ,
                    nudge.due_on if nudge is not None else when,
                    nudge.snoozed_until if nudge is not None and nudge.status == SNOOZED else None,
                    nudge.assigned_to if nudge is not None else None,
                )
            )
    due.sort(key=lambda item: (item.due, item.integ.id))
    return due
