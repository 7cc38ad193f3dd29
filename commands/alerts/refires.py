"""An alert that fires again after it was resolved is shown to the channel again.

Editing the earlier message is not enough: it may be days up the channel, and an edit
notifies nobody. So, when the alert's message was posted:

- **A reply in its thread, also sent to the channel**, when that message is recent: shown
  less than THREAD_WINDOW ago, with fewer than THREAD_MAX_BETWEEN of the bot's own messages
  to the channel since. The channel sees the failure right below a message it can still
  see, and the message itself is updated to show the alert firing again.
- **A new message** otherwise: the alert's whole message (its new summary and details, with
  its buttons), saying that it fired again, the how-manyth time, and linking to the earlier
  one. From then on the alert is that message: updates, acknowledging and resolving act on
  it, and its thread is the new message's.

The bot cannot count other people's messages without reading the channel's history, so
"recent" counts its own messages only (docs/alerts.md says so).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, truncate
from commands.outbox import queue as outbox
from storage.models import Alert, AlertStatus, AlertTransition, OutboxMessage

THREAD_WINDOW = timedelta(hours=1)
THREAD_MAX_BETWEEN = 5
# Kinds of row that put a new message in the channel (not in a thread).
_TOP_LEVEL = (
    outbox.POST.value,
    outbox.REFIRE.value,
    outbox.MESSAGE.value,
    outbox.UPLOAD.value,
)
REPLY_DETAILS_LIMIT = 2500


def show_refire(session: Session, alert: Alert, now: datetime) -> None:
    """Queue what shows the channel that `alert`, whose message was posted and which was
    just reopened, fired again. Call after its new summary and details are set."""
    assert alert.channel is not None and alert.message_ts is not None
    nth = recurrences(session, alert.id)
    if _recent(session, alert, now):
        outbox.queue_update(session, alert_id=alert.id, channel=alert.channel, now=now)
        text, blocks = broadcast_reply(alert, nth)
        outbox.enqueue(
            session,
            kind=outbox.REPLY,
            channel=alert.channel,
            now=now,
            alert_id=alert.id,
            payload={"text": text, "blocks": blocks, "broadcast": True},
        )
        return
    outbox.enqueue(
        session,
        kind=outbox.REFIRE,
        channel=alert.channel,
        now=now,
        alert_id=alert.id,
        payload={"previous_ts": alert.message_ts, "previous_channel": alert.channel, "nth": nth},
    )


def recurrences(session: Session, alert_id: int) -> int:
    """How many times the alert fired again after being resolved, this time included."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AlertTransition)
            .where(
                AlertTransition.alert_id == alert_id,
                AlertTransition.from_status == AlertStatus.RESOLVED,
                AlertTransition.to_status == AlertStatus.FIRING,
            )
        )
        or 0
    )


def _recent(session: Session, alert: Alert, now: datetime) -> bool:
    shown = alert.shown_at
    if shown is None or now - shown >= THREAD_WINDOW:
        return False
    since: int = (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.channel == alert.channel,
                OutboxMessage.kind.in_(_TOP_LEVEL),
                OutboxMessage.created_at > shown,
                OutboxMessage.alert_id.is_distinct_from(alert.id),
            )
        )
        or 0
    )
    return since < THREAD_MAX_BETWEEN


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def fired_again_line(alert: Alert, nth: int, earlier: str | None) -> str:
    """The line saying it fired again: the how-manyth time, and where the earlier message is
    (`earlier` a link to it, or None)."""
    times = "once before" if nth == 1 else f"{nth} times before"
    line = (
        f":leftwards_arrow_with_hook: *Fired again* after it was resolved "
        f"(resolved {times}; first seen {alert.first_seen_at:%Y-%m-%d %H:%M UTC})."
    )
    if earlier:
        line += f" <{earlier}|Earlier message>"
    return line


def broadcast_reply(alert: Alert, nth: int) -> tuple[str, list[dict[str, Any]]]:
    """The thread reply, also sent to the channel: what fired, in its own words."""
    summary = escape(alert.summary)
    blocks = [bk.section(f"{fired_again_line(alert, nth, None)}\n*{summary}*")]
    if alert.details:
        blocks.append(bk.section(truncate(escape(alert.details), REPLY_DETAILS_LIMIT)))
    text = f"Fired again: {escape(alert.integration_name)}: {summary}"
    return bk.truncate_text(text), blocks
