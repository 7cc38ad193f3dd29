"""The Home tab: how soon it shows an alert, and how often a storm publishes it.

    .venv/bin/python -m bench.home [--db sqlite|postgresql|both] [--alerts 10] [--storm 1000]

For each database: the real `integ-bot serve` (bench/harness.py) with the fake Slack Web API
of the tests on loopback, and a generated campus catalog (bench/catalog_gen.py: 1,000
integrations over 40 systems) in which one person owns 200 (monitors left out, so that
nothing but this benchmark changes their state). Then, as Slack would send them, signed:

1. `app_home_opened` for that person, `--opens` times: the time from the event to the
   views.publish of their Home reaching the fake Web API.
2. `--alerts` alerts, one at a time, each for one of their integrations: the time from the
   hook's 202 to a views.publish showing that alert (the issue's target: within 3 s).
3. A storm of `--storm` alerts for their integrations, sent in hooks of 100 as fast as the
   server takes them: how many times their Home is published from the first hook until it
   shows every alert (the issue's target: a few, not one per event), and how long after
   the last hook's 202 it shows them all.
4. The render of that Home (200 integrations, the storm's alerts open), in this process on
   the same database, as the outbox worker renders it: median of `--renders`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import harness
from bench.catalog_gen import build_catalog, save_catalog
from bot.listeners.home import HOME_ACTIONS
from commands.home.outbox_calls import preview
from commands.home.view import ALERTS_SHOWN
from commands.permissions.people import CONSOLE
from storage.db import make_engine, make_session_factory
from tests.helpers.fake_slack import Call, FakeSlack
from tests.helpers.slack_signing import event_body, load_payload, signed_headers

BENCH = harness.Benchmark("home", "home-results")
OWNER = "U0BENCHHM"
OWNED = 200
WEBHOOK_TOKEN = "bench-webhook-token"
TARGET_SECONDS = 3.0
FEW_PUBLISHES = 5  # "at most a few"
HOOK_BATCH = 100
_MORE = re.compile(r"(\d+) more open alerts")


@dataclass
class Result(harness.Outcome):
    open_seconds: list[float] = field(default_factory=list)
    alert_seconds: list[float] = field(default_factory=list)
    storm_events: int = 0
    storm_send_seconds: float = 0.0
    storm_publishes: int = 0
    storm_caught_up_seconds: float = float("nan")
    render_ms: list[float] = field(default_factory=list)
    blocks: int = 0
    server_rss_mb: float = 0.0

    @property
    def meets_latency(self) -> bool:
        return bool(self.alert_seconds) and max(self.alert_seconds) <= TARGET_SECONDS

    @property
    def meets_storm(self) -> bool:
        return 0 < self.storm_publishes <= FEW_PUBLISHES


def campus_catalog(workdir: Path, seed: int) -> tuple[Path, list[str]]:
    """The generated catalog, with its first OWNED integrations given to OWNER."""
    data, _ = build_catalog(1000, 40, seed)
    mine = []
    for n, entry in enumerate(data["integrations"]):
        entry.pop("heartbeat", None)
        entry.pop("probe", None)
        if n < OWNED:
            entry["owner"] = OWNER
            mine.append(entry["id"])
    path = workdir / "catalog.yml"
    save_catalog(data, path, "bench/home.py")
    yaml.safe_load(path.read_text())  # a broken file would only show as a server that died
    return path, mine


class HomeWatch:
    """The person's Home as the fake Web API received it."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack

    def publishes(self) -> list[Call]:
        return [c for c in self.slack.calls_to("views.publish") if c.args.get("user_id") == OWNER]

    def wait_for(self, after: int, shows: str | None, timeout: float = 30.0) -> Call:
        """The first publish after the first `after` whose view holds `shows`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.publishes()[after:]:
                if shows is None or shows in json.dumps(call.args.get("view")):
                    return call
            time.sleep(0.005)
        raise RuntimeError(f"no publish of the Home showing {shows!r} within {timeout:.0f} s")


def open_home(client: httpx.Client) -> float:
    payload = load_payload("event_app_home_opened_no_view")
    payload["event"]["user"] = OWNER
    body = event_body(payload)
    sent = time.time()
    headers = signed_headers(body, harness.SIGNING_SECRET)
    response = client.post("/slack/events", content=body, headers=headers)
    response.raise_for_status()
    return sent


def fire(client: httpx.Client, events: list[dict[str, Any]]) -> float:
    response = client.post(
        "/hooks/generic",
        content=json.dumps(events),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"},
    )
    if response.status_code != 202:
        raise RuntimeError(f"hook answered {response.status_code}: {response.text[:200]}")
    return time.time()


def event(integration: str, key: str) -> dict[str, Any]:
    return {"integration": integration, "summary": f"Load failed ({key})", "key": key}


def bench_database(kind: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(database=kind)
    url = harness.fresh_database(kind, workdir, args, "integ")
    result.database_version = harness.database_version(url)
    catalog, mine = campus_catalog(workdir, args.seed)
    env = {"INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    with (
        FakeSlack() as slack,
        harness.running_server(url, catalog, slack.url, workdir, env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        home = HomeWatch(slack)
        print(f"[{kind}] opening the Home {args.opens} times…")
        for _ in range(args.opens):
            seen = len(home.publishes())
            sent = open_home(client)
            result.open_seconds.append(home.wait_for(seen, None).answered - sent)
            time.sleep(2.2)  # past the Home's pace, so each open is measured on its own
        print(f"[{kind}] {args.alerts} alerts, one at a time…")
        for n in range(args.alerts):
            seen = len(home.publishes())
            key = f"single-{n}"
            answered = fire(client, [event(mine[n % len(mine)], key)])
            result.alert_seconds.append(home.wait_for(seen, f"({key})").answered - answered)
            time.sleep(2.2)
        print(f"[{kind}] a storm of {args.storm} alerts…")
        seen = len(home.publishes())
        events = [event(mine[n % len(mine)], f"storm-{n}") for n in range(args.storm)]
        started = time.time()
        for at in range(0, len(events), HOOK_BATCH):
            last = fire(client, events[at : at + HOOK_BATCH])
        result.storm_send_seconds = last - started
        result.storm_events = len(events)
        expected = args.alerts + args.storm
        caught_up = _wait_for_count(home, seen, expected)
        result.storm_caught_up_seconds = caught_up.answered - last
        result.storm_publishes = len(home.publishes()) - seen
        server.raise_if_dead()
        result.server_rss_mb = server.sampler.peak() / harness.MB
    print(f"[{kind}] rendering the Home {args.renders} times in this process…")
    result.render_ms, result.blocks = _renders(url, args.renders)
    return result


def _wait_for_count(home: HomeWatch, seen: int, expected: int, timeout: float = 120.0) -> Call:
    """The first publish after `seen` whose view counts `expected` open alerts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in home.publishes()[seen:]:
            more = _MORE.search(json.dumps(call.args.get("view")))
            if more is not None and int(more.group(1)) + ALERTS_SHOWN == expected:
                return call
        time.sleep(0.01)
    raise RuntimeError(f"the Home never showed {expected} open alerts")


