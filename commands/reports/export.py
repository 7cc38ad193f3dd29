"""The reliability report as CSV: a row per integration, then a row per system."""

from __future__ import annotations

import csv
from datetime import timedelta
from typing import TextIO

from sqlalchemy.orm import Session

from commands.core.spreadsheet import text_cell, time_cell
from commands.reports.figures import Figures, compute
from commands.reports.periods import Period

HEADER = (
    "kind",
    "id",
    "period_start",
    "period_end",
    "alerts_opened",
    "acknowledged",
    "resolved",
    "mtta_seconds",
    "mttr_seconds",
    "failing_seconds",
    "availability",
    "vendor_failing_seconds",
    "vendor_share",
    "root_causes",
    "heartbeat_runs_reported",
    "heartbeat_runs_alerted",
    "probe_availability",
)


def write_report_csv(session: Session, out: TextIO, period: Period) -> int:
    """Write the report over `period` to `out`; how many rows (not counting the header).
    Durations are whole seconds, shares fractions to six places, and an empty cell means
    there was nothing to average (no alert acknowledged, say). Open `out` with
    `newline=""`, as the csv module asks."""
    report = compute(session, period)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    rows = 0
    for kind, figures in (("integration", report.integrations), ("system", report.systems)):
        for ident in sorted(figures):
            writer.writerow(_row(kind, figures[ident], period))
            rows += 1
    return rows


def _row(kind: str, f: Figures, period: Period) -> list[str]:
    causes = "; ".join(f"{cause}={n}" for cause, n in sorted(f.root_causes.items()))
    return [
        kind,
        text_cell(f.name),
        time_cell(period.start),
        time_cell(period.end),
        str(f.opened),
        str(f.acknowledged),
        str(f.resolved),
        _seconds(f.mtta),
        _seconds(f.mttr),
        _seconds(f.failing),
        f"{f.availability:.6f}",
        _seconds(f.vendor_failing),
        f"{f.vendor_share:.6f}" if f.vendor_share is not None else "",
        text_cell(causes),
        "" if f.runs_reported is None else str(f.runs_reported),
        "" if f.runs_reported is None else str(f.runs_alerted),
        "" if f.probe_availability is None else f"{f.probe_availability:.6f}",
    ]


def _seconds(value: timedelta | None) -> str:
    return str(round(value.total_seconds())) if value is not None else ""
