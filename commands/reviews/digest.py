"""The weekly digest: one message to the digest channel with what needs attention (open
alerts, reviews due) and what happened in the week (changes logged, heartbeats missed).

Like a review nudge, a digest is claimed by inserting its row: the scheduled time is
unique, so any number of processes, or a restart, post each week's digest once. A digest
missed while the bot was down is posted when it comes back, late, and says so; one more
than a day late is skipped, because by then it is stale and a bot started for the first
time mid-week should wait for its first scheduled time rather than post at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.core.durations import format_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention, truncate
from commands.core.replies import Reply
from commands.outbox import queue as outbox
from commands.reviews.nudges import due_items
from storage.db import insert_for
from storage.models import Alert, AlertSource, AlertStatus, Change, Digest
from storage.queries import OPEN_STATUSES

WEEK = timedelta(days=7)
LATE_LIMIT = timedelta(days=1)
SHOWN = 10  # entries listed per part; the rest are counted
SUMMARY_SHOWN = 120  # characters of an alert or change summary shown
MONITORS: dict[str, str] = {
    AlertSource.HEARTBEAT: "heartbeat missed",
    AlertSource.PROBE: "probe failed",
}


@dataclass(frozen=True)
class DigestSchedule:
    weekday: int  # 0 is Monday, as datetime.weekday() counts
    hour: int
    timezone: str

    def latest(self, now: datetime) -> datetime:
        """The most recent scheduled time at or before `now`, in UTC."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        for back in (0, 7):
            # Built from the wall-clock time, so the hour stays put across DST changes.
            at = datetime(day.year, day.month, day.day, self.hour, tzinfo=zone) - timedelta(
                days=back
            )
            if at <= local:
                return at.astimezone(now.tzinfo)
        raise AssertionError("a week ago is always in the past")  # pragma: no cover


def post_digest(session: Session, now: datetime, channel: str, schedule: DigestSchedule) -> int:
    """Queue this week's digest if it is due and nobody has queued it; 1 if queued."""
    scheduled = schedule.latest(now)
    if now - scheduled > LATE_LIMIT:
        return 0
    claimed = session.execute(
        insert_for(session)(Digest)
        .values(scheduled_at=scheduled, posted_at=now, channel=channel)
        .on_conflict_do_nothing(index_elements=["scheduled_at"])
        .returning(Digest.id)
    ).scalar()
    if claimed is None:
        return 0  # posted already, by this process before a restart or by another one
    # "Due this week" is the week where the digest is read, not UTC's.
    today = now.astimezone(ZoneInfo(schedule.timezone)).date()
    reply = render_digest(session, scheduled - WEEK, scheduled, now, today)
    digest = session.get(Digest, claimed)
    assert digest is not None
    digest.outbox_id = outbox.queue_message(
        session, channel=channel, now=now, text=reply.text, blocks=reply.blocks
    )
    session.flush()
    return 1


def render_digest(
    session: Session, start: datetime, end: datetime, now: datetime, today: date
) -> Reply:
    """The digest of the week [start, end), with what is open as of `now` and what is due
    from `today` (the date where the digest is read)."""
    title = f"Weekly integration digest: {_day(start)} to {_day(end - timedelta(seconds=1))}"
    blocks: list[bk.Block] = [bk.header(title)]
    if now - end >= timedelta(hours=1):
        blocks.append(
            bk.context(f"Due {end:%Y-%m-%d %H:%M} UTC; posted late, the bot was not running then.")
        )
    parts = (
        ("Open alerts", "open alerts", _open_alerts(session, now)),
        ("Reviews due", "reviews due", _reviews_due(session, today)),
        ("Changes logged this week", "changes logged", _changes(session, start, end)),
        ("Heartbeats missed this week", "monitor alerts", _monitor_misses(session, start, end)),
    )
    for heading, _, (_, lines) in parts:
        blocks.append(bk.divider())
        blocks.extend(bk.sections_for_lines([f"*{heading}*", *lines]))
    counts = " · ".join(f"{what} {count}" for _, what, (count, _) in parts)
    return Reply(
        text=bk.truncate_text(f"{title}: {counts}"),
        blocks=bk.cap_blocks(blocks, "… more: the digest was cut; `/integ alerts` has the rest."),
        ephemeral=False,
    )