def _renders(url: str, repeats: int) -> tuple[list[float], int]:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    timings, blocks = [], 0
    try:
        for _ in range(repeats):
            with sessions() as session:
                started = time.perf_counter()
                view = preview(session, OWNER, CONSOLE, datetime.now(UTC), HOME_ACTIONS)
                timings.append((time.perf_counter() - started) * 1000)
                blocks = len(view["blocks"])
    finally:
        engine.dispose()
    return timings, blocks


HEADERS = [
    "database",
    "open → Home: median s",
    "alert → Home: median s",
    "alert → Home: max s",
    "target",
    "storm events",
    "storm: publishes",
    "target",
    "storm: caught up s",
    "render: median ms",
    "blocks",
]


def rows(results: list[Result]) -> list[list[str]]:
    table = []
    for r in results:
        if r.skipped:
            table.append([r.database, *[""] * 9, f"skipped: {r.skipped}"])
            continue
        table.append(
            [
                r.database_version,
                f"{statistics.median(r.open_seconds):.2f}",
                f"{statistics.median(r.alert_seconds):.2f}",
                f"{max(r.alert_seconds):.2f}",
                ("meets" if r.meets_latency else "misses") + f" (≤ {TARGET_SECONDS:g} s)",
                f"{r.storm_events:,}",
                f"{r.storm_publishes}",
                ("meets" if r.meets_storm else "misses") + f" (≤ {FEW_PUBLISHES})",
                f"{r.storm_caught_up_seconds:.2f}",
                f"{statistics.median(r.render_ms):.1f}",
                f"{r.blocks}",
            ]
        )
    return table


def notes(results: list[Result]) -> list[str]:
    lines = [
        f"- {r.database}: the storm's {r.storm_events:,} events were sent in "
        f"{r.storm_send_seconds:.1f} s; server peak RSS {r.server_rss_mb:.0f} MB."
        for r in results
        if not r.skipped
    ]
    return lines + harness.skipped_notes(results)


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(BENCH, __doc__)
    p.add_argument("--opens", type=harness.int_range(1), default=5)
    p.add_argument("--alerts", type=harness.int_range(1, 15), default=10)
    p.add_argument("--storm", type=harness.int_range(HOOK_BATCH), default=1000)
    p.add_argument("--renders", type=harness.int_range(1), default=20)
    harness.add_database_options(p)
    args = p.parse_args(argv)
    load = harness.load_before_start()
    results: list[Result] = []
    harness.run_each(BENCH, args, ["home"], {"home": (bench_database, results, Result)})
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: the Home tab",
        tables=[("", HEADERS, rows(results))],
        notes=notes(results),
        raw={"results": [asdict(r) for r in results]},
        command_note=(
            f"1,000 integrations over 40 systems, {OWNED} of them one person's; "
            f"{args.opens} opens, {args.alerts} single alerts, a storm of {args.storm:,}."
        ),
        readme=not args.no_readme,
    )
    ran = [r for r in results if not r.skipped]
    return 0 if all(r.meets_latency and r.meets_storm for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
