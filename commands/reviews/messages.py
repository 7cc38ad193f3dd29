"""The review nudge's message, the review modal and the `/integ reviews` list, as Block Kit.

Everything from outside (names, alert keys, vendor notices, notes) is escaped, and every
text is cut to Slack's limits by the block builders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from commands.catalog.views import integration_spec
from commands.core.durations import format_duration
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention, truncate
from commands.core.replies import Reply
from commands.reviews.facts import Facts, mean, median
from storage.models import Integration, Review, ReviewNudge, ReviewNudgeStatus

# The review checklist, keyed by what a Review's answers store.
CHECKLIST: tuple[tuple[str, str], ...] = (
    ("purpose", "Is it still doing what we need?"),
    ("people", "Are the owner and backups right?"),
    ("support", "Is support and access information current?"),
    ("runbook", "Is the runbook current?"),
    ("test_system", "Does the test system still match production?"),
    ("vendor_updates", "Are upcoming vendor updates known?"),
)
CHECKLIST_KEYS = tuple(key for key, _ in CHECKLIST)
YES, NO = "yes", "no"
NOTES_LIMIT = 2900


@dataclass(frozen=True)
class ReviewActions:
    """The wire ids of the nudge's buttons; bot/ owns them and passes them in."""

    done: str
    snooze: str
    reassign: str


def _day(d: date | datetime) -> str:
    return d.strftime("%Y-%m-%d")


def _took(times: list[timedelta]) -> str:
    mid, avg = median(times), mean(times)
    if mid is None or avg is None:
        return "none"
    return f"median {format_duration(mid)}, mean {format_duration(avg)} ({len(times)})"


def fact_lines(facts: Facts) -> list[str]:
    lines = []
    if facts.alerts:
        lines.append(
            f":rotating_light: *Alerts:* {facts.alerts} "
            f"({facts.firings} firing{'s' if facts.firings != 1 else ''}); "
            f"time to acknowledge {_took(facts.ack_times)}; "
            f"time to resolve {_took(facts.resolve_times)}"
        )
    else:
        lines.append(":white_check_mark: *Alerts:* none")
    if facts.recurring:
        shown = ", ".join(f"`{escape(truncate(key, 80))}` ×{n}" for key, n in facts.recurring[:5])
        more = f" and {len(facts.recurring) - 5} more" if len(facts.recurring) > 5 else ""
        lines.append(f":repeat: *Recurring:* {shown}{more}")
    if facts.root_causes:
        causes = ", ".join(f"{escape(c)} ×{n}" for c, n in facts.root_causes)
        lines.append(f":mag: *Root causes:* {causes}")
    lines.append(
        f":heartbeat: *Heartbeat misses:* {facts.heartbeat_misses} · "
        f"*Probe failures:* {facts.probe_failures}"
    )
    if facts.changes:
        kinds = ", ".join(f"{escape(c)} ×{n}" for c, n in facts.change_categories)
        lines.append(f":memo: *Changes logged:* {facts.changes} ({kinds})")
    else:
        lines.append(":memo: *Changes logged:* none")
    if facts.vendor_incident_count:
        names = "; ".join(escape(truncate(n, 120)) for n in facts.vendor_incidents)
        unnamed = facts.vendor_incident_count - len(facts.vendor_incidents)
        lines.append(
            f":office: *Vendor incidents:* {facts.vendor_incident_count}: {names}"
            + (f" and {unnamed} more" if unnamed > 0 else "")
        )
    else:
        lines.append(":office: *Vendor incidents:* none")
    marks = " · ".join(
        f"{':white_check_mark:' if ok else ':x:'} {what}" for what, ok in facts.filled_in.items()
    )
    lines.append(f"*In the catalog:* {marks}")
    return lines


def _cadence(integ: Integration) -> str:
    return integration_spec(integ).review.every


def render_nudge(
    integ: Integration,
    nudge: ReviewNudge,
    facts: Facts,
    now: datetime,
    actions: ReviewActions,
    *,
    last_review: Review | None = None,
    review: Review | None = None,
    next_due: date | None = None,
) -> Reply:
    """The nudge as it should look now: open, snoozed or done (with `review`)."""
    who = mention(nudge.assigned_to or integ.owner)
    title = f"Review: {integ.name}"
    blocks: list[bk.Block] = [bk.header(title)]
    overdue = (now.date() - nudge.due_on).days
    when = f"due since {_day(nudge.due_on)}" + (
        f" ({overdue} day{'s' if overdue != 1 else ''} overdue)" if overdue > 0 else ""
    )
    if nudge.status == ReviewNudgeStatus.DONE and review is not None:
        head = (
            f":white_check_mark: *Reviewed* by {mention(review.reviewed_by)} on "
            f"{_day(review.reviewed_at)}."
        )
        if next_due is not None:
            head += f" Next review due {_day(next_due)}."
        follow = follow_ups(review)
        lines = [head]
        if follow:
            lines.append("*Follow-ups:* " + "; ".join(label for _, label in follow))
        if review.notes:
            lines.append("*Notes:* " + escape(truncate(review.notes, 1500)))
        blocks.extend(bk.sections_for_lines(lines))
        blocks.append(bk.context(f"`{escape(integ.id)}` · {_cadence(integ)} review"))
        text = f"Review of {integ.name} done by {review.reviewed_by}"
        return Reply(text=bk.truncate_text(escape(text)), blocks=blocks, ephemeral=False)
    intro = (
        f"{who}, the {escape(_cadence(integ))} review of `{escape(integ.id)}` "
        f"*{escape(integ.name)}* ({escape(integ.source.name)} → {escape(integ.target.name)}) "
        f"is {when}."
    )
    if last_review is not None:
        intro += (
            f" Last reviewed {_day(last_review.reviewed_at)} by {mention(last_review.reviewed_by)}."
        )
    else:
        intro += " It has not been reviewed here before."
    blocks.append(bk.section(intro))
    status = []
    if nudge.status == ReviewNudgeStatus.SNOOZED and nudge.snoozed_until is not None:
        status.append(
            f":zzz: Snoozed until {_day(nudge.snoozed_until)}"
            + (f" by {mention(nudge.snoozed_by)}" if nudge.snoozed_by else "")
            + f" ({nudge.snoozes} of 2)."
        )
    if nudge.assigned_to:
        status.append(
            f":bust_in_silhouette: Reassigned to {mention(nudge.assigned_to)}"
            + (f" by {mention(nudge.assigned_by)}" if nudge.assigned_by else "")
            + "."
        )
    if status:
        blocks.append(bk.context(*status))
    blocks.append(bk.divider())
    blocks.append(bk.section(f"*Since {_day(facts.since)}*"))
    blocks.extend(bk.sections_for_lines(fact_lines(facts)))
    blocks.append(bk.divider())
    checklist = "\n".join(f"• {label}" for _, label in CHECKLIST)
    blocks.append(bk.section(f"*Checklist*\n{checklist}"))
    blocks.append(_actions(nudge, actions))
    blocks = bk.cap_blocks(blocks, "…")
    text = f"Review of {integ.name} is {when}"
    return Reply(text=bk.truncate_text(escape(text)), blocks=blocks, ephemeral=False)