def _day(at: datetime | date) -> str:
    return f"{at:%a %Y-%m-%d}"


def _more(total: int) -> list[str]:
    return [f"…and {total - SHOWN} more."] if total > SHOWN else []


Part = tuple[int, list[str]]  # how many, and the lines that show them


def _open_alerts(session: Session, now: datetime) -> Part:
    alerts = session.scalars(
        select(Alert).where(Alert.status.in_(OPEN_STATUSES)).order_by(Alert.first_seen_at, Alert.id)
    ).all()
    if not alerts:
        return 0, ["None open. :white_check_mark:"]
    lines = [f"{len(alerts)} open, oldest first:"]
    for alert in alerts[:SHOWN]:
        state = "acknowledged" if alert.status == AlertStatus.ACKNOWLEDGED else "*firing*"
        lines.append(
            f"• #{alert.id} `{escape(alert.integration_name)}` "
            f"{escape(truncate(alert.summary, SUMMARY_SHOWN))}: {state}, "
            f"open {format_duration(now - alert.first_seen_at)}"
        )
    return len(alerts), lines + _more(len(alerts))


def _reviews_due(session: Session, today: date) -> Part:
    items = due_items(session, today, WEEK)
    if not items:
        return 0, ["None due this week."]
    lines = []
    for item in items[:SHOWN]:
        late = (today - item.due).days
        when = (
            f"*overdue* since {item.due:%Y-%m-%d} ({late}d)"
            if late > 0
            else f"due {item.due:%Y-%m-%d}"
        )
        lines.append(
            f"• `{escape(item.integ.id)}` {escape(item.integ.name)}: {when}, "
            f"{mention(item.assigned_to or item.integ.owner)}"
        )
    return len(items), lines + _more(len(items))


def _changes(session: Session, start: datetime, end: datetime) -> Part:
    changes = session.scalars(
        select(Change)
        .where(Change.logged_at >= start, Change.logged_at < end, Change.deleted_at.is_(None))
        .order_by(Change.happened_at.desc(), Change.id.desc())
    ).all()
    if not changes:
        return 0, ["None logged."]
    per = Counter(c.integration_id for c in changes)
    lines = [
        f"{len(changes)} logged: "
        + ", ".join(f"`{escape(i)}` ×{n}" for i, n in sorted(per.items(), key=lambda kv: -kv[1]))
    ]
    for change in changes[:SHOWN]:
        summary = " ".join(change.summary.split())  # one line each, however it was written
        lines.append(
            f"• {change.happened_at:%a %m-%d} `{escape(change.integration_id)}` "
            f"{escape(change.category)}: {escape(truncate(summary, SUMMARY_SHOWN))}"
        )
    return len(changes), lines + _more(len(changes))


def _monitor_misses(session: Session, start: datetime, end: datetime) -> Part:
    """Heartbeat and probe alerts that fired during the week. A missed run repeats its open
    alert, so an alert's count is the runs missed since it first fired."""
    alerts = session.scalars(
        select(Alert)
        .where(
            Alert.source.in_(MONITORS),
            Alert.last_seen_at >= start,
            Alert.first_seen_at < end,
        )
        .order_by(Alert.count.desc(), Alert.integration_name, Alert.id)
    ).all()
    if not alerts:
        return 0, ["None missed. :white_check_mark:"]
    lines = []
    for alert in alerts[:SHOWN]:
        state = "resolved" if alert.status == AlertStatus.RESOLVED else "still open"
        lines.append(
            f"• `{escape(alert.integration_name)}`: {MONITORS[alert.source]} ×{alert.count} "
            f"since {alert.first_seen_at:%a %m-%d %H:%M} UTC, {state}"
        )
    return len(alerts), lines + _more(len(alerts))
