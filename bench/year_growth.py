"""A year unattended: does the database stop growing, and does the tick stay as fast?

    .venv/bin/python -m bench.year_growth [--days 365] [--scale 0.05] [--postgres URL]

The bot is built in-process (`bot.runtime.build_runtime`, local mode) over a generated
catalog of 500 integrations (bench/catalog_gen.py), each with a heartbeat that runs every
minute, with an injected clock moved one simulated day at a time. Each day:

- pings: 500 heartbeats × 1,440 a minute = 720,000 rows a day at full scale; `--scale`
  takes that share (0.05 by default: 36,000 a day), bulk-inserted into `heartbeat_pings`
  with the day's timestamps (10% POSTs with a 400-byte job log), then the heartbeats' rows
  set as the last ping of the day leaves them. That is what `/ping/<key>` stores, written
  in one statement per 20,000 rows instead of one HTTP request each, which a year of would
  take days here;
- hooks: `--hooks` generic hook requests (1.5 kB bodies) through `commands.alerts.ingest
  .receive`, the intake writer's own function, 50 per transaction: a few new alerts, repeats
  of the open ones, and resolves that keep about 50 open;
- messages: `--messages` plain messages queued with `commands.outbox.queue.queue_message`;
- sends: every pending outbox row marked sent, with one attempt row each, in bulk (what
  the worker's record step leaves; there is no Slack here);
- at the end of the day: the retention duty (`bot.workers.retention.Retention.run_once`, the
  duty's own code, without its pauses between batches: nothing else writes meanwhile), then
  `runtime.tick()` (heartbeats, escalations, silences, reviews, the weekly digest, …).

On the report days: the database's size (SQLite: the file after a WAL checkpoint, and the
pages in use; PostgreSQL: `pg_database_size`), the rows of each table, how long the day's
retention run took, and the tick's time (the day's first tick, and the median of three more
at the same moment: the cost of every tick after it).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, literal, select, text, update
from sqlalchemy.engine import make_url

from bench import harness
from bench.catalog_gen import build_catalog, save_catalog
from bench.monitors import Clock
from bot.runtime import Runtime, build_runtime
from bot.settings import load_settings
from bot.workers.retention import Retention
from commands.alerts.ingest import Received, receive
from commands.alerts.payloads import parse_generic
from commands.outbox.queue import queue_message
from storage.db import table_of, transaction
from storage.models import Heartbeat, HeartbeatPing, OutboxAttempt, OutboxMessage

BENCH = harness.Benchmark("year_growth", "year-growth-results")
START = datetime(2027, 1, 4, tzinfo=UTC)  # a Monday: the weekly digest is due that day
DAY = timedelta(days=1)
FULL_PINGS_PER_HEARTBEAT = 1440  # one a minute
CHUNK = 20_000
TABLES = (
    "heartbeat_pings",
    "received_events",
    "outbox",
    "outbox_attempts",
    "alerts",
    "alert_transitions",
    "review_nudges",
)


@dataclass
class Point:
    """What the database and the tick looked like at the end of one simulated day."""

    day: int
    size_mb: float
    used_mb: float
    rows: dict[str, int]
    retention_ms: float
    deleted: dict[str, int]
    first_tick_ms: float
    tick_ms: float


@dataclass
class Result(harness.Outcome):
    pings_per_day: int = 0
    points: list[Point] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Alerts:
    """The keys the simulated monitoring systems send, and which of them are open."""

    rng: random.Random
    integrations: list[str]
    open: list[tuple[str, str]] = field(default_factory=list)
    made: int = 0

    def day(self, hooks: int) -> list[tuple[str, str, str]]:
        """(integration, key, status) of the day's hook requests."""
        events: list[tuple[str, str, str]] = []
        for _ in range(max(0, len(self.open) - 45)):
            events.append((*self.open.pop(self.rng.randrange(len(self.open))), "resolved"))
        for _ in range(10):
            self.made += 1
            self.open.append((self.rng.choice(self.integrations), f"job-{self.made}"))
            events.append((*self.open[-1], "firing"))
        while len(events) < hooks:
            events.append((*self.rng.choice(self.open), "firing"))
        return events