def _actions(nudge: ReviewNudge, actions: ReviewActions) -> bk.Block:
    value = str(nudge.id)
    return {
        "type": "actions",
        # The users select carries no value of its own: the block says which nudge it is.
        "block_id": f"review-{nudge.id}",
        "elements": [
            {
                "type": "button",
                "text": bk.plain("Mark reviewed", bk.BUTTON_TEXT),
                "action_id": actions.done,
                "value": value,
                "style": "primary",
            },
            {
                "type": "button",
                "text": bk.plain("Snooze a week", bk.BUTTON_TEXT),
                "action_id": actions.snooze,
                "value": value,
            },
            {
                "type": "users_select",
                "action_id": actions.reassign,
                "placeholder": bk.plain("Reassign…", 150),
            },
        ],
    }


def follow_ups(review: Review) -> list[tuple[str, str]]:
    """The checklist items a review answered "no": what still needs doing."""
    answers = review.answers or {}
    return [(key, label) for key, label in CHECKLIST if answers.get(key) == NO]


def review_modal(integ: Integration, callback_id: str, nudge_id: int | None) -> dict[str, Any]:
    """The Mark reviewed form: each checklist item yes or no, and notes."""
    options = [
        {"text": bk.plain("Yes", 75), "value": YES},
        {"text": bk.plain("No, needs follow-up", 75), "value": NO},
    ]
    blocks: list[bk.Block] = [
        bk.section(
            f"*{escape(integ.name)}* (`{escape(integ.id)}`): answer each question; "
            "a *no* is kept as a follow-up."
        )
    ]
    for key, label in CHECKLIST:
        blocks.append(
            {
                "type": "input",
                "block_id": key,
                "label": bk.plain(label, 2000),
                "element": {"type": "radio_buttons", "action_id": key, "options": options},
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": "notes",
            "optional": True,
            "label": bk.plain("Notes", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": "notes",
                "multiline": True,
                "max_length": NOTES_LIMIT,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"integration": integ.id, "nudge": nudge_id}),
        "title": bk.plain("Review", 24),
        "submit": bk.plain("Mark reviewed", 24),
        "close": bk.plain("Cancel", 24),
        "blocks": blocks,
    }


@dataclass(frozen=True)
class DueItem:
    integ: Integration
    due: date
    snoozed_until: date | None
    assigned_to: str | None


def render_list(
    due: Sequence[DueItem], follow: Sequence[tuple[Integration, Review]], today: date
) -> Reply:
    """`/integ reviews`: due, overdue and follow-ups, grouped by owner."""
    by_owner: dict[str, list[str]] = {}
    for item in due:
        late = (today - item.due).days
        when = (
            f"*overdue* since {_day(item.due)} ({late}d)" if late > 0 else f"due {_day(item.due)}"
        )
        line = f"• `{escape(item.integ.id)}` {escape(item.integ.name)}: {when}"
        if item.snoozed_until is not None:
            line += f", snoozed until {_day(item.snoozed_until)}"
        by_owner.setdefault(item.assigned_to or item.integ.owner, []).append(line)
    for integ, review in follow:
        items = "; ".join(label for _, label in follow_ups(review))
        line = f"• `{escape(integ.id)}` follow-up from {_day(review.reviewed_at)}: {escape(items)}"
        by_owner.setdefault(integ.owner, []).append(line)
    if not by_owner:
        text = "No reviews are due in the next two weeks, and no follow-ups are open."
        return Reply(text=text, blocks=[bk.section(text)])
    lines: list[str] = []
    for owner in sorted(by_owner):
        lines.append(f"*{mention(owner)}*")
        lines.extend(by_owner[owner])
    text = "Reviews due, overdue and follow-ups, by owner"
    blocks = [bk.section(f"*{text}*"), *bk.sections_for_lines(lines)]
    return Reply(text=text, blocks=bk.cap_blocks(blocks, "… more: the list was cut."))
