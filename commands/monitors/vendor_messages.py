"""A vendor notice's message: one per channel, naming the integrations there it touches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, truncate
from commands.core.render.text import Mrkdwn, render
from commands.core.replies import Reply
from commands.monitors.statuspage import MAINTENANCE, parse_time
from storage.models import Integration, NoticeKind, System, VendorNotice

# What a notice's status becomes when the page stops listing it.
GONE_STATUS: dict[str, str] = {
    NoticeKind.INCIDENT: "resolved",
    NoticeKind.MAINTENANCE: "completed",
}
IMPACT_ICONS = {
    "critical": ":red_circle:",
    "major": ":large_orange_circle:",
    "minor": ":large_yellow_circle:",
}
# The latest update is the vendor's free text; the section holding it allows 3,000
# characters, and the escaping of `&`, `<`, `>` happens before the cut.
UPDATE_LIMIT = 2500


def render_notice(
    system: System,
    notice: VendorNotice,
    integrations: Sequence[Integration],
    extra: Sequence[bk.Block] = (),
) -> Reply:
    """A notice's message in one channel, naming the integrations there that it touches;
    `extra` (the alerts folded under the outage it opened) goes below what the page says."""
    detail = notice.detail or {}
    over = notice.resolved_at is not None
    if over:
        icon = ":white_check_mark:"
    elif notice.kind == MAINTENANCE:
        icon = ":wrench:"
    else:
        icon = IMPACT_ICONS.get(notice.impact or "", ":information_source:")
    vendor = system.vendor or system.name
    title = render(
        "vendor_notice.j2",
        icon=icon,
        vendor=vendor,
        system_name=system.name,
        notice=notice,
        status_label=notice.status.replace("_", " ").capitalize(),
        # A maintenance's impact is "maintenance", and "none" says nothing either.
        impact=notice.impact if notice.impact not in (None, "none", "maintenance") else None,
        resolved_at=notice.resolved_at,
        on_page=not detail.get("gone"),
        window=_window(detail),
        integrations=integrations,
    )
    blocks: list[bk.Block] = [bk.section(title)]
    update_text = detail.get("latest_update")
    if isinstance(update_text, str) and update_text.strip():
        when = parse_time(detail.get("latest_update_at"))
        heading = f"_Latest update, {when:%Y-%m-%d %H:%M UTC}_" if when else "_Latest update_"
        body = truncate(escape(update_text.strip()), UPDATE_LIMIT)
        blocks.append(bk.section(f"{heading}\n{body}"))
    blocks.extend(extra)
    facts = []
    components = detail.get("components") or []
    if components:
        facts.append("Affects: " + escape(", ".join(str(c) for c in components)))
    if notice.url:
        facts.append(link(notice.url, "Details on the status page"))
    facts.append("Information from the vendor's status page; no action is asked of you.")
    blocks.append(bk.context(*facts))
    state = GONE_STATUS[notice.kind] if over and notice.kind in GONE_STATUS else notice.status
    fallback = f"{vendor} {notice.kind}: {notice.name} ({state.replace('_', ' ')})"
    return Reply(
        text=bk.truncate_text(escape(fallback)),
        blocks=bk.cap_blocks(blocks, "…"),
        ephemeral=False,
    )


def _window(detail: dict[str, Any]) -> Mrkdwn | None:
    start = parse_time(detail.get("scheduled_for"))
    end = parse_time(detail.get("scheduled_until"))
    if start is None:
        return None
    text = f"{start:%Y-%m-%d %H:%M}"
    if end is not None:
        text += f" to {end:%H:%M}" if end.date() == start.date() else f" to {end:%Y-%m-%d %H:%M}"
    return Mrkdwn(text + " UTC")
