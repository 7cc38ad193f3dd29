"""HTTP probes: checked against a real HTTP server on loopback whose answers each test sets,
with due times driven by the injected clock. Nothing here sleeps to schedule a check: the
clock is moved and `run_due()` called. Only the server answers slowly where a test needs a
request to be in flight (a timeout, a slow probe, two runners overlapping)."""

from __future__ import annotations

import copy
import shutil
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.runtime import Runtime
from bot.workers.probes import ProbeRunner
from commands.monitors.probes import next_due
from storage.db import transaction
from storage.models import Alert, AlertTransition, OutboxMessage, Probe
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings

EXAMPLE = yaml.safe_load(EXAMPLE_CATALOG.read_text(encoding="utf-8"))
CRM_CHANNEL = "C0INTEG01"  # the channel of integration "crm" in examples/catalog.yml


# -- the probed server ----------------------------------------------------------------------


class Target:
    """A threaded HTTP server on loopback: each path answers what the test set, and counts
    its requests. A held path answers only once `release` is set."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        self.answers: dict[str, tuple[int, str]] = {}
        self.held: set[str] = set()
        self.redirects: dict[str, str] = {}
        self.release = threading.Event()
        self.delay = 0.0
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target._lock:
                    target.hits[self.path] += 1
                    target.in_flight += 1
                    target.peak = max(target.peak, target.in_flight)
                counted = [True]

                def done() -> None:
                    with target._lock:
                        if counted[0]:
                            target.in_flight -= 1
                            counted[0] = False

                try:
                    if self.path in target.held:
                        target.release.wait(15)
                    elif target.delay:
                        time.sleep(target.delay)
                    status, body = target.answers.get(self.path, (404, "no such page"))
                    data = body.encode()
                    self.send_response(status)
                    if self.path in target.redirects:
                        self.send_header("Location", target.redirects[self.path])
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    # No longer in flight once the answer leaves: the client may start its
                    # next request before this thread gets to run again.
                    done()
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the probe gave up (timed out) and closed the connection
                finally:
                    done()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *args: Any) -> None:
                pass  # refused TLS handshakes and dropped connections are what tests expect

        self.server = Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, path: str, status: int = 200, body: str = '{"status":"UP"}') -> str:
        self.answers[path] = (status, body)
        return self.url(path)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then let go."""
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        return int(server.server_address[1])


# -- the bot --------------------------------------------------------------------------------


