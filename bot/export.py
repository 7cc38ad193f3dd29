"""`integ-bot export changes`, `audit`, `report` and `kb`: the change log, the audit trail
and the reliability report as CSV and the knowledge base as Markdown, read from the database
the bot keeps.

An export only reads. It neither migrates the database nor loads a catalog into it: run
against production from another directory, a catalog found there (or the bundled example)
would otherwise mark every real integration removed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import graphviz
from bot.deps import utcnow
from bot.settings import Settings
from commands.catalog.knowledge_base import write_kb
from commands.changes.export import _integration_id as integration_id
from commands.changes.export import write_changes_csv
from commands.permissions.audit import write_audit_csv
from commands.reports.export import write_report_csv
from commands.reports.periods import PeriodInvalid, parse_period
from storage.db import make_engine, make_session_factory
from storage.migrate import is_current


class ExportError(Exception):
    """The export cannot be made; the message is one line for the operator."""


def export_changes(
    settings: Settings, output: Path | None, since: date | None, integration: str | None
) -> int:
    """Write the CSV to `output` (stdout when None); how many entries. `since` is a day,
    from its midnight UTC."""
    start = _midnight(since)
    with _reading(settings) as session:
        return _write_csv(output, lambda out: write_changes_csv(session, out, start, integration))


def export_audit(
    settings: Settings, output: Path | None, since: date | None, integration: str | None
) -> int:
    """The audit trail as CSV to `output` (stdout when None), oldest first; how many rows.
    `since` is a day, from its midnight UTC; `integration` an id or a name, any case."""
    start = _midnight(since)
    with _reading(settings) as session:

        def write(out: TextIO) -> int:
            # Resolved before the header is written: an unknown name leaves no output.
            wanted = integration_id(session, integration) if integration is not None else None
            return write_audit_csv(session, out, start, wanted)

        return _write_csv(output, write)


def export_report(settings: Settings, output: Path | None, period: str) -> int:
    """The reliability report over `period` (`30d`, `90d`, `month`) as CSV to `output`
    (stdout when None); how many rows."""
    try:
        chosen = parse_period(period, utcnow())
    except PeriodInvalid as exc:
        raise ExportError(str(exc).replace("`", "")) from None
    with _reading(settings) as session:
        return _write_csv(output, lambda out: write_report_csv(session, out, chosen))


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day is not None else None


def _write_csv(output: Path | None, write: Callable[[TextIO], int]) -> int:
    """`write` to stdout, or to `output` through a `.partial` file renamed when complete.
    A ValueError from `write` (an unknown integration, raised before a row is written)
    becomes an ExportError, and no file is left behind."""
    try:
        if output is None:
            return write(sys.stdout)
        partial = output.with_name(output.name + ".partial")
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = write(out)
        partial.replace(output)  # a reader never sees half a file
        return count
    except ValueError as exc:
        if output is not None:
            output.with_name(output.name + ".partial").unlink(missing_ok=True)
        raise ExportError(str(exc)) from None


def export_kb(settings: Settings, directory: Path) -> list[Path]:
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    with _reading(settings) as session:
        try:
            return write_kb(session, directory, utcnow(), graphviz.render_png_if_installed)
        except graphviz.GraphvizError as exc:
            raise ExportError(f"the diagram could not be drawn: {exc}") from None


@contextmanager
def _reading(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        try:
            current = is_current(engine)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ExportError(f"cannot read {where}: {reason}") from None
        if not current:
            raise ExportError(
                f"{where} is not at the current schema; `integ-bot db upgrade` (or starting "
                "the bot) brings it there"
            )
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
