"""`/integ status <i>` end to end over HTTP, at catalog and history sizes of a real campus.

    .venv/bin/python -m bench.status_latency [--db sqlite|postgresql|both] [--requests N]

For each database: generate a 1,000-integration catalog, migrate and fill the database with
100,000 alerts, start the real server (`integ-bot serve`) against a fake Slack Web API, and
have 20 concurrent clients send signed `/integ status <random integration>` slash commands.
Prints p50/p95/p99/max latency, requests per second and the server's peak RSS, writes them
to the results table in bench/README.md and the raw figures to bench/results/*.json.
`bench/README.md` says how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psutil
from sqlalchemy import create_engine, text

from bench import seed
from bench.catalog_gen import write_catalog
from bench.loopback_http import TIMEOUT, BadResponse, HttpxTransport, RawConnection, Transport
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.slack_signing import signed_headers, slash_command_fields

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
README = BENCH / "README.md"
RESULTS = BENCH / "results"
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
P99_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0
RSS_INTERVAL = 0.05
MB = 1_000_000
MARK_START = "<!-- results:start (written by bench/status_latency.py; edits here are lost) -->"
MARK_END = "<!-- results:end -->"


# -- the server under test -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RssSampler:
    """Samples the RSS of a process and its children every 50 ms, from a daemon thread."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
                for child in self.process.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return  # the server is gone
            self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)

    def peak(self, start: float = 0.0, end: float = math.inf) -> int:
        return max((rss for at, rss in self.samples if start <= at <= end), default=0)

    def high_water_mark(self) -> int:
        """The kernel's own peak RSS of the main process (VmHWM), exact where sampling is
        not: a spike shorter than 50 ms can fall between samples."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) * 1024 if found else 0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    sampler: RssSampler
    started_at: float
    ready_after: float = 0.0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.sampler.stop()


def start_server(database_url: str, catalog: Path, slack_api_url: str, workdir: Path) -> Server:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "INTEG_", "DATABASE_URL"))
    }
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api_url,
        DATABASE_URL=database_url,
        INTEG_CATALOG=str(catalog),
        LOG_LEVEL="WARNING",
    )
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("integ-bot")), "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        process=process,
        url=f"http://127.0.0.1:{port}",
        log=log,
        sampler=RssSampler(process.pid).start(),
        started_at=time.monotonic(),
    )
    try:
        wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    server.ready_after = time.monotonic() - server.started_at
    return server


def wait_until_healthy(server: Server, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise RuntimeError(
        f"the server did not answer /healthz in {timeout:.0f}s:\n{server.log_tail()}"
    )


# -- the load --------------------------------------------------------------------------------


@dataclass
class Phase:
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0
    timed_out: bool = False

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile: the smallest value with at least q of the values at or below."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def run_phase(
    transports: list[Transport],
    bodies: list[tuple[bytes, bytes]],
    total: int,
    rng: random.Random,
    max_seconds: float,
) -> Phase:
    """`total` requests from one client per transport, each sending its next request as soon
    as the last one is answered (a closed loop, like people waiting for an answer)."""
    phase = Phase()
    remaining = total
    deadline = time.monotonic() + max_seconds

    async def client_loop(transport: Transport) -> None:
        nonlocal remaining
        while remaining > 0:
            if time.monotonic() > deadline:
                phase.timed_out = True
                return
            remaining -= 1
            name, body = rng.choice(bodies)
            headers = signed_headers(body, SIGNING_SECRET)
            sent = time.perf_counter()
            try:
                status, answer = await transport.post("/slack/events", body, headers)
                elapsed = time.perf_counter() - sent
                if status != 200:
                    phase.errors[f"HTTP {status}"] += 1
                elif name not in answer:
                    phase.errors["answer without the integration's name"] += 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError, BadResponse) as exc:
                elapsed = time.perf_counter() - sent
                phase.errors[type(exc).__name__] += 1
            except httpx.HTTPError as exc:
                elapsed = time.perf_counter() - sent
                phase.errors[type(exc).__name__] += 1
            phase.latencies_ms.append(elapsed * 1000)
            phase.requests += 1

    phase.started = time.monotonic()
    await asyncio.gather(*(client_loop(t) for t in transports))
    phase.ended = time.monotonic()
    return phase


async def drive(
    url: str,
    bodies: list[tuple[bytes, bytes]],
    args: argparse.Namespace,
) -> tuple[Phase, Phase]:
    """The warm-up, then the measured phase, over the same (warm) connections."""
    rng = random.Random(args.seed)
    shared: httpx.AsyncClient | None = None
    transports: list[Transport]
    if args.client == "httpx":
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        shared = httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits)
        transports = [HttpxTransport(shared) for _ in range(args.concurrency)]
    else:
        transports = [RawConnection(url) for _ in range(args.concurrency)]
    try:
        warm = await run_phase(transports, bodies, args.warmup, rng, args.max_seconds)
        measured = await run_phase(transports, bodies, args.requests, rng, args.max_seconds)
    finally:
        for transport in transports:
            await transport.aclose()
        if shared is not None:
            await shared.aclose()
    return warm, measured


def status_bodies(integrations: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """(expected name, slash command body) per integration: the recorded slash command
    payload, as `/integ status <id>`. Signed per request, since the signature dates it."""
    fields = slash_command_fields("")
    return [
        (name.encode(), urlencode({**fields, "text": f"status {ident}"}).encode())
        for ident, name in integrations
    ]


# -- one database ----------------------------------------------------------------------------


@dataclass
class Result:
    database: str
    skipped: str | None = None
    database_version: str = ""
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_load_mb: float = 0.0
    rss_after_start_mb: float = 0.0
    vm_hwm_mb: float = 0.0
    server_cpu_ms_per_request: float = 0.0
    client_cpu_ms_per_request: float = 0.0
    server_ready_seconds: float = 0.0
    seed_seconds: float = 0.0
    seed: dict[str, Any] = field(default_factory=dict)
    # How busy the machine was with other work: the figures are only as quiet as it was.
    reference_loop_ms: float = 0.0
    other_processes_cores: float = 0.0
    steal_percent: float = 0.0
    warmup_requests: int = 0
    warmup_errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def meets_targets(self) -> bool:
        return (
            not self.skipped
            and self.error_count == 0
            and not self.timed_out
            and self.p99_ms < P99_TARGET_MS
            and self.peak_rss_mb < RSS_TARGET_MB
        )


def reference_loop() -> float:
    """Milliseconds this machine takes for a fixed piece of pure Python (best of 5).

    On a shared virtual machine the same code runs faster or slower from hour to hour; this
    number, taken just before the load, says how fast the machine was, so runs can be
    compared (about 30 ms on a quiet 2.5 GHz Xeon)."""
    best = math.inf
    for _ in range(5):
        started = time.process_time()
        total = 0
        for n in range(300_000):
            total += n * n % 7
        best = min(best, time.process_time() - started)
    return best * 1000


def _busy_and_steal(before: Any, after: Any) -> tuple[float, float]:
    """CPU seconds the whole machine spent busy between two `psutil.cpu_times()`, and the
    seconds the hypervisor took away (steal)."""
    fields = ("user", "nice", "system", "irq", "softirq")
    busy = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in fields)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return busy, steal


def database_version(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
        return f"PostgreSQL {version.split()[0]}"
    finally:
        engine.dispose()


def bench_database(
    kind: str, url: str, args: argparse.Namespace, workdir: Path, slack: FakeSlack
) -> Result:
    result = Result(database=kind)
    catalog = write_catalog(workdir, args.integrations, args.systems, args.seed)
    print(f"[{kind}] filling {url}: {args.integrations} integrations, {args.alerts} alerts…")
    stats = seed.prepare(url, catalog.path, args.alerts, args.seed)
    result.seed = asdict(stats)
    result.seed_seconds = round(stats.seconds, 1)
    result.database_version = database_version(url)
    print(f"[{kind}] starting integ-bot serve…")
    server = start_server(url, catalog.path, slack.url, workdir)
    try:
        result.server_ready_seconds = round(server.ready_after, 1)
        result.rss_after_start_mb = server.sampler.peak(time.monotonic() - 0.5) / MB
        bodies = status_bodies(catalog.integrations)
        print(
            f"[{kind}] {args.warmup} warm-up, then {args.requests} measured requests "
            f"from {args.concurrency} clients…"
        )
        result.reference_loop_ms = reference_loop()
        server_cpu = server.cpu_seconds()
        client_cpu = time.process_time()
        machine_before = psutil.cpu_times()
        wall = time.monotonic()
        warm, measured = asyncio.run(drive(server.url, bodies, args))
        # The CPU used over both phases, divided by all requests sent.
        sent = max(1, warm.requests + measured.requests)
        server_cpu = server.cpu_seconds() - server_cpu
        client_cpu = time.process_time() - client_cpu
        wall = time.monotonic() - wall
        busy, steal = _busy_and_steal(machine_before, psutil.cpu_times())
        result.other_processes_cores = max(0.0, busy - server_cpu - client_cpu) / wall
        result.steal_percent = 100 * steal / wall / (os.cpu_count() or 1)
        time.sleep(RSS_INTERVAL * 2)  # one more sample after the last answer
        if server.process.poll() is not None:
            raise RuntimeError(f"the server died during the run:\n{server.log_tail()}")
        result.vm_hwm_mb = server.sampler.high_water_mark() / MB
        result.peak_rss_mb = server.sampler.peak() / MB
        result.peak_rss_load_mb = server.sampler.peak(warm.started) / MB
    finally:
        server.stop()
    latencies = sorted(measured.latencies_ms)
    result.requests = measured.requests
    result.errors = dict(measured.errors)
    result.timed_out = measured.timed_out
    result.seconds = measured.seconds
    result.rps = measured.requests / measured.seconds if measured.seconds else 0.0
    result.p50_ms = quantile(latencies, 0.50)
    result.p95_ms = quantile(latencies, 0.95)
    result.p99_ms = quantile(latencies, 0.99)
    result.max_ms = latencies[-1] if latencies else math.nan
    result.mean_ms = sum(latencies) / len(latencies) if latencies else math.nan
    result.server_cpu_ms_per_request = server_cpu * 1000 / sent
    result.client_cpu_ms_per_request = client_cpu * 1000 / sent
    result.warmup_requests = warm.requests
    result.warmup_errors = dict(warm.errors)
    return result


# -- reporting -------------------------------------------------------------------------------


def machine(load_average: float) -> dict[str, str]:
    cpu = "unknown"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else platform.processor() or "unknown"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": f"{load_average:.1f}",
    }


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _verdict(result: Result) -> str:
    problems = []
    if result.error_count:
        problems.append(f"{result.error_count} errors")
    if result.timed_out:
        problems.append("stopped at the time limit")
    if result.p99_ms >= P99_TARGET_MS:
        problems.append(f"p99 ≥ {P99_TARGET_MS:.0f} ms")
    if result.peak_rss_mb >= RSS_TARGET_MB:
        problems.append(f"RSS ≥ {RSS_TARGET_MB:.0f} MB")
    return "meets both" if not problems else "misses: " + ", ".join(problems)


HEADERS = [
    "database",
    "requests",
    "errors",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "peak RSS MB",
    "server CPU ms/req",
    "targets",
]


def rows(results: list[Result]) -> list[list[str]]:
    table = []
    for r in results:
        if r.skipped:
            table.append([r.database, "skipped", "", "", "", "", "", "", "", "", r.skipped])
            continue
        table.append(
            [
                r.database_version or r.database,
                f"{r.requests:,}",
                str(r.error_count),
                f"{r.rps:.0f}",
                _ms(r.p50_ms),
                _ms(r.p95_ms),
                _ms(r.p99_ms),
                _ms(r.max_ms),
                f"{r.peak_rss_mb:.0f}",
                f"{r.server_cpu_ms_per_request:.1f}",
                _verdict(r),
            ]
        )
    return table


def text_table(results: list[Result]) -> str:
    table = [HEADERS, *rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_results(results: list[Result], info: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        MARK_START,
        "## Results",
        "",
        f"Run {info['date']} on {info['cpu']}, {info['cores']} cores, {info['memory']}, "
        f"Python {info['python']}, {info['os']}; load average {info['load_average']} "
        "when it started.",
        "",
        f"Command: `{command_line(args)}`. {args.integrations:,} integrations over "
        f"{args.systems} systems, {args.alerts:,} alerts, {args.concurrency} concurrent "
        f"clients ({args.client} HTTP client), {args.warmup:,} warm-up requests then "
        f"{args.requests:,} measured.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|"
        + "|".join("---" if i == 0 or i == len(HEADERS) - 1 else "--:" for i in range(len(HEADERS)))
        + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", *notes(results)]
    lines += ["", MARK_END]
    return "\n".join(lines)


def notes(results: list[Result]) -> list[str]:
    """One line per database with what the table leaves out."""
    lines = []
    for r in results:
        if r.skipped:
            continue
        seeded = r.seed
        lines.append(
            f"- {r.database}: {seeded.get('open_alerts', 0):,} open alerts on "
            f"{seeded.get('integrations_with_open_alerts', 0)} integrations, "
            f"{seeded.get('transitions', 0):,} alert transitions; "
            f"RSS {r.rss_after_start_mb:.0f} MB once ready, "
            f"{r.peak_rss_load_mb:.0f} MB peak under load, kernel high-water mark "
            f"(VmHWM) {r.vm_hwm_mb:.0f} MB; mean {_ms(r.mean_ms)} ms; load generator CPU "
            f"{r.client_cpu_ms_per_request:.1f} ms/req; server ready "
            f"{r.server_ready_seconds:.1f} s after start; "
            f"database filled in {r.seed_seconds:.0f} s; other processes used "
            f"{r.other_processes_cores:.2f} cores meanwhile, steal {r.steal_percent:.1f}%; "
            f"reference loop {r.reference_loop_ms:.0f} ms (see How to read it)."
        )
        for label, errors in (("Errors", r.errors), ("Warm-up errors", r.warmup_errors)):
            if errors:
                lines.append(f"  {label}: {', '.join(f'{k}: {v}' for k, v in errors.items())}.")
    return lines


def command_line(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m bench.status_latency"]
    defaults = vars(parser().parse_args([]))
    for key, value in vars(args).items():
        if key in ("no_readme",) or value == defaults.get(key):
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def update_readme(block: str, path: Path = README) -> None:
    """Replace the results block, keeping every word around it; append it if missing."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    start = current.find("<!-- results:start")
    end = current.find(MARK_END)
    if start != -1 and end > start:
        updated = current[:start] + block + current[end + len(MARK_END) :]
    else:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + block + "\n"
    path.write_text(updated, encoding="utf-8")


