"""The one Slack message of an alert, rendered from its current state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention, truncate
from commands.core.render.text import render
from commands.core.replies import Reply
from storage import queries
from storage.models import Alert, AlertStatus, AlertTransition, Integration, Silence

SEVERITY_ICONS = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
DETAILS_LIMIT = 2900
RECURRENCE_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class AlertActions:
    """The wire ids of the alert buttons; bot/ owns them and passes them in."""

    ack: str
    resolve: str
    silence: str
    runbook: str


def firings_within(session: Session, alert_id: int, since: datetime) -> int:
    """How many times the alert started firing (opened or reopened) since `since`."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AlertTransition)
            .where(
                AlertTransition.alert_id == alert_id,
                AlertTransition.to_status == AlertStatus.FIRING,
                AlertTransition.from_status.is_distinct_from(AlertStatus.ACKNOWLEDGED),
                AlertTransition.at >= since,
            )
        )
        or 0
    )


def render_current(session: Session, alert: Alert, now: datetime, actions: AlertActions) -> Reply:
    """The alert's message as it should look now: what the outbox sends, post or update."""
    integ = queries.integration(session, alert.integration_id) if alert.integration_id else None
    silence = queries.active_silence(session, integ.id, now) if integ is not None else None
    return render_alert(
        alert,
        integ,
        silence=silence,
        recurrences=firings_within(session, alert.id, now - RECURRENCE_WINDOW),
        ack_action=actions.ack,
        resolve_action=actions.resolve,
        silence_action=actions.silence,
        runbook_action=actions.runbook,
    )


def render_alert(
    alert: Alert,
    integ: Integration | None,
    *,
    silence: Silence | None = None,
    recurrences: int = 0,
    ack_action: str,
    resolve_action: str,
    silence_action: str,
    runbook_action: str,
) -> Reply:
    """The alert's message. Action ids come from the caller, which owns the wire ids."""
    resolved = alert.status == AlertStatus.RESOLVED
    icon = ":white_check_mark:" if resolved else SEVERITY_ICONS.get(alert.severity, ":red_circle:")
    title = render("alert_title.j2", alert=alert, integ=integ, icon=icon, severity=alert.severity)
    blocks: list[bk.Block] = [bk.section(title)]
    facts = []
    if integ is not None:
        facts.append(
            f"`{escape(integ.id)}` · {escape(integ.source.name)} → {escape(integ.target.name)}"
            f" · {escape(integ.mechanism)}"
        )
    times = "once" if alert.count == 1 else f"{alert.count} times"
    facts.append(f"Seen {times} since {alert.first_seen_at.strftime('%Y-%m-%d %H:%M UTC')}")
    if alert.id is not None:
        facts.append(f"Alert #{alert.id}")
    blocks.append(bk.context(*facts))
    if alert.details:
        blocks.append(bk.section(truncate(escape(alert.details), DETAILS_LIMIT)))
    state = render("alert_state.j2", alert=alert, statuses=AlertStatus)
    lines = [state]
    if integ is not None and not resolved:
        lines.append(f"Owner: {mention(integ.owner)}")
    if silence is not None and not resolved:
        held = ":wrench: In maintenance" if silence.kind == "maintenance" else ":no_bell: Silenced"
        lines.append(
            f"{held} until {silence.ends_at.strftime('%Y-%m-%d %H:%M UTC')}"
            + (f": {escape(silence.reason)}" if silence.reason else "")
        )
    if recurrences >= 3:
        lines.append(
            f":repeat: This has fired {recurrences} times in 30 days. "
            "Please find the root cause, not just the symptom."
        )
    if alert.url:
        lines.append(f"<{alert.url.replace('>', '%3E').replace('|', '%7C')}|Logs and source>")
    blocks.append(bk.section("\n".join(lines)))
    if not resolved:
        blocks.append(
            _actions(alert, integ, ack_action, resolve_action, silence_action, runbook_action)
        )
    # The notification text is mrkdwn too: a summary holding <!channel> must not ping.
    fallback = f"{alert.severity.upper()} {escape(alert.integration_name)}: {escape(alert.summary)}"
    return Reply(
        text=bk.truncate_text(fallback), blocks=bk.cap_blocks(blocks, "…"), ephemeral=False
    )


def _actions(
    alert: Alert,
    integ: Integration | None,
    ack_action: str,
    resolve_action: str,
    silence_action: str,
    runbook_action: str,
) -> bk.Block:
    value = str(alert.id)
    elements = []
    if alert.status == AlertStatus.FIRING:
        elements.append(bk.button("Acknowledge", ack_action, value, "primary"))
    elements.append(bk.button("Resolve", resolve_action, value))
    if integ is not None:
        elements.append(bk.button("Silence 2h", silence_action, value))
        runbook = (integration_spec(integ).runbook or "").strip()
        if runbook.startswith(("http://", "https://")) and " " not in runbook:
            link = bk.button("Runbook", runbook_action, value)
            link["url"] = runbook[:3000]
            elements.append(link)
    return {"type": "actions", "block_id": f"alert-{alert.id}", "elements": elements}


def thread_note(text: str) -> Reply:
    """A line in the alert's thread; `text` is mrkdwn already escaped by the caller."""
    return Reply(text=text, blocks=[bk.section(text)], ephemeral=False)


def resolve_modal(alert: Alert, callback_id: str, causes: Sequence[str]) -> dict[str, Any]:
    """The modal that resolving from Slack opens: a root cause and a note are required."""
    options = [{"text": bk.plain(cause, 75), "value": cause} for cause in causes]
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": str(alert.id),
        "title": bk.plain("Resolve alert", 24),
        "submit": bk.plain("Resolve", 24),
        "close": bk.plain("Cancel", 24),
        "blocks": [
            bk.section(
                f"*#{alert.id}* `{escape(alert.integration_name)}`: {escape(alert.summary)}"
            ),
            {
                "type": "input",
                "block_id": "cause",
                "label": bk.plain("Root cause", 2000),
                "element": {
                    "type": "static_select",
                    "action_id": "cause",
                    "placeholder": bk.plain("What was it?", 150),
                    "options": options,
                },
            },
            {
                "type": "input",
                "block_id": "note",
                "label": bk.plain("What happened and what fixed it", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "note",
                    "multiline": True,
                    "max_length": 2900,
                },
            },
        ],
    }
