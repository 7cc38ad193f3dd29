"""The change log as CSV, for auditors, spreadsheets and the wiki."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import TextIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from commands.core.matching import Candidate, find
from commands.core.spreadsheet import text_cell, time_cell
from storage.models import Change, Integration

HEADER = (
    "id",
    "integration",
    "category",
    "happened_at",
    "logged_at",
    "author",
    "logged_by",
    "source",
    "summary",
    "permalink",
    "ticket_url",
    "edited_at",
    "deleted_at",
    "freeze",
)
_BATCH = 500


def _integration_id(session: Session, name: str) -> str:
    """The id `name` means (any case; removed integrations too, for their history), or a
    ValueError that says which names were close."""
    every = session.scalars(select(Integration).order_by(Integration.id)).all()
    match, suggestions = find(name, [Candidate(i.id, i.name) for i in every])
    if match is not None:
        return match.id
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    raise ValueError(f"no integration called {name!r}{hint}")


def write_changes_csv(
    session: Session, out: TextIO, since: datetime | None, integration: str | None
) -> int:
    """Write the change log to `out` as CSV, oldest first; return how many rows (not
    counting the header).

    `since` (timezone-aware) keeps changes that happened at or after it; `integration` keeps
    one integration's (an id or a name, any case). An unknown integration raises ValueError
    before anything is written. Entries deleted in Slack are included, with their
    `deleted_at`: an export is the record, not the list people read.

    Times are ISO 8601 in UTC. The summary is written exactly as stored, quoted by the csv
    module, except for one guard against spreadsheet formula injection: any text cell that
    begins with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a single quote
    `'` in front, so a spreadsheet shows it as text instead of running it. A reader that
    wants the stored text back removes that one leading quote from such cells.

    Open `out` with `newline=""`, as the csv module asks, so that line breaks inside a
    summary survive.
    """
    conditions: list[ColumnElement[bool]] = []
    if integration is not None:
        conditions.append(Change.integration_id == _integration_id(session, integration))
    if since is not None:
        conditions.append(Change.happened_at >= since)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    rows = session.scalars(
        select(Change)
        .where(*conditions)
        .order_by(Change.happened_at, Change.id)
        # A log of years is read in batches, not loaded whole.
        .execution_options(yield_per=_BATCH)
    )
    written = 0
    for change in rows:
        writer.writerow(
            (
                change.id,
                text_cell(change.integration_id),
                text_cell(change.category),
                time_cell(change.happened_at),
                time_cell(change.logged_at),
                text_cell(change.author),
                text_cell(change.logged_by),
                text_cell(change.source),
                text_cell(change.summary),
                text_cell(change.permalink),
                text_cell(change.ticket_url),
                time_cell(change.edited_at),
                time_cell(change.deleted_at),
                text_cell(change.freeze),
            )
        )
        written += 1
    return written
