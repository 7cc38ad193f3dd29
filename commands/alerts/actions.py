"""What people do to alerts: acknowledge, resolve with a root cause, silence, list.

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
from commands.catalog.lookups import LIST_LIMIT, resolve_integration, usage
from commands.changes import entries as changes
from commands.core.durations import format_duration, parse_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention
from commands.core.replies import Invocation, Reply
from commands.outbox import queue as outbox
from storage import leases, queries
from storage.models import Alert, AlertStatus, ChangeCategory, ChangeSource, Silence

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


def silence(
    session: Session,
    integration_id: str,
    duration: str,
    reason: str,
    user_id: str,
    now: datetime,
) -> Outcome:
    integ = queries.integration(session, integration_id)
    if integ is None:
        return Outcome(False, f"No integration called `{escape(integration_id)}`.")
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        return Outcome(False, escape(str(exc)))
    if length.days > 30:
        return Outcome(False, "A silence lasts at most 30 days; fix or remove the alert instead.")
    reason = reason.strip()
    session.add(
        Silence(
            integration_id=integ.id,
            starts_at=now,
            ends_at=now + length,
            reason=reason or None,
            created_by=user_id,
        )
    )
    until = (now + length).strftime("%Y-%m-%d %H:%M UTC")
    # Logged where people look for what changed when something went wrong, in this same
    # transaction: no silence without its entry, nor an entry for a silence refused.
    # The Silence button is logged as "command" too: like `/integ silence`, it is a person
    # acting through the bot's own surface. "shortcut" and "reaction" name the Slack
    # message an entry was made from, "bot" an entry no person made; a silence is neither.
    summary = f"Silenced for {format_duration(length)} until {until}"
    changes.record(
        session,
        integration_id=integ.id,
        category=ChangeCategory.SILENCE,
        summary=f"{summary}: {reason}" if reason else summary,
        author=user_id,
        source=ChangeSource.COMMAND,
        happened_at=now,
        logged_at=now,
    )
    # The channel sees who silenced it and why: a silence hides failures, so it is never quiet.
    note = (
        f":no_bell: {mention(user_id)} silenced alerts for *{escape(integ.name)}* for "
        f"{format_duration(length)}, until {until}" + (f": {escape(reason)}" if reason else ".")
    )
    outbox.queue_message(session, channel=integ.channel, now=now, text=note)
    return Outcome(
        True,
        f":no_bell: Alerts for *{escape(integ.name)}* are silenced for {format_duration(length)}"
        f", until {until}. They are still recorded and counted.",
    )


def parse_alert_id(text: str) -> int | None:
    digits = text.strip().lstrip("#")
    return int(digits) if digits.isdigit() and len(digits) < 12 else None


def alerts_reply(session: Session, inv: Invocation, name: str) -> Reply:
    """Open alerts, newest first: for one integration, or all (unknown ones included)."""
    query = select(Alert).where(Alert.status.in_((FIRING, ACKNOWLEDGED)))
    title = "Open alerts"
    if name:
        resolved = resolve_integration(session, inv, name, "alerts")
        if isinstance(resolved, Reply):
            return resolved
        query = query.where(Alert.integration_name == resolved.id)
        title = f"Open alerts of {escape(resolved.name)}"
    rows = session.scalars(
        query.order_by(Alert.last_seen_at.desc(), Alert.id.desc()).limit(LIST_LIMIT + 1)
    ).all()
    if not rows:
        text = f"{title}: none. :large_green_circle:"
        return Reply(text=text, blocks=[bk.section(text)])
    lines = [
        f"{':eyes:' if a.status == ACKNOWLEDGED else ':rotating_light:'} *#{a.id}* "
        f"`{escape(a.integration_name)}` {escape(a.summary)} "
        f"({a.count}×, since {a.first_seen_at.strftime('%Y-%m-%d %H:%M')})"
        for a in rows[:LIST_LIMIT]
    ]
    blocks = [bk.section(f"*{title}*"), *bk.sections_for_lines(lines)]
    if len(rows) > LIST_LIMIT:
        blocks.append(bk.context(f"Only the newest {LIST_LIMIT} are shown."))
    blocks.append(bk.context("`/integ ack ID`, `/integ resolve ID cause note`"))
    return Reply(text=f"{title}: {len(rows)}", blocks=bk.cap_blocks(blocks, "More not shown."))


def ack_reply(session: Session, inv: Invocation, args: str) -> Reply:
    alert_id = parse_alert_id(args.split()[0]) if args else None
    if alert_id is None:
        return usage("ack")
    return _outcome_reply(acknowledge(session, alert_id, inv.user_id, inv.now))


def resolve_reply(session: Session, inv: Invocation, args: str) -> Reply:
    words = args.split(None, 2)
    alert_id = parse_alert_id(words[0]) if words else None
    if alert_id is None or len(words) < 2:
        return _outcome_reply(
            Outcome(
                False,
                "Usage: `/integ resolve ID cause [note]`, where cause is one of "
                + ", ".join(ROOT_CAUSES)
                + ".",
            )
        )
    note = words[2] if len(words) > 2 else ""
    return _outcome_reply(resolve(session, alert_id, inv.user_id, words[1], note, inv.now))


def silence_reply(session: Session, inv: Invocation, args: str) -> Reply:
    words = args.split(None, 2)
    if len(words) < 2:
        return usage("silence")
    resolved = resolve_integration(session, inv, words[0], "silence")
    if isinstance(resolved, Reply):
        return resolved
    reason = words[2] if len(words) > 2 else ""
    return _outcome_reply(silence(session, resolved.id, words[1], reason, inv.user_id, inv.now))


def _outcome_reply(outcome: Outcome) -> Reply:
    return Reply(text=outcome.message, blocks=[bk.section(outcome.message)])
