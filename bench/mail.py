"""E-mail intake: messages per second the SMTP listener accepts, each committed before 250.

    .venv/bin/python -m bench.mail [--db sqlite|postgresql|both] [--messages 2000] [--clients 4]

For each database: the real `integ-bot serve` with its SMTP listener on, a generated campus
catalog (bench/catalog_gen.py, 1,000 integrations) plus one integration with e-mail rules,
and `--clients` relays, each one SMTP connection sending its share of `--messages` with
Python's smtplib as fast as the listener answers. Half are Banner job failures to the
integration with rules (one alert, its repeats), half success reports to integrations with a
heartbeat (pings). The messages are the fixtures of the tests (tests/data/mail), each with a
Message-ID of its own. Afterwards the rows are counted: every 250 must be a stored message.
"""

from __future__ import annotations

import argparse
import random
import smtplib
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from bench import harness
from bench.catalog_gen import build_catalog, save_catalog
from storage.db import make_engine
from storage.models import ReceivedEvent
from tests.mail.conftest import with_message_id

BENCH = harness.Benchmark("mail", "mail-results")
DOMAIN = "integ.example.edu"
FIXTURES = harness.REPO / "tests" / "data" / "mail"
JOBSUB = {
    "id": "banner-jobsub",
    "name": "Banner job submission",
    "source": None,
    "target": None,
    "mechanism": "flat-file",
    "owner": "U0BENCH01",
    "channel": "C0JOBSUB1",
    "email": {
        "from": ["jobsub@banner.example.edu", "@workday.example.com"],
        "fail_when": {"subject": "(?i)error|failed", "body": "rejected: [1-9]"},
        "success_when": {"subject": "(?i)completed"},
    },
}


@dataclass
class Result(harness.Outcome):
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    seconds: float = 0.0
    stored_rows: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu_ms_per_message: float = 0.0
    server_rss_mb: float = 0.0

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def all_stored(self) -> bool:
        return self.stored_rows == self.accepted and self.refused == 0


def catalog(workdir: Path, seed: int) -> tuple[Path, list[str]]:
    data, _ = build_catalog(1000, 40, seed)
    for entry in data["integrations"]:
        entry.pop("probe", None)  # nothing but this benchmark's mail changes their state
    beats = [e["id"] for e in data["integrations"] if "heartbeat" in e]
    first = data["integrations"][0]
    data["integrations"].append({**JOBSUB, "source": first["source"], "target": first["target"]})
    path = workdir / "catalog.yml"
    save_catalog(data, path, "bench/mail.py")
    return path, beats


def messages(count: int, beats: list[str], seed: int) -> list[tuple[str, str, bytes]]:
    """(sender, recipient, message) for each message to send, each with its own Message-ID."""
    failure = (FIXTURES / "banner_failure.eml").read_bytes()
    success = (FIXTURES / "workday_success_base64.eml").read_bytes()
    rng = random.Random(seed)
    found = []
    for n in range(count):
        raw, sender, to = (
            (failure, "jobsub@banner.example.edu", f"banner-jobsub@{DOMAIN}")
            if n % 2 == 0
            else (success, "donotreply@workday.example.com", f"{rng.choice(beats)}@{DOMAIN}")
        )
        found.append((sender, to, with_message_id(raw, f"bench-{n}@relay.example.edu")))
    return found


def relay(
    port: int, share: list[tuple[str, str, bytes]], result: Result, lock: threading.Lock
) -> None:
    latencies, accepted, refused = [], 0, 0
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for sender, to, raw in share:
            started = time.perf_counter()
            try:
                client.sendmail(sender, [to], raw)
                accepted += 1
            except smtplib.SMTPException:
                refused += 1
            latencies.append((time.perf_counter() - started) * 1000)
    with lock:
        result.accepted += accepted
        result.refused += refused
        result.latencies_ms += latencies


def bench_database(kind: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(database=kind)
    url = harness.fresh_database(kind, workdir, args, "integ")
    result.database_version = harness.database_version(url)
    path, beats = catalog(workdir, args.seed)
    port = harness.free_port()
    env = {"INTEG_SMTP_PORT": str(port), "INTEG_MAIL_DOMAIN": DOMAIN}
    batch = messages(args.messages, beats, args.seed)
    shares = [batch[n :: args.clients] for n in range(args.clients)]
    lock = threading.Lock()
    from tests.helpers.fake_slack import FakeSlack

    with FakeSlack() as slack, harness.running_server(url, path, slack.url, workdir, env) as server:
        print(f"[{kind}] {args.messages} messages from {args.clients} relays…")
        cpu = server.cpu_seconds()
        started = time.perf_counter()
        threads = [threading.Thread(target=relay, args=(port, s, result, lock)) for s in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - started
        result.sent = len(batch)
        server.raise_if_dead()
        used = server.cpu_seconds() - cpu
        result.server_cpu_ms_per_message = used * 1000 / max(result.accepted, 1)
        result.server_rss_mb = server.sampler.peak() / harness.MB
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            result.stored_rows = int(
                conn.execute(select(func.count()).select_from(ReceivedEvent)).scalar_one()
            )
    finally:
        engine.dispose()
    return result


HEADERS = [
    "database",
    "messages",
    "accepted/s",
    "p50 ms",
    "p99 ms",
    "server CPU ms/message",
    "stored rows",
    "every 250 committed",
]


def rows(results: list[Result]) -> list[list[str]]:
    table = []
    for r in results:
        if r.skipped:
            table.append([r.database, *[""] * 6, f"skipped: {r.skipped}"])
            continue
        ordered = sorted(r.latencies_ms)
        table.append(
            [
                r.database_version,
                f"{r.sent:,}",
                f"{r.per_second:,.0f}",
                harness.ms(statistics.median(ordered)),
                harness.ms(harness.quantile(ordered, 0.99)),
                harness.ms(r.server_cpu_ms_per_message),
                f"{r.stored_rows:,}",
                "yes" if r.all_stored else f"no ({r.refused} refused)",
            ]
        )
    return table


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(BENCH, __doc__)
    p.add_argument("--messages", type=harness.int_range(10), default=2000)
    p.add_argument("--clients", type=harness.int_range(1, 64), default=4)
    harness.add_database_options(p)
    args = p.parse_args(argv)
    load = harness.load_before_start()
    results: list[Result] = []
    harness.run_each(BENCH, args, ["mail"], {"mail": (bench_database, results, Result)})
    notes = [
        f"- {r.database}: {r.accepted:,} accepted in {r.seconds:.1f} s; server peak RSS "
        f"{r.server_rss_mb:.0f} MB."
        for r in results
        if not r.skipped
    ] + harness.skipped_notes(results)
    harness.publish(
        BENCH,
        p,
        args,
        load=load,
        title="Results: e-mail intake",
        tables=[("", HEADERS, rows(results))],
        notes=notes,
        raw={"results": [asdict(r) for r in results]},
        command_note=(
            f"{args.clients} relays, one SMTP connection each; half Banner failures (one "
            "alert and its repeats), half success reports (heartbeat pings)."
        ),
        readme=not args.no_readme,
    )
    return 0 if all(r.all_stored for r in results if not r.skipped) else 1


if __name__ == "__main__":
    sys.exit(main())
