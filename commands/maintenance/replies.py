"""`/integ maintenance`: list the windows, start one now, or end one early.

    /integ maintenance                              open and coming windows (next 7 days)
    /integ maintenance <integration|system> 2h [reason]
    /integ maintenance end <integration|system>

Starting or ending a window needs what silencing its integrations needs (responders up to
24 hours, the owner or an admin longer), for every integration it covers."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.lookups import usage
from commands.catalog.views import integration_spec, system_spec
from commands.core.durations import format_duration, parse_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape
from commands.core.replies import Invocation, Reply
from commands.maintenance.occurrences import HORIZON, Occurrence, occurrences
from commands.maintenance.windows import (
    INTEGRATION,
    SYSTEM,
    active_windows,
    covered,
    describe,
    end_windows,
    start_window,
    tell_ended,
)
from commands.permissions import audit
from commands.permissions.check import permit
from commands.permissions.rules import Action, silence_action
from storage import queries
from storage.models import Integration, System

VERB = "maintenance"
LISTED = 20


def maintenance_reply(session: Session, inv: Invocation, args: str) -> Reply:
    words = args.split(None, 2)
    if not words:
        return _listing(session, inv.now)
    if words[0].lower() == "end":
        return _end(session, inv, words[1] if len(words) > 1 else "")
    if len(words) < 2:
        return usage(VERB)
    return _start(session, inv, words[0], words[1], words[2] if len(words) > 2 else "")


def _scope(session: Session, name: str) -> tuple[str, str] | Reply:
    wanted = name.lower()
    if queries.integration(session, wanted) is not None:
        return INTEGRATION, wanted
    if queries.system(session, wanted) is not None:
        return SYSTEM, wanted
    return _say(f"No integration or system called `{escape(name)}`. `/integ list` shows them.")


def _refused(
    session: Session, inv: Invocation, scope: str, scope_id: str, action: Action, what: str
) -> Reply | None:
    for integ in covered(session, scope, scope_id):
        refusal = permit(session, inv.actor, action, integ, inv.now, what)
        if refusal is not None:
            return _say(refusal.message)
    return None


def _start(session: Session, inv: Invocation, name: str, duration: str, reason: str) -> Reply:
    found = _scope(session, name)
    if isinstance(found, Reply):
        return found
    scope, scope_id = found
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        return _say(escape(str(exc)))
    action = silence_action(length)
    subject = f"maintenance for {format_duration(length)}"
    refused = _refused(session, inv, scope, scope_id, action, subject)
    if refused is not None:
        return refused
    occurrence = Occurrence(inv.now, inv.now + length, reason.strip() or None)
    key = f"slack:{scope}:{scope_id}:{inv.now.isoformat()}"
    start_window(session, key, scope, scope_id, occurrence, "slack", inv.user_id, inv.now)
    for integ in covered(session, scope, scope_id):
        audit.record(session, inv.actor, action, integ.id, subject, inv.now, detail=reason or None)
    return _say(
        f":wrench: Maintenance of `{escape(scope_id)}` until "
        f"{occurrence.ends_at:%Y-%m-%d %H:%M} UTC: its alerts are recorded but neither posted "
        "nor escalated until then. `/integ maintenance end` ends it early."
    )


def _end(session: Session, inv: Invocation, name: str) -> Reply:
    if not name:
        return usage(VERB)
    found = _scope(session, name)
    if isinstance(found, Reply):
        return found
    scope, scope_id = found
    refused = _refused(session, inv, scope, scope_id, Action.UNSILENCE, "end its maintenance")
    if refused is not None:
        return refused
    keys = [
        w.key
        for w in active_windows(session, inv.now)
        if (w.scope, w.scope_id) == (scope, scope_id)
    ]
    if not keys:
        return _say(f"`{escape(scope_id)}` has no maintenance window open.")
    end_windows(session, keys, inv.now)
    tell_ended(session, inv.now)
    return _say(
        f":white_check_mark: Maintenance of `{escape(scope_id)}` ended; what still "
        "fails is posted on the next tick."
    )


def _listing(session: Session, now: datetime) -> Reply:
    lines = [
        f"• {_when(w.starts_at, w.ends_at)} {describe(session, w)}{_reason(w.reason)} (open)"
        for w in active_windows(session, now)
    ]
    lines += [
        f"• {_when(o.starts_at, o.ends_at)} {what}{_reason(o.reason)}"
        for o, what in _coming(session, now)
    ]
    if not lines:
        text = "No maintenance window is open or coming in the next 7 days."
        return _say(text)
    head = f"*Maintenance windows open and coming in the next {HORIZON.days} days:*"
    blocks = bk.sections_for_lines([head, *lines[:LISTED]])
    if len(lines) > LISTED:
        blocks.append(bk.context(f"{len(lines) - LISTED} more not shown."))
    return Reply(text=head, blocks=blocks)


def _coming(session: Session, now: datetime) -> list[tuple[Occurrence, str]]:
    """The catalog's windows that begin in the next HORIZON, soonest first."""
    coming: list[tuple[Occurrence, str]] = []
    later = now + timedelta(seconds=1)
    for integ in session.scalars(select(Integration).where(Integration.removed_at.is_(None))):
        for window in integration_spec(integ).maintenance:
            for o in occurrences(window, integ.timezone, later, now + HORIZON):
                if o.starts_at > now:
                    coming.append((o, f"`{escape(integ.id)}`"))
    for system in session.scalars(select(System).where(System.removed_at.is_(None))):
        for window in system_spec(system).maintenance:
            for o in occurrences(window, "UTC", later, now + HORIZON):
                if o.starts_at > now:
                    coming.append((o, f"*{escape(system.name)}* and the integrations using it"))
    return sorted(coming, key=lambda pair: pair[0].starts_at)


def _when(start: datetime, end: datetime) -> str:
    return (
        f"{start:%a %Y-%m-%d %H:%M} to {end:%H:%M} UTC"
        if start.date() == end.date()
        else (f"{start:%a %Y-%m-%d %H:%M} to {end:%a %Y-%m-%d %H:%M} UTC")
    )


def _reason(reason: str | None) -> str:
    return f": {escape(reason)}" if reason else ""


def _say(text: str) -> Reply:
    return Reply(text=text, blocks=[bk.section(text)])
