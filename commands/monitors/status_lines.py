"""One line per monitor of an integration, for `/integ status` and `/integ heartbeat`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec
from commands.core.durations import format_duration
from commands.core.render.mrkdwn import escape
from commands.monitors.heartbeats import Schedule
from commands.monitors.vendor_status import vendor_states
from storage.models import HeartbeatStatus, Integration

HEARTBEAT_WORDS = {
    HeartbeatStatus.NEW.value: ":hourglass: waiting for its first ping",
    HeartbeatStatus.UP.value: ":large_green_circle: up",
    HeartbeatStatus.RUNNING.value: ":arrows_counterclockwise: running",
    HeartbeatStatus.DOWN.value: ":red_circle: *down*",
}
_INDICATOR_WORDS = {
    "none": ":large_green_circle: all systems operational",
    "minor": ":large_yellow_circle: minor incident",
    "major": ":large_orange_circle: major incident",
    "critical": ":red_circle: critical incident",
}


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    delta = now - moment
    if delta.total_seconds() < 0:
        return f"in {format_duration(-delta)}"
    return f"{format_duration(delta)} ago" if delta.total_seconds() >= 1 else "just now"


def heartbeat_line(integ: Integration, row: RowMapping, now: datetime) -> str | None:
    status, due_at = row["hb_status"], row["due_at"]
    schedule = Schedule.of(integration_spec(integ))
    if status is None or schedule is None:
        return None
    line = f"*Heartbeat:* {HEARTBEAT_WORDS.get(status, status)}"
    line += f"; last success {ago(row['last_ping_at'], now)}"
    if due_at is not None:
        line += f"; next deadline {schedule.local(due_at)}"
    return line


def probe_line(row: RowMapping, now: datetime) -> str | None:
    if row["probe_id"] is None:
        return None
    checked_at, failures, latency_ms = (
        row["last_checked_at"],
        row["failures"],
        row["last_latency_ms"],
    )
    if checked_at is None:
        return "*Probe:* :hourglass: not checked yet"
    if failures:
        error = escape((row["last_error"] or "failed")[:200])
        return f"*Probe:* :red_circle: failing ({failures}× in a row): {error}"
    latency = f" in {latency_ms:.0f} ms" if latency_ms is not None else ""
    return f"*Probe:* :large_green_circle: OK{latency}, checked {ago(checked_at, now)}"


def vendor_lines(session: Session, integ: Integration) -> list[str]:
    lines = []
    for state in vendor_states(session, list(dict.fromkeys((integ.source_id, integ.target_id)))):
        name = f"*{escape(state.system_id)} status page:*"
        if state.last_polled_at is None:
            lines.append(f"{name} :hourglass: not polled yet")
            continue
        words = _INDICATOR_WORDS.get(state.indicator or "", escape(state.indicator or "unknown"))
        line = f"{name} {words}"
        for notice in state.open_notices[:3]:
            shown = escape(notice.name[:150])
            line += f"\n• {escape(notice.kind)}: {shown} ({escape(notice.status)})"
        if state.last_error:
            line += f"\n_last poll failed: {escape(state.last_error[:150])}_"
        lines.append(line)
    return lines


def monitor_lines(
    session: Session, integ: Integration, now: datetime, monitors: RowMapping, watched_pages: int
) -> list[str]:
    """Its heartbeat, probe and status pages; `monitors` and `watched_pages` as read with its
    state (storage.queries.integration_summary), so only watched pages cost a query more."""
    lines = [heartbeat_line(integ, monitors, now), probe_line(monitors, now)]
    vendor = vendor_lines(session, integ) if watched_pages else []
    return [line for line in lines if line] + vendor
