"""`integ-bot export changes` and `integ-bot export kb`: the change log as CSV and the
knowledge base as Markdown, read from the database after the catalog is loaded into it."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

from bot import graphviz
from bot.runtime import build_runtime
from bot.settings import Settings
from commands.change_export import write_changes_csv
from commands.kb_export import write_kb


class ExportError(Exception):
    """The export cannot be made; the message is one line for the operator."""


def export_changes(
    settings: Settings, output: Path | None, since: date | None, integration: str | None
) -> int:
    """Write the CSV to `output` (stdout when None); how many entries."""
    runtime = build_runtime(settings)
    try:
        start = datetime.combine(since, time(), tzinfo=UTC) if since is not None else None
        with runtime.deps.sessions() as session:
            # Checked before the file is opened, so a typo leaves no empty file behind.
            try:
                if output is None:
                    return write_changes_csv(session, sys.stdout, start, integration)
                partial = output.with_name(output.name + ".partial")
                with partial.open("w", encoding="utf-8", newline="") as out:
                    count = write_changes_csv(session, out, start, integration)
                partial.replace(output)  # a reader never sees half a file
                return count
            except ValueError as exc:
                if output is not None:
                    output.with_name(output.name + ".partial").unlink(missing_ok=True)
                raise ExportError(str(exc)) from None
    finally:
        runtime.close()


def export_kb(settings: Settings, directory: Path) -> list[Path]:
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    runtime = build_runtime(settings)
    try:
        with runtime.deps.sessions() as session:
            return write_kb(
                session, directory, runtime.deps.clock(), graphviz.render_png_if_installed
            )
    finally:
        runtime.close()
