"""Cells of the CSV exports: times every tool parses, text no spreadsheet runs."""

from __future__ import annotations

from datetime import UTC, datetime

# What makes a spreadsheet read a cell as a formula (OWASP's list: tab and carriage return
# as well as = + - @). `=HYPERLINK(…)` in a summary must stay text when the file is opened.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def time_cell(moment: datetime | None) -> str:
    """ISO 8601 in UTC, with `Z`: what spreadsheets and other tools parse without asking."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def text_cell(value: str | None) -> str:
    """A text cell, guarded against formula injection: one starting like a formula gets a
    leading `'`, which spreadsheets take as "this is text" and do not show."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value
