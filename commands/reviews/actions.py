"""What people do with a review: mark it reviewed (the form's answers recorded), snooze its
nudge, reassign it; and `/integ reviews`, `/integ review i`.

Every change of a nudge is a conditional UPDATE of what was read, so two people clicking at
once change it once, and its message is edited through the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.lookups import resolve_integration
from commands.catalog.state import review_due
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention
from commands.core.replies import Invocation, Reply
from commands.home import queue as home
from commands.permissions import audit
from commands.permissions.check import permit_on
from commands.permissions.people import Actor
from commands.permissions.rules import Action
from commands.reviews.messages import (
    CHECKLIST,
    CHECKLIST_KEYS,
    NO,
    NOTES_LIMIT,
    YES,
    ReviewActions,
    follow_ups,
    render_list,
    review_modal,
)
from commands.reviews.nudges import (
    DONE,
    LIST_AHEAD,
    MAX_SNOOZES,
    OPEN,
    SNOOZE,
    SNOOZED,
    Outcome,
    due_items,
    edit_nudge,
    latest_review,
    latest_reviews,
    thread_note,
    waiting_nudge,
)
from storage import leases, queries
from storage.models import Review, ReviewNudge


def parse_answers(values: Mapping[str, object]) -> tuple[dict[str, str], dict[str, str]]:
    """The checklist answers from a modal's state values, and errors by block id."""
    answers: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key in CHECKLIST_KEYS:
        block = values.get(key)
        element = block.get(key) if isinstance(block, Mapping) else None
        selected = element.get("selected_option") if isinstance(element, Mapping) else None
        value = selected.get("value") if isinstance(selected, Mapping) else None
        if value in (YES, NO):
            answers[key] = str(value)
        else:
            errors[key] = "Answer yes or no."
    return answers, errors


def record_review(
    session: Session,
    integration_id: str,
    reviewer: str,
    answers: Mapping[str, str],
    notes: str | None,
    now: datetime,
    actions: ReviewActions,
) -> Outcome:
    """Record a completed review; every nudge waiting for it is marked done and edited."""
    integ = queries.integration(session, integration_id)
    if integ is None:
        return Outcome(False, f"No integration called `{escape(integration_id)}` any more.")
    review = Review(
        integration_id=integ.id,
        reviewed_at=now,
        reviewed_by=reviewer,
        answers={k: answers[k] for k in CHECKLIST_KEYS if answers.get(k) in (YES, NO)},
        notes=(notes or "").strip()[:NOTES_LIMIT] or None,
    )
    session.add(review)
    session.flush()
    waiting = session.scalars(
        select(ReviewNudge).where(
            ReviewNudge.integration_id == integ.id, ReviewNudge.status.in_((OPEN, SNOOZED))
        )
    ).all()
    for nudge in waiting:
        claimed = leases.set_if(
            session,
            ReviewNudge,
            ReviewNudge.id == nudge.id,
            ReviewNudge.status.in_((OPEN, SNOOZED)),
            status=DONE,
            review_id=review.id,
        )
        if claimed:
            session.refresh(nudge)
            edit_nudge(session, nudge, now, actions)
    home.integrations_changed(session, [integ.id], now)
    next_due = review_due(integ, now)
    message = f"Review of `{escape(integ.id)}` recorded; the next one is due {next_due:%Y-%m-%d}."
    follow = follow_ups(review)
    if follow:
        message += " Follow-ups: " + "; ".join(label for _, label in follow)
    return Outcome(True, message)


def _waiting_nudge(session: Session, nudge_id: int) -> ReviewNudge | Outcome:
    """The nudge, or why nothing can be done to it any more."""
    nudge = session.get(ReviewNudge, nudge_id)
    if nudge is None:
        return Outcome(False, "That review nudge no longer exists.")
    if nudge.status == DONE:
        return Outcome(False, "This review is done already.")
    return nudge


def snooze(
    session: Session, nudge_id: int, user: str, now: datetime, actions: ReviewActions
) -> Outcome:
    """Put a nudge off a week, at most twice."""
    nudge = _waiting_nudge(session, nudge_id)
    if isinstance(nudge, Outcome):
        return nudge
    if nudge.snoozes >= MAX_SNOOZES:
        return Outcome(
            False,
            f"This review has been snoozed {MAX_SNOOZES} times and cannot be snoozed again: "
            "mark it reviewed, or reassign it.",
        )
    until = now.date() + SNOOZE
    claimed = leases.set_if(
        session,
        ReviewNudge,
        ReviewNudge.id == nudge.id,
        ReviewNudge.status.in_((OPEN, SNOOZED)),
        ReviewNudge.snoozes == nudge.snoozes,
        status=SNOOZED,
        snoozes=nudge.snoozes + 1,
        snoozed_until=until,
        snoozed_by=user,
    )
    if not claimed:
        return Outcome(False, "Someone changed this review just now; look at it again.")
    session.refresh(nudge)
    edit_nudge(session, nudge, now, actions)
    return Outcome(True, f"Snoozed until {until:%Y-%m-%d}.")