def catalog(directory: Path, integrations: int, seed: int) -> Path:
    """catalog_gen's catalog, every integration with a heartbeat every minute, and nothing
    that would leave this machine (probes, status pages)."""
    data, _ = build_catalog(integrations, 40, seed)
    for system in data["systems"]:
        system.pop("status_page", None)
    for entry in data["integrations"]:
        entry.pop("probe", None)
        entry["heartbeat"] = {"key": f"hb-{entry['id']}", "every": "1m", "grace": "10m"}
    path = directory / "catalog.yml"
    save_catalog(data, path, "bench/year_growth.py")
    return path


def insert_pings(runtime: Runtime, day: datetime, heartbeats: list[str], per_day: int) -> None:
    """The day's pings, spread evenly over it, in statements of CHUNK rows."""
    step = DAY / per_day
    log = "job log line\n" * 30  # ~400 bytes
    rows = (
        {
            "integration_id": heartbeats[n % len(heartbeats)],
            "at": day + step * n,
            "kind": "success",
            "method": "POST" if n % 10 == 0 else "GET",
            "user_agent": "curl/8.5.0",
            "remote_addr": "10.20.30.40",
            "body": log if n % 10 == 0 else None,
        }
        for n in range(per_day)
    )
    table = table_of(HeartbeatPing)
    while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
        with transaction(runtime.deps.sessions) as session:
            session.execute(insert(table), chunk)
    end = day + DAY - timedelta(seconds=30)
    with transaction(runtime.deps.sessions) as session:
        session.execute(
            update(Heartbeat).values(
                status="up",
                last_ping_at=end,
                expected_at=end + timedelta(minutes=1),
                due_at=end + timedelta(minutes=11),
            )
        )


def send_hooks(runtime: Runtime, day: datetime, alerts: Alerts, hooks: int) -> None:
    events = alerts.day(hooks)
    padding = "x" * 1200  # with the rest, ~1.5 kB: an Alertmanager body is often more
    step = DAY / (len(events) + 1)
    for start in range(0, len(events), 50):
        requests = []
        for integration, key, status in events[start : start + 50]:
            body = json.dumps(
                {
                    "integration": integration,
                    "key": key,
                    "status": status,
                    "summary": f"{key} failed",
                    "details": padding,
                }
            ).encode()
            requests.append(Received("generic", body, parse_generic(body)))
        with transaction(runtime.deps.sessions) as session:
            receive(session, requests, day + step * (start + 1), None)


def queue_messages(runtime: Runtime, day: datetime, channels: list[str], count: int) -> None:
    with transaction(runtime.deps.sessions) as session:
        for n in range(count):
            text_ = f"Change logged: batch size of job {n} raised to 500"
            queue_message(session, channel=channels[n % len(channels)], now=day, text=text_)


def mark_sent(runtime: Runtime, at: datetime) -> None:
    """What the worker's record step leaves for every row it sent: status, ts, an attempt;
    and on each alert whose post it was, the message's ts."""
    m = OutboxMessage
    with transaction(runtime.deps.sessions) as session:
        attempt = OutboxAttempt.__table__.c
        pending = select(m.id, literal(at, attempt.at.type), literal(True), literal("bench")).where(
            m.status == "pending"
        )
        session.execute(
            insert(OutboxAttempt).from_select(["message_id", "at", "ok", "worker"], pending)
        )
        session.execute(
            update(m)
            .where(m.status == "pending")
            .values(status="sent", sent_at=at, result_ts="1800000000.000100", attempts=1)
        )
        session.execute(
            text(
                "UPDATE alerts SET message_ts = '1800000000.000100' "
                "WHERE message_ts IS NULL AND channel IS NOT NULL"
            )
        )


# -- measuring -------------------------------------------------------------------------------


