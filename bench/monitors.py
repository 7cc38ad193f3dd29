"""Monitors: heartbeat pings answered over HTTP, and what a tick costs.

    .venv/bin/python -m bench.monitors [--db sqlite|postgresql|both] [--scenarios ...]

Two scenarios, each on a fresh database (a new SQLite file; PostgreSQL `integ_bench_monitors`
dropped and re-created):

1. pings: a real `integ-bot serve` process with a generated catalog of 200 integrations, each
   with a heartbeat; 20 concurrent senders (a closed loop) send `GET /ping/<key>` (mostly),
   `POST /ping/<key>` with a short job log, and `/ping/<key>/start`. Pings answered 200 per
   second, p50/p99/max, server CPU per ping, and once the server is stopped the count of
   `heartbeat_pings` rows, which must equal the 200s.
2. tick: in-process, the runtime built over a catalog of 1,000 integrations with heartbeats
   and 200 with HTTP probes, an injected clock moved past every heartbeat's deadline, then
   `runtime.tick()` timed (it raises a missed-run alert per heartbeat), a second tick with
   nothing due, `ProbeRunner.run_due()` with all 200 probes due against a local HTTP
   server (most answer 200 at once, some 503, some slowly within the timeout), and last a
   third busy tick while a job pings every 20 ms: how long a ping waits behind a tick.

Writes the figures to bench/README.md (between its own markers) and bench/results/*.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import multiprocessing
import pstats
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench import harness
from bench.catalog_gen import build_catalog, save_catalog
from bench.harness import quantile
from bench.loopback_http import Request, answered_with, error_counts, latencies_ms
from bot.runtime import Runtime, build_runtime
from bot.settings import load_settings
from bot.workers.probes import ProbeRunner
from commands.monitors import ping_batches
from storage.db import transaction
from storage.models import Heartbeat
from tests.helpers.fake_slack import FakeSlack

BENCH = harness.Benchmark("monitors", "monitors-results")
SCENARIOS = ("pings", "tick")

# The clock the tick scenario starts from: a Thursday morning, so the nightly runs of every
# time zone in the catalog fall due within the next day.
START = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
# How the heartbeats of the tick's catalog are scheduled when catalog_gen gave an integration
# none, or one that runs weekly or monthly: the deadline of every one then falls within about
# a day of START, so moving the clock past all of them is a night's batch window gone
# unreported, not a month of catch-up.
_HEARTBEATS: list[tuple[dict[str, str], int]] = [
    ({"cron": "0 2 * * *", "grace": "1h"}, 30),
    ({"cron": "30 1 * * *", "grace": "30m"}, 15),
    ({"cron": "15 3 * * *", "grace": "1h"}, 15),
    ({"cron": "45 23 * * *", "grace": "2h"}, 10),
    ({"cron": "0 */4 * * *", "grace": "30m"}, 10),
    ({"every": "1d", "grace": "2h"}, 10),
    ({"every": "1h", "grace": "15m"}, 5),
    ({"cron": "*/15 * * * *", "grace": "10m"}, 5),
]
# What the probed server answers, by the first part of the path, and how often.
PROBE_KINDS: list[tuple[str, float]] = [("ok", 0.85), ("fail", 0.10), ("slow", 0.05)]


# -- the catalog -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorsCatalog:
    path: Path
    integrations: int
    heartbeat_keys: list[str]
    probes: dict[str, str]  # integration id -> what its probe's server answers (PROBE_KINDS)
    schedules: dict[str, int]  # heartbeat schedule -> how many


def _daily_or_more(beat: Mapping[str, Any]) -> bool:
    cron = beat.get("cron")
    return cron is None or str(cron).endswith("* * *")


def monitors_catalog(
    directory: Path,
    integrations: int,
    heartbeats: int,
    probes: int,
    probe_base: str | None,
    seed_: int,
) -> MonitorsCatalog:
    """catalog_gen's catalog with a heartbeat on the first `heartbeats` integrations and a
    probe of `probe_base` on `probes` of them (none without a base)."""
    data, _ = build_catalog(integrations, 40, seed_)
    rng = random.Random(seed_ + 4)
    # The server's probe runner (and a status poller, once wired) must not reach the
    # example.com and example.edu hosts the generator names: only loopback is measured.
    for system in data["systems"]:
        system.pop("status_page", None)
    keys: list[str] = []
    schedules: Counter[str] = Counter()
    choices, weights = zip(*_HEARTBEATS, strict=True)
    for n, entry in enumerate(data["integrations"]):
        entry.pop("probe", None)
        beat = entry.pop("heartbeat", None)
        if n >= heartbeats:
            continue
        if beat is None or not _daily_or_more(beat):
            beat = dict(rng.choices(choices, weights)[0])
        beat["key"] = f"hb-{entry['id']}"
        entry["heartbeat"] = beat
        keys.append(beat["key"])
        schedules[str(beat.get("cron") or f"every {beat['every']}")] += 1
    chosen: dict[str, str] = {}
    if probe_base is not None:
        kinds, shares = zip(*PROBE_KINDS, strict=True)
        for entry in rng.sample(data["integrations"], min(probes, len(data["integrations"]))):
            kind = rng.choices(kinds, shares)[0]
            entry["probe"] = {
                "url": f"{probe_base}/{kind}/{entry['id']}",
                "every": "5m",
                "timeout": "5s",
            }
            if rng.random() < 0.5:
                entry["probe"]["expect_status"] = 200
            chosen[str(entry["id"])] = kind
    path = directory / "catalog.yml"
    save_catalog(data, path, "bench/monitors.py")
    return MonitorsCatalog(path, len(data["integrations"]), keys, chosen, dict(schedules))


# -- scenario 1: pings over HTTP -------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    body: bytes
    kind: str  # success | start, as heartbeat_pings.kind will say


def ping_mix(rng: random.Random, keys: Sequence[str], total: int) -> list[Ping]:
    """Mostly plain GETs (`curl -fsS …/ping/<key>` at the end of a job), some POSTs carrying
    the job's log, some `/start` at the beginning of a run."""
    pings = []
    for n in range(total):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.10:
            pings.append(Ping("GET", f"/ping/{key}/start", b"", "start"))
        elif roll < 0.25:
            log = f"run {n}: exported {rng.randint(0, 90_000)} rows\n" + "ok\n" * rng.randint(
                0, 300
            )
            pings.append(Ping("POST", f"/ping/{key}", log.encode(), "success"))
        else:
            pings.append(Ping("GET", f"/ping/{key}", b"", "success"))
    return pings