def write_catalog(
    path: Path, probes: dict[str, dict[str, Any]], *, without: tuple[str, ...] = ()
) -> Path:
    """examples/catalog.yml with exactly the given probes (the example's own point at hosts
    that do not exist), and without the integrations named in `without`."""
    data = copy.deepcopy(EXAMPLE)
    data["integrations"] = [i for i in data["integrations"] if i["id"] not in without]
    for integration in data["integrations"]:
        integration.pop("probe", None)
        if integration["id"] in probes:
            integration["probe"] = probes[integration["id"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Notified:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def make_runner(
    make_runtime: Callable[..., Runtime],
) -> Iterator[Callable[..., tuple[ProbeRunner, Notified]]]:
    made: list[ProbeRunner] = []

    def make(
        runtime: Runtime, worker_id: str = "probes-a", **kwargs: Any
    ) -> tuple[ProbeRunner, Notified]:
        notified = Notified()
        runner = ProbeRunner(runtime.deps, notified, worker_id, **kwargs)
        made.append(runner)
        return runner, notified

    # Depends on make_runtime so the runners close before the runtimes' engines go.
    yield make
    for runner in made:
        runner.close()


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.yml"


def probe_row(runtime: Runtime, integration_id: str = "crm") -> Probe | None:
    with runtime.deps.sessions() as session:
        return session.get(Probe, integration_id)


def alerts(runtime: Runtime) -> list[Alert]:
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def transitions(runtime: Runtime, alert_id: int) -> list[tuple[str | None, str]]:
    with runtime.deps.sessions() as session:
        rows = session.scalars(
            select(AlertTransition)
            .where(AlertTransition.alert_id == alert_id)
            .order_by(AlertTransition.id)
        )
        return [(t.from_status, t.to_status) for t in rows]


def outbox(runtime: Runtime, kind: str | None = None) -> list[OutboxMessage]:
    with runtime.deps.sessions() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [m for m in rows if kind is None or m.kind == kind]


# -- raising and resolving ------------------------------------------------------------------


def test_a_probe_that_fails_twice_raises_one_alert_and_the_first_success_resolves_it(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health", 503, "Service Unavailable")
    probe = {"url": url, "every": "5m", "timeout": "5s", "expect_status": 200}
    runtime = make_runtime(
        make_settings(database_url, catalog=write_catalog(catalog_path, {"crm": probe}))
    )
    runner, notified = make_runner(runtime)

    assert runner.run_due() == 1
    assert alerts(runtime) == [] and outbox(runtime) == []
    assert probe_row(runtime).failures == 1
    assert notified.count == 0

    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 1
    [alert] = alerts(runtime)
    assert (alert.integration_name, alert.integration_id, alert.key) == ("crm", "crm", "probe")
    assert (alert.source, alert.status, alert.severity) == ("probe", "firing", "error")
    assert alert.summary == f"Probe failed 2 times: HTTP 503 from {url} (expected 200)"
    assert alert.url == url
    assert 'it answered "Service Unavailable"' in alert.details
    # The streak so far: this failure and the one before it, newest first.
    assert alert.details.count("• ") == 2
    assert "2026-11-26 09:35:00 UTC: HTTP 503" in alert.details.splitlines()[2]
    assert transitions(runtime, alert.id) == [(None, "firing")]
    [post] = outbox(runtime)
    assert (post.kind, post.channel, post.alert_id) == ("post", CRM_CHANNEL, alert.id)
    assert notified.count == 1

    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 1
    [alert] = alerts(runtime)
    assert alert.count == 2
    assert alert.summary.startswith("Probe failed 3 times: HTTP 503")
    assert alert.details.count("• ") == 3
    assert transitions(runtime, alert.id) == [(None, "firing")]
    assert len(outbox(runtime, "post")) == 1

    target.answer("/health", 200, "OK")
    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 1
    [alert] = alerts(runtime)
    assert alert.status == "resolved"
    assert alert.resolved_at == clock.now
    assert transitions(runtime, alert.id) == [(None, "firing"), ("firing", "resolved")]
    assert len(outbox(runtime, "post")) == 1
    row = probe_row(runtime)
    assert (row.failures, row.last_status_code, row.last_error) == (0, 200, None)
    assert row.last_ok_at == clock.now
    assert notified.count == 3

    # Healthy from here on: nothing more happens to the alert.
    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 1
    assert transitions(runtime, alert.id) == [(None, "firing"), ("firing", "resolved")]
    assert notified.count == 3
    assert target.hits["/health"] == 5


def test_a_single_failure_below_the_threshold_raises_nothing(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health", 500, "boom")
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "every": "1m", "failures": 3}})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, notified = make_runner(runtime)
    for _ in range(2):
        runner.run_due()
        clock.now += timedelta(minutes=1)
    target.answer("/health", 204, "")
    runner.run_due()
    assert alerts(runtime) == [] and outbox(runtime) == []
    assert notified.count == 0
    assert probe_row(runtime).failures == 0


def _certificate(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(
    "failure",
    ["timeout", "connection refused", "wrong status", "missing text", "dns", "tls"],
)
def test_each_kind_of_failure_is_named_in_the_alert(
    failure, database_url, make_runtime, make_runner, target, catalog_path, tmp_path
):
    probe: dict[str, Any] = {"every": "1m", "timeout": "2s", "failures": 1}
    tls_target: Target | None = None
    if failure == "timeout":
        target.held.add("/slow")
        probe.update(url=target.url("/slow"), timeout="1s")
        expected = "timed out after 1s"
    elif failure == "connection refused":
        port = closed_port()
        probe["url"] = f"http://127.0.0.1:{port}/health"
        expected = f"connection refused by 127.0.0.1:{port}"
    elif failure == "wrong status":
        probe.update(url=target.answer("/health", 500, "oops"), expect_status=200)
        expected = "HTTP 500 from"
    elif failure == "missing text":
        probe.update(
            url=target.answer("/health", 200, '{"status":"DOWN"}'), expect_text='"status":"UP"'
        )
        expected = "missing expected text: HTTP 200 from"
    elif failure == "dns":
        # .invalid never resolves (RFC 6761), so no real host is ever asked.
        probe["url"] = "http://probe-target.invalid/health"
        expected = "DNS failure: probe-target.invalid could not be resolved"
    else:
        tls_target = Target(certificate=_certificate(tmp_path))
        tls_target.answer("/health")
        probe["url"] = tls_target.url("/health")
        expected = f"TLS failure with 127.0.0.1:{tls_target.url('').rsplit(':', 1)[1]}"
    try:
        catalog = write_catalog(catalog_path, {"crm": probe})
        runtime = make_runtime(make_settings(database_url, catalog=catalog))
        runner, notified = make_runner(runtime)
        assert runner.run_due() == 1
    finally:
        if tls_target is not None:
            tls_target.close()
    [alert] = alerts(runtime)
    assert alert.summary.startswith("Probe failed once: " + expected), alert.summary
    assert probe["url"] in alert.summary
    assert probe_row(runtime).last_error.startswith(expected)
    assert [m.kind for m in outbox(runtime)] == ["post"]
    assert notified.count == 1
    if failure == "tls":
        assert "certificate" in alert.summary


def test_a_redirect_is_followed_unless_the_probe_expects_one(
    database_url, make_runtime, make_runner, target, catalog_path
):
    moved = target.answer("/moved", 302, "see /health")
    target.redirects["/moved"] = "/health"
    target.answer("/health", 200, '{"status":"UP"}')
    probes = {
        "crm": {"url": moved, "expect_text": '"status":"UP"', "failures": 1},
        "payments": {"url": moved, "expect_status": 302, "failures": 1},
    }
    runtime = make_runtime(make_settings(database_url, catalog=write_catalog(catalog_path, probes)))
    runner, _ = make_runner(runtime)
    assert runner.run_due() == 2
    assert alerts(runtime) == []
    assert probe_row(runtime, "crm").last_status_code == 200
    assert probe_row(runtime, "payments").last_status_code == 302
    assert target.hits == Counter({"/moved": 2, "/health": 1})


def test_an_error_page_is_quoted_short_and_on_one_line(
    database_url, make_runtime, make_runner, target, catalog_path
):
    page = "<html>\n<body><h1>502 Bad Gateway</h1>" + "x" * 50_000 + "</body></html>"
    url = target.answer("/health", 502, page)
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "failures": 1}})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, _ = make_runner(runtime)
    runner.run_due()
    [alert] = alerts(runtime)
    assert alert.summary == f"Probe failed once: HTTP 502 from {url} (expected 2xx)"
    quoted = alert.details.splitlines()[-1].split("it answered ", 1)[1]
    assert quoted.startswith('"<html> <body><h1>502 Bad Gateway</h1>xxx')
    assert len(quoted) <= 170


