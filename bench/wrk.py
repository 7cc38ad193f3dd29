"""Requests per second measured by wrk, a load generator in C, against the real server: pings,
hook events and signed slash commands, so that no Python client shares the two cores' GIL
budget with the server.

    .venv/bin/python -m bench.wrk [--db sqlite|postgresql|both] [--seconds 10] [--scenarios …]

For each database and scenario: a fresh database, `integ-bot serve` against a fake Slack Web
API, `wrk -t2 -c20` for a warm-up and then the measured run, and, once the server has
stopped, the rows that the 2xx answers promised are counted (pings in `heartbeat_pings`,
hook requests in `received_events`). `wrk` is the Debian package; it is installed with
apt-get when missing and this runs as root. bench/README.md says how to read the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import yaml
from sqlalchemy import text

from bench import harness
from bench.harness import MB, SIGNING_SECRET
from bench.monitors import monitors_catalog
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.slack_signing import signed_headers, slash_command_fields

BENCH = harness.Benchmark("wrk", "wrk-results")
SCENARIOS = ("pings", "hooks", "slash")
WEBHOOK_TOKEN = "bench-webhook-token"
# Targets of the speed issue, on SQLite with 20 senders.
TARGETS = {"pings": 2000.0, "hooks": 3000.0}
HOOK_ALERTS = 40
RSS_TARGET_MB = 150.0
# The rows a 2xx of each scenario promises; slash commands store nothing.
STORED_IN = {"pings": "heartbeat_pings", "hooks": "received_events"}
OK_STATUS = {"pings": 200, "hooks": 202, "slash": 200}

# Each wrk thread walks the list from its own offset; `response` counts statuses per thread,
# and `done` adds them up and prints one JSON line for this script to read.
LUA = """
local requests = {%(requests)s}
local threads = {}
local offset = 0
function setup(thread)
  thread:set("start", offset)
  offset = offset + 97
  table.insert(threads, thread)
end
function init(args)
  n = start
  statuses = {}