def ping_requests(pings: Sequence[Ping]) -> list[Request]:
    return [
        Request(p.method, p.path, p.body, {"Content-Type": "text/plain"} if p.body else {})
        for p in pings
    ]


@dataclass
class PingResult(harness.Outcome):
    heartbeats: int = 0
    requests: int = 0
    answered_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    seconds: float = 0.0
    pings_per_second: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    mean_ms: float = math.nan
    warmup: int = 0
    ok_total: int = 0  # warm-up and measured
    rows: int = 0
    rows_by_kind: dict[str, int] = field(default_factory=dict)
    sent_by_kind: dict[str, int] = field(default_factory=dict)  # answered 200, all phases
    mix: dict[str, int] = field(default_factory=dict)
    server_cpu_ms_per_ping: float = 0.0
    client_cpu_ms_per_ping: float = 0.0
    peak_rss_mb: float = 0.0
    server_ready_seconds: float = 0.0
    reference_loop_ms: float = 0.0

    @property
    def lost(self) -> int:
        return self.ok_total - self.rows

    @property
    def ok(self) -> bool:
        return not self.errors and not self.timed_out and self.lost == 0


def run_pings(kind: str, workdir: Path, args: argparse.Namespace) -> PingResult:
    result = PingResult(database=kind)
    url = harness.fresh_database(kind, workdir, args, "pings")
    catalog = monitors_catalog(
        workdir, args.ping_heartbeats, args.ping_heartbeats, 0, None, args.seed
    )
    result.heartbeats = len(catalog.heartbeat_keys)
    rng = random.Random(args.seed)
    pings = ping_mix(rng, catalog.heartbeat_keys, args.warmup + args.pings)
    warm, measured = pings[: args.warmup], pings[args.warmup :]
    result.mix = dict(Counter(f"{p.method} {p.kind}" for p in measured))
    with (
        FakeSlack() as slack,
        harness.running_server(url, catalog.path, slack.url, workdir) as server,
    ):
        result.server_ready_seconds = server.ready_after
        result.database_version = harness.database_version(url)
        print(
            f"[{kind}] pings: {len(warm)} warm-up, then {len(measured)} from "
            f"{args.concurrency} senders over {result.heartbeats} heartbeats…"
        )
        load = harness.warm_then_measure(
            server, ping_requests(warm), ping_requests(measured), 200, args
        )
        result.peak_rss_mb = server.sampler.peak() / harness.MB
        server.raise_if_dead()
    # Counted once the server is stopped: every 200 is a promise that the ping is stored.
    with harness.engine_for(url) as engine, engine.connect() as conn:
        result.rows_by_kind = {
            str(k): int(n)
            for k, n in conn.execute(
                text("SELECT kind, count(*) FROM heartbeat_pings GROUP BY kind")
            ).all()
        }
    result.rows = sum(result.rows_by_kind.values())
    latencies = latencies_ms(load.answers, 200)
    result.reference_loop_ms = load.reference_loop_ms
    result.requests = load.sent
    result.answered_ok = len(latencies)
    result.errors = error_counts(load.answers)
    warm_errors = error_counts(load.warm)
    if warm_errors:
        result.errors.update({f"warm-up {k}": v for k, v in warm_errors.items()})
    result.timed_out = load.timed_out
    result.seconds = load.seconds
    result.pings_per_second = result.answered_ok / load.seconds if load.seconds else 0.0
    result.p50_ms = quantile(latencies, 0.50)
    result.p99_ms = quantile(latencies, 0.99)
    result.max_ms = latencies[-1] if latencies else math.nan
    result.mean_ms = sum(latencies) / len(latencies) if latencies else math.nan
    result.warmup = len(warm)
    result.ok_total = answered_with(load.warm, 200) + result.answered_ok
    sent: Counter[str] = Counter()
    for ping, answer in zip([*warm, *measured], [*load.warm, *load.answers], strict=True):
        if answer is not None and answer.status == 200:
            sent[ping.kind] += 1
    result.sent_by_kind = dict(sent)
    result.server_cpu_ms_per_ping = load.server_cpu_seconds * 1000 / max(1, result.requests)
    result.client_cpu_ms_per_ping = load.client_cpu_seconds * 1000 / max(1, result.requests)
    return result


