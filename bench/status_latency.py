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
import math
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psutil

from bench import harness, seed
from bench.catalog_gen import write_catalog
from bench.harness import MB, RSS_INTERVAL, SIGNING_SECRET, quantile
from bench.loopback_http import TIMEOUT, BadResponse, HttpxTransport, RawConnection, Transport
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.slack_signing import signed_headers, slash_command_fields

BENCH = harness.Benchmark("status_latency", "results")
P99_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0


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
class Result(harness.Outcome):
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


def _busy_and_steal(before: Any, after: Any) -> tuple[float, float]:
    """CPU seconds the whole machine spent busy between two `psutil.cpu_times()`, and the
    seconds the hypervisor took away (steal)."""
    fields = ("user", "nice", "system", "irq", "softirq")
    busy = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in fields)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return busy, steal


def bench_database(kind: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(database=kind)
    url = harness.fresh_database(kind, workdir, args, "integ")
    catalog = write_catalog(workdir, args.integrations, args.systems, args.seed)
    print(f"[{kind}] filling {url}: {args.integrations} integrations, {args.alerts} alerts…")
    stats = seed.prepare(url, catalog.path, args.alerts, args.seed)
    result.seed = asdict(stats)
    result.seed_seconds = round(stats.seconds, 1)
    result.database_version = harness.database_version(url)
    print(f"[{kind}] starting integ-bot serve…")
    with (
        FakeSlack() as slack,
        harness.running_server(url, catalog.path, slack.url, workdir) as server,
    ):
        result.server_ready_seconds = round(server.ready_after, 1)
        result.rss_after_start_mb = server.sampler.peak(time.monotonic() - 0.5) / MB
        bodies = status_bodies(catalog.integrations)
        print(
            f"[{kind}] {args.warmup} warm-up, then {args.requests} measured requests "
            f"from {args.concurrency} clients…"
        )
        result.reference_loop_ms = harness.reference_loop()
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
        server.raise_if_dead()
        result.vm_hwm_mb = server.sampler.high_water_mark() / MB
        result.peak_rss_mb = server.sampler.peak() / MB
        result.peak_rss_load_mb = server.sampler.peak(warm.started) / MB
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
                harness.ms(r.p50_ms),
                harness.ms(r.p95_ms),
                harness.ms(r.p99_ms),
                harness.ms(r.max_ms),
                f"{r.peak_rss_mb:.0f}",
                f"{r.server_cpu_ms_per_request:.1f}",
                _verdict(r),
            ]
        )
    return table


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
            f"(VmHWM) {r.vm_hwm_mb:.0f} MB; mean {harness.ms(r.mean_ms)} ms; load generator CPU "
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


# -- entry point -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = harness.parser(BENCH, __doc__)
    p.add_argument(
        "--requests", type=harness.int_range(1), default=4000, help="measured requests per database"
    )
    harness.add_load_options(p, warmup=200, unit="requests")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator's HTTP client (see bench/loopback_http.py)",
    )
    p.add_argument("--integrations", type=int, default=1000)
    p.add_argument("--systems", type=int, default=40)
    p.add_argument("--alerts", type=int, default=100_000)
    harness.add_database_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    load = harness.load_before_start()
    results: list[Result] = []
    runners = {"status": (bench_database, results, Result)}
    harness.run_each(BENCH, args, ["status"], runners)
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results",
        tables=[("", HEADERS, rows(results))],
        notes=notes(results),
        raw={
            "targets": {"p99_ms": P99_TARGET_MS, "peak_rss_mb": RSS_TARGET_MB},
            "results": [
                {**asdict(r), "error_count": r.error_count, "meets_targets": r.meets_targets}
                for r in results
            ],
        },
        command_note=(
            f"{args.integrations:,} integrations over {args.systems} systems, "
            f"{args.alerts:,} alerts, {args.concurrency} concurrent clients ({args.client} HTTP "
            f"client), {args.warmup:,} warm-up requests then {args.requests:,} measured."
        ),
        readme=not args.no_readme,
    )
    ran = [r for r in results if not r.skipped]
    if any(r.error_count or r.warmup_errors or r.timed_out for r in ran):
        print("\nTHE RUN HAD ERRORS: its latencies do not describe a working server.")
        return 1
    if not all(r.meets_targets for r in ran):
        print(f"\ntargets missed (p99 < {P99_TARGET_MS:.0f} ms, peak RSS < {RSS_TARGET_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