end
function request()
  n = n + 1
  return requests[(n %% #requests) + 1]
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, reqs)
  local counts = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%%s": %%d', status, count))
  end
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "seconds": %%.3f, "socket_errors": %%d, "timeouts": %%d, '
    .. '"p50_ms": %%.3f, "p99_ms": %%.3f, "max_ms": %%.3f, "statuses": {%%s}}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, table.concat(parts, ", ")))
end
"""


@dataclass
class Run:
    requests: int = 0
    seconds: float = 0.0
    socket_errors: int = 0
    timeouts: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Result(harness.Outcome):
    scenario: str = ""
    warm: Run = field(default_factory=Run)
    measured: Run = field(default_factory=Run)
    ok: int = 0  # 2xx answers of the measured run
    rps: float = 0.0
    promised: int = 0  # 2xx answers of both runs: what must be stored
    stored: int | None = None
    server_cpu_ms: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def errors(self) -> int:
        run = self.measured
        return run.socket_errors + run.timeouts + run.requests - self.ok

    @property
    def in_flight(self) -> int:
        """Requests sent but not counted: those in flight when wrk stopped, at most one per
        connection in each of the two runs. They may be stored; their answers went unread."""
        return 0 if self.stored is None else self.stored - self.promised

    def nothing_lost(self, connections: int) -> bool:
        """Every 2xx stored: at least as many rows as 2xx answers, and no more than the
        requests that can have been in flight besides."""
        return self.stored is None or 0 <= self.in_flight <= 2 * connections


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise SystemExit("wrk is not installed, and there is no apt-get to install it with")
    print("installing wrk (apt-get install wrk)…")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk did not give a wrk command")
    return found


def lua_string(value: str | bytes) -> str:
    raw = value.decode() if isinstance(value, bytes) else value
    return json.dumps(raw)  # a JSON string is a valid Lua string for this ASCII text


def wrk_request(method: str, path: str, headers: dict[str, str], body: str | None) -> str:
    header_table = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    body_arg = lua_string(body) if body is not None else "nil"
    return f"wrk.format({lua_string(method)}, {lua_string(path)}, {{{header_table}}}, {body_arg})"


def ping_requests(keys: list[str], rng: random.Random) -> list[str]:
    """GET /ping/<key> over the heartbeats in a shuffled order, a start now and then."""
    paths = [f"/ping/{k}" for k in keys] * 4 + [f"/ping/{k}/start" for k in keys[:100]]
    rng.shuffle(paths)
    return [wrk_request("GET", p, {}, None) for p in paths]


def hook_requests(ids: list[str], rng: random.Random) -> list[str]:
    """Generic hook events for 40 alerts of the catalog's integrations, each sent again and
    again as it is: most hooks in a real outage are a monitor repeating an open alert."""
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    alerts = [
        json.dumps(
            {
                "integration": ident,
                "key": f"job-{n}",
                "summary": f"Nightly load of {ident} failed: {rng.randint(1, 500)} rows rejected",
                "severity": rng.choice(["critical", "error", "warning"]),
            }
        )
        for n, ident in enumerate(rng.sample(ids, HOOK_ALERTS))
    ]
    bodies = alerts * 5
    rng.shuffle(bodies)
    return [wrk_request("POST", "/hooks/generic", headers, b) for b in bodies]


def slash_requests(ids: list[str], rng: random.Random) -> list[str]:
    """`/integ status <id>` as Slack sends it, signed now: valid for Slack's five minutes."""
    fields = slash_command_fields("")
    chosen = rng.sample(ids, min(200, len(ids)))
    requests = []
    for ident in chosen:
        body = urlencode({**fields, "text": f"status {ident}"})
        requests.append(
            wrk_request("POST", "/slack/events", signed_headers(body, SIGNING_SECRET), body)
        )
    return requests


def run_wrk(url: str, script: Path, args: argparse.Namespace, seconds: float) -> Run:
    command = [
        ensure_wrk(),
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    return Run(**json.loads(line.removeprefix("WRK-JSON ")))


def bench_scenario(kind: str, scenario: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(database=kind, scenario=scenario)
    url = harness.fresh_database(kind, workdir, args, f"wrk-{scenario}")
    catalog = monitors_catalog(workdir, args.heartbeats, args.heartbeats, 0, None, args.seed)
    ids = [i["id"] for i in yaml.safe_load(catalog.path.read_text())["integrations"]]
    rng = random.Random(args.seed)
    makers: dict[str, Callable[[], list[str]]] = {
        "pings": lambda: ping_requests(catalog.heartbeat_keys, rng),
        "hooks": lambda: hook_requests(ids, rng),
        "slash": lambda: slash_requests(ids, rng),
    }
    script = workdir / f"{scenario}.lua"
    script.write_text(LUA % {"requests": ",\n  ".join(makers[scenario]())})
    env = {"INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    with (
        FakeSlack() as slack,
        harness.running_server(url, catalog.path, slack.url, workdir, env) as server,
    ):
        result.database_version = harness.database_version(url)
        print(f"[{kind}] {scenario}: wrk -t{args.threads} -c{args.connections}, {args.seconds} s…")
        result.warm = run_wrk(server.url, script, args, args.warmup_seconds)
        cpu = server.cpu_seconds()
        result.measured = run_wrk(server.url, script, args, args.seconds)
        cpu = server.cpu_seconds() - cpu
        time.sleep(harness.RSS_INTERVAL * 2)
        server.raise_if_dead()
        result.peak_rss_mb = server.sampler.peak() / MB
    status = str(OK_STATUS[scenario])
    result.ok = result.measured.statuses.get(status, 0)
    result.promised = result.ok + result.warm.statuses.get(status, 0)
    result.rps = result.ok / result.measured.seconds if result.measured.seconds else 0.0
    result.server_cpu_ms = cpu * 1000 / max(1, result.measured.requests)
    if scenario in STORED_IN:
        # Counted once the server has stopped: each 2xx promised a committed row.
        with harness.engine_for(url) as engine, engine.connect() as conn:
            result.stored = int(conn.scalar(text(f"SELECT count(*) FROM {STORED_IN[scenario]}")))
    return result


# -- reporting -------------------------------------------------------------------------------

HEADERS = [
    "database",
    "requests",
    "2xx/s",
    "target",
    "p50 ms",
    "p99 ms",
    "max ms",
    "not 2xx",
    "2xx / rows stored",
    "server CPU ms/req",
    "peak RSS MB",
]
NAMES = {
    "pings": "GET /ping/<key> (200 heartbeats, 1 in 9 a /start)",
    "hooks": "POST /hooks/generic (40 open alerts, repeated)",
    "slash": "signed /integ status <id> (200 integrations)",
}


def rows(results: list[Result]) -> list[list[str]]:
    table = []
    for r in results:
        if r.skipped:
            table.append([f"{r.database}: {NAMES[r.scenario]}", *["skipped"] * 10])
            continue
        target = TARGETS.get(r.scenario)
        stored = "n/a" if r.stored is None else f"{r.promised:,} / {r.stored:,}"
        table.append(
            [
                f"{r.database_version}: {NAMES[r.scenario]}",
                f"{r.measured.requests:,}",
                f"{r.rps:,.0f}",
                f"≥ {target:,.0f}" if target and r.database == "sqlite" else "",
                f"{r.measured.p50_ms:.1f}",
                f"{r.measured.p99_ms:.1f}",
                f"{r.measured.max_ms:.1f}",
                f"{r.errors:,}",
                stored,
                f"{r.server_cpu_ms:.2f}",
                f"{r.peak_rss_mb:.0f}",
            ]
        )
    return table


def notes(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        if r.skipped:
            continue
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.measured.statuses.items()))
        stored = (
            f"; {r.in_flight} rows more than 2xx answers (requests in flight when wrk stopped)"
            if r.stored is not None
            else ""
        )
        lines.append(
            f"- {r.database} {r.scenario}: statuses {codes}; socket errors "
            f"{r.measured.socket_errors}, timeouts {r.measured.timeouts}; warm-up "
            f"{r.warm.requests:,} requests{stored}."
        )
    return [*lines, *harness.skipped_notes(results)]


def parser() -> argparse.ArgumentParser:
    p = harness.parser(BENCH, __doc__)
    harness.add_scenarios(p, SCENARIOS)
    p.add_argument("--seconds", type=float, default=10.0, help="the measured run, per scenario")
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--threads", type=harness.int_range(1), default=2)
    p.add_argument("--connections", type=harness.int_range(1), default=20)
    p.add_argument("--heartbeats", type=harness.int_range(100), default=200)
    harness.add_database_options(p, database="integ_bench_wrk")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    ensure_wrk()  # before anything is built: installing it may take a while
    reference_ms = harness.reference_loop()
    load = harness.load_before_start()
    results: list[Result] = []
    chosen = args.scenarios.split(",")

    def runner(name: str) -> Callable[[str, Path, argparse.Namespace], Result]:
        return lambda kind, workdir, a: bench_scenario(kind, name, workdir, a)

    harness.run_each(
        BENCH,
        args,
        chosen,
        {
            name: (runner(name), results, lambda n=name, **kw: Result(scenario=n, **kw))
            for name in chosen
        },
    )
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: wrk",
        tables=[("", HEADERS, rows(results))],
        notes=[
            *notes(results),
            f"- Reference loop {reference_ms:.0f} ms before the runs (this machine kind's "
            "quiet figure is about 12 ms: see the first benchmark's How to read it).",
        ],
        raw={"targets": TARGETS, "results": [asdict(r) for r in results]},
        command_note=(
            f"wrk -t{args.threads} -c{args.connections}, {args.warmup_seconds:g} s warm-up "
            f"then {args.seconds:g} s measured per scenario."
        ),
        readme=not args.no_readme,
    )
    ran = [r for r in results if not r.skipped]
    if not all(r.nothing_lost(args.connections) for r in ran):
        print("\nA 2xx WAS NOT STORED: the figures describe a server that loses what it accepts.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