# -- scenario 2: the tick, in-process --------------------------------------------------------


class Clock:
    """The injected clock (tests/conftest.py's FixedClock): moved by hand, never by sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def database(self, session: Session) -> datetime:
        """As the database's clock, for leases: simulated time moves both."""
        return self.now


def _serve_probe_target(conn: Connection, slow_seconds: float) -> None:
    """The probed endpoints, in a process of their own so that the bot's CPU time measured
    in the benchmark's process is the bot's alone."""
    hits: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind = self.path.split("/")[1] if self.path.count("/") >= 2 else ""
            with lock:
                hits[kind] += 1
            if kind == "slow":
                time.sleep(slow_seconds)
            if kind == "fail":
                status, data = 503, b"Service Unavailable: scheduled maintenance"
            elif kind in ("ok", "slow"):
                status, data = 200, b'{"status":"UP"}'
            else:
                status, data = 404, b"no such probe"
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the probe gave up and closed the connection

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # The runner opens up to its pool size of connections at once, each new.
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(int(server.server_address[1]))
    conn.recv()  # until told to stop
    server.shutdown()
    conn.send(dict(hits))


class ProbeTarget:
    def __init__(self, slow_seconds: float) -> None:
        # fork: the child needs nothing but the function above, and starts in milliseconds.
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_probe_target, args=(child, slow_seconds), daemon=True
        )
        self._process.start()
        if not self._conn.poll(10):
            self._process.kill()
            raise RuntimeError("the probe target did not start")
        self.base = f"http://127.0.0.1:{self._conn.recv()}"

    def stop(self) -> dict[str, int]:
        hits: dict[str, int] = {}
        try:
            self._conn.send("stop")
            if self._conn.poll(10):
                hits = self._conn.recv()
        except (OSError, EOFError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
        return hits


def database_cpu_seconds(url: str) -> float:
    """CPU used so far by the PostgreSQL backends serving the benchmark's database (0 for
    SQLite, which runs inside the bot's process and is counted there). Other databases on
    the same server, and PostgreSQL's background processes, are left out: the machine is
    shared, and their work is not the tick's."""
    name = make_url(url).database
    if not url.startswith("postgresql") or not name:
        return 0.0
    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            # A backend's title is "postgres: <user> <database> <client> <state>".
            title = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "postgres" and f" {name} " in title:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


@dataclass
class Timed:
    wall_ms: float = math.nan
    cpu_ms: float = math.nan  # the bot's process, every thread
    database_cpu_ms: float = math.nan  # PostgreSQL's processes; 0 on SQLite
    value: int = 0  # what the call returned or raised: alerts, probes checked


def timed(url: str, call: Callable[[], int | None], profile: cProfile.Profile | None) -> Timed:
    db_cpu = database_cpu_seconds(url)
    cpu = time.process_time()
    wall = time.perf_counter()
    if profile is not None:
        value = profile.runcall(call)
    else:
        value = call()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    db_cpu = database_cpu_seconds(url) - db_cpu
    return Timed(wall * 1000, cpu * 1000, db_cpu * 1000, int(value or 0))


@dataclass
class TickResult(harness.Outcome):
    integrations: int = 0
    heartbeats: int = 0
    schedules: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    probe_kinds: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0
    clock_moved_hours: float = 0.0
    due_before_tick: int = 0
    busy: Timed = field(default_factory=Timed)
    alerts_raised: int = 0
    outbox_rows: int = 0
    idle: Timed = field(default_factory=Timed)
    idle_alerts: int = 0
    ping_tick_due: int = 0
    ping_tick_wall_ms: float = math.nan
    ping_tick_alerts: int = 0  # missed-run events, new alerts and repeats
    ping_tick_escalations: int = 0
    pings_during_tick: int = 0
    ping_errors_during_tick: dict[str, int] = field(default_factory=dict)
    ping_wait_p50_ms: float = math.nan
    ping_wait_max_ms: float = math.nan
    ping_wait_outside_p50_ms: float = math.nan
    probe_status: str = "not measured"
    probe_runner: str = ""
    probe_first: Timed = field(default_factory=Timed)
    probe_due: Timed = field(default_factory=Timed)
    probe_alerts: int = 0
    probe_workers: int = 0
    probe_slow_seconds: float = 0.0
    probe_floor_ms: float = 0.0  # the slow answers alone, spread over the pool
    probe_target_hits: dict[str, int] = field(default_factory=dict)
    reference_loop_ms: float = 0.0
    profiled: bool = False
    profile: str = ""

    @property
    def ok(self) -> bool:
        return self.alerts_raised == self.due_before_tick == self.heartbeats and (
            self.idle_alerts == 0
        )


def _count(runtime: Runtime, sql: str, **params: Any) -> int:
    """A count through the runtime's own sessions, so it sees what the tick committed."""
    with transaction(runtime.deps.sessions) as session:
        return harness.scalar_int(session, sql, params)


def _firing(runtime: Runtime, source: str) -> int:
    sql = "SELECT count(*) FROM alerts WHERE source = :s AND status = 'firing'"
    return _count(runtime, sql, s=source)


def _outbox_pending(runtime: Runtime) -> int:
    return _count(runtime, "SELECT count(*) FROM outbox WHERE status = 'pending'")


def run_tick(kind: str, workdir: Path, args: argparse.Namespace) -> TickResult:
    result = TickResult(database=kind, probe_slow_seconds=args.probe_slow)
    url = harness.fresh_database(kind, workdir, args, "tick")
    # Forked before the runtime is built, so the child copies none of its threads or pools.
    target = ProbeTarget(args.probe_slow)
    try:
        catalog = monitors_catalog(
            workdir, args.integrations, args.heartbeats, args.probes, target.base, args.seed
        )
        result.integrations = catalog.integrations
        result.heartbeats = len(catalog.heartbeat_keys)
        result.schedules = catalog.schedules
        result.probes = len(catalog.probes)
        result.probe_kinds = dict(Counter(catalog.probes.values()))
        clock = Clock(START)
        settings = load_settings({"DATABASE_URL": url, "INTEG_CATALOG": str(catalog.path)})
        print(
            f"[{kind}] tick: migrating and syncing {catalog.integrations} integrations, "
            f"{result.heartbeats} heartbeats, {result.probes} probes…"
        )
        started = time.monotonic()
        runtime = build_runtime(settings, clock=clock, lease_clock=clock.database)
        result.build_seconds = time.monotonic() - started
        try:
            result.database_version = harness.database_version(url)
            measure_ticks(kind, url, runtime, clock, result, args)
            measure_probes(kind, url, runtime, clock, result, args)
            if not args.profile:
                pings_during_tick(kind, url, runtime, clock, result, args)
        finally:
            runtime.close()
    finally:
        result.probe_target_hits = target.stop()
    return result


def measure_ticks(
    kind: str,
    url: str,
    runtime: Runtime,
    clock: Clock,
    result: TickResult,
    args: argparse.Namespace,
) -> None:
    result.due_before_tick = move_past_deadlines(runtime, clock)
    result.clock_moved_hours = (clock.now - START).total_seconds() / 3600
    result.reference_loop_ms = harness.reference_loop()
    profile = cProfile.Profile() if args.profile else None
    result.profiled = profile is not None
    print(f"[{kind}] tick with {result.due_before_tick} heartbeats due…")
    result.busy = timed(url, runtime.tick, profile)
    result.alerts_raised = _firing(runtime, "heartbeat")
    result.outbox_rows = _outbox_pending(runtime)
    # The same clock: every deadline has moved past it, so this is a tick with nothing due.
    idle_profile = cProfile.Profile() if args.profile else None
    result.idle = timed(url, runtime.tick, idle_profile)
    result.idle_alerts = _firing(runtime, "heartbeat") - result.alerts_raised
    for title, taken in (("busy tick", profile), ("idle tick", idle_profile)):
        if taken is not None:
            result.profile += f"\n== {title} ==\n" + _profile_text(taken)
    if result.profile:
        print(result.profile)


def move_past_deadlines(runtime: Runtime, clock: Clock) -> int:
    """Move the clock a minute past the latest heartbeat deadline; how many are due then."""
    with transaction(runtime.deps.sessions) as session:
        latest = session.execute(select(func.max(Heartbeat.due_at))).scalar()
    if latest is None:
        raise RuntimeError("the catalog's heartbeats were not synced")
    clock.now = latest + timedelta(minutes=1)
    with transaction(runtime.deps.sessions) as session:
        due = select(func.count()).select_from(Heartbeat).where(Heartbeat.due_at <= clock.now)
        return int(session.execute(due).scalar() or 0)


def pings_during_tick(
    kind: str,
    url: str,
    runtime: Runtime,
    clock: Clock,
    result: TickResult,
    args: argparse.Namespace,
) -> None:
    """A busy tick again (every deadline passed once more), with one job pinging every
    20 ms meanwhile, through the intake writer as `bot/web/pings.py` sends a ping: what a job
    waits while the tick holds the rows (PostgreSQL) or the write lock (SQLite) it has
    taken."""
    keys = [f"hb-{ident}" for ident in _heartbeat_ids(runtime)]
    rng = random.Random(args.seed + 2)
    stop = threading.Event()
    pings: list[tuple[float, float, str | None]] = []  # started, seconds taken, error

    def pinger() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            error = None
            ping = ping_batches.Ping(
                rng.choice(keys), "success", "GET", "curl/8.5.0", "127.0.0.1", None
            )
            try:
                runtime.intake.submit_ping(ping).result(timeout=30)
            except Exception as exc:  # what the endpoint would answer 5xx for
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            pings.append((started, time.perf_counter() - started, error))
            stop.wait(0.02)

    result.ping_tick_due = move_past_deadlines(runtime, clock)
    before = _heartbeat_events(runtime)
    replies = _outbox_replies(runtime)
    print(f"[{kind}] tick with {result.ping_tick_due} due, pinged meanwhile…")
    thread = threading.Thread(target=pinger, name="bench-pinger", daemon=True)
    thread.start()
    time.sleep(0.3)
    began = time.perf_counter()
    tick = timed(url, runtime.tick, None)
    ended = time.perf_counter()
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=30)
    result.ping_tick_wall_ms = tick.wall_ms
    result.ping_tick_alerts = _heartbeat_events(runtime) - before
    result.ping_tick_escalations = _outbox_replies(runtime) - replies
    during = [(taken, error) for at, taken, error in pings if began <= at < ended]
    waits = sorted(taken * 1000 for taken, error in during if error is None)
    result.pings_during_tick = len(during)
    result.ping_errors_during_tick = dict(Counter(e for _, e in during if e is not None))
    result.ping_wait_p50_ms = quantile(waits, 0.50)
    result.ping_wait_max_ms = waits[-1] if waits else math.nan
    outside = sorted(taken * 1000 for at, taken, e in pings if not began <= at < ended)
    result.ping_wait_outside_p50_ms = quantile(outside, 0.50)


