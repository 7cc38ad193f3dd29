"""`/integ heartbeat i`: a heartbeat's state and its ping URL, shown only to who asked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from commands.catalog.lookups import resolve_integration
from commands.catalog.views import integration_spec
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape
from commands.core.replies import Invocation, Reply
from commands.monitors.heartbeats import Schedule
from commands.monitors.status_lines import HEARTBEAT_WORDS, ago
from commands.permissions.check import permit
from commands.permissions.rules import Action
from storage.models import Heartbeat


def heartbeat_reply(session: Session, inv: Invocation, name: str) -> Reply:
    resolved = resolve_integration(session, inv, name, "heartbeat")
    if isinstance(resolved, Reply):
        return resolved
    integ = resolved
    # The URL holds a secret that lets its bearer report the job healthy.
    refusal = permit(session, inv.actor, Action.HEARTBEAT, integ, inv.now, "heartbeat key")
    if refusal is not None:
        return Reply(text=refusal.message, blocks=[bk.section(refusal.message)])
    row = session.get(Heartbeat, integ.id)
    schedule = Schedule.of(integration_spec(integ))
    if row is None or schedule is None:
        text = (
            f"*{escape(integ.name)}* (`{integ.id}`) has no heartbeat. Add "
            '`heartbeat: {key: …, cron: "0 2 * * *", grace: 1h}` to its catalog entry.'
        )
        return Reply(text=text, blocks=[bk.section(text)])
    url = f"{inv.public_url.rstrip('/')}/ping/{row.key}" if inv.public_url else f"/ping/{row.key}"
    lines = [
        f"*Heartbeat of {escape(integ.name)}* (`{integ.id}`): "
        f"{HEARTBEAT_WORDS.get(row.status, row.status)}",
        f"*Schedule:* {escape(schedule.describe())}",
        f"*Last success:* {_when(row.last_ping_at, schedule, now=inv.now)}",
        f"*Last start:* {_when(row.last_start_at, schedule, now=inv.now)}",
        f"*Last failure:* {_when(row.last_fail_at, schedule, now=inv.now)}",
    ]
    if row.expected_at is not None and row.due_at is not None:
        lines.append(
            f"*Next run expected:* {schedule.local(row.expected_at)}; "
            f"an alert if nothing by {schedule.local(row.due_at)}"
        )
    # Only ever shown to the person who asked: a URL posted in a channel is fetched by
    # Slack's link expander, and although those fetches are ignored, the URL is a secret
    # that lets anyone report the job as healthy.
    lines.append(
        f"*Ping URL:* `{url}` (add `/start` when a run begins, `/fail` when it fails; POST a "
        "log of up to 100 kB)"
    )
    lines.append(f"*Key last changed:* {_when(row.key_changed_at, schedule, now=inv.now)}")
    if not inv.public_url:
        lines.append("_Set INTEG_PUBLIC_URL on the bot to see the full URL here._")
    text = "\n".join(lines)
    return Reply(text=text, blocks=[bk.section(text)], ephemeral=True)


def _when(moment: datetime | None, schedule: Schedule, *, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{schedule.local(moment)} ({ago(moment, now)})"
