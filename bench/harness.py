"""What every benchmark needs besides its own measurements, written once.

The command line they share, the databases (a fresh SQLite file, or the benchmark's own
PostgreSQL database dropped and re-created; migrations), the server under test
(`integ-bot serve` in its own process, its RSS sampled), the machine's description and speed,
and the reporting: tables as text and Markdown, the raw figures in bench/results/*.json, and
the block of bench/README.md between a benchmark's own markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.loopback_http import Answer, Request, send_all

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
README = BENCH_DIR / "README.md"
RESULTS = BENCH_DIR / "results"
MB = 1_000_000
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
RSS_INTERVAL = 0.05
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"

# (title, headers, rows): a table as the benchmarks print it and write it to the README.
Table = tuple[str, list[str], list[list[str]]]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's module (bench/<module>.py) and the name of its markers in the README."""

    module: str
    marker: str

    @property
    def start(self) -> str:
        return (
            f"<!-- {self.marker}:start (written by bench/{self.module}.py; edits here are lost) -->"
        )

    @property
    def end(self) -> str:
        return f"<!-- {self.marker}:end -->"


# -- the command line ------------------------------------------------------------------------


def parser(bench: Benchmark, description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m bench.{bench.module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--seed", type=int, default=1)
    return p


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within the bounds."""

    def parse(value: str) -> int:
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value}: must be {bounds}")
        return number

    return parse


def add_scenarios(p: argparse.ArgumentParser, scenarios: Sequence[str]) -> None:
    def parse(value: str) -> str:
        chosen = [s.strip() for s in value.split(",") if s.strip()]
        if not chosen or set(chosen) - set(scenarios):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(scenarios)}")
        return ",".join(chosen)

    p.add_argument(
        "--scenarios",
        type=parse,
        default=",".join(scenarios),
        help="comma-separated, from: " + ", ".join(scenarios),
    )


class _AddsArguments(Protocol):
    def add_argument(self, *names: str, **options: Any) -> Any: ...


def add_load_options(g: _AddsArguments, *, warmup: int, unit: str) -> None:
    """How many clients, how much warm-up and how long a load phase may last."""
    g.add_argument(
        "--concurrency", type=int_range(1, 200), default=20, help="concurrent clients (senders)"
    )
    g.add_argument(
        "--warmup", type=int_range(0), default=warmup, help=f"{unit} sent first, not measured"
    )
    g.add_argument("--max-seconds", type=float, default=300, help="time limit of each load phase")


def add_database_options(
    p: argparse.ArgumentParser, *, database: str = "integ_bench", admin_database: str = "test"
) -> None:
    p.add_argument(
        "--postgres-url",
        default=f"{POSTGRES}/{database}",
        help="the benchmark's database; dropped and created afresh for every scenario",
    )
    p.add_argument(
        "--postgres-admin-url",
        default=f"{POSTGRES}/{admin_database}",
        help="an existing database to connect to while creating the benchmark's",
    )
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")


def command_line(p: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The command that repeats this run: only the options that differ from the defaults."""
    parts = [f".venv/bin/{p.prog}"]
    defaults = vars(p.parse_args([]))
    for key, value in vars(args).items():
        if key == "no_readme" or value == defaults.get(key):
            continue
        parts.append(f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}"))
    return " ".join(parts)


# -- the machine -----------------------------------------------------------------------------


def load_before_start() -> float:
    load = os.getloadavg()[0]
    if load > 1.0:
        print(
            f"note: load average {load:.1f} before starting: other work on this machine "
            "takes CPU from the code measured, so the figures will be worse and noisier"
        )
    return load


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


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile: the smallest value with at least q of the values at or below."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# -- databases -------------------------------------------------------------------------------


@contextmanager
def engine_for(url: str, **options: Any) -> Iterator[Engine]:
    engine = create_engine(url, **options)
    try:
        yield engine
    finally:
        engine.dispose()


def scalar_int(
    executor: Connection | Session, sql: str, params: Mapping[str, Any] | None = None
) -> int:
    """The one number a query answers (a count, a sum), 0 for NULL; on a connection or a
    session alike."""
    return int(executor.execute(text(sql), dict(params or {})).scalar() or 0)


def postgres_unreachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers at `admin_url`, else the reason in one line."""
    try:
        with (
            engine_for(admin_url, connect_args={"connect_timeout": 3}) as engine,
            engine.connect() as conn,
        ):
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def recreate_postgres_database(admin_url: str, database_url: str) -> None:
    """Drop and create the benchmark's own database, leaving every other one alone."""
    name = make_url(database_url).database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected database name in {database_url!r}")
    with (
        engine_for(admin_url, isolation_level="AUTOCOMMIT") as engine,
        engine.connect() as conn,
    ):
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))