def sizes(runtime: Runtime) -> tuple[float, float]:
    """The database's size and the part of it in use, in MB: SQLite's file once the WAL is
    folded in, and its pages less the free ones (what a VACUUM would leave); PostgreSQL's
    pg_database_size, and the tables with their indexes."""
    with runtime.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            page = int(conn.exec_driver_sql("PRAGMA page_size").scalar() or 0)
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            database = make_url(str(runtime.engine.url)).database
            size = Path(database or "").stat().st_size
            return size / harness.MB, (pages - free) * page / harness.MB
        size = harness.scalar_int(conn, "SELECT pg_database_size(current_database())")
        used = harness.scalar_int(
            conn,
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public'",
        )
        return size / harness.MB, used / harness.MB


def row_counts(runtime: Runtime) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {t: harness.scalar_int(conn, f"SELECT count(*) FROM {t}") for t in TABLES}


def timed_ms(call: object) -> float:
    assert callable(call)
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def end_of_day(runtime: Runtime, retention: Retention, day: int, report: bool) -> Point | None:
    started = time.perf_counter()
    deleted = retention.run_once() or Counter()
    retention_ms = (time.perf_counter() - started) * 1000
    first_tick_ms = timed_ms(runtime.tick)
    if not report:
        return None
    steady = statistics.median(timed_ms(runtime.tick) for _ in range(3))
    size, used = sizes(runtime)
    return Point(
        day=day,
        size_mb=size,
        used_mb=used,
        rows=row_counts(runtime),
        retention_ms=retention_ms,
        deleted=dict(deleted),
        first_tick_ms=first_tick_ms,
        tick_ms=steady,
    )


# -- the year --------------------------------------------------------------------------------


def database_url(args: argparse.Namespace, workdir: Path) -> str:
    if args.postgres is None:
        return f"sqlite:///{workdir / 'year.db'}"
    # Its own database, dropped and created afresh; connected to through `postgres`.
    admin = make_url(args.postgres).set(database="postgres")
    harness.recreate_postgres_database(admin.render_as_string(False), args.postgres)
    return str(args.postgres)


def run_year(args: argparse.Namespace, workdir: Path) -> Result:
    url = database_url(args, workdir)
    kind = "postgresql" if args.postgres else "sqlite"
    result = Result(database=kind, database_version=harness.database_version(url))
    result.pings_per_day = round(args.heartbeats * FULL_PINGS_PER_HEARTBEAT * args.scale)
    path = catalog(workdir, args.heartbeats, args.seed)
    settings = load_settings(
        {"DATABASE_URL": url, "INTEG_CATALOG": str(path), "INTEG_DIGEST_CHANNEL": "C0DIGEST1"}
    )
    clock = Clock(START)
    runtime = build_runtime(settings, clock=clock, lease_clock=clock.database)
    started = time.monotonic()
    try:
        with runtime.engine.connect() as conn:
            heartbeats = [r for (r,) in conn.execute(select(Heartbeat.integration_id))]
            channels = [
                r for (r,) in conn.execute(text("SELECT DISTINCT channel FROM integrations"))
            ]
        retention = Retention(
            runtime.deps.sessions, clock, Retention.from_deps(runtime.deps).policy, pause=False
        )
        alerts = Alerts(random.Random(args.seed), heartbeats)
        report = {int(d) for d in args.report_days.split(",")}
        for n in range(args.days):
            day = START + n * DAY
            clock.now = day
            insert_pings(runtime, day, heartbeats, result.pings_per_day)
            send_hooks(runtime, day, alerts, args.hooks)
            queue_messages(runtime, day, channels, args.messages)
            mark_sent(runtime, day + DAY - timedelta(minutes=1))
            clock.now = day + DAY
            point = end_of_day(runtime, retention, n + 1, n + 1 in report or n + 1 == args.days)
            if point is not None:
                result.points.append(point)
                print(f"[{kind}] day {n + 1}: {point.size_mb:,.1f} MB, tick {point.tick_ms:.1f} ms")
    finally:
        runtime.close()
    result.seconds = time.monotonic() - started
    return result


