"""Failures per week over a report's period: what the chart of a report shows.

Only the numbers are made here; the picture is drawn by bot/charts.py (matplotlib, in a
child process) when the outbox uploads it, as a diagram's Graphviz source is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.core.render.mrkdwn import escape, truncate
from commands.outbox import queue as outbox
from commands.reports.periods import Period
from storage.models import Alert, AlertStatus, AlertTransition

CHART_KIND = "bars"
ALT_TEXT = 1000


def weekly_failures(
    session: Session, period: Period, integrations: Collection[str] | None = None
) -> list[tuple[date, int]]:
    """How many alerts started firing in each week (from Monday) of the period, every week
    listed, empty ones too; `integrations` limits it to those."""
    t, a = AlertTransition, Alert
    query = (
        select(t.at)
        .join(a, a.id == t.alert_id)
        .where(
            t.to_status == AlertStatus.FIRING.value,
            t.from_status.is_distinct_from(AlertStatus.ACKNOWLEDGED.value),
            t.at >= period.start,
            t.at < period.end,
        )
    )
    if integrations is not None:
        query = query.where(a.integration_id.in_(sorted(integrations)))
    counts = Counter(_monday(at.date()) for at in session.scalars(query))
    weeks = []
    week = _monday(period.start.date())
    while week < period.end.date():
        weeks.append((week, counts.get(week, 0)))
        week += timedelta(days=7)
    return weeks


def chart_spec(title: str, weeks: list[tuple[date, int]]) -> dict[str, Any]:
    """What bot/charts.py draws: bars of failures per week, labelled by the week's Monday."""
    return {
        "kind": CHART_KIND,
        "title": title,
        "labels": [f"{w:%d %b}" for w, _ in weeks],
        "values": [n for _, n in weeks],
        "ylabel": "alerts opened",
        "xlabel": "week starting",
    }


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def queue_chart(
    session: Session,
    *,
    channel: str,
    now: datetime,
    name: str,
    period: Period,
    weeks: list[tuple[date, int]],
) -> int:
    """Queue the chart of `weeks` for `channel`, with the counts as text to post instead
    where it cannot be drawn; its outbox id."""
    title = f"Alerts opened per week: {name}, {period.label}"
    counts = ", ".join(f"{w:%d %b} {n}" for w, n in weeks)
    text = f"{title}: {counts}" if weeks else f"{title}: none"
    return outbox.queue_upload(
        session,
        channel=channel,
        now=now,
        chart=chart_spec(title, weeks),
        filename=f"failures-per-week-{period.start:%Y%m%d}.png",
        title=title,
        comment=escape(title),
        alt_text=truncate(f"Bar chart. {text}", ALT_TEXT),
        fallback={"text": escape(text)},
    )
