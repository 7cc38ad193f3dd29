"""The Home tab's view: Block Kit built from `HomeContent`, within Slack's limits.

A Home view holds at most 100 blocks (Slack refuses the whole view past that), so every
part has a share, and what does not fit is counted and pointed to the `/integ` command
that lists it all. Text from outside (alert summaries, names) is escaped and cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commands.catalog.state import HEALTH_EMOJI, Health
from commands.catalog.views import integration_spec
from commands.core.durations import format_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, mention, truncate
from commands.home.content import HomeContent, Monitor, MyIntegration, Planned
from storage.models import Alert

MAX_BLOCKS = 100
# Each part's share of the 100 blocks; together well under, so the fixed blocks fit.
MINE_LINES = 60  # packed several to a section: about five sections
ALERTS_SHOWN = 15  # two blocks each: the alert and its buttons
REVIEWS_SHOWN = 10  # one block each, the button beside the text
LINES_SHOWN = 15  # monitors, incidents, planned work, a system's integrations
SYSTEM_OPTIONS = 99  # Slack allows 100 options; one is "All systems"
SUMMARY_CHARS = 150
ALL_SYSTEMS = "*"  # the filter's value for no filter
# A runbook link longer than this is left to `/integ runbook`.
RUNBOOK_URL_CHARS = 500


@dataclass(frozen=True)
class HomeActions:
    """The action ids of the Home's buttons and menu (bot/wire_ids.py)."""

    ack: str
    resolve: str
    review: str
    system: str


def home_view(
    content: HomeContent, actions: HomeActions, *, buttons: bool, member: bool = True
) -> dict[str, Any]:
    """The view to publish. `buttons`: the person may act (a full member); a guest gets
    none. `member`: alerts, reviews and planned work are shown (guests see states only,
    as `/integ status` shows them)."""
    blocks: list[bk.Block] = [bk.header("Your integrations")]
    if content.notice:
        blocks.append(bk.context(content.notice))
    blocks += _mine(content, member)
    if member:
        blocks.append(bk.divider())
        blocks += _needs_you(content, actions, buttons)
    else:
        blocks.append(
            bk.context("Alerts, reviews and their buttons are for full members of this workspace.")
        )
    blocks.append(bk.divider())
    blocks += _overview(content, actions)
    blocks.append(
        bk.context(f"Updated {content.now:%a %Y-%m-%d %H:%M} UTC · `/integ help` for every command")
    )
    return {"type": "home", "blocks": _capped(blocks)}


def _capped(blocks: list[bk.Block]) -> list[bk.Block]:
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    cut = len(blocks) - (MAX_BLOCKS - 1)
    note = f"{cut} more blocks not shown: `/integ alerts`, `/integ reviews` and `/integ list`."
    return [*blocks[: MAX_BLOCKS - 1], bk.context(note)]


# -- your integrations ----------------------------------------------------------------------


def _mine(content: HomeContent, member: bool) -> list[bk.Block]:
    rows = content.mine
    if not rows:
        return [
            bk.section(
                "You are not the owner, a backup or on the team of any integration in the "
                "catalog. `/integ list` shows them all."
            )
        ]
    tally = {state: sum(r.health == state for r in rows) for state in Health}
    overdue = sum(r.review_due < content.now.date() for r in rows)
    summary = (
        f"You answer for *{len(rows)}* integration{'s' if len(rows) != 1 else ''}: "
        f"{tally[Health.FAILING]} failing, {tally[Health.SILENCED]} silenced, "
        f"{tally[Health.OK]} ok" + (f"; {overdue} with a review overdue." if overdue else ".")
    )
    # Those that need something first, then by name.
    ordered = sorted(rows, key=lambda r: (r.health == Health.OK, r.integ.id))
    lines = [_mine_line(row, content.now, member) for row in ordered[:MINE_LINES]]
    blocks = [bk.section(summary), *bk.sections_for_lines(lines)]
    if len(rows) > MINE_LINES:
        blocks.append(bk.context(f"{len(rows) - MINE_LINES} more of yours: `/integ list`."))
    return blocks