# -- reporting and the command line ---------------------------------------------------------

HEADERS = (
    "day|database MB|in use MB|pings|hook bodies|outbox|attempts|alerts|transitions|"
    "retention ms|first tick ms|tick ms|database"
).split("|")


def row(result: Result, p: Point) -> list[str]:
    counts = [f"{p.rows[table]:,}" for table in TABLES[:-1]]  # review nudges: raw JSON only
    return [
        str(p.day),
        f"{p.size_mb:,.1f}",
        f"{p.used_mb:,.1f}",
        *counts,
        harness.ms(p.retention_ms, grouped=True),
        harness.ms(p.first_tick_ms),
        harness.ms(p.tick_ms),
        result.database_version,
    ]


def notes(result: Result, args: argparse.Namespace) -> list[str]:
    lines = [
        f"- Load per simulated day: {result.pings_per_day:,} pings ({args.heartbeats} "
        f"heartbeats once a minute × scale {args.scale:g}; full scale is "
        f"{args.heartbeats * FULL_PINGS_PER_HEARTBEAT:,}), {args.hooks} hook requests, "
        f"{args.messages} plain messages, plus what the tick queues (escalations, review "
        f"nudges and reminders, the weekly digest). Retention: 30 days of each (the defaults)."
    ]
    points = {p.day: p for p in result.points}
    middle, last = points.get(180), result.points[-1] if result.points else None
    if middle is not None and last is not None and last.day > middle.day:
        size = (last.used_mb / middle.used_mb - 1) * 100 if middle.used_mb else 0.0
        tick = (last.tick_ms / middle.tick_ms - 1) * 100 if middle.tick_ms else 0.0
        lines.append(
            f"- From day 180 to day {last.day}: data in use {size:+.0f}%, tick {tick:+.0f}%; "
            f"the pruned tables hold the last 30 days, what still grows is history (alerts, "
            f"transitions, review nudges and the outbox rows they keep)."
        )
    if last is not None and last.rows["heartbeat_pings"]:
        # An upper bound per ping: everything else in the database is counted in too.
        per_ping = last.used_mb * harness.MB / last.rows["heartbeat_pings"]
        window = args.heartbeats * FULL_PINGS_PER_HEARTBEAT * 30
        lines.append(
            f"- At most {per_ping:,.0f} bytes in use per ping kept (the whole database over "
            f"the pings). At full scale the window holds {window:,} pings: about "
            f"{per_ping * window / 1e9:,.1f} GB. INTEG_RETAIN_PINGS_DAYS is the lever. "
            f"Without retention this run's pings alone would have reached "
            f"{result.pings_per_day * last.day:,} rows, about "
            f"{per_ping * result.pings_per_day * last.day / 1e9:,.1f} GB."
        )
    lines.append(f"- Simulated in {result.seconds:,.0f} s.")
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.year_growth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--days", type=harness.int_range(1, 3650), default=365)
    p.add_argument("--heartbeats", type=harness.int_range(1, 5000), default=500)
    p.add_argument(
        "--scale",
        type=float,
        default=0.05,
        help="share of the full 1,440 pings per heartbeat a day that are inserted (0 < s ≤ 1)",
    )
    p.add_argument("--hooks", type=harness.int_range(10), default=200, help="hook requests a day")
    p.add_argument("--messages", type=harness.int_range(0), default=100, help="messages a day")
    p.add_argument("--report-days", default="1,30,60,180,365", help="days measured")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="run on this PostgreSQL database instead of a SQLite file; it is dropped and "
        "created afresh",
    )
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not 0 < args.scale <= 1:
        p.error("--scale must be more than 0 and at most 1")
    load = harness.load_before_start()
    with tempfile.TemporaryDirectory(prefix="integ-bench-year-") as tmp:
        result = run_year(args, Path(tmp))
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: a year unattended",
        tables=[("", HEADERS, [row(result, point) for point in result.points])],
        notes=notes(result, args),
        raw={"result": asdict(result)},
        readme=not args.no_readme,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
