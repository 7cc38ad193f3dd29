"""An alert's outbox rows as Slack calls: its message (posted once, then updated in place)
and the replies in its thread, rendered from the alert's state when they are sent."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from commands.alerts.messages import AlertActions, render_current
from commands.outbox.calls import Call, Job, Renderer, Unsendable, outbox_metadata
from storage.models import Alert, OutboxKind


def alert_call(session: Session, job: Job, now: datetime, *, actions: AlertActions) -> Call:
    if job.alert_id is None:
        raise Unsendable(f"a {job.kind} needs an alert")
    alert = session.get(Alert, job.alert_id)
    if alert is None:
        raise Unsendable(f"alert #{job.alert_id} does not exist")
    channel = alert.channel or job.channel
    metadata = outbox_metadata(job.id)
    if job.kind == OutboxKind.REPLY:
        return Call(
            channel=channel,
            text=str(job.payload.get("text") or ""),
            blocks=job.payload.get("blocks") or None,
            thread_ts=alert.message_ts,
            metadata=metadata,
        )
    reply = render_current(session, alert, now, actions)
    if alert.message_ts:
        # Covers a post queued twice as well: an alert's message is updated in place, never
        # posted again.
        return Call(channel=channel, text=reply.text, blocks=reply.blocks, ts=alert.message_ts)
    return Call(channel=job.channel, text=reply.text, blocks=reply.blocks, metadata=metadata)


def alert_renderers(actions: AlertActions) -> dict[OutboxKind, Renderer]:
    """The renderers of an alert's kinds of row, with the wire ids of its buttons."""
    render = partial(alert_call, actions=actions)
    return {OutboxKind.POST: render, OutboxKind.UPDATE: render, OutboxKind.REPLY: render}
