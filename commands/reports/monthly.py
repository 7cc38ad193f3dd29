"""The monthly reliability report, posted to the digest channel on the month's first
working day (Monday to Friday) at the digest's hour, in the digest's time zone.

It covers the last whole calendar month in UTC, as `/integ report month` does. Like the
weekly digest it is claimed by inserting its row (the month is unique), so a restart or a
second process never posts a month twice. One missed while the bot was down is posted when
it comes back, late, and says so, up to LATE_LIMIT after its time; after that it is skipped,
and `/integ report month` still answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape
from commands.core.replies import Reply
from commands.outbox import queue as outbox
from commands.reports.chart import queue_chart, weekly_failures
from commands.reports.figures import Figures, Report, compute
from commands.reports.periods import Period, last_month
from commands.reports.replies import totals_line, worst_lines
from storage.db import insert_for
from storage.models import MonthlyReport

LATE_LIMIT = timedelta(days=3)
SHOWN = 10


@dataclass(frozen=True)
class MonthlyDue:
    month: date  # the first day of the month the report covers
    scheduled_at: datetime  # UTC
    period: Period


def first_working_day(year: int, month: int) -> date:
    day = date(year, month, 1)
    while day.weekday() >= 5:  # Saturday, Sunday
        day += timedelta(days=1)
    return day


def monthly_due(now: datetime, hour: int, timezone: str) -> MonthlyDue | None:
    """This month's report, if its time has come and is at most LATE_LIMIT ago."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    day = first_working_day(local.year, local.month)
    # Built from the wall-clock time, so the hour stays put across DST changes.
    scheduled = datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(now.tzinfo)
    if not scheduled <= now <= scheduled + LATE_LIMIT:
        return None
    period = last_month(scheduled)
    return MonthlyDue(period.start.date(), scheduled, period)


def posted(session: Session, month: date) -> bool:
    return session.scalar(select(MonthlyReport.id).where(MonthlyReport.month == month)) is not None


@dataclass(frozen=True)
class Monthly:
    """What the month's post holds: its message, and the weeks of its chart."""

    reply: Reply
    weeks: list[tuple[date, int]]


def render_monthly(session: Session, due: MonthlyDue, now: datetime) -> Monthly:
    report = compute(session, due.period)
    return Monthly(monthly_reply(report, due, now), weekly_failures(session, due.period))


def monthly_reply(report: Report, due: MonthlyDue, now: datetime) -> Reply:
    title = f"Integration reliability, {due.period.label}"
    blocks: list[bk.Block] = [bk.header(title)]
    if now - due.scheduled_at >= timedelta(hours=1):
        blocks.append(
            bk.context(
                f"Due {due.scheduled_at:%Y-%m-%d %H:%M} UTC; posted late, the bot was not "
                "running then."
            )
        )
    everything = _all(report)
    lines = [totals_line(everything)]
    if everything.root_causes:
        causes = ", ".join(f"{escape(c)} {n}" for c, n in everything.root_causes.most_common())
        lines.append(f"*Root causes:* {causes}")
    blocks.append(bk.section("\n".join(lines)))
    integrations = sorted(report.integrations.values(), key=_most_failing)
    systems = sorted(report.systems.values(), key=_most_failing)
    for heading, ranked in (("Integrations", integrations), ("Systems", systems)):
        lines = worst_lines([f for f in ranked if f.failing][:SHOWN])
        blocks.append(bk.divider())
        blocks.extend(
            bk.sections_for_lines([f"*{heading} with the most time failing*", *(lines or ["none"])])
        )
    blocks.append(bk.context("`/integ report <integration|system> month` for one of them."))
    text = f"{title}: {everything.opened} alerts opened"
    return Reply(text=bk.truncate_text(text), blocks=bk.cap_blocks(blocks, "…"), ephemeral=False)


def queue_monthly(
    session: Session, due: MonthlyDue, channel: str, monthly: Monthly, now: datetime
) -> int:
    """Claim the month and queue its message and chart; 1 if this call did, 0 if it was
    taken."""
    reply = monthly.reply
    claimed = session.execute(
        insert_for(session)(MonthlyReport)
        .values(month=due.month, posted_at=now, channel=channel)
        .on_conflict_do_nothing(index_elements=["month"])
        .returning(MonthlyReport.id)
    ).scalar()
    if claimed is None:
        return 0
    row = session.get_one(MonthlyReport, claimed)
    row.outbox_id = outbox.queue_message(
        session, channel=channel, now=now, text=reply.text, blocks=reply.blocks
    )
    queue_chart(
        session,
        channel=channel,
        now=now,
        name="every integration",
        period=due.period,
        weeks=monthly.weeks,
    )
    session.flush()
    return 1


def _all(report: Report) -> Figures:
    """Every integration's alerts together (time failing is left out: see totals_line)."""
    total = Figures("all", report.period)
    for f in report.integrations.values():
        total.opened += f.opened
        total.acknowledged += f.acknowledged
        total.resolved += f.resolved
        total.time_to_ack += f.time_to_ack
        total.time_to_resolve += f.time_to_resolve
        total.root_causes.update(f.root_causes)
    return total


def _most_failing(f: Figures) -> tuple[timedelta, str]:
    return (-f.failing, f.name)