# -- scheduling -----------------------------------------------------------------------------


def test_a_probe_is_not_checked_before_it_is_due_and_is_checked_once_per_period(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health")
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "every": "5m"}})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, _ = make_runner(runtime)
    start = clock.now

    assert runner.run_due() == 1  # a new probe is due at once
    assert runner.run_due() == 0
    clock.now = start + timedelta(minutes=4, seconds=59)
    assert runner.run_due() == 0
    clock.now = start + timedelta(minutes=5)
    assert runner.run_due() == 1
    assert runner.run_due() == 0
    assert target.hits["/health"] == 2
    row = probe_row(runtime)
    assert row.due_at == start + timedelta(minutes=10)
    assert (row.claimed_by, row.claimed_until) == (None, None)
    assert row.last_checked_at == start + timedelta(minutes=5)
    assert row.last_ok_at == start + timedelta(minutes=5)
    assert row.last_latency_ms is not None and row.last_status_code == 200


def test_the_next_check_is_counted_from_the_scheduled_time_not_from_when_it_ran(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health")
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "every": "5m"}})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, _ = make_runner(runtime)
    start = clock.now
    runner.run_due()

    clock.now = start + timedelta(minutes=5, seconds=40)  # the tick came late
    assert runner.run_due() == 1
    assert probe_row(runtime).due_at == start + timedelta(minutes=10)

    # Far behind (the bot was down): one check now, then back on the grid, no catch-up burst.
    clock.now = start + timedelta(minutes=33)
    assert runner.run_due() == 1
    assert runner.run_due() == 0
    assert probe_row(runtime).due_at == start + timedelta(minutes=35)