def fresh_database(kind: str, workdir: Path, args: argparse.Namespace, name: str) -> str:
    """The URL of an empty database: a new SQLite file named `name` in `workdir`, or the
    benchmark's PostgreSQL database, dropped and re-created. The schema is left to whoever
    uses it: the server and the runtime migrate at start-up, as in production."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{name}.db'}"
    recreate_postgres_database(args.postgres_admin_url, args.postgres_url)
    return str(args.postgres_url)


def upgrade_schema(database_url: str) -> None:
    """`integ-bot db upgrade`, as an operator would run it."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("integ-bot")), "db", "upgrade"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"integ-bot db upgrade failed:\n{result.stdout}{result.stderr}")


def database_version(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    with engine_for(url) as engine, engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar())
    return f"PostgreSQL {version.split()[0]}"


@dataclass
class Outcome:
    """What every scenario's result starts with: the database, and why it did not run there."""

    database: str
    database_version: str = ""
    skipped: str | None = None


def run_each(
    bench: Benchmark,
    args: argparse.Namespace,
    chosen: Sequence[str],
    runners: Mapping[str, tuple[Callable[..., Any], list[Any], Callable[..., Outcome]]],
) -> None:
    """Run each chosen scenario on each database `--db` names, in a work folder of its own; a
    scenario on an unreachable PostgreSQL is recorded as skipped, with the reason, rather than
    failing. `runners` maps a scenario to (function, the list its results go to, its result
    class)."""
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory(prefix=f"integ-bench-{bench.module}-") as tmp:
        for kind in kinds:
            workdir = Path(tmp) / kind
            workdir.mkdir()
            reason = None
            if kind == "postgresql":
                reason = postgres_unreachable(args.postgres_admin_url)
                if reason is not None:
                    print(f"[postgresql] skipped: not reachable ({reason})")
            for name in chosen:
                runner, into, empty = runners[name]
                if reason is not None:
                    into.append(empty(database=kind, skipped=f"not reachable: {reason}"))
                    continue
                into.append(runner(kind, workdir, args))


