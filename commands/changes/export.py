"""The change log as CSV, for auditors, spreadsheets and the wiki."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from commands.core.matching import Candidate, find
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
)
# What makes a spreadsheet read a cell as a formula (OWASP's list: tab and carriage return
# as well as = + - @). `=HYPERLINK(…)` in a summary must stay text when the file is opened.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 500


def _when(moment: datetime | None) -> str:
    """ISO 8601 in UTC, with `Z`: what spreadsheets and other tools parse without asking."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value: str | None) -> str:
    """A text cell, guarded against formula injection: one starting like a formula gets a
    leading `'`, which spreadsheets take as "this is text" and do not show."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


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
                _text(change.integration_id),
                _text(change.category),
                _when(change.happened_at),
                _when(change.logged_at),
                _text(change.author),
                _text(change.logged_by),
                _text(change.source),
                _text(change.summary),
                _text(change.permalink),
                _text(change.ticket_url),
                _when(change.edited_at),
                _when(change.deleted_at),
            )
        )
        written += 1
    return written
