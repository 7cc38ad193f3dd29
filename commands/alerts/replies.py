"""`/integ alerts`, `ack`, `resolve`, `silence` and `unsilence`: the words typed, turned
into the actions of `actions` and `silences` as the person who typed them."""

from __future__ import annotations

from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.alerts.actions import (
    ACKNOWLEDGED,
    FIRING,
    ROOT_CAUSES,
    Outcome,
    acknowledge_as,
    parse_alert_id,
    resolve_as,
)
from commands.alerts.silences import silence_as, unsilence_as
from commands.catalog.lookups import LIST_LIMIT, resolve_integration, usage
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape
from commands.core.replies import Invocation, Reply
from commands.permissions.check import Visibility, private_refusal
from storage.models import Alert, Integration


def alerts_reply(session: Session, inv: Invocation, name: str) -> Reply:
    """Open alerts, newest first: for one integration, or all (unknown ones included)."""
    query = select(Alert, Integration).outerjoin(
        Integration, Integration.id == Alert.integration_id
    )
    query = query.where(Alert.status.in_((FIRING, ACKNOWLEDGED)))
    title = "Open alerts"
    if name:
        resolved = resolve_integration(session, inv, name, "alerts")
        if isinstance(resolved, Reply):
            return resolved
        refusal = private_refusal(session, inv.actor, resolved, inv.now, f"alerts of {resolved.id}")
        if refusal is not None:
            return _outcome_reply(Outcome(False, refusal.message))
        query = query.where(Alert.integration_name == resolved.id)
        title = f"Open alerts of {escape(resolved.name)}"
    visible = Visibility(session, inv.actor, session.scalars(select(Integration)).all())
    # Those of private channels' integrations are left out where they may not be seen.
    rows = list(
        islice(
            (
                alert
                for alert, integ in session.execute(
                    query.order_by(Alert.last_seen_at.desc(), Alert.id.desc())
                )
                if visible(integ)
            ),
            LIST_LIMIT + 1,
        )
    )
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
    return _outcome_reply(acknowledge_as(session, inv.actor, alert_id, inv.now))


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
    return _outcome_reply(resolve_as(session, inv.actor, alert_id, words[1], note, inv.now))


def silence_reply(session: Session, inv: Invocation, args: str) -> Reply:
    words = args.split(None, 2)
    if len(words) < 2:
        return usage("silence")
    resolved = resolve_integration(session, inv, words[0], "silence")
    if isinstance(resolved, Reply):
        return resolved
    reason = words[2] if len(words) > 2 else ""
    return _outcome_reply(silence_as(session, inv.actor, resolved.id, words[1], reason, inv.now))


def unsilence_reply(session: Session, inv: Invocation, name: str) -> Reply:
    resolved = resolve_integration(session, inv, name, "unsilence")
    if isinstance(resolved, Reply):
        return resolved
    return _outcome_reply(unsilence_as(session, inv.actor, resolved.id, inv.now))


def _outcome_reply(outcome: Outcome) -> Reply:
    return Reply(text=outcome.message, blocks=[bk.section(outcome.message)])