def skipped_notes(results: Iterable[Outcome]) -> list[str]:
    found = {f"{r.database}: {r.skipped}" for r in results if r.skipped}
    return [f"- skipped {reason}" for reason in sorted(found)]


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

    def raise_if_dead(self) -> None:
        """Figures from a server that died part way describe nothing; say why instead."""
        if self.process.poll() is not None:
            raise RuntimeError(f"the server died during the run:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.sampler.stop()


@contextmanager
def running_server(
    database_url: str,
    catalog: Path,
    slack_api_url: str,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`integ-bot serve` on a free port, ready to answer, configured only by what is given
    here: the caller's SLACK_, INTEG_ and DATABASE_URL variables would otherwise change what
    is measured. Stopped on the way out."""
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
    env.update(extra_env or {})
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
        server.ready_after = time.monotonic() - server.started_at
        yield server
    finally:
        server.stop()


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


# -- the load -------------------------------------------------------------------------------


@dataclass
class Phases:
    """A warm-up and a measured phase against one server: the answers of each, and what the
    measured phase took."""

    warm: list[Answer | None]
    answers: list[Answer | None]
    seconds: float
    timed_out: bool
    server_cpu_seconds: float
    client_cpu_seconds: float
    reference_loop_ms: float

    @property
    def sent(self) -> int:
        return sum(1 for a in self.answers if a is not None)


def warm_then_measure(
    server: Server,
    warm: Sequence[Request],
    measured: Sequence[Request],
    expect: int,
    args: argparse.Namespace,
    before_measuring: Callable[[], object] | None = None,
) -> Phases:
    """The warm-up, the reference loop, then the measured phase, each a closed loop of
    `--concurrency` senders limited to `--max-seconds`; `before_measuring` runs just before
    the measured phase starts (to forget what the warm-up left behind)."""
    warm_answers, _, _ = asyncio.run(
        send_all(server.url, warm, expect, args.concurrency, args.max_seconds)
    )
    reference = reference_loop()
    if before_measuring is not None:
        before_measuring()
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    answers, seconds, timed_out = asyncio.run(
        send_all(server.url, measured, expect, args.concurrency, args.max_seconds)
    )
    return Phases(
        warm=warm_answers,
        answers=answers,
        seconds=seconds,
        timed_out=timed_out,
        server_cpu_seconds=server.cpu_seconds() - server_cpu,
        client_cpu_seconds=time.process_time() - client_cpu,
        reference_loop_ms=reference,
    )


# -- reporting -------------------------------------------------------------------------------


def ms(value: float, grouped: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.1f}" if grouped else f"{value:.1f}"


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first and last columns (names, verdicts) left, numbers right."""
    align = "|".join("---" if i in (0, len(headers) - 1) else "--:" for i in range(len(headers)))
    return [
        "| " + " | ".join(headers) + " |",
        "|" + align + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    every = [headers, *rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in every]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def readme_block(
    bench: Benchmark,
    title: str,
    info: Mapping[str, str],
    command: str,
    tables: Sequence[Table],
    notes: Sequence[str],
) -> str:
    """The benchmark's block of the README: where and how it ran, its tables, its notes.
    `command` is the sentence after "Command:"; a table without a title stands alone."""
    lines = [
        bench.start,
        f"## {title}",
        "",
        f"Run {info['date']} on {info['cpu']}, {info['cores']} cores, {info['memory']}, "
        f"Python {info['python']}, {info['os']}; load average {info['load_average']} when "
        "it started.",
        "",
        f"Command: {command}",
    ]
    for heading, headers, rows in tables:
        lines.append("")
        if heading:
            lines += [f"**{heading}**", ""]
        lines += md_table(headers, rows)
    lines += ["", *notes, "", bench.end]
    return "\n".join(lines)


def update_readme(bench: Benchmark, block: str, path: Path = README) -> None:
    """Replace this benchmark's block, keeping every word around it; append it if missing."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    start = current.find(bench.start.split(" (")[0])
    end = current.find(bench.end)
    if start != -1 and end > start:
        updated = current[:start] + block + current[end + len(bench.end) :]
    else:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + block + "\n"
    path.write_text(updated, encoding="utf-8")


def _plain(value: Any) -> Any:
    """NaN and infinity as null: json.dumps would write them as bare NaN, which is not JSON."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def save_raw(bench: Benchmark, data: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{bench.module}-{stamp}.json"
    path.write_text(json.dumps(_plain(dict(data)), indent=2, default=str), encoding="utf-8")
    return path


def publish(
    bench: Benchmark,
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    *,
    load: float,
    title: str,
    tables: Sequence[Table],
    notes: Sequence[str],
    raw: Mapping[str, Any],
    command_note: str = "",
    readme: bool = True,
) -> None:
    """Print the tables and notes, save the raw figures with the machine and arguments, and
    (with `readme`) replace the benchmark's block of bench/README.md."""
    info = machine(load)
    for heading, headers, rows in tables:
        print("\n" + (f"{heading}\n" if heading else "") + text_table(headers, rows))
    print("\n".join(["", *notes]))
    path = save_raw(bench, {"machine": info, "arguments": vars(args), **raw})
    print(f"\nraw results: {path.relative_to(REPO)}")
    if readme:
        command = f"`{command_line(p, args)}`." + (f" {command_note}" if command_note else "")
        update_readme(bench, readme_block(bench, title, info, command, tables, notes))
        print(f"tables written to {README.relative_to(REPO)}")