def save_raw(results: list[Result], info: dict[str, str], args: argparse.Namespace) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"status_latency-{stamp}.json"
    data = {
        "machine": info,
        "arguments": {k: v for k, v in vars(args).items()},
        "targets": {"p99_ms": P99_TARGET_MS, "peak_rss_mb": RSS_TARGET_MB},
        "results": [
            {**asdict(r), "error_count": r.error_count, "meets_targets": r.meets_targets}
            for r in results
        ],
    }
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


# -- entry point -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.status_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--requests", type=int, default=4000, help="measured requests per database")
    p.add_argument("--warmup", type=int, default=200, help="requests sent first, not measured")
    p.add_argument("--concurrency", type=int, default=20, help="concurrent clients")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator's HTTP client (see bench/loopback_http.py)",
    )
    p.add_argument("--integrations", type=int, default=1000)
    p.add_argument("--systems", type=int, default=40)
    p.add_argument("--alerts", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=300, help="time limit for each load phase")
    p.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/integ_bench",
        help="the benchmark's database; dropped and created on every run",
    )
    p.add_argument(
        "--postgres-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="an existing database to connect to while creating the benchmark's",
    )
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 < args.concurrency <= 200 or args.requests <= 0 or args.warmup < 0:
        print("--concurrency must be 1..200, --requests > 0, --warmup ≥ 0", file=sys.stderr)
        return 2
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load = os.getloadavg()[0]
    if load > 1.0:
        print(
            f"note: load average {load:.1f} before starting: other work on this machine "
            "takes CPU from the server, so latencies will be higher and noisier"
        )
    results: list[Result] = []
    with FakeSlack() as slack, tempfile.TemporaryDirectory(prefix="integ-bench-") as tmp:
        for kind in kinds:
            workdir = Path(tmp) / kind
            workdir.mkdir()
            if kind == "sqlite":
                url = f"sqlite:///{workdir / 'integ.db'}"
            else:
                url = args.postgres_url
                reason = seed.postgres_unreachable(args.postgres_admin_url)
                if reason is not None:
                    print(f"[postgresql] skipped: not reachable ({reason})")
                    results.append(Result(database=kind, skipped=f"not reachable: {reason}"))
                    continue
                seed.recreate_postgres_database(args.postgres_admin_url, url)
            results.append(bench_database(kind, url, args, workdir, slack))
    info = machine(load)
    print()
    print(text_table(results))
    print("\n".join(notes(results)))
    raw = save_raw(results, info, args)
    print(f"\nraw results: {raw.relative_to(REPO)}")
    if not args.no_readme:
        update_readme(markdown_results(results, info, args))
        print(f"table written to {README.relative_to(REPO)}")
    ran = [r for r in results if not r.skipped]
    if any(r.error_count or r.warmup_errors or r.timed_out for r in ran):
        print("\nTHE RUN HAD ERRORS: its latencies do not describe a working server.")
        return 1
    if not all(r.meets_targets for r in ran):
        print(f"\ntargets missed (p99 < {P99_TARGET_MS:.0f} ms, peak RSS < {RSS_TARGET_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