def _mine_line(row: MyIntegration, now: datetime, member: bool) -> str:
    integ = row.integ
    parts = [
        f"{HEALTH_EMOJI[row.health]} *{escape(truncate(integ.name, 80))}* (`{escape(integ.id)}`)",
        row.mine.role_text,
    ]
    if row.open_alerts:
        parts.append(f"{row.open_alerts} open alert{'s' if row.open_alerts != 1 else ''}")
    if row.review_due < now.date():
        parts.append(f"review overdue since {row.review_due:%Y-%m-%d}")
    parts.append(f"<#{integ.channel}>")
    if member:  # `/integ runbook` is for full members too
        parts.append(_runbook(integ.id, integration_spec(integ).runbook))
    return " · ".join(parts)


def _runbook(integration_id: str, runbook: str | None) -> str:
    text = (runbook or "").strip()
    if not text:
        return "no runbook"
    if (
        text.startswith(("http://", "https://"))
        and " " not in text
        and len(text) <= RUNBOOK_URL_CHARS
    ):
        return link(text, "runbook")
    return f"`/integ runbook {escape(integration_id)}`"


# -- what needs you -------------------------------------------------------------------------


def _needs_you(content: HomeContent, actions: HomeActions, buttons: bool) -> list[bk.Block]:
    blocks: list[bk.Block] = [bk.header("What needs you")]
    before = len(blocks)
    blocks += _alerts(content, actions, buttons)
    blocks += _listed(
        [_monitor_line(m, content.now) for m in content.monitors],
        "*Heartbeats and probes*",
        "more: `/integ status <integration>`",
    )
    blocks += _listed(
        [
            f":warning: *{escape(n.system_id)}*: {escape(truncate(n.name, SUMMARY_CHARS))} "
            f"({escape(n.status)})" + (f" · {link(n.url, 'status page')}" if n.url else "")
            for n in content.incidents
        ],
        "*Vendor incidents*",
        "more: `/integ status <integration>`",
    )
    blocks += _reviews(content, actions, buttons)
    blocks += _listed(
        [_planned_line(p) for p in content.planned],
        "*Planned work this week*",
        "more: `/integ maintenance`",
    )
    if len(blocks) == before:
        blocks.append(bk.section(":white_check_mark: Nothing needs you right now."))
    return blocks


def _alerts(content: HomeContent, actions: HomeActions, buttons: bool) -> list[bk.Block]:
    blocks: list[bk.Block] = []
    for alert in content.alerts[:ALERTS_SHOWN]:
        blocks.append(bk.section(_alert_text(alert, content.now)))
        if buttons:
            blocks.append(_alert_buttons(alert, actions))
    more = content.open_alerts - min(len(content.alerts), ALERTS_SHOWN)
    if more > 0:
        blocks.append(bk.context(f"{more} more open alerts: `/integ alerts`."))
    return blocks


def _alert_text(alert: Alert, now: datetime) -> str:
    icon = ":rotating_light:" if alert.status == "firing" else ":eyes:"
    head = (
        f"{icon} *#{alert.id}* {escape(alert.severity.upper())} `{escape(alert.integration_name)}`"
        f": {escape(truncate(alert.summary, SUMMARY_CHARS))}"
    )
    since = format_duration(max(now - alert.first_seen_at, timedelta(0)))
    facts = [f"open {since}"]
    if alert.count > 1:
        facts.append(f"{alert.count}×")
    if alert.acknowledged_by:
        facts.append(f"acknowledged by {mention(alert.acknowledged_by)}")
    if alert.channel:
        facts.append(f"<#{alert.channel}>")
    return f"{head}\n{' · '.join(facts)}"


def _alert_buttons(alert: Alert, actions: HomeActions) -> bk.Block:
    value = str(alert.id)
    elements = []
    if alert.status == "firing":
        elements.append(bk.button("Acknowledge", actions.ack, value, "primary"))
    elements.append(bk.button("Resolve", actions.resolve, value))
    return {"type": "actions", "block_id": f"home-alert-{alert.id}", "elements": elements}


