"""The audit trail: recording, `/integ audit i`, and the CSV export."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import TextIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, mention
from commands.core.replies import Reply
from commands.core.spreadsheet import text_cell, time_cell
from commands.permissions.people import Actor
from commands.permissions.rules import Action
from storage.db import table_of
from storage.models import AuditEntry, Integration

SHOWN = 20
DETAIL_LIMIT = 500
CSV_COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "allowed",
    "integration",
    "subject",
    "surface",
    "channel",
    "detail",
)
_INSERT = insert(table_of(AuditEntry))


def record(
    session: Session,
    actor: Actor,
    action: Action,
    integration_id: str | None,
    subject: str | None,
    now: datetime,
    *,
    allowed: bool = True,
    detail: str | None = None,
) -> None:
    """One audit row, in the transaction of what it records (or refuses)."""
    session.connection().execute(
        _INSERT,
        {
            "at": now,
            "actor": actor.user_id[:64],
            "action": action.value,
            "integration_id": integration_id,
            "subject": subject[:200] if subject else None,
            "allowed": allowed,
            "surface": actor.surface.value,
            "channel_id": actor.channel_id,
            "detail": detail[:DETAIL_LIMIT] if detail else None,
        },
    )


def recent(session: Session, integration_id: str, limit: int = SHOWN) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.integration_id == integration_id)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
    )


def audit_lines(integ: Integration, entries: list[AuditEntry]) -> Reply:
    title = f"*Audit trail of {escape(integ.name)}* (`{integ.id}`), newest first"
    if not entries:
        text = f"{title}: nothing recorded yet."
        return Reply(text=text, blocks=[bk.section(text)])
    lines = [_line(entry) for entry in entries]
    blocks = [bk.section(title), *bk.sections_for_lines(lines)]
    if len(entries) >= SHOWN:
        blocks.append(bk.context(f"The last {SHOWN}; `integ-bot export audit` writes them all."))
    return Reply(text=f"{title}: {len(entries)}", blocks=bk.cap_blocks(blocks, "More not shown."))


def _line(entry: AuditEntry) -> str:
    mark = ":white_check_mark:" if entry.allowed else ":no_entry:"
    where = f" in <#{entry.channel_id}>" if entry.channel_id else ""
    subject = f" {escape(entry.subject)}" if entry.subject else ""
    detail = f": {escape(entry.detail)}" if entry.detail else ""
    return (
        f"{mark} {entry.at:%Y-%m-%d %H:%M} {mention(entry.actor)} *{escape(entry.action)}*"
        f"{subject} ({escape(entry.surface)}{where}){detail}"
    )


def write_audit_csv(
    session: Session, out: TextIO, since: datetime | None, integration_id: str | None
) -> int:
    """Every audit row, oldest first; the number written."""
    query = select(AuditEntry).order_by(AuditEntry.at, AuditEntry.id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if integration_id is not None:
        query = query.where(AuditEntry.integration_id == integration_id)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in session.scalars(query.execution_options(yield_per=500)):
        writer.writerow(
            [
                entry.id,
                time_cell(entry.at),
                entry.actor,
                entry.action,
                "yes" if entry.allowed else "no",
                entry.integration_id or "",
                text_cell(entry.subject),
                entry.surface,
                entry.channel_id or "",
                text_cell(entry.detail),
            ]
        )
        count += 1
    return count
