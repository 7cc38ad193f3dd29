"""Silences: one at a time per integration, started and ended by people, always said in
the integration's channel and logged as a change. Alerts are still recorded and counted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from commands.alerts.actions import Outcome
from commands.changes import entries as changes
from commands.core.durations import format_duration, parse_duration
from commands.core.render.mrkdwn import escape, mention
from commands.home import queue as home
from commands.outbox import queue as outbox
from commands.permissions import audit
from commands.permissions.check import permit
from commands.permissions.people import Actor
from commands.permissions.rules import MAX_SILENCE, Action, silence_action
from storage import queries
from storage.models import ChangeCategory, ChangeSource, Integration, Silence


def silence_as(
    session: Session,
    actor: Actor,
    integration_id: str,
    duration: str,
    reason: str,
    now: datetime,
) -> Outcome:
    """Silence, if `actor` may: responders up to 24 hours, the owner or an admin longer."""
    integ = _integration(session, integration_id)
    if isinstance(integ, Outcome):
        return integ
    length = _length(duration)
    if isinstance(length, Outcome):
        return length
    action = silence_action(length)
    subject = f"for {format_duration(length)}"
    refusal = permit(session, actor, action, integ, now, subject)
    if refusal is not None:
        return Outcome(False, refusal.message)
    outcome = silence(session, integ.id, duration, reason, actor.user_id, now)
    if outcome.changed:
        audit.record(session, actor, action, integ.id, subject, now, detail=reason or None)
    return outcome


def unsilence_as(session: Session, actor: Actor, integration_id: str, now: datetime) -> Outcome:
    integ = _integration(session, integration_id)
    if isinstance(integ, Outcome):
        return integ
    refusal = permit(session, actor, Action.UNSILENCE, integ, now)
    if refusal is not None:
        return Outcome(False, refusal.message)
    outcome = unsilence(session, integ, actor.user_id, now)
    if outcome.changed:
        audit.record(session, actor, Action.UNSILENCE, integ.id, None, now)
    return outcome


def silence(
    session: Session,
    integration_id: str,
    duration: str,
    reason: str,
    user_id: str,
    now: datetime,
) -> Outcome:
    integ = _integration(session, integration_id)
    if isinstance(integ, Outcome):
        return integ
    length = _length(duration)
    if isinstance(length, Outcome):
        return length
    reason = reason.strip()
    # One silence at a time: a new one replaces the one running, so what the channel was
    # told last is what holds.
    replaced = _end_active(session, integ.id, now)
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
    _log(session, integ, f"{summary}: {reason}" if reason else summary, user_id, now)
    # The channel sees who silenced it and why: a silence hides failures, so it is never quiet.
    note = (
        f":no_bell: {mention(user_id)} silenced alerts for *{escape(integ.name)}* for "
        f"{format_duration(length)}, until {until}" + (f": {escape(reason)}" if reason else ".")
    )
    if replaced:
        note += " This replaces the silence that was running."
    outbox.queue_message(session, channel=integ.channel, now=now, text=note)
    home.integrations_changed(session, [integ.id], now)
    return Outcome(
        True,
        f":no_bell: Alerts for *{escape(integ.name)}* are silenced for {format_duration(length)}"
        f", until {until}. They are still recorded and counted."
        + (" This replaces the silence that was running." if replaced else ""),
    )


def unsilence(session: Session, integ: Integration, user_id: str, now: datetime) -> Outcome:
    """End the running silence now; alerts it held back are posted on the next tick."""
    if not _end_active(session, integ.id, now):
        return Outcome(False, f"*{escape(integ.name)}* is not silenced.")
    _log(session, integ, "Silence ended early", user_id, now)
    outbox.queue_message(
        session,
        channel=integ.channel,
        now=now,
        text=f":bell: {mention(user_id)} ended the silence of *{escape(integ.name)}*; "
        "alerts it held back are posted now.",
    )
    home.integrations_changed(session, [integ.id], now)
    return Outcome(True, f":bell: *{escape(integ.name)}* is no longer silenced.")


def _integration(session: Session, integration_id: str) -> Integration | Outcome:
    integ = queries.integration(session, integration_id)
    if integ is None:
        return Outcome(False, f"No integration called `{escape(integration_id)}`.")
    return integ


def _length(duration: str) -> timedelta | Outcome:
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        return Outcome(False, escape(str(exc)))
    if length > MAX_SILENCE:
        return Outcome(False, "A silence lasts at most 30 days; fix or remove the alert instead.")
    return length


def _end_active(session: Session, integration_id: str, now: datetime) -> bool:
    ended = session.execute(
        update(Silence)
        .where(
            Silence.integration_id == integration_id,
            Silence.starts_at <= now,
            Silence.ends_at > now,
            # A maintenance window is ended by `/integ maintenance end`, not by a silence.
            Silence.kind == "silence",
        )
        .values(ends_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(ended, "rowcount", 0))


def _log(session: Session, integ: Integration, summary: str, user_id: str, now: datetime) -> None:
    changes.record(
        session,
        integration_id=integ.id,
        category=ChangeCategory.SILENCE,
        summary=summary,
        author=user_id,
        source=ChangeSource.COMMAND,
        happened_at=now,
        logged_at=now,
    )