def _monitor_line(monitor: Monitor, now: datetime) -> str:
    name = f"`{escape(monitor.integration_id)}`"
    if monitor.what == "probe":
        error = escape(truncate(monitor.error or "failed", 150))
        return f":red_circle: Probe of {name} failing: {error}"
    if monitor.failing:
        return f":red_circle: Heartbeat of {name} missed its deadline or reported a failure"
    late = format_duration(now - monitor.since) if monitor.since else "a moment"
    return f":hourglass: Heartbeat of {name} is late by {late}"


def _reviews(content: HomeContent, actions: HomeActions, buttons: bool) -> list[bk.Block]:
    blocks: list[bk.Block] = []
    for review in content.reviews[:REVIEWS_SHOWN]:
        when = (
            f"overdue since {review.due:%Y-%m-%d}"
            if review.overdue
            else f"due {review.due:%a %Y-%m-%d}"
        )
        icon = ":spiral_calendar_pad:" if not review.overdue else ":warning:"
        text = f"{icon} Review of *{escape(truncate(review.integ.name, 80))}* ({when})"
        block = bk.section(text)
        if buttons:
            block["accessory"] = bk.button("Review", actions.review, review.integ.id)
        blocks.append(block)
    more = len(content.reviews) - REVIEWS_SHOWN
    if more > 0:
        blocks.append(bk.context(f"{more} more reviews due: `/integ reviews`."))
    return blocks


def _planned_line(planned: Planned) -> str:
    end = f" to {planned.ends_at:%a %H:%M}" if planned.ends_at else ""
    when = f"{planned.starts_at:%a %Y-%m-%d %H:%M}{end} UTC"
    state = " (open now)" if planned.open_now else ""
    reason = f": {escape(truncate(planned.reason, 150))}" if planned.reason else ""
    return f":wrench: {when} *{escape(truncate(planned.what, 200))}*{state}{reason}"


def _listed(lines: list[str], title: str, more_hint: str) -> list[bk.Block]:
    if not lines:
        return []
    blocks = bk.sections_for_lines([title, *lines[:LINES_SHOWN]])
    if len(lines) > LINES_SHOWN:
        blocks.append(bk.context(f"{len(lines) - LINES_SHOWN} {more_hint}"))
    return blocks


# -- all integrations -----------------------------------------------------------------------


def _overview(content: HomeContent, actions: HomeActions) -> list[bk.Block]:
    o = content.overview
    blocks: list[bk.Block] = [bk.header("All integrations")]
    if not o.total:
        return [*blocks, bk.section("The catalog has no integrations yet.")]
    text = (
        f"*{o.total} integrations:* {o.counts['ok']} ok, {o.counts['failing']} failing, "
        f"{o.counts['silenced']} silenced, {o.counts['overdue']} with a review overdue."
    )
    summary = bk.section(text)
    if o.systems:
        summary["accessory"] = _system_menu(content, actions)
    blocks.append(summary)
    if o.system is not None:
        lines = [
            f"{HEALTH_EMOJI[state]} `{escape(integ.id)}` {escape(truncate(integ.name, 80))}: "
            f"{escape(integ.source.name)} → {escape(integ.target.name)}"
            + (f" · {open_alerts} open" if open_alerts else "")
            + (" · review overdue" if overdue else "")
            for integ, state, open_alerts, overdue in o.rows
        ]
        if lines:
            title = f"*Using {escape(o.system.name)}:*"
            blocks += _listed(lines, title, f"more: `/integ list {escape(o.system.id)}`")
        else:
            blocks.append(bk.section(f"No integration uses *{escape(o.system.name)}*."))
    if len(o.systems) > SYSTEM_OPTIONS:
        blocks.append(bk.context("More systems than the menu holds: `/integ list <system>`."))
    return blocks


def _system_menu(content: HomeContent, actions: HomeActions) -> bk.Block:
    o = content.overview
    options = [{"text": bk.plain("All systems", 75), "value": ALL_SYSTEMS}]
    options += [
        {"text": bk.plain(s.name, 75), "value": s.id[:150]} for s in o.systems[:SYSTEM_OPTIONS]
    ]
    menu: bk.Block = {
        "type": "static_select",
        "action_id": actions.system,
        "placeholder": bk.plain("Filter by system", 150),
        "options": options,
    }
    picked = next((opt for opt in options if o.system and opt["value"] == o.system.id), None)
    if picked is not None:
        menu["initial_option"] = picked
    return menu
