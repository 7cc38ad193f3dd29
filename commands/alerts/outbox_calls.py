"""An alert's outbox rows as Slack calls: its message (posted once, then updated in place)
and the replies in its thread, rendered from the alert's state when they are sent."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from commands.alerts.messages import AlertActions, render_current
from commands.alerts.refires import fired_again_line
from commands.core.render import blocks as bk
from commands.core.render.links import MessageLinks
from commands.core.replies import Reply
from commands.outbox.calls import Call, Job, Renderer, Unsendable, outbox_metadata
from storage.models import Alert, OutboxKind


def alert_call(
    session: Session, job: Job, now: datetime, *, actions: AlertActions, links: MessageLinks
) -> Call:
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
            reply_broadcast=bool(job.payload.get("broadcast")),
        )
    reply = render_current(session, alert, now, actions)
    if job.kind == OutboxKind.REFIRE:
        return _repost(alert, job, reply, links)
    if alert.message_ts:
        # Covers a post queued twice as well: an alert's message is updated in place, never
        # posted again.
        return Call(channel=channel, text=reply.text, blocks=reply.blocks, ts=alert.message_ts)
    return Call(channel=job.channel, text=reply.text, blocks=reply.blocks, metadata=metadata)


def _repost(alert: Alert, job: Job, current: Reply, links: MessageLinks) -> Call:
    """The alert's whole message again, as a new message in the channel, saying it fired
    again and linking to the earlier one (commands/alerts/refires.py)."""
    previous_ts = str(job.payload.get("previous_ts") or "")
    previous_channel = str(job.payload.get("previous_channel") or job.channel)
    if alert.message_ts != previous_ts:
        # Already reposted (a claim whose post got through, found again): update that one.
        return Call(
            channel=alert.channel or job.channel,
            text=current.text,
            blocks=current.blocks,
            ts=alert.message_ts,
        )
    nth = int(job.payload.get("nth") or 1)
    line = fired_again_line(alert, nth, links.to(previous_channel, previous_ts))
    blocks = [current.blocks[0], bk.section(line), *current.blocks[1:]]
    return Call(
        channel=job.channel,
        text=bk.truncate_text(f"Fired again: {current.text}"),
        blocks=bk.cap_blocks(blocks, "…"),
        metadata=outbox_metadata(job.id),
    )


def alert_renderers(
    actions: AlertActions, links: MessageLinks | None = None
) -> dict[OutboxKind, Renderer]:
    """The renderers of an alert's kinds of row, with the wire ids of its buttons and the
    links to earlier messages."""
    render = partial(alert_call, actions=actions, links=links or MessageLinks())
    return {
        OutboxKind.POST: render,
        OutboxKind.UPDATE: render,
        OutboxKind.REPLY: render,
        OutboxKind.REFIRE: render,
    }
