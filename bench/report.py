"""The reliability report over a year of a large campus's history.

    .venv/bin/python -m bench.report [--db sqlite|postgresql|both] [--repeats 5]

For each database: a 1,000-integration catalog over 40 systems, 100,000 alerts spread over
the last year with their transitions (bench/seed.py), and 600 vendor incidents on the
systems' status pages; then `commands.reports.figures.compute` over the year, over the last
30 days, and the CSV export over the year, each run `--repeats` times in this process, as
`/integ report`, the monthly post and `integ-bot export report` run them. The target is a
year's report in under 2 s on both databases.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench import harness, seed
from bench.catalog_gen import write_catalog
from commands.reports.export import write_report_csv
from commands.reports.figures import compute
from commands.reports.periods import Period
from storage.db import make_engine, make_session_factory
from storage.models import System, VendorNotice

BENCH = harness.Benchmark("report", "report-results")
TARGET_SECONDS = 2.0
INCIDENTS = 600


@dataclass
class Result(harness.Outcome):
    alerts: int = 0
    transitions: int = 0
    year_seconds: list[float] = field(default_factory=list)
    month_seconds: list[float] = field(default_factory=list)
    csv_seconds: list[float] = field(default_factory=list)
    csv_rows: int = 0
    year_opened: int = 0
    seed_seconds: float = 0.0

    @property
    def meets_target(self) -> bool:
        return bool(self.year_seconds) and max(self.year_seconds) < TARGET_SECONDS


def add_incidents(url: str, now: datetime, rng: random.Random) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            systems = list(conn.execute(select(System.id)).scalars())
            rows = []
            for n in range(INCIDENTS):
                start = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                rows.append(
                    {
                        "system_id": rng.choice(systems),
                        "notice_id": f"bench-{n}",
                        "kind": "incident",
                        "name": "Degraded performance",
                        "status": "resolved",
                        "first_seen_at": start,
                        "resolved_at": start + timedelta(seconds=rng.uniform(600, 8 * 3600)),
                        "detail": {},
                    }
                )
            conn.execute(insert(VendorNotice.__table__), rows)
    finally:
        engine.dispose()


def timed(run: object, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
    return seconds


def bench_database(kind: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(database=kind)
    url = harness.fresh_database(kind, workdir, args, "integ")
    catalog = write_catalog(workdir, args.integrations, args.systems, args.seed)
    print(f"[{kind}] filling {url}: {args.integrations} integrations, {args.alerts} alerts…")
    stats = seed.prepare(url, catalog.path, args.alerts, args.seed)
    now = datetime.now(UTC)
    add_incidents(url, now, random.Random(args.seed))
    result.alerts, result.transitions = stats.alerts, stats.transitions
    result.seed_seconds = round(stats.seconds, 1)
    result.database_version = harness.database_version(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    year = Period(now - timedelta(days=365), now, "the last 365 days")
    month = Period(now - timedelta(days=30), now, "the last 30 days")
    try:
        print(f"[{kind}] the year's report, {args.repeats} times…")
        with sessions() as session:
            result.year_opened = sum(f.opened for f in compute(session, year).integrations.values())
            result.year_seconds = timed(lambda: compute(session, year), args.repeats)
            result.month_seconds = timed(lambda: compute(session, month), args.repeats)

            def export() -> None:
                result.csv_rows = write_report_csv(session, io.StringIO(), year)

            result.csv_seconds = timed(export, args.repeats)
    finally:
        engine.dispose()
    return result


HEADERS = [
    "database",
    "alerts",
    "transitions",
    "year: median s",
    "year: max s",
    "target",
    "30 days: median s",
    "CSV of the year: median s",
    "CSV rows",
]


def rows(results: list[Result]) -> list[list[str]]:
    table = []
    for r in results:
        if r.skipped:
            table.append([r.database, "", "", "", "", f"skipped: {r.skipped}", "", "", ""])
            continue
        table.append(
            [
                r.database_version,
                f"{r.alerts:,}",
                f"{r.transitions:,}",
                f"{statistics.median(r.year_seconds):.2f}",
                f"{max(r.year_seconds):.2f}",
                ("meets" if r.meets_target else "misses") + f" (< {TARGET_SECONDS:g} s)",
                f"{statistics.median(r.month_seconds):.2f}",
                f"{statistics.median(r.csv_seconds):.2f}",
                f"{r.csv_rows:,}",
            ]
        )
    return table


def notes(results: list[Result], reference_ms: float) -> list[str]:
    lines = [
        f"- {r.database}: {r.year_opened:,} alerts opened in the year; database filled in "
        f"{r.seed_seconds} s."
        for r in results
        if not r.skipped
    ]
    lines += harness.skipped_notes(results)
    lines.append(
        f"- Reference loop {reference_ms:.0f} ms before the runs (this machine kind's quiet "
        "figure is about 12 ms: see the first benchmark's How to read it)."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(BENCH, __doc__)
    p.add_argument("--repeats", type=harness.int_range(1), default=5)
    p.add_argument("--integrations", type=int, default=1000)
    p.add_argument("--systems", type=int, default=40)
    p.add_argument("--alerts", type=int, default=100_000)
    harness.add_database_options(p)
    args = p.parse_args(argv)
    load = harness.load_before_start()
    reference_ms = harness.reference_loop()
    results: list[Result] = []
    harness.run_each(BENCH, args, ["report"], {"report": (bench_database, results, Result)})
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: reliability report",
        tables=[("", HEADERS, rows(results))],
        notes=notes(results, reference_ms),
        raw={"target_seconds": TARGET_SECONDS, "results": [asdict(r) for r in results]},
        command_note=(
            f"{args.integrations:,} integrations over {args.systems} systems, "
            f"{args.alerts:,} alerts over a year, {INCIDENTS} vendor incidents; each figure "
            f"{args.repeats} runs in one process."
        ),
        readme=not args.no_readme,
    )
    ran = [r for r in results if not r.skipped]
    return 0 if all(r.meets_target for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
