"""`/integ report [integration|system] [30d|90d|month]`: the reliability report in Slack."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from commands.catalog.lookups import usage
from commands.core.durations import format_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape
from commands.core.replies import Invocation, Reply
from commands.outbox import queue as outbox
from commands.permissions.check import Visibility, private_refusal
from commands.reports.chart import queue_chart, weekly_failures
from commands.reports.figures import Figures, Report, compute
from commands.reports.periods import DEFAULT, Period, PeriodInvalid, parse_period
from storage import queries
from storage.models import Integration

VERB = "report"
# Integrations listed in the overview and under a system, most time failing first.
TOP = 10


def report_reply(session: Session, inv: Invocation, args: str) -> Reply:
    words = args.split()
    wants_chart = any(w.lower() == "chart" for w in words)
    words = [w for w in words if w.lower() != "chart"]
    if len(words) > 2:
        return usage(VERB)
    periods = [w for w in words if _is_period(w)]
    targets = [w.lower() for w in words if not _is_period(w)]
    if len(periods) > 1:
        return usage(VERB)
    # Two names: the second one was meant as the period.
    period_word = periods[0] if periods else targets[1] if len(targets) > 1 else DEFAULT
    target = targets[0] if targets else ""
    try:
        period = parse_period(period_word, inv.now)
    except PeriodInvalid as exc:
        return _say(str(exc))
    every = session.scalars(select(Integration).where(Integration.removed_at.is_(None))).all()
    visible = Visibility(session, inv.actor, every)
    shown = {i.id: i for i in every if visible(i)}
    hidden = next((i for i in every if i.id == target and i.id not in shown), None)
    if hidden is not None:
        refusal = private_refusal(session, inv.actor, hidden, inv.now, f"the report of {target}")
        if refusal is not None:
            return _say(refusal.message)
    if not target:
        return _overview(compute(session, period), shown)
    report = compute(session, period, _covered(every, target))
    found = _target(session, report, shown, target, period)
    if found is None:
        return _say(
            f"No integration or system called `{escape(target)}`. "
            "`/integ list` shows the integrations."
        )
    reply, members = found
    if not wants_chart:
        return reply
    return _with_chart(session, inv, reply, target, period, [i.id for i in members])


def _covered(every: Sequence[Integration], target: str) -> set[str]:
    """The integrations a report about `target` needs: itself, or every one touching the
    system of that name."""
    return {i.id for i in every if target in (i.id, i.source_id, i.target_id)}


def _target(
    session: Session, report: Report, shown: dict[str, Integration], target: str, period: Period
) -> tuple[Reply, list[Integration]] | None:
    """The report of one integration or system, and the integrations it covers."""
    if target in shown:
        title = f"*{escape(shown[target].name)}* (`{escape(target)}`), {period.label}"
        return _detail(title, report.integrations[target], []), [shown[target]]
    if target in report.systems and queries.system(session, target) is not None:
        members = [i for i in shown.values() if target in (i.source_id, i.target_id)]
        title = f"*System `{escape(target)}`*, {period.label}: {len(members)} integration(s)"
        return _detail(title, report.systems[target], _worst(report, members)), members
    return None


def _with_chart(
    session: Session,
    inv: Invocation,
    reply: Reply,
    name: str,
    period: Period,
    integrations: list[str],
) -> Reply:
    """The report, and its chart of failures per week queued for the channel."""
    if inv.channel_id is None:
        note = "A chart goes to a channel: ask in Slack for it."
    elif outbox.pending_upload(session, inv.channel_id) is not None:
        note = "A picture is already on its way to this channel; ask again once it is here."
    else:
        weeks = weekly_failures(session, period, integrations)
        queue_chart(
            session, channel=inv.channel_id, now=inv.now, name=name, period=period, weeks=weeks
        )
        note = ":bar_chart: A chart of alerts opened per week is on its way to this channel."
    return Reply(text=reply.text, blocks=[*reply.blocks, bk.context(note)])


def _is_period(word: str) -> bool:
    return word.lower() == "month" or (word[:-1].isdigit() and word.lower().endswith("d"))


def figure_lines(figures: Figures) -> list[str]:
    """The figures as a person reads them."""
    lines = [
        f"*Alerts opened:* {figures.opened} ({figures.acknowledged} acknowledged, "
        f"{figures.resolved} resolved)",
        f"*MTTA:* {_duration(figures.mtta)} · *MTTR:* {_duration(figures.mttr)}",
        f"*Time failing:* {format_duration(figures.failing) if figures.failing else 'none'} "
        f"(available {figures.availability:.2%})",
    ]
    if figures.vendor_share is not None:
        lines.append(
            f"*Vendor share:* {figures.vendor_share:.0%} of the time failing was during an "
            "incident on a vendor's status page"
        )
    if figures.runs_reported is not None:
        lines.append(
            f"*Heartbeat:* {figures.runs_reported} run(s) reported, "
            f"{figures.runs_alerted} missed, late or failed"
        )
    if figures.probe_availability is not None:
        lines.append(f"*Probe:* available {figures.probe_availability:.2%}")
    if figures.root_causes:
        causes = ", ".join(
            f"{escape(cause)} {count}" for cause, count in figures.root_causes.most_common()
        )
        lines.append(f"*Root causes:* {causes}")
    return lines


def _detail(title: str, figures: Figures, worst: list[str]) -> Reply:
    blocks = [bk.section(title), bk.section("\n".join(figure_lines(figures)))]
    if worst:
        blocks.append(bk.section("*Most time failing:*\n" + "\n".join(worst)))
    blocks.append(bk.context("Add `chart` for a chart of alerts opened per week, in the channel."))
    return Reply(text=title, blocks=blocks)


def _overview(report: Report, shown: dict[str, Integration]) -> Reply:
    figures = [report.integrations[i] for i in shown if i in report.integrations]
    opened = sum(f.opened for f in figures)
    failing = [f for f in figures if f.failing]
    title = (
        f"*Reliability, {report.period.label}:* {len(figures)} integrations, {opened} alerts "
        f"opened, {len(failing)} with time failing."
    )
    blocks = [bk.section(title)]
    worst = _worst(report, list(shown.values()))
    if worst:
        blocks.append(bk.section("*Most time failing:*\n" + "\n".join(worst)))
    blocks.append(bk.context("`/integ report <integration|system> [30d|90d|month]` for one."))
    return Reply(text=title, blocks=blocks)


def _worst(report: Report, integrations: list[Integration]) -> list[str]:
    ranked = sorted(
        (report.integrations[i.id] for i in integrations if report.integrations[i.id].failing),
        key=lambda f: (-f.failing, f.name),
    )
    return worst_lines(ranked[:TOP])


def worst_lines(ranked: list[Figures]) -> list[str]:
    """A line for each, in the order given: time failing, alerts opened, MTTR."""
    return [
        f"`{escape(f.name)}` {format_duration(f.failing)} failing, {f.opened} opened, "
        f"MTTR {_duration(f.mttr)}"
        for f in ranked
    ]


def totals_line(f: Figures) -> str:
    """Alerts opened, acknowledged and resolved, MTTA and MTTR: what adds up across
    integrations (time failing does not: they fail at the same moments or not)."""
    return (
        f"*Alerts opened:* {f.opened} ({f.acknowledged} acknowledged, {f.resolved} resolved) · "
        f"*MTTA:* {_duration(f.mtta)} · *MTTR:* {_duration(f.mttr)}"
    )


def _duration(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "n/a"


def _say(text: str) -> Reply:
    return Reply(text=text, blocks=[bk.section(text)])