def _heartbeat_events(runtime: Runtime) -> int:
    """Missed-run events taken in so far: a heartbeat's alert counts each one, new or a
    repeat of one still open, which the number of firing alerts would not show."""
    return _count(runtime, "SELECT coalesce(sum(count), 0) FROM alerts WHERE source = 'heartbeat'")


def _outbox_replies(runtime: Runtime) -> int:
    """Thread replies queued so far: in these runs, escalations to an integration's backups."""
    return _count(runtime, "SELECT count(*) FROM outbox WHERE kind = 'reply'")


def _heartbeat_ids(runtime: Runtime) -> list[str]:
    with transaction(runtime.deps.sessions) as session:
        return list(session.scalars(select(Heartbeat.integration_id)))


def _profile_text(profile: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


def measure_probes(
    kind: str,
    url: str,
    runtime: Runtime,
    clock: Clock,
    result: TickResult,
    args: argparse.Namespace,
) -> None:
    # The runtime's own runner, as its `probes` job runs it, where the runtime has one.
    runner: ProbeRunner | None = getattr(runtime, "probes", None)
    own = runner is None
    if runner is None:
        notify = runtime.outbox.notify if runtime.outbox is not None else (lambda: None)
        runner = ProbeRunner(runtime.deps, notify, "bench-monitors")
    result.probe_runner = "the runtime's (runtime.probes)" if not own else "built by the bench"
    try:
        result.probe_workers = int(getattr(runner, "max_workers", 0))
        workers = max(1, result.probe_workers)
        slow = result.probe_kinds.get("slow", 0)
        result.probe_floor_ms = slow * args.probe_slow * 1000 / workers
        print(f"[{kind}] probes: run_due with {result.probes} due, twice…")
        # The first run also inserts the probe rows, and fails only the first of the two
        # checks a 503 needs before it alerts; the second, one period later, is the steady
        # state with every probe due again and the failing ones raising their alerts.
        result.probe_first = timed(url, runner.run_due, None)
        clock.now += timedelta(minutes=5)
        result.probe_due = timed(url, runner.run_due, None)
        result.probe_alerts = _firing(runtime, "probe")
        checked = (result.probe_first.value, result.probe_due.value)
        if checked != (result.probes, result.probes):
            result.probe_status = f"measured, but checked {checked[0]} then {checked[1]}"
        else:
            result.probe_status = "measured"
    except Exception as exc:  # a runner still being written: report, do not guess
        result.probe_status = f"not measured: run_due failed ({type(exc).__name__}: {exc})"
        print(f"[{kind}] probes {result.probe_status}")
    finally:
        if own:
            runner.close()  # the runtime closes its own


# -- reporting -------------------------------------------------------------------------------

PING_HEADERS = [
    "database",
    "heartbeats",
    "pings",
    "errors",
    "pings/s (200)",
    "p50 ms",
    "p99 ms",
    "max ms",
    "rows / 200s",
    "server CPU ms/ping",
    "0 lost",
]
TICK_HEADERS = [
    "database",
    "heartbeats due",
    "alerts raised",
    "tick wall ms",
    "tick CPU ms",
    "CPU ms/alert",
    "idle tick wall ms",
    "idle CPU ms",
    "probes checked",
    "run_due wall ms",
    "run_due CPU ms",
    "probe alerts",
    "ping wait in tick max ms",
]


def _ms(value: float) -> str:
    # Ticks and probe runs take seconds: thousands separators keep those columns readable.
    return harness.ms(value, grouped=True)


def ping_row(r: PingResult) -> list[str]:
    return [
        r.database_version or r.database,
        f"{r.heartbeats}",
        f"{r.requests:,}",
        f"{sum(r.errors.values())}",
        f"{r.pings_per_second:,.0f}",
        _ms(r.p50_ms),
        _ms(r.p99_ms),
        _ms(r.max_ms),
        f"{r.rows:,} / {r.ok_total:,}",
        f"{r.server_cpu_ms_per_ping:.2f}",
        "yes" if r.lost == 0 else f"NO: {r.lost} lost",
    ]


def tick_row(r: TickResult) -> list[str]:
    measured = r.probe_status.startswith("measured")
    return [
        r.database_version or r.database,
        f"{r.due_before_tick:,}",
        f"{r.alerts_raised:,}",
        _ms(r.busy.wall_ms),
        _ms(r.busy.cpu_ms),
        f"{r.busy.cpu_ms / r.alerts_raised:.2f}" if r.alerts_raised else "n/a",
        _ms(r.idle.wall_ms),
        _ms(r.idle.cpu_ms),
        f"{r.probe_due.value} of {r.probes}" if measured else "not measured",
        _ms(r.probe_due.wall_ms) if measured else "",
        _ms(r.probe_due.cpu_ms) if measured else "",
        f"{r.probe_alerts}" if measured else "",
        _ms(r.ping_wait_max_ms)
        + (
            f" ({sum(r.ping_errors_during_tick.values())} failed)"
            if r.ping_errors_during_tick
            else ""
        ),
    ]


@dataclass
class Run:
    pings: list[PingResult] = field(default_factory=list)
    ticks: list[TickResult] = field(default_factory=list)

    def sections(self) -> list[harness.Table]:
        found = []
        pings = [r for r in self.pings if not r.skipped]
        if pings:
            found.append(("Heartbeat pings", PING_HEADERS, [ping_row(r) for r in pings]))
        ticks = [r for r in self.ticks if not r.skipped]
        if ticks:
            found.append(("Tick cost", TICK_HEADERS, [tick_row(r) for r in ticks]))
        return found

    def skipped(self) -> list[str]:
        return harness.skipped_notes([*self.pings, *self.ticks])

    def problems(self) -> list[str]:
        found = []
        for p in self.pings:
            if not p.skipped and not p.ok:
                found.append(
                    f"pings on {p.database}: errors {p.errors}, lost {p.lost}, "
                    f"timed out {p.timed_out}"
                )
        for t in self.ticks:
            if not t.skipped and not t.ok:
                found.append(
                    f"tick on {t.database}: {t.due_before_tick} due, {t.alerts_raised} raised, "
                    f"{t.idle_alerts} on the idle tick"
                )
        return found


def notes(run: Run) -> list[str]:
    lines = []
    for r in run.pings:
        if r.skipped:
            continue
        mix = ", ".join(f"{n:,} {k}" for k, n in sorted(r.mix.items(), key=lambda kv: -kv[1]))
        rows = ", ".join(f"{k} {n:,}" for k, n in sorted(r.rows_by_kind.items()))
        sent = ", ".join(f"{k} {n:,}" for k, n in sorted(r.sent_by_kind.items()))
        lines.append(
            f"- pings, {r.database}: measured mix {mix}; mean {_ms(r.mean_ms)} ms; rows by kind "
            f"{rows} (200s by kind {sent}); peak RSS {r.peak_rss_mb:.0f} MB; load generator "
            f"CPU {r.client_cpu_ms_per_ping:.2f} ms/ping; server ready "
            f"{r.server_ready_seconds:.1f} s after start; reference loop "
            f"{r.reference_loop_ms:.0f} ms." + (f" Errors: {r.errors}." if r.errors else "")
        )
    for t in run.ticks:
        if t.skipped:
            continue
        per_due = t.busy.wall_ms / t.due_before_tick if t.due_before_tick else math.nan
        line = (
            f"- tick, {t.database}: {t.integrations:,} integrations, runtime built (migrations "
            f"and catalog sync) in {t.build_seconds:.1f} s; clock moved "
            f"{t.clock_moved_hours:.1f} h past {START:%Y-%m-%d %H:%M} UTC; the busy tick took "
            f"{per_due:.2f} ms wall per due heartbeat and queued {t.outbox_rows:,} outbox rows"
        )
        if t.database == "postgresql":
            line += (
                f"; PostgreSQL's own CPU {_ms(t.busy.database_cpu_ms)} ms in the busy tick, "
                f"{_ms(t.idle.database_cpu_ms)} ms in the idle one"
            )
        if t.probe_status.startswith("measured"):
            line += (
                f"; probes ({', '.join(f'{n} {k}' for k, n in sorted(t.probe_kinds.items()))}, "
                f"slow = {t.probe_slow_seconds:.1f} s, pool of {t.probe_workers}, runner "
                f"{t.probe_runner}): the first "
                f"run_due (which also inserts the rows) {_ms(t.probe_first.wall_ms)} ms wall, "
                f"{_ms(t.probe_first.cpu_ms)} ms CPU; the slow answers alone need "
                f"{t.probe_floor_ms:.0f} ms of the pool"
            )
            if t.database == "postgresql":
                line += f"; PostgreSQL CPU in run_due {_ms(t.probe_due.database_cpu_ms)} ms"
        else:
            line += f"; probes {t.probe_status}"
        if t.ping_tick_due:
            errors = t.ping_errors_during_tick
            line += (
                f"; pinged every 20 ms during a last busy tick ({t.ping_tick_due:,} due, "
                f"{_ms(t.ping_tick_wall_ms)} ms, {t.ping_tick_alerts:,} missed-run events, "
                f"{t.ping_tick_escalations:,} escalations of the first tick's alerts): "
                f"the pings started during it ({t.pings_during_tick}) waited p50 "
                f"{_ms(t.ping_wait_p50_ms)} ms, max {_ms(t.ping_wait_max_ms)} ms "
                f"(p50 {_ms(t.ping_wait_outside_p50_ms)} ms outside it)"
                + (
                    f", errors: {', '.join(f'{k} ×{n}' for k, n in errors.items())}"
                    if errors
                    else ", no errors"
                )
            )
        line += f"; reference loop {t.reference_loop_ms:.0f} ms."
        if t.profiled:
            line += " (Timed under cProfile: slower than without.)"
        lines.append(line)
    return lines


# -- entry point -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = harness.parser(BENCH, __doc__)
    harness.add_scenarios(p, SCENARIOS)
    g = p.add_argument_group("pings")
    g.add_argument("--pings", type=harness.int_range(1), default=10_000, help="measured pings")
    harness.add_load_options(g, warmup=500, unit="pings")
    g.add_argument("--ping-heartbeats", type=int, default=200, help="integrations pinged")
    g = p.add_argument_group("tick")
    g.add_argument("--integrations", type=int, default=1000)
    g.add_argument("--heartbeats", type=int, default=1000, help="integrations with one")
    g.add_argument("--probes", type=int, default=200, help="integrations with a probe")
    g.add_argument(
        "--probe-slow", type=float, default=0.5, help="seconds the slow probes take to answer"
    )
    g.add_argument(
        "--profile",
        action="store_true",
        help="print where the busy tick spends its time (cProfile; slows it down)",
    )
    harness.add_database_options(p, database="integ_bench_monitors", admin_database="postgres")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.heartbeats > args.integrations or args.probes > args.integrations:
        p.error("--heartbeats and --probes cannot exceed --integrations")
    load = harness.load_before_start()
    run = Run()
    runners = {
        "pings": (run_pings, run.pings, PingResult),
        "tick": (run_tick, run.ticks, TickResult),
    }
    harness.run_each(BENCH, args, args.scenarios.split(","), runners)
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: monitors",
        tables=run.sections(),
        notes=[*notes(run), *run.skipped()],
        raw={
            "pings": [{**asdict(r), "lost": r.lost, "ok": r.ok} for r in run.pings],
            "ticks": [{**asdict(r), "ok": r.ok} for r in run.ticks],
        },
        # Timings under cProfile are slower than without: not figures to keep.
        readme=not args.no_readme and not args.profile,
    )
    if args.profile:
        print("profiled: bench/README.md left as it is (timings under cProfile are slower)")
    problems = run.problems()
    if problems:
        print("\nTHE RUN LOST PINGS OR MISSED DEADLINES:\n" + "\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
