"""An outage in Slack: one message per channel, edited as its alerts come and go.

An outage opened by the vendor's incident shows in that incident's messages (one per
channel already, commands/monitors/vendor_status.py), with the folded alerts added below;
one opened by failures has messages of its own (`SystemOutagePost`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from commands.core.durations import format_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, truncate
from commands.core.replies import Reply
from commands.monitors.vendor_messages import render_notice
from commands.outages.state import RESOLVED, channels_for, locked
from commands.outbox import queue as outbox
from storage.models import (
    Alert,
    AlertStatus,
    Integration,
    System,
    SystemOutage,
    SystemOutagePost,
    VendorNotice,
    VendorNoticePost,
)

LISTED = 20  # folded alerts listed; the rest are counted
# Block Kit action ids of the buttons on an outage's messages (commands/outages/actions.py
# acts on them; bot/wire_ids lists them with the others). Posted messages keep these
# strings, so they are literals.
ACK_ALL_ACTION: Final = "integ_outage_ack"
RESOLVE_ALL_ACTION: Final = "integ_outage_resolve"
SUMMARY_SHOWN = 120


def outage_blocks(session: Session, outage: SystemOutage) -> list[bk.Block]:
    """What the outage's messages say of the integrations' alerts under it. Read with a
    count, the first LISTED and a line per integration, not every alert: a storm folds
    thousands, and each one folded edits the messages again."""
    failing, recovered = _integrations_under(session, outage.id)
    name = _system_name(session, outage.system_id)
    if outage.ended_at is None:
        open_count = _open_count(session, outage.id)
        head = (
            f"*Failing meanwhile:* {open_count} alert(s), collected here rather than "
            f"posted or escalated one by one until {escape(name)} recovers."
        )
        lines = [_alert_line(a) for a in _first_open(session, outage.id)]
        if open_count > LISTED:
            lines.append(f"…and {open_count - LISTED} more: `/integ alerts` lists them.")
        if recovered:
            lines.append("Recovered since: " + ", ".join(f"`{escape(i)}`" for i in recovered))
        blocks = bk.sections_for_lines([head, *lines])
        if open_count:
            blocks.append(_buttons(outage.id))
        return blocks
    took = format_duration(outage.ended_at - outage.started_at)
    ended = f"{outage.ended_at:%H:%M} UTC"
    lines = [f":white_check_mark: *{escape(name)} recovered* at {ended}, after {took}."]
    if recovered:
        lines.append("*Recovered:* " + ", ".join(f"`{escape(i)}`" for i in recovered))
    if failing:
        lines.append(
            "*Still failing, now posted on their own:* "
            + ", ".join(f"`{escape(i)}`" for i in failing)
        )
    return bk.sections_for_lines(lines)


def _integrations_under(session: Session, outage_id: int) -> tuple[list[str], list[str]]:
    """The integrations with alerts under the outage: (those with one still open, those
    with all resolved), each sorted."""
    still_open = func.max(case((Alert.status != RESOLVED, 1), else_=0))
    rows = session.execute(
        select(Alert.integration_name, still_open)
        .where(Alert.outage_id == outage_id)
        .group_by(Alert.integration_name)
        .order_by(Alert.integration_name)
    ).all()
    return [n for n, o in rows if o], [n for n, o in rows if not o]


def _open_count(session: Session, outage_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.outage_id == outage_id, Alert.status != RESOLVED)
        )
        or 0
    )


def _first_open(session: Session, outage_id: int) -> Sequence[Alert]:
    return session.scalars(
        select(Alert)
        .where(Alert.outage_id == outage_id, Alert.status != RESOLVED)
        .order_by(Alert.integration_name, Alert.id)
        .limit(LISTED)
    ).all()


def refresh(session: Session, outage_id: int, now: datetime) -> int:
    """Post or edit the outage's messages to show it as it is now; how many writes."""
    outage = locked(session, outage_id)
    outage.stale = False
    system = session.get_one(System, outage.system_id)
    channels = channels_for(session, system)
    extra = outage_blocks(session, outage)
    if outage.notice_id is not None:
        return _refresh_notice(session, system, outage.notice_id, channels, extra, now)
    posts = {
        p.channel: p
        for p in session.scalars(
            select(SystemOutagePost).where(SystemOutagePost.outage_id == outage.id)
        )
    }
    queued = 0
    for channel in sorted(set(channels) | set(posts)):
        reply = render_outage(system, outage, channels.get(channel, []), extra)
        post = posts.get(channel)
        if post is None:
            if outage.ended_at is not None:
                continue
            outbox_id = outbox.queue_message(
                session, channel=channel, now=now, text=reply.text, blocks=reply.blocks
            )
            session.add(SystemOutagePost(outage_id=outage.id, channel=channel, outbox_id=outbox_id))
            queued += 1
        elif post.outbox_id is not None:
            edit = outbox.queue_edit(
                session, of=post.outbox_id, text=reply.text, blocks=reply.blocks, now=now
            )
            queued += edit is not None
    session.flush()
    return queued


def _refresh_notice(
    session: Session,
    system: System,
    notice_id: int,
    audience: dict[str, list[Integration]],
    extra: list[bk.Block],
    now: datetime,
) -> int:
    notice = session.get_one(VendorNotice, notice_id)
    queued = 0
    for post in session.scalars(
        select(VendorNoticePost).where(VendorNoticePost.notice_id == notice.id)
    ):
        if post.outbox_id is None:
            continue
        reply = render_notice(system, notice, audience.get(post.channel, []), extra=extra)
        edit = outbox.queue_edit(
            session, of=post.outbox_id, text=reply.text, blocks=reply.blocks, now=now
        )
        queued += edit is not None
    return queued


def render_outage(
    system: System,
    outage: SystemOutage,
    here: Sequence[Integration],
    extra: list[bk.Block],
) -> Reply:
    """An outage opened by failures, in one channel: what is down, why we think so, the
    integrations of this channel that use it, and its alerts (`extra`)."""
    name = escape(system.name)
    if outage.ended_at is None:
        title = f":rotating_light: *{name} looks down* since {outage.started_at:%H:%M} UTC"
    else:
        title = f":white_check_mark: *{name} was down* from {outage.started_at:%H:%M} UTC"
    lines = [title, f"_{escape(outage.reason)}_"]
    if here:
        lines.append("Uses it here: " + ", ".join(f"`{escape(i.id)}`" for i in here))
    blocks = [bk.section("\n".join(lines)), *extra]
    text = f"{system.name} looks down" if outage.ended_at is None else f"{system.name} recovered"
    return Reply(text=escape(text), blocks=bk.cap_blocks(blocks, "…"), ephemeral=False)


def _alert_line(alert: Alert) -> str:
    summary = truncate(escape(alert.summary), SUMMARY_SHOWN)
    times = "" if alert.count == 1 else f" ({alert.count}×)"
    seen = " :eyes: acknowledged" if alert.status == AlertStatus.ACKNOWLEDGED.value else ""
    return f"• `{escape(alert.integration_name)}`: {summary}{times}{seen}"


def _buttons(outage_id: int) -> bk.Block:
    value = str(outage_id)
    return {
        "type": "actions",
        "elements": [
            bk.button("Acknowledge all", ACK_ALL_ACTION, value),
            bk.button("Resolve all", RESOLVE_ALL_ACTION, value, "primary"),
        ],
    }


def _system_name(session: Session, system_id: str) -> str:
    system = session.get(System, system_id)
    return system.name if system is not None else system_id