def reassign(
    session: Session,
    nudge_id: int,
    assignee: str,
    by: str,
    now: datetime,
    actions: ReviewActions,
    thread_ts: str | None = None,
) -> Outcome:
    """Ask `assignee` instead of the owner; recorded on the nudge and said in its thread."""
    nudge = _waiting_nudge(session, nudge_id)
    if isinstance(nudge, Outcome):
        return nudge
    if nudge.assigned_to == assignee:
        return Outcome(False, f"It is assigned to {mention(assignee)} already.")
    claimed = leases.set_if(
        session,
        ReviewNudge,
        ReviewNudge.id == nudge.id,
        ReviewNudge.status.in_((OPEN, SNOOZED)),
        assigned_to=assignee,
        assigned_by=by,
    )
    if not claimed:
        return Outcome(False, "This review is done already.")
    session.refresh(nudge)
    edit_nudge(session, nudge, now, actions)
    thread_note(
        session,
        nudge,
        f":bust_in_silhouette: {mention(by)} asked {mention(assignee)} to do this review.",
        now,
        thread_ts,
    )
    return Outcome(True, f"Reassigned to {mention(assignee)}.")


def may_review(
    session: Session, actor: Actor, integration_id: str, now: datetime, action: Action
) -> Outcome | None:
    """None when `actor` may do `action` to the review of the integration: its responders."""
    integ = queries.integration(session, integration_id)
    if integ is None:
        return Outcome(False, f"No integration called `{escape(integration_id)}` any more.")
    refusal = permit_on(session, actor, action, integ, now, f"review of {integ.id}")
    return Outcome(False, refusal.message) if refusal is not None else None


def _nudge_for(
    session: Session, actor: Actor, nudge_id: int, now: datetime, action: Action
) -> ReviewNudge | Outcome:
    """The waiting nudge, when `actor` may do `action` to it; otherwise why not."""
    nudge = _waiting_nudge(session, nudge_id)
    if isinstance(nudge, Outcome):
        return nudge
    return may_review(session, actor, nudge.integration_id, now, action) or nudge


def snooze_as(
    session: Session, actor: Actor, nudge_id: int, now: datetime, actions: ReviewActions
) -> Outcome:
    nudge = _nudge_for(session, actor, nudge_id, now, Action.SNOOZE)
    if isinstance(nudge, Outcome):
        return nudge
    return snooze(session, nudge_id, actor.user_id, now, actions)


def reassign_as(
    session: Session,
    actor: Actor,
    nudge_id: int,
    assignee: str,
    now: datetime,
    actions: ReviewActions,
    thread_ts: str | None = None,
) -> Outcome:
    nudge = _nudge_for(session, actor, nudge_id, now, Action.REASSIGN)
    if isinstance(nudge, Outcome):
        return nudge
    outcome = reassign(session, nudge_id, assignee, actor.user_id, now, actions, thread_ts)
    if outcome.changed:
        audit.record(
            session,
            actor,
            Action.REASSIGN,
            nudge.integration_id,
            f"review #{nudge_id}",
            now,
            detail=f"to {assignee}",
        )
    return outcome


def reviews_reply(session: Session, inv: Invocation, _args: str) -> Reply:
    today = inv.now.date()
    last = latest_reviews(session)
    follow = [
        (integ, last[integ.id])
        for integ in queries.integrations(session)
        if integ.id in last and follow_ups(last[integ.id])
    ]
    return render_list(due_items(session, today, LIST_AHEAD), follow, today)


def review_form(
    session: Session, inv: Invocation, name: str, callback_id: str
) -> dict[str, object] | Reply:
    """The review modal for `/integ review i`, or the reply that says why there is none."""
    found = resolve_integration(session, inv, name, "review")
    if isinstance(found, Reply):
        return found
    refused = may_review(session, inv.actor, found.id, inv.now, Action.REVIEW)
    if refused is not None:
        return Reply(text=refused.message, blocks=[bk.section(refused.message)])
    return review_modal(found, callback_id, waiting_nudge(session, found.id))


def review_reply(session: Session, inv: Invocation, name: str) -> Reply:
    """`/integ review i` where no form can open (the console): when it is due, and how."""
    found = resolve_integration(session, inv, name, "review")
    if isinstance(found, Reply):
        return found
    last = latest_review(session, found.id)
    due = review_due(found, last.reviewed_at if last is not None else None)
    lines = [
        f"*Review of `{escape(found.id)}`*: due {due:%Y-%m-%d}"
        + (
            f"; last reviewed {last.reviewed_at:%Y-%m-%d} by {mention(last.reviewed_by)}."
            if last is not None
            else "; never reviewed here."
        ),
        "In Slack, `/integ review` opens the form with this checklist:",
        *(f"• {label}" for _, label in CHECKLIST),
    ]
    text = "\n".join(lines)
    return Reply(text=text, blocks=bk.sections_for_lines(lines))
