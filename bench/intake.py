"""Alerts end to end over HTTP: intake rate, time to Slack, and a storm against Slack's limit.

    .venv/bin/python -m bench.intake [--db sqlite|postgresql|both] [--scenarios ...]

Three scenarios, each against a fresh database and its own `integ-bot serve` process, with a
fake Slack Web API on loopback (`tests/helpers/fake_slack.py`, with Slack's per-channel limit added
by `bench/limited_slack.py` for the storm):

1. intake: 20 concurrent senders post generic alerts (mostly repeats of a few hundred keys,
   some new keys, some resolves, a few for an unknown integration) as fast as they are
   answered; events answered 202 per second, p50/p99 of the 202, and afterwards a count of
   `received_events` rows, which must equal the 202s.
2. latency: new alerts at a modest rate spread over the channels (below one a second per
   channel); for each, the time from its 202 to the fake's `chat.postMessage` carrying it.
3. storm: 10,000 events for 10 integrations (each in its own channel, 200 keys) within a
   minute, the fake answering 429 + Retry-After to more than one write a second per channel;
   then the outbox is drained, and the Slack calls, the 429s and any lost event are counted.

Writes the figures to bench/README.md (between its own markers) and bench/results/*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import text

from bench import harness, seed
from bench.catalog_gen import build_catalog, save_catalog
from bench.harness import quantile
from bench.limited_slack import LimitedSlack
from bench.loopback_http import Answer, Request, answered_with, error_counts, latencies_ms, send_all
from tests.helpers.fake_slack import Call

BENCH = harness.Benchmark("intake", "intake-results")
EXAMPLE_CATALOG = harness.REPO / "examples" / "catalog.yml"
WEBHOOK_TOKEN = "bench-webhook-token"
FALLBACK_CHANNEL = "C0FALLBACK"
UNKNOWN_INTEGRATION = "legacy-sftp"
HOOK = "/hooks/generic"
HEADERS = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
# What the server needs besides what every benchmark gives it: the hooks' token, and a
# channel for alerts of integrations the catalog does not know.
SERVER_ENV = {"INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "INTEG_FALLBACK_CHANNEL": FALLBACK_CHANNEL}

INTAKE_TARGET_EPS = 1000.0
POST_P95_TARGET_MS = 1000.0
# "No more than a few per alert": a post, an update or two while the storm lasts, and the
# last update once it is over.
STORM_CALLS_PER_ALERT_TARGET = 5.0

SCENARIOS = ("intake", "latency", "storm")

# The history's summaries, but for the missed heartbeats and failed probes: the bot raises
# those itself, they do not come in through the hooks.
_SUMMARIES = [s for s in seed.SUMMARIES if not s.startswith(("Heartbeat", "Probe"))]
_SEVERITIES = (["critical", "error", "warning", "info"], [15, 55, 25, 5])
_ALERT_ID = re.compile(r"Alert #(\d+)")


# -- the server under test -------------------------------------------------------------------


def server_metrics(server: harness.Server) -> dict[str, float]:
    """The server's own outbox and hook counters from /metrics (Prometheus text)."""
    try:
        body = httpx.get(server.url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(("integ_outbox_", "integ_hook")) and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if not name.endswith("_created"):
                try:
                    found[name] = float(value)
                except ValueError:
                    pass
    return found


# -- the database, looked at from outside ----------------------------------------------------


def pending_outbox(url: str) -> int:
    with harness.engine_for(url) as engine, engine.connect() as conn:
        return harness.scalar_int(conn, "SELECT count(*) FROM outbox WHERE status = 'pending'")


@dataclass
class Stored:
    received_events: int = 0
    received_alerts: int = 0
    alerts: int = 0
    keys: set[tuple[str, str]] = field(default_factory=set)
    counts: dict[int, int] = field(default_factory=dict)  # alert id -> count
    outbox: dict[str, int] = field(default_factory=dict)  # status -> rows
    outbox_kinds: dict[str, int] = field(default_factory=dict)  # kind of rows sent -> rows
    superseded: int = 0
    attempts: dict[str, int] = field(default_factory=dict)  # HTTP status -> attempts


def stored(url: str) -> Stored:
    found = Stored()
    with harness.engine_for(url) as engine, engine.connect() as conn:
        found.received_events, found.received_alerts = conn.execute(
            text("SELECT count(*), coalesce(sum(alerts), 0) FROM received_events")
        ).one()
        rows = conn.execute(text("SELECT id, integration_name, key, count FROM alerts")).all()
        found.alerts = len(rows)
        found.keys = {(name, key) for _, name, key, _ in rows}
        found.counts = {int(ident): int(count) for ident, _, _, count in rows}
        found.outbox = {
            str(status): int(n)
            for status, n in conn.execute(
                text("SELECT status, count(*) FROM outbox GROUP BY status")
            ).all()
        }
        found.outbox_kinds = {
            str(kind): int(n)
            for kind, n in conn.execute(
                text(
                    "SELECT kind, count(*) FROM outbox WHERE status = 'sent' "
                    "AND (last_error IS NULL OR last_error NOT LIKE 'superseded%') GROUP BY kind"
                )
            ).all()
        }
        found.superseded = harness.scalar_int(
            conn, "SELECT count(*) FROM outbox WHERE last_error LIKE 'superseded%'"
        )
        found.attempts = {
            str(status if status is not None else "none"): int(n)
            for status, n in conn.execute(
                text("SELECT http_status, count(*) FROM outbox_attempts GROUP BY http_status")
            ).all()
        }
    return found


def wait_for_drain(url: str, max_seconds: float) -> tuple[float, int]:
    """Seconds until no outbox row is pending (bounded), and how many still were."""
    started = time.monotonic()
    left = pending_outbox(url)
    while left and time.monotonic() - started < max_seconds:
        time.sleep(0.5)
        left = pending_outbox(url)
    return time.monotonic() - started, left


# -- what the senders send -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    integration: str
    key: str
    status: str
    tag: str  # unique text in the summary, to find the alert's message in Slack
    body: bytes


def _body(
    rng: random.Random, integration: str, key: str, status: str, summary: str
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "integration": integration,
        "status": status,
        "summary": summary,
        "key": key,
        "severity": rng.choices(*_SEVERITIES)[0],
    }
    if rng.random() < 0.4:
        item["details"] = "Job log excerpt: step 3 of 5 failed\n" + "x" * rng.randint(0, 400)
    if rng.random() < 0.5:
        item["url"] = f"https://logs.example.edu/run/{rng.randint(1, 10**6)}"
    if rng.random() < 0.3:
        at = datetime.now(UTC) - timedelta(seconds=rng.randint(0, 600))
        item["occurred_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return item


def _zipf_weights(n: int, exponent: float = 0.9) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(n)]


def intake_events(
    rng: random.Random, integrations: Sequence[str], total: int, args: argparse.Namespace
) -> list[Event]:
    """A realistic mix: repeats of `keys` known failures (a few noisy, most rare), new keys,
    resolves of known ones, and a few for an integration the catalog does not know."""
    noisy = _zipf_weights(len(integrations), 1.0)
    hot = [
        (rng.choices(integrations, noisy)[0], f"job-{n:04d}", rng.choice(_SUMMARIES))
        for n in range(args.keys)
    ]
    hot_weights = _zipf_weights(len(hot))
    events = []
    for n in range(total):
        roll = rng.random()
        status = "firing"
        if roll < args.new_fraction:
            integration, key = rng.choices(integrations, noisy)[0], f"new-{n:06d}"
            summary = rng.choice(_SUMMARIES)
        else:
            integration, key, summary = rng.choices(hot, hot_weights)[0]
            if roll < args.new_fraction + args.resolve_fraction:
                status = "resolved"
            elif roll < args.new_fraction + args.resolve_fraction + args.unknown_fraction:
                integration = UNKNOWN_INTEGRATION
        tag = f"i{n:06d}"
        text_ = f"{summary.format(n=rng.randint(1, 500))} [{tag}]"
        item = _body(rng, integration, key, status, text_)
        events.append(Event(integration, key, status, tag, json.dumps(item).encode()))
    return events


# -- senders ---------------------------------------------------------------------------------


def hooks(events: Sequence[Event]) -> list[Request]:
    """The events as posts to the generic hook; a 202 promises that one is stored."""
    return [Request("POST", HOOK, e.body, HEADERS) for e in events]


def _keys_accepted(events: Sequence[Event], answers: Sequence[Answer | None]) -> set[Any]:
    """(integration, key) of every alert a 202 promised: a firing event that was accepted."""
    return {
        (e.integration, e.key)
        for e, a in zip(events, answers, strict=True)
        if a is not None and a.status == 202 and e.status == "firing"
    }


# -- Slack, as the fake saw it ---------------------------------------------------------------


def _dump(call: Call) -> str:
    return json.dumps(call.args, ensure_ascii=False)


def _channel_gaps(calls: Sequence[Call]) -> tuple[float, int]:
    """The shortest time between two accepted writes to one channel, and how many pairs
    came closer than a second (Slack's limit)."""
    by_channel: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        if call.method in ("chat.postMessage", "chat.update") and call.ok:
            by_channel[str(call.args.get("channel", ""))].append(call.time)
    shortest, under = math.inf, 0
    for times in by_channel.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            shortest = min(shortest, b - a)
            under += b - a < 0.999
    return shortest, under


def _methods(calls: Sequence[Call]) -> dict[str, int]:
    counted: Counter[str] = Counter()
    for call in calls:
        if call.method == "chat.postMessage" and call.args.get("thread_ts"):
            counted["chat.postMessage (thread reply)"] += 1
        else:
            counted[call.method] += 1
    return dict(counted)


# -- scenario 1: sustained intake ------------------------------------------------------------


@dataclass
class IntakeResult(harness.Outcome):
    requests: int = 0
    accepted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    seconds: float = 0.0
    events_per_second: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    warmup: int = 0
    received_rows: int = 0
    accepted_total: int = 0  # warm-up and measured
    keys_missing: int = 0
    alerts: int = 0
    server_cpu_ms_per_event: float = 0.0
    client_cpu_ms_per_event: float = 0.0
    peak_rss_mb: float = 0.0
    outbox_pending_after: int = 0
    slack_calls_during: dict[str, int] = field(default_factory=dict)
    reference_loop_ms: float = 0.0
    mix: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.accepted_total - self.received_rows

    @property
    def meets_target(self) -> bool:
        return (
            not self.skipped
            and not self.errors
            and not self.timed_out
            and self.lost == 0
            and self.keys_missing == 0
            and (self.database != "sqlite" or self.events_per_second >= INTAKE_TARGET_EPS)
        )


def example_integrations(path: Path = EXAMPLE_CATALOG) -> dict[str, str]:
    """id -> channel of every integration in a catalog file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(i["id"]): str(i["channel"]) for i in data["integrations"]}


def run_intake(kind: str, workdir: Path, args: argparse.Namespace) -> IntakeResult:
    result = IntakeResult(database=kind)
    url = harness.fresh_database(kind, workdir, args, "intake")
    rng = random.Random(args.seed)
    integrations = sorted(example_integrations())
    events = intake_events(rng, integrations, args.warmup + args.requests, args)
    warm, measured = events[: args.warmup], events[args.warmup :]
    result.mix = dict(
        Counter(
            "unknown integration"
            if e.integration == UNKNOWN_INTEGRATION
            else "new key"
            if e.key.startswith("new-")
            else e.status
            for e in measured
        )
    )
    with (
        LimitedSlack() as slack,
        harness.running_server(url, EXAMPLE_CATALOG, slack.url, workdir, SERVER_ENV) as server,
    ):
        result.database_version = harness.database_version(url)
        print(
            f"[{kind}] intake: {args.warmup} warm-up, then {args.requests} events from "
            f"{args.concurrency} senders…"
        )
        load = harness.warm_then_measure(
            server, hooks(warm), hooks(measured), 202, args, before_measuring=slack.clear
        )
        result.slack_calls_during = _methods(slack.calls)
        result.peak_rss_mb = server.sampler.peak() / harness.MB
        server.raise_if_dead()
    # Counted once the server is stopped: whatever it answered 202 must be in the database.
    found = stored(url)
    result.outbox_pending_after = found.outbox.get("pending", 0)
    latencies = latencies_ms(load.answers, 202)
    result.reference_loop_ms = load.reference_loop_ms
    result.requests = load.sent
    result.accepted = len(latencies)
    result.errors = error_counts(load.answers)
    result.timed_out = load.timed_out
    result.seconds = load.seconds
    result.events_per_second = result.accepted / load.seconds if load.seconds else 0.0
    result.p50_ms = quantile(latencies, 0.50)
    result.p99_ms = quantile(latencies, 0.99)
    result.max_ms = latencies[-1] if latencies else math.nan
    result.warmup = len(warm)
    result.accepted_total = answered_with(load.warm, 202) + result.accepted
    result.received_rows = found.received_events
    promised = _keys_accepted(warm, load.warm) | _keys_accepted(measured, load.answers)
    result.keys_missing = len(promised - found.keys)
    result.alerts = found.alerts
    result.server_cpu_ms_per_event = load.server_cpu_seconds * 1000 / max(1, result.requests)
    result.client_cpu_ms_per_event = load.client_cpu_seconds * 1000 / max(1, result.requests)
    return result


# -- scenario 2: from 202 to chat.postMessage ------------------------------------------------


@dataclass
class LatencyResult(harness.Outcome):
    alerts: int = 0
    accepted: int = 0
    posted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    channels: int = 0
    per_channel_interval_s: float = 0.0
    rate_per_second: float = 0.0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    max_ms: float = math.nan
    request_to_post_p95_ms: float = math.nan
    hook_p50_ms: float = math.nan
    shortest_channel_gap_s: float = math.nan
    writes_under_a_second_apart: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def meets_target(self) -> bool:
        return (
            not self.skipped
            and not self.errors
            and self.posted == self.accepted == self.alerts
            and self.p95_ms < POST_P95_TARGET_MS
        )


def new_alerts(
    rng: random.Random, by_channel: dict[str, list[str]], count: int, prefix: str
) -> list[Event]:
    """`count` new alerts, channel after channel, each with its own key and tag."""
    channels = sorted(by_channel)
    events = []
    for n in range(count):
        integration = rng.choice(by_channel[channels[n % len(channels)]])
        tag = f"{prefix}{n:05d}x{rng.randrange(16**6):06x}"
        summary = f"{rng.choice(_SUMMARIES).format(n=rng.randint(1, 500))} [{tag}]"
        item = _body(rng, integration, f"{prefix}-{n}", "firing", summary)
        events.append(Event(integration, f"{prefix}-{n}", "firing", tag, json.dumps(item).encode()))
    return events


def _posts_by_tag(calls: Sequence[Call], pattern: re.Pattern[str]) -> dict[str, Call]:
    """The first accepted chat.postMessage (not a thread reply) carrying each tag."""
    found: dict[str, Call] = {}
    for call in calls:
        if call.method != "chat.postMessage" or not call.ok or call.args.get("thread_ts"):
            continue
        for tag in pattern.findall(_dump(call)):
            found.setdefault(tag, call)
    return found


def run_latency(kind: str, workdir: Path, args: argparse.Namespace) -> LatencyResult:
    result = LatencyResult(database=kind)
    url = harness.fresh_database(kind, workdir, args, "latency")
    rng = random.Random(args.seed + 1)
    by_channel: dict[str, list[str]] = defaultdict(list)
    for integration, channel in sorted(example_integrations().items()):
        by_channel[channel].append(integration)
    channels = len(by_channel)
    result.channels = channels
    result.per_channel_interval_s = args.post_interval
    result.rate_per_second = channels / args.post_interval
    warm = new_alerts(rng, by_channel, channels, "w")
    events = new_alerts(rng, by_channel, args.post_alerts, "p")
    # Round robin over the channels, evenly spaced: each channel gets a new alert every
    # `post_interval` seconds, so pacing (one write a second per channel) never delays one.
    spacing = args.post_interval / channels
    at = [n * spacing for n in range(len(events))]
    pattern = re.compile(r"\[([wp]\d{5}x[0-9a-f]{6})\]")
    with (
        LimitedSlack() as slack,
        harness.running_server(url, EXAMPLE_CATALOG, slack.url, workdir, SERVER_ENV) as server,
    ):
        result.database_version = harness.database_version(url)
        print(
            f"[{kind}] latency: {len(events)} new alerts over {channels} channels, "
            f"one per channel every {args.post_interval:.1f} s…"
        )
        # One alert per channel first, so first-use costs (templates, statement caches,
        # connections) are not counted, then a pause longer than the pacing.
        asyncio.run(send_all(server.url, hooks(warm), 202, 4, args.max_seconds, [0.0] * len(warm)))
        _wait_for_posts(slack, pattern, {e.tag for e in warm}, 15.0)
        time.sleep(1.5)
        slack.clear()
        answers, _, _ = asyncio.run(
            send_all(
                server.url, hooks(events), 202, 4, args.max_seconds + len(events) * spacing, at
            )
        )
        posts = _wait_for_posts(slack, pattern, {e.tag for e in events}, args.post_wait)
        result.shortest_channel_gap_s, result.writes_under_a_second_apart = _channel_gaps(
            slack.calls
        )
    result.alerts = len(events)
    result.errors = error_counts(answers)
    result.accepted = answered_with(answers, 202)
    delays, whole = [], []
    for event, answer in zip(events, answers, strict=True):
        if answer is None or answer.status != 202:
            continue
        call = posts.get(event.tag)
        if call is None:
            result.missing.append(event.tag)
            continue
        delays.append((call.time - answer.answered_at) * 1000)
        whole.append((call.time - answer.sent_at) * 1000)
    delays.sort()
    whole.sort()
    result.posted = len(delays)
    result.p50_ms = quantile(delays, 0.50)
    result.p95_ms = quantile(delays, 0.95)
    result.max_ms = delays[-1] if delays else math.nan
    result.request_to_post_p95_ms = quantile(whole, 0.95)
    hook = latencies_ms(answers, 202)
    result.hook_p50_ms = quantile(hook, 0.50)
    return result


def _wait_for_posts(
    slack: LimitedSlack, pattern: re.Pattern[str], tags: set[str], timeout: float
) -> dict[str, Call]:
    deadline = time.monotonic() + timeout
    while True:
        found = _posts_by_tag(slack.calls, pattern)
        if tags <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# -- scenario 3: the storm -------------------------------------------------------------------


@dataclass
class StormResult(harness.Outcome):
    events: int = 0
    accepted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    integrations: int = 0
    keys: int = 0
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    still_pending: int = 0
    hook_p50_ms: float = math.nan
    hook_p99_ms: float = math.nan
    # From the 202 of an alert's first event to its chat.postMessage, during the storm.
    first_post_p50_s: float = math.nan
    first_post_p95_s: float = math.nan
    first_post_max_s: float = math.nan
    slack_calls: int = 0
    calls_by_method: dict[str, int] = field(default_factory=dict)
    ratelimited: int = 0
    alerts: int = 0
    calls_per_alert: float = 0.0
    accepted_calls_per_alert: float = 0.0
    received_rows: int = 0
    lost_events: int = 0
    keys_missing: int = 0
    posted_twice: int = 0
    never_posted: int = 0
    stale_messages: int = 0  # last message of an alert not showing its final count
    outbox: dict[str, int] = field(default_factory=dict)
    outbox_sent_by_kind: dict[str, int] = field(default_factory=dict)
    superseded: int = 0
    attempts_by_status: dict[str, int] = field(default_factory=dict)
    shortest_channel_gap_s: float = math.nan
    writes_under_a_second_apart: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    slack_limit: str = ""

    @property
    def meets_target(self) -> bool:
        return (
            not self.skipped
            and not self.errors
            and self.lost_events == 0
            and self.keys_missing == 0
            and self.posted_twice == 0
            and self.never_posted == 0
            and self.still_pending == 0
            and self.calls_per_alert <= STORM_CALLS_PER_ALERT_TARGET
        )


def storm_catalog(workdir: Path, integrations: int, seed_: int) -> tuple[Path, list[str]]:
    """A generated catalog (bench/catalog_gen.py) of `integrations`, each in its own channel."""
    data, names = build_catalog(integrations, systems=min(40, max(2, integrations)), seed=seed_)
    for n, entry in enumerate(data["integrations"]):
        entry["channel"] = f"C0STORM{n:03d}"
    path = workdir / "storm-catalog.yml"
    save_catalog(data, path, "bench/intake.py")
    return path, [ident for ident, _ in names]


def storm_events(
    rng: random.Random, integrations: Sequence[str], args: argparse.Namespace
) -> list[Event]:
    """`storm_events` events over `storm_keys` keys spread evenly over the integrations; some
    keys fire far more often than others (a failing job retried, a flapping check)."""
    keys = [
        (integrations[n % len(integrations)], f"storm-{n:04d}", rng.choice(_SUMMARIES))
        for n in range(args.storm_keys)
    ]
    weights = _zipf_weights(len(keys), 0.6)
    rng.shuffle(weights)
    events = []
    for _ in range(args.storm_events):
        integration, key, summary = rng.choices(keys, weights)[0]
        status = "resolved" if rng.random() < args.storm_resolve_fraction else "firing"
        text_ = f"{summary.format(n=rng.randint(1, 500))} [{key}]"
        item = _body(rng, integration, key, status, text_)
        events.append(Event(integration, key, status, key, json.dumps(item).encode()))
    return events


def _final_messages(calls: Sequence[Call]) -> tuple[Counter[int], dict[int, str]]:
    """Per alert id: how many top-level posts it got, and the text of its last accepted
    post or update (what people see once the storm is over)."""
    posts: Counter[int] = Counter()
    last: dict[int, str] = {}
    for call in sorted(calls, key=lambda c: c.time):
        if call.method not in ("chat.postMessage", "chat.update") or not call.ok:
            continue
        if call.args.get("thread_ts"):
            continue
        dumped = _dump(call)
        found = _ALERT_ID.search(dumped)
        if found is None:
            continue
        ident = int(found.group(1))
        if call.method == "chat.postMessage":
            posts[ident] += 1
        last[ident] = dumped
    return posts, last


def run_storm(kind: str, workdir: Path, args: argparse.Namespace) -> StormResult:
    result = StormResult(database=kind)
    url = harness.fresh_database(kind, workdir, args, "storm")
    catalog, integrations = storm_catalog(workdir, args.storm_integrations, args.seed)
    rng = random.Random(args.seed + 2)
    events = storm_events(rng, integrations, args)
    result.events, result.integrations, result.keys = (
        len(events),
        len(integrations),
        args.storm_keys,
    )
    spacing = args.storm_seconds / len(events)
    at = [n * spacing for n in range(len(events))]
    limit = args.storm_limit if args.storm_limit > 0 else None
    result.slack_limit = (
        f"{limit:g} write/s per channel, burst {args.storm_burst:g}" if limit else "none"
    )
    with (
        LimitedSlack(per_second=limit, burst=args.storm_burst) as slack,
        harness.running_server(url, catalog, slack.url, workdir, SERVER_ENV) as server,
    ):
        result.database_version = harness.database_version(url)
        print(
            f"[{kind}] storm: {len(events)} events for {len(integrations)} integrations "
            f"({args.storm_keys} keys) over {args.storm_seconds:.0f} s, Slack limit "
            f"{result.slack_limit}…"
        )
        answers, result.send_seconds, _ = asyncio.run(
            send_all(server.url, hooks(events), 202, args.concurrency, args.max_seconds, at)
        )
        print(f"[{kind}] storm sent in {result.send_seconds:.1f} s; draining the outbox…")
        result.drain_seconds, result.still_pending = wait_for_drain(url, args.drain_seconds)
        time.sleep(0.5)  # a send in flight when the last row was marked
        result.metrics = server_metrics(server)
        calls = slack.calls
    found = stored(url)
    result.errors = error_counts(answers)
    result.accepted = answered_with(answers, 202)
    hook = latencies_ms(answers, 202)
    result.hook_p50_ms = quantile(hook, 0.50)
    result.hook_p99_ms = quantile(hook, 0.99)
    writes = [c for c in calls if c.method.startswith("chat.")]
    result.slack_calls = len(writes)
    result.calls_by_method = _methods(writes)
    result.ratelimited = sum(1 for c in writes if c.status == 429)
    result.alerts = found.alerts
    result.calls_per_alert = len(writes) / max(1, found.alerts)
    result.accepted_calls_per_alert = sum(1 for c in writes if c.ok) / max(1, found.alerts)
    result.received_rows = found.received_events
    result.lost_events = result.accepted - found.received_events
    result.keys_missing = len(_keys_accepted(events, answers) - found.keys)
    posts, last = _final_messages(calls)
    result.posted_twice = sum(1 for n in posts.values() if n > 1)
    result.never_posted = sum(1 for ident in found.counts if posts[ident] == 0)
    for ident, count in found.counts.items():
        seen = "Seen once" if count == 1 else f"Seen {count} times"
        if ident in last and seen not in last[ident]:
            result.stale_messages += 1
    result.outbox = found.outbox
    result.outbox_sent_by_kind = found.outbox_kinds
    result.superseded = found.superseded
    result.attempts_by_status = found.attempts
    result.shortest_channel_gap_s, result.writes_under_a_second_apart = _channel_gaps(writes)
    waits = sorted(_first_post_waits(events, answers, writes))
    result.first_post_p50_s = quantile(waits, 0.50)
    result.first_post_p95_s = quantile(waits, 0.95)
    result.first_post_max_s = waits[-1] if waits else math.nan
    return result


def _first_post_waits(
    events: Sequence[Event], answers: Sequence[Answer | None], calls: Sequence[Call]
) -> list[float]:
    """Per alert: seconds from the 202 of its first event to the post that shows it."""
    first: dict[str, float] = {}
    for event, answer in zip(events, answers, strict=True):
        if answer is not None and answer.status == 202 and event.status == "firing":
            first[event.tag] = min(first.get(event.tag, math.inf), answer.answered_at)
    posted = _posts_by_tag(calls, re.compile(r"\[(storm-\d{4})\]"))
    return [posted[tag].time - at for tag, at in first.items() if tag in posted]


# -- reporting -------------------------------------------------------------------------------


def _verdict(ok: bool, problems: list[str]) -> str:
    return "meets" if ok else "misses: " + ", ".join(problems or ["see notes"])


def intake_row(r: IntakeResult) -> list[str]:
    problems = []
    if r.database == "sqlite" and r.events_per_second < INTAKE_TARGET_EPS:
        problems.append(f"< {INTAKE_TARGET_EPS:,.0f}/s")
    if r.lost or r.keys_missing:
        problems.append(f"{r.lost} lost, {r.keys_missing} keys missing")
    if r.errors:
        problems.append(f"{sum(r.errors.values())} errors")
    verdict = _verdict(r.meets_target, problems)
    if r.database != "sqlite" and r.meets_target:
        verdict = "0 lost (no rate target)"
    return [
        r.database_version or r.database,
        f"{r.requests:,}",
        f"{sum(r.errors.values())}",
        f"{r.events_per_second:,.0f}",
        harness.ms(r.p50_ms),
        harness.ms(r.p99_ms),
        harness.ms(r.max_ms),
        f"{r.received_rows:,} / {r.accepted_total:,}",
        f"{r.server_cpu_ms_per_event:.2f}",
        verdict,
    ]


def latency_row(r: LatencyResult) -> list[str]:
    problems = []
    if r.p95_ms >= POST_P95_TARGET_MS:
        problems.append("p95 ≥ 1 s")
    if r.posted != r.alerts:
        problems.append(f"{r.alerts - r.posted} not posted")
    return [
        r.database_version or r.database,
        f"{r.alerts}",
        f"{r.posted}",
        f"{r.rate_per_second:.1f}/s over {r.channels} ch",
        harness.ms(r.p50_ms),
        harness.ms(r.p95_ms),
        harness.ms(r.max_ms),
        harness.ms(r.hook_p50_ms),
        _verdict(r.meets_target, problems),
    ]


def storm_row(r: StormResult) -> list[str]:
    problems = []
    if r.calls_per_alert > STORM_CALLS_PER_ALERT_TARGET:
        problems.append(f"{r.calls_per_alert:.1f} calls/alert")
    if r.lost_events or r.keys_missing:
        problems.append(f"{r.lost_events} events lost, {r.keys_missing} keys missing")
    if r.posted_twice or r.never_posted:
        problems.append(f"{r.posted_twice} posted twice, {r.never_posted} never")
    if r.still_pending:
        problems.append(f"{r.still_pending} still queued")
    methods = r.calls_by_method
    return [
        r.database_version or r.database,
        f"{r.accepted:,}/{r.events:,} in {r.send_seconds:.0f} s",
        f"{r.alerts}",
        f"{r.slack_calls:,}",
        f"{methods.get('chat.postMessage', 0)} / {methods.get('chat.update', 0)} / "
        f"{methods.get('chat.postMessage (thread reply)', 0)}",
        f"{r.ratelimited}",
        f"{r.calls_per_alert:.2f}",
        f"{r.first_post_p95_s:.1f}",
        f"{r.lost_events}",
        f"{r.drain_seconds:.0f}",
        _verdict(r.meets_target, problems),
    ]


INTAKE_HEADERS = [
    "database",
    "events",
    "errors",
    "events/s (202)",
    "p50 ms",
    "p99 ms",
    "max ms",
    "rows / 202s",
    "server CPU ms/event",
    "target ≥ 1,000/s (SQLite)",
]
LATENCY_HEADERS = [
    "database",
    "new alerts",
    "posted",
    "rate",
    "202→post p50 ms",
    "p95 ms",
    "max ms",
    "hook p50 ms",
    "target p95 < 1 s",
]
STORM_HEADERS = [
    "database",
    "events (202)",
    "alerts",
    "Slack calls",
    "post / update / reply",
    "429s",
    "calls per alert",
    "first post p95 s",
    "events lost",
    "drained after s",
    "target ≤ 5 calls/alert, 0 lost",
]


@dataclass
class Run:
    intake: list[IntakeResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    storm: list[StormResult] = field(default_factory=list)

    def sections(self) -> list[harness.Table]:
        found = []
        ran = [r for r in self.intake if not r.skipped]
        if ran:
            found.append(("Sustained intake", INTAKE_HEADERS, [intake_row(r) for r in ran]))
        ran_l = [r for r in self.latency if not r.skipped]
        if ran_l:
            found.append(
                ("From 202 to chat.postMessage", LATENCY_HEADERS, [latency_row(r) for r in ran_l])
            )
        ran_s = [r for r in self.storm if not r.skipped]
        if ran_s:
            found.append(("Storm", STORM_HEADERS, [storm_row(r) for r in ran_s]))
        return found

    def skipped(self) -> list[str]:
        return harness.skipped_notes([*self.intake, *self.latency, *self.storm])

    def problems(self) -> list[str]:
        found = []
        for r in self.intake:
            if not r.skipped and (r.errors or r.lost or r.keys_missing or r.timed_out):
                found.append(f"intake on {r.database}: errors {r.errors}, lost {r.lost}")
        for s in self.storm:
            if not s.skipped and (s.errors or s.lost_events or s.keys_missing or s.posted_twice):
                found.append(f"storm on {s.database}: errors {s.errors}, lost {s.lost_events}")
        return found


def notes(run: Run) -> list[str]:
    lines = []
    for r in run.intake:
        if r.skipped:
            continue
        mix = ", ".join(f"{v:,} {k}" for k, v in sorted(r.mix.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"- intake, {r.database}: {r.alerts:,} alerts from {mix}; peak RSS "
            f"{r.peak_rss_mb:.0f} MB; load generator CPU {r.client_cpu_ms_per_event:.2f} "
            f"ms/event; {r.outbox_pending_after:,} outbox rows still queued at the end (the "
            f"worker posts one message a second per channel); reference loop "
            f"{r.reference_loop_ms:.0f} ms." + (f" Errors: {r.errors}." if r.errors else "")
        )
    for r in run.latency:
        if r.skipped:
            continue
        lines.append(
            f"- 202 to post, {r.database}: one new alert per channel every "
            f"{r.per_channel_interval_s:.1f} s; from the request (not the 202) to the post p95 "
            f"{harness.ms(r.request_to_post_p95_ms)} ms; shortest gap between two writes to one "
            f"channel {r.shortest_channel_gap_s:.2f} s."
            + (f" Not posted: {', '.join(r.missing[:5])}." if r.missing else "")
        )
    for s in run.storm:
        if s.skipped:
            continue
        attempts = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.attempts_by_status.items()))
        lines.append(
            f"- storm, {s.database}: Slack limit {s.slack_limit}; {s.keys} keys over "
            f"{s.integrations} integrations; accepted calls per alert "
            f"{s.accepted_calls_per_alert:.2f}; {s.superseded:,} queued updates folded into "
            f"an earlier send; attempts recorded by HTTP status: {attempts}; hook p50/p99 "
            f"{harness.ms(s.hook_p50_ms)}/{harness.ms(s.hook_p99_ms)} ms; received_events "
            f"{s.received_rows:,} for {s.accepted:,} 202s; keys missing {s.keys_missing}; "
            f"a new alert's first post came p50 {s.first_post_p50_s:.1f} s, p95 "
            f"{s.first_post_p95_s:.1f} s, max {s.first_post_max_s:.1f} s after its 202; "
            f"alerts posted twice {s.posted_twice}, never posted {s.never_posted}, final "
            f"message not showing the final count {s.stale_messages}; shortest gap between "
            f"two accepted writes to one channel {s.shortest_channel_gap_s:.2f} s."
        )
    return lines


# -- entry point -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = harness.parser(BENCH, __doc__)
    harness.add_scenarios(p, SCENARIOS)
    harness.add_load_options(p, warmup=500, unit="events")
    g = p.add_argument_group("intake")
    g.add_argument("--requests", type=harness.int_range(1), default=10_000, help="measured events")
    g.add_argument("--keys", type=int, default=300, help="known failures that repeat")
    g.add_argument("--new-fraction", type=float, default=0.05, help="events with a new key")
    g.add_argument("--resolve-fraction", type=float, default=0.03, help="resolves")
    g.add_argument(
        "--unknown-fraction", type=float, default=0.01, help="for an unknown integration"
    )
    g = p.add_argument_group("202 to post")
    g.add_argument("--post-alerts", type=int, default=120, help="new alerts measured")
    g.add_argument(
        "--post-interval", type=float, default=1.5, help="seconds between new alerts per channel"
    )
    g.add_argument("--post-wait", type=float, default=30, help="longest wait for the posts")
    g = p.add_argument_group("storm")
    g.add_argument("--storm-events", type=harness.int_range(1), default=10_000)
    g.add_argument("--storm-seconds", type=float, default=50, help="spread over this long")
    g.add_argument("--storm-integrations", type=int, default=10)
    g.add_argument("--storm-keys", type=int, default=200)
    g.add_argument("--storm-resolve-fraction", type=float, default=0.0)
    g.add_argument(
        "--storm-limit",
        type=float,
        default=1.0,
        help="writes a second per channel the fake Slack allows before 429 (0: no limit)",
    )
    g.add_argument("--storm-burst", type=float, default=1.0, help="writes it allows at once")
    g.add_argument("--drain-seconds", type=float, default=300, help="longest wait for the outbox")
    harness.add_database_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    load = harness.load_before_start()
    run = Run()
    runners = {
        "intake": (run_intake, run.intake, IntakeResult),
        "latency": (run_latency, run.latency, LatencyResult),
        "storm": (run_storm, run.storm, StormResult),
    }
    harness.run_each(BENCH, args, args.scenarios.split(","), runners)
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: alert intake",
        tables=run.sections(),
        notes=[*notes(run), *run.skipped()],
        raw={
            "targets": {
                "intake_events_per_second_sqlite": INTAKE_TARGET_EPS,
                "post_p95_ms": POST_P95_TARGET_MS,
                "storm_calls_per_alert": STORM_CALLS_PER_ALERT_TARGET,
                "lost": 0,
            },
            "intake": [
                {**asdict(r), "lost": r.lost, "meets_target": r.meets_target} for r in run.intake
            ],
            "latency": [{**asdict(r), "meets_target": r.meets_target} for r in run.latency],
            "storm": [{**asdict(r), "meets_target": r.meets_target} for r in run.storm],
        },
        readme=not args.no_readme,
    )
    problems = run.problems()
    if problems:
        print("\nTHE RUN LOST EVENTS OR HAD ERRORS:\n" + "\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
