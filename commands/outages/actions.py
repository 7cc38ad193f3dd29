"""Acknowledge or resolve every alert of a system's outage at once, from its message.

Each alert is acted on as its own button would, with the same permission checks and audit
entries: whoever may not act on some of them acts on the rest and is told which were left."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from commands.alerts.actions import Outcome, acknowledge_as, resolve_as
from commands.outages.messages import refresh
from commands.outages.state import RESOLVED, VENDOR, folded_alerts
from commands.permissions.people import Actor
from storage.models import AlertStatus, System, SystemOutage


def acknowledge_all(session: Session, actor: Actor, outage_id: int, now: datetime) -> Outcome:
    return _each(session, actor, outage_id, now, resolve=False)


def resolve_all(session: Session, actor: Actor, outage_id: int, now: datetime) -> Outcome:
    return _each(session, actor, outage_id, now, resolve=True)


def _each(
    session: Session, actor: Actor, outage_id: int, now: datetime, *, resolve: bool
) -> Outcome:
    outage = session.get(SystemOutage, outage_id)
    if outage is None:
        return Outcome(False, f"There is no outage #{outage_id}.")
    system = session.get(System, outage.system_id)
    name = system.name if system is not None else outage.system_id
    wanted = AlertStatus.FIRING.value if not resolve else None
    todo = [
        a
        for a in folded_alerts(session, outage.id)
        if a.status != RESOLVED and (wanted is None or a.status == wanted)
    ]
    done, refused = 0, []
    cause = "vendor" if outage.cause == VENDOR else "infrastructure"
    for alert in todo:
        if resolve:
            outcome = resolve_as(
                session, actor, alert.id, cause, f"Resolved with the {name} outage", now
            )
        else:
            outcome = acknowledge_as(session, actor, alert.id, now)
        if outcome.changed:
            done += 1
        else:
            refused.append(f"#{alert.id} ({alert.integration_name})")
    if done:
        refresh(session, outage.id, now)
    verb = "Resolved" if resolve else "Acknowledged"
    message = f"{verb} {done} alert(s) of the {name} outage."
    if refused:
        message += " Not " + verb.lower() + ": " + ", ".join(refused[:10])
        message += "; you may not act on those, or someone already did."
    if not todo:
        message = f"No alert of the {name} outage is left to {verb.lower()[:-1]}."
    return Outcome(done > 0 and not refused, message)
