"""What people do to alerts: acknowledge, and resolve with a root cause; as themselves
(`*_as`, checked against the rules and audited) or as the bot's own jobs.

Each change locks the alert row, checks the state it is leaving, and writes one immutable
transition; so a double click, a Slack retry or a second process finds the work done and
changes nothing. A resolve wins over an acknowledge that arrives after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.alerts.transitions import queue_change, record_transition
from commands.core.render.mrkdwn import escape, mention
from commands.permissions import audit
from commands.permissions.check import permit, permit_on
from commands.permissions.people import Actor
from commands.permissions.rules import Action
from storage import leases
from storage.models import Alert, AlertStatus, Integration

ROOT_CAUSES = ("vendor", "data", "credentials", "schedule", "code", "infrastructure", "unknown")
FIRING = AlertStatus.FIRING.value
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED.value
RESOLVED = AlertStatus.RESOLVED.value


@dataclass(frozen=True)
class Outcome:
    changed: bool
    message: str  # mrkdwn for the person who acted, shown only to them


def _current(session: Session, alert_id: int) -> Alert | None:
    return session.scalars(
        select(Alert)
        .where(Alert.id == alert_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _move(
    session: Session,
    alert: Alert,
    to_status: str,
    actor: str,
    now: datetime,
    reason: str,
    **values: object,
) -> bool:
    """Compare-and-set the alert's status from what was read; True if this call moved it.

    The row lock above serialises PostgreSQL; SQLite reads outside the write lock, so two
    threads can both read "firing". The conditional UPDATE lets exactly one of them win,
    and only the winner records a transition.
    """
    from_status = alert.status
    moved = leases.set_if(
        session,
        Alert,
        Alert.id == alert.id,
        Alert.status == from_status,
        status=to_status,
        **values,
    )
    if not moved:
        return False
    record_transition(session, alert, from_status, to_status, now, actor, reason)
    session.refresh(alert)
    return True


def acknowledge(session: Session, alert_id: int, user_id: str, now: datetime) -> Outcome:
    alert = _current(session, alert_id)
    if alert is None:
        return Outcome(False, f"There is no alert #{alert_id}.")
    moved = alert.status == FIRING and _move(
        session,
        alert,
        ACKNOWLEDGED,
        user_id,
        now,
        "acknowledged",
        acknowledged_at=now,
        acknowledged_by=user_id,
    )
    if not moved:
        alert = _current(session, alert_id) or alert  # someone may have moved it first
        if alert.status == RESOLVED:
            who = f" by {mention(alert.resolved_by)}" if alert.resolved_by else ""
            return Outcome(False, f"Alert #{alert_id} is already resolved{who}.")
        who = mention(alert.acknowledged_by or "someone")
        return Outcome(False, f"Alert #{alert_id} was already acknowledged by {who}.")
    queue_change(session, alert, now, f":eyes: Acknowledged by {mention(user_id)}.")
    return Outcome(True, f"You acknowledged alert #{alert_id}.")


def resolve(
    session: Session,
    alert_id: int,
    user_id: str,
    cause: str,
    note: str,
    now: datetime,
    *,
    display_name: str | None = None,
) -> Outcome:
    cause = cause.strip().lower()
    if cause not in ROOT_CAUSES:
        return Outcome(False, f"The root cause must be one of: {', '.join(ROOT_CAUSES)}.")
    alert = _current(session, alert_id)
    for _ in range(3):  # an acknowledge may slip in between the read and the update
        if alert is None:
            return Outcome(False, f"There is no alert #{alert_id}.")
        if alert.status == RESOLVED:
            return Outcome(False, f"Alert #{alert_id} is already resolved.")
        if _move(
            session,
            alert,
            RESOLVED,
            user_id,
            now,
            f"{cause}: {note.strip()}".rstrip(": "),
            resolved_at=now,
            resolved_by=user_id,
            root_cause=cause,
            root_cause_note=note.strip() or None,
        ):
            break
        alert = _current(session, alert_id)
    else:
        return Outcome(False, f"Alert #{alert_id} is changing right now; try again.")
    # No mention on resolve: nobody needs a notification that a problem went away.
    who = escape(display_name or user_id)
    text = f":white_check_mark: Resolved by {who}. Root cause: *{cause}*"
    if note.strip():
        text += f": {escape(note.strip())}"
    queue_change(session, alert, now, text)
    return Outcome(True, f"You resolved alert #{alert_id} ({cause}).")


def acknowledge_as(session: Session, actor: Actor, alert_id: int, now: datetime) -> Outcome:
    """Acknowledge, if `actor` may: any full member who can see the alert."""
    refusal = _refused(session, actor, Action.ACK, alert_id, now)
    if refusal is not None:
        return refusal
    return acknowledge(session, alert_id, actor.user_id, now)


def may_resolve(session: Session, actor: Actor, alert_id: int, now: datetime) -> Outcome | None:
    """None when `actor` may resolve the alert (asked before a resolve form opens, too)."""
    return _refused(session, actor, Action.RESOLVE, alert_id, now)


def resolve_as(
    session: Session,
    actor: Actor,
    alert_id: int,
    cause: str,
    note: str,
    now: datetime,
    *,
    display_name: str | None = None,
) -> Outcome:
    """Resolve, if `actor` is a responder of the alert's integration; audited either way."""
    refusal = may_resolve(session, actor, alert_id, now)
    if refusal is not None:
        return refusal
    outcome = resolve(session, alert_id, actor.user_id, cause, note, now, display_name=display_name)
    if outcome.changed:
        alert = session.get(Alert, alert_id)
        audit.record(
            session,
            actor,
            Action.RESOLVE,
            alert.integration_id if alert is not None else None,
            f"alert #{alert_id}",
            now,
            detail=f"{cause.strip().lower()}: {note.strip()}".rstrip(": "),
        )
    return outcome


def _refused(
    session: Session, actor: Actor, action: Action, alert_id: int, now: datetime
) -> Outcome | None:
    alert = session.get(Alert, alert_id)
    if alert is None:
        # Only a member may learn that a number is free: a guest is refused as for any alert.
        refusal = permit(session, actor, Action.COMMAND, None, now, f"alert #{alert_id}")
        return Outcome(False, refusal.message if refusal else f"There is no alert #{alert_id}.")
    integ = session.get(Integration, alert.integration_id) if alert.integration_id else None
    refusal = permit_on(session, actor, action, integ, now, f"alert #{alert_id}")
    return Outcome(False, refusal.message) if refusal is not None else None


def parse_alert_id(text: str) -> int | None:
    digits = text.strip().lstrip("#")
    return int(digits) if digits.isdigit() and len(digits) < 12 else None