def test_next_due_stays_on_the_grid():
    base = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    five = timedelta(minutes=5)
    assert next_due(base, five, base) == base + five
    assert next_due(base, five, base + timedelta(minutes=4)) == base + five
    assert next_due(base, five, base + five) == base + 2 * five
    assert next_due(base, five, base + timedelta(minutes=17)) == base + 4 * five


def test_a_restarted_process_resumes_from_the_stored_due_time(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health")
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "every": "5m"}})
    settings = make_settings(database_url, catalog=catalog)
    first, _ = make_runner(make_runtime(settings), "before-restart")
    start = clock.now
    assert first.run_due() == 1
    first.close()

    clock.now = start + timedelta(minutes=2)
    restarted, _ = make_runner(make_runtime(settings), "after-restart")
    assert restarted.run_due() == 0  # not repeated
    clock.now = start + timedelta(minutes=5)
    assert restarted.run_due() == 1  # not skipped
    assert target.hits["/health"] == 2


def test_a_claim_left_by_a_dead_process_is_taken_over_when_its_lease_ends(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health")
    catalog = write_catalog(catalog_path, {"crm": {"url": url, "timeout": "10s"}})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, _ = make_runner(runtime, "survivor")
    with transaction(runtime.deps.sessions) as session:
        session.add(
            Probe(
                integration_id="crm",
                due_at=clock.now,
                claimed_by="dead-process",
                claimed_until=clock.now + timedelta(seconds=70),
                failures=0,
            )
        )
    assert runner.run_due() == 0
    clock.now += timedelta(seconds=71)
    assert runner.run_due() == 1
    assert probe_row(runtime).claimed_by is None


def test_two_runners_on_one_database_check_each_due_probe_once(
    database_url, make_runtime, make_runner, target, catalog_path
):
    ids = [i["id"] for i in EXAMPLE["integrations"]]
    probes = {ident: {"url": target.answer(f"/{ident}"), "every": "5m"} for ident in ids}
    settings = make_settings(database_url, catalog=write_catalog(catalog_path, probes))
    # Two runtimes, two engines: as two processes sharing one database.
    first, _ = make_runner(make_runtime(settings), "process-1", max_workers=4)
    second, _ = make_runner(make_runtime(settings), "process-2", max_workers=4)
    target.delay = 0.05  # keeps checks in flight while the other runner claims
    counts: dict[str, int] = {}
    start = threading.Barrier(2)

    def run(name: str, runner: ProbeRunner) -> None:
        start.wait()
        counts[name] = runner.run_due()

    threads = [
        threading.Thread(target=run, args=(name, runner))
        for name, runner in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert counts["first"] + counts["second"] == len(ids)
    assert target.hits == Counter({f"/{ident}": 1 for ident in ids})


# -- the catalog ----------------------------------------------------------------------------


def test_removing_the_probe_from_the_catalog_removes_its_row(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    crm = {"url": target.answer("/crm"), "every": "5m"}
    payments = {"url": target.answer("/payments"), "every": "5m"}
    catalog = write_catalog(catalog_path, {"crm": crm, "payments": payments})
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    runner, _ = make_runner(runtime)
    assert runner.run_due() == 2

    write_catalog(catalog_path, {"payments": payments})
    runtime.watcher.check()
    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 1
    assert probe_row(runtime, "crm") is None
    assert probe_row(runtime, "payments") is not None

    # A removed integration loses its probe too.
    write_catalog(catalog_path, {"payments": payments}, without=("payments",))
    runtime.watcher.check()
    clock.now += timedelta(minutes=5)
    assert runner.run_due() == 0
    assert probe_row(runtime, "payments") is None
    assert target.hits == Counter({"/crm": 1, "/payments": 2})


def test_removing_a_failing_probe_resolves_its_alert(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    crm = {"url": target.answer("/crm", 500, "down"), "failures": 1}
    runtime = make_runtime(
        make_settings(database_url, catalog=write_catalog(catalog_path, {"crm": crm}))
    )
    runner, _ = make_runner(runtime)
    runner.run_due()
    [alert] = alerts(runtime)
    assert alert.status == "firing"

    write_catalog(catalog_path, {})
    runtime.watcher.check()
    runner.run_due()
    [alert] = alerts(runtime)
    assert alert.status == "resolved"
    assert transitions(runtime, alert.id) == [(None, "firing"), ("firing", "resolved")]


def test_a_shorter_period_in_the_catalog_applies_at_once(
    database_url, make_runtime, make_runner, clock, target, catalog_path
):
    url = target.answer("/health")
    runtime = make_runtime(
        make_settings(
            database_url,
            catalog=write_catalog(catalog_path, {"crm": {"url": url, "every": "1d"}}),
        )
    )
    runner, _ = make_runner(runtime)
    start = clock.now
    runner.run_due()
    write_catalog(catalog_path, {"crm": {"url": url, "every": "5m"}})
    runtime.watcher.check()
    clock.now = start + timedelta(minutes=1)
    assert runner.run_due() == 1
    assert probe_row(runtime).due_at == start + timedelta(minutes=6)


# -- concurrency ----------------------------------------------------------------------------


def test_one_slow_probe_does_not_hold_up_the_others(
    database_url, make_runtime, make_runner, target, catalog_path
):
    ids = [i["id"] for i in EXAMPLE["integrations"]]
    slow, fast = ids[0], ids[1:]
    probes = {ident: {"url": target.answer(f"/{ident}"), "timeout": "20s"} for ident in ids}
    target.held.add(f"/{slow}")
    runtime = make_runtime(make_settings(database_url, catalog=write_catalog(catalog_path, probes)))
    runner, _ = make_runner(runtime, max_workers=2)
    result: list[int] = []
    running = threading.Thread(target=lambda: result.append(runner.run_due()))
    running.start()

    # Observed, not scheduled: wait until every fast probe is recorded while the slow one is
    # still waiting for its answer.
    def checked(ident: str) -> bool:
        row = probe_row(runtime, ident)
        return row is not None and row.last_checked_at is not None

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(checked(ident) for ident in fast):
        time.sleep(0.02)
    assert all(checked(ident) for ident in fast)
    assert probe_row(runtime, slow).last_checked_at is None
    assert running.is_alive()

    target.release.set()
    running.join(20)
    assert result == [len(ids)]
    assert probe_row(runtime, slow).last_ok_at is not None
    # Bounded: never more requests in flight than the pool has threads.
    assert target.peak <= 2
