"""A database outage under load: the bot answers every hook and ping with a 2xx that is stored
or a 503 with Retry-After (never a 500, never a hang), /healthz says so, everything recovers
without a restart, and a heartbeat whose ping was refused meanwhile raises no missed-run alert.

The outage is real as the bot sees it. On SQLite another connection holds the write lock
(BEGIN EXCLUSIVE), as a backup or a forgotten `sqlite3` shell would. On PostgreSQL the bot
reaches the server through a TCP proxy in this test, which drops every connection and refuses
new ones for the outage (the shared server is never stopped); the database is this test's
own, on the server TEST_DATABASE_URL names.

The outage lasts OUTAGE_SECONDS; `INTEG_OUTAGE_SECONDS=30` runs it for 30 s.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from bot.runtime import Runtime
from bot.workers.database_health import CHECK_SECONDS, RETRY_AFTER_SECONDS, STUCK_SECONDS
from bot.workers.intake_writer import MAX_WAITING, QUEUE_WAIT_SECONDS, RETRY_AFTER_FULL_SECONDS
from commands.alerts.payloads import parse_generic
from storage.db import CONNECT_TIMEOUT_SECONDS, SQLITE_BUSY_TIMEOUT_SECONDS
from storage.migrate import upgrade
from storage.models import Alert, Heartbeat, HeartbeatPing, OutboxMessage, ReceivedEvent
from tests.helpers.databases import postgres_url
from tests.helpers.runtime import (
    WEBHOOK_TOKEN,
    FixedClock,
    RunningServer,
    make_settings,
    start_server,
    stop_server,
)

OUTAGE_SECONDS = float(os.environ.get("INTEG_OUTAGE_SECONDS") or 6)
HOOK_SENDERS = 3
PING_SENDERS = 2
PAUSE = 0.05  # between one sender's requests
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}

LOAD_KEY = "outage-load-key"  # pinged all along
REFUSED_KEY = "outage-refused-key"  # runs once, during the outage, and retries its ping
SILENT_KEY = "outage-silent-key"  # never pings: its missed run must still be raised
# Every heartbeat runs hourly with 10 minutes' grace.
EVERY, GRACE = timedelta(hours=1), timedelta(minutes=10)

CATALOG = f"""\
systems:
  - {{id: source-system, name: Source system}}
  - {{id: target-system, name: Target system}}
integrations:
  - {{id: hooked, name: Alerts by hook, source: source-system, target: target-system,
      mechanism: api, schedule: realtime, owner: U0OWNER01, channel: C0HOOKED1}}
  - {{id: load-job, name: Pinged all along, source: source-system, target: target-system,
      mechanism: flat-file, schedule: "0 * * * *", owner: U0OWNER01, channel: C0LOADJOB,
      heartbeat: {{key: {LOAD_KEY}, every: 1h, grace: 10m}}}}
  - {{id: refused-job, name: Pinged during the outage, source: source-system,
      target: target-system, mechanism: flat-file, schedule: "0 * * * *", owner: U0OWNER01,
      channel: C0REFUSED, heartbeat: {{key: {REFUSED_KEY}, every: 1h, grace: 10m}}}}
  - {{id: silent-job, name: Never pings, source: source-system, target: target-system,
      mechanism: flat-file, schedule: "0 * * * *", owner: U0OWNER01, channel: C0SILENT1,
      heartbeat: {{key: {SILENT_KEY}, every: 1h, grace: 10m}}}}
"""


# -- outages ----------------------------------------------------------------------------------


class SqliteOutage:
    """Another connection holds SQLite's write lock for the outage."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = make_url(url).database or ""
        self._holder: sqlite3.Connection | None = None

    def cut(self) -> None:
        holder = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # waits for the bot's writer of the moment
        self._holder = holder

    def restore(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()

    def close(self) -> None:
        self.restore()


class TcpProxy:
    """Forwards a loopback port to PostgreSQL. Cut, it resets every connection through it and
    every new one, as a server that went away; frozen, it takes in everything and passes on
    nothing, as a server (or a pooler) that hangs; restored, it forwards again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def freeze(self) -> None:
        self._frozen.set()

    def restore(self) -> None:
        if self._frozen.is_set():
            self.cut()  # what a connection sent meanwhile is lost: it cannot go on
            self._frozen.clear()
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._frozen.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((src, dst))
            _reset(src)
            _reset(dst)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class PostgresOutage:
    def __init__(self, direct_url: str) -> None:
        url = make_url(direct_url)
        self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        self.url = url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
            hide_password=False
        )

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def close(self) -> None:
        self.proxy.close()


def own_postgres_database() -> str:
    """This test's own database on the server TEST_DATABASE_URL names, at the newest schema
    and empty: the suite's shared databases are never touched."""
    base = postgres_url()
    if base is None:
        if os.environ.get("INTEG_REQUIRE_POSTGRES"):
            pytest.fail("INTEG_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it to PostgreSQL)")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    name = f"integ_outage_{worker}" if worker else "integ_outage"
    server = make_url(base).set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(
            server.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        ) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("INTEG_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL does not answer: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine)
    finally:
        engine.dispose()
    return url


Outage = SqliteOutage | PostgresOutage


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path
) -> Iterator[Outage]:
    if request.param == "sqlite":
        path = tmp_path / "integ.db"
        path.write_bytes(migrated_sqlite.read_bytes())
        made: Outage = SqliteOutage(f"sqlite:///{path}")
    else:
        made = PostgresOutage(own_postgres_database())
    yield made
    made.close()


# -- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str  # hook or ping
    marker: str  # what the request carried, to find it in the database
    started: float  # time.monotonic()
    seconds: float
    status: int | None  # None: no answer at all (the client gave up after 10 s)
    retry_after: str | None
    event_id: int | None


class Load:
    """A few threads sending hooks and pings, each as soon as the last was answered and a
    short pause has passed, recording every answer."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(kind, n), daemon=True)
            for kind, count in (("hook", HOOK_SENDERS), ("ping", PING_SENDERS))
            for n in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _send(self, kind: str, n: int) -> None:
        with self.server.client() as client:
            i = 0
            while not self._stop.is_set():
                marker = f"{kind}-{n}-{i}"
                self.record(kind, marker, lambda m=marker: _request(client, kind, m, n))
                i += 1
                self._stop.wait(PAUSE)

    def record(self, kind: str, marker: str, send: Callable[[], httpx.Response]) -> Answer:
        started = time.monotonic()
        try:
            response: httpx.Response | None = send()
        except httpx.HTTPError:
            response = None
        event_id = None
        if response is not None and response.status_code == 202:
            event_id = response.json()["event_id"]
        answer = Answer(
            kind,
            marker,
            started,
            time.monotonic() - started,
            response.status_code if response is not None else None,
            response.headers.get("retry-after") if response is not None else None,
            event_id,
        )
        with self._lock:
            self.answers.append(answer)
        return answer


def _request(client: httpx.Client, kind: str, marker: str, n: int) -> httpx.Response:
    if kind == "hook":
        body = {"integration": "hooked", "key": f"load-{n}", "status": "firing", "summary": marker}
        return client.post("/hooks/generic", content=json.dumps(body), headers=AUTH)
    return client.post(f"/ping/{LOAD_KEY}", content=marker)


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return time.monotonic()


def healthz(server: RunningServer) -> httpx.Response:
    with server.client() as client:
        return client.get("/healthz")


def heartbeat_alert(runtime: Runtime, integration: str) -> Alert | None:
    with runtime.deps.sessions() as session:
        return session.scalars(
            select(Alert).where(Alert.integration_id == integration, Alert.key == "heartbeat")
        ).first()


# -- the test ---------------------------------------------------------------------------------


def test_a_database_outage_under_load_gets_2xx_stored_or_503_and_everything_recovers(
    outage: Outage,
    make_runtime: Callable[..., Runtime],
    clock: FixedClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(CATALOG)
    start = clock.now
    runtime = make_runtime(make_settings(outage.url, catalog, INTEG_TICK_SECONDS="0.5"))
    runtime.start_scheduler()  # the real tick every 0.5 s, and the outbox worker
    server = start_server(runtime)
    load = Load(server)
    job = server.client()
    try:
        clock.now = start + timedelta(minutes=30)
        load.start()
        time.sleep(1.0)
        assert healthz(server).status_code == 200

        cut_at = time.monotonic()
        outage.cut()
        wait_for(lambda: healthz(server).status_code == 503, 15, "/healthz says 503")
        # The bot takes the database for down once some work of its own failed (a check that
        # is only slow answers 503 but refuses nothing).
        known_at = wait_for(lambda: runtime.deps.database.down, 15, "the bot knows")
        asked = time.monotonic()
        unhealthy = healthz(server)
        assert time.monotonic() - asked < CHECK_SECONDS + 0.5
        assert unhealthy.status_code == 503
        assert unhealthy.json() == {
            "status": "unavailable",
            "database": False,
            "mode": "local",
            "reason": unhealthy.json()["reason"],
        }
        assert unhealthy.json()["reason"].startswith("the database does not answer")

        # The refused job's hourly run ends during the outage: its ping is refused...
        clock.now = start + EVERY
        refused = load.record(
            "job", "refused run", lambda: job.post(f"/ping/{REFUSED_KEY}", content="refused run")
        )
        assert (refused.status, refused.retry_after) == (503, str(RETRY_AFTER_SECONDS))
        # ... and its deadline (the run plus the grace) passes while the database is down.
        clock.now = start + EVERY + GRACE + timedelta(minutes=2)
        time.sleep(max(cut_at + OUTAGE_SECONDS - time.monotonic(), 0))
        assert healthz(server).status_code == 503

        restored_at = time.monotonic()
        outage.restore()
        back_at = wait_for(lambda: healthz(server).status_code == 200, 15, "/healthz says 200")

        # A tick now, before the job's retry arrives: the deadline waits for it.
        runtime.tick()
        assert heartbeat_alert(runtime, "refused-job") is None
        assert heartbeat_alert(runtime, "silent-job") is None
        # The job's `curl --retry` gets through.
        retried = load.record(
            "job", "refused run", lambda: job.post(f"/ping/{REFUSED_KEY}", content="refused run")
        )
        assert retried.status == 200
        # A hook after the outage is stored, without a restart.
        after = load.record("hook", "after the outage", lambda: _after_the_outage(job))
        assert after.status == 202
        time.sleep(1.0)
    finally:
        load.stop()
        job.close()
        outage.restore()
        stop_server(server)

    # Past the silent job's grace after the outage: the scheduler's own tick raises its
    # missed run, and the outbox worker posts it. Nothing for the job whose ping was refused.
    clock.now = start + EVERY + GRACE + timedelta(minutes=2) + GRACE + timedelta(minutes=1)
    wait_for(lambda: heartbeat_alert(runtime, "silent-job"), 10, "the silent job's alert")
    silent = heartbeat_alert(runtime, "silent-job")
    assert silent is not None

    def posted() -> bool:
        with runtime.deps.sessions() as session:
            return (
                session.scalars(
                    select(OutboxMessage.status).where(
                        OutboxMessage.alert_id == silent.id, OutboxMessage.kind == "post"
                    )
                ).first()
                == "sent"
            )

    wait_for(posted, 15, "the silent job's alert posted by the outbox worker")
    assert heartbeat_alert(runtime, "refused-job") is None
    with runtime.deps.sessions() as session:
        beat = session.get_one(Heartbeat, "refused-job")
        assert beat.status == "up"
        stored_pings = set(session.scalars(select(HeartbeatPing.body)))
        stored_hooks = {e.id: e.body for e in session.scalars(select(ReceivedEvent))}

    answers = load.answers
    statuses = Counter((a.kind, a.status) for a in answers)
    slowest = max(a.seconds for a in answers)
    print(f"\n{type(outage).__name__}, outage {OUTAGE_SECONDS:g} s: {dict(statuses)}, slowest")
    print(f"answer {slowest:.2f} s, the bot knew {known_at - cut_at:.2f} s after the cut")
    # Every request got a 2xx or a 503: no 500, no other error, no request left unanswered.
    assert set(statuses) <= {
        ("hook", 202),
        ("hook", 503),
        ("ping", 200),
        ("ping", 503),
        ("job", 200),
        ("job", 503),
    }, statuses
    assert statuses["hook", 503] and statuses["ping", 503], "the outage was not felt"
    assert statuses["hook", 202] and statuses["ping", 200]
    # Every 503 says when to try again.
    retry_afters = {a.retry_after for a in answers if a.status == 503}
    assert retry_afters <= {str(RETRY_AFTER_SECONDS), str(RETRY_AFTER_FULL_SECONDS)}
    # Every 2xx is stored: each hook's body under its event id, each ping's body.
    for a in answers:
        if a.status == 202:
            assert a.event_id is not None and a.marker.encode() in stored_hooks[a.event_id]
        elif a.status == 200:
            assert a.marker in stored_pings
    # Nothing hung: the longest wait was a request caught in the database's own timeout, and
    # once the bot knew, every request was answered within a second.
    bound = max(SQLITE_BUSY_TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS) + 2
    assert max(a.seconds for a in answers) < bound
    during = [a for a in answers if known_at <= a.started < restored_at]
    assert during and all(a.status == 503 and a.seconds < 1 for a in during)
    # Every sender got through again after the outage, without a restart.
    for kind in ("hook", "ping"):
        last = [a for a in answers if a.kind == kind and a.started > back_at + 0.2]
        assert last and all(a.status in (200, 202) for a in last)
    # The outage is a warning line or so in the log, not a traceback a request.
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, "a traceback was logged"
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.workers.database_health"]
    assert 1 <= sum("does not answer" in w for w in warnings) <= 3
    assert cut_at < known_at


def _after_the_outage(client: httpx.Client) -> httpx.Response:
    body = {
        "integration": "hooked",
        "key": "after",
        "status": "firing",
        "summary": "after the outage",
    }
    return client.post("/hooks/generic", content=json.dumps(body), headers=AUTH)


# -- the intake queue's bounds ------------------------------------------------------------------

FIRING = {"integration": "hooked", "key": "queued", "status": "firing", "summary": "queued"}


@pytest.fixture
def sqlite_server(
    tmp_path: Path, migrated_sqlite: Path, make_runtime: Callable[..., Runtime]
) -> Iterator[tuple[RunningServer, SqliteOutage]]:
    path = tmp_path / "integ.db"
    path.write_bytes(migrated_sqlite.read_bytes())
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(CATALOG)
    lock = SqliteOutage(f"sqlite:///{path}")
    running = start_server(make_runtime(make_settings(lock.url, catalog)))
    yield running, lock
    lock.close()
    stop_server(running)


def stored_bodies(runtime: Runtime) -> list[bytes]:
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(ReceivedEvent.body)))


def test_a_full_intake_queue_answers_503_with_retry_after_at_once_and_keeps_what_it_queued(
    sqlite_server: tuple[RunningServer, SqliteOutage],
) -> None:
    server, lock = sqlite_server
    writer = server.runtime.intake
    body = json.dumps(FIRING).encode()
    # The writer is held up by the lock (for less than SQLite's busy timeout) while the
    # queue fills.
    lock.cut()
    try:
        futures = [writer.submit("generic", body, parse_generic(body)) for _ in range(MAX_WAITING)]
        with server.client() as client:
            started = time.monotonic()
            refused = client.post(
                "/hooks/generic",
                content=json.dumps({**FIRING, "summary": "one too many"}),
                headers=AUTH,
            )
            seconds = time.monotonic() - started
    finally:
        lock.restore()
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == str(RETRY_AFTER_FULL_SECONDS)
    assert "already waiting to be stored" in refused.json()["error"]
    assert seconds < 1
    # What was queued is committed once the database takes writes again; the refused one
    # never is.
    assert all(isinstance(f.result(timeout=30), tuple) for f in futures)
    bodies = stored_bodies(server.runtime)
    assert len(bodies) == MAX_WAITING and all(b"one too many" not in b for b in bodies)


def test_a_hook_still_queued_after_a_second_is_answered_503_and_never_stored(
    sqlite_server: tuple[RunningServer, SqliteOutage],
) -> None:
    server, lock = sqlite_server
    writer = server.runtime.intake
    body = json.dumps(FIRING).encode()
    lock.cut()
    try:
        # Taken by the writer, whose commit now waits for the lock...
        first = writer.submit("generic", body, parse_generic(body))
        time.sleep(0.2)
        # ... so this one waits in the queue behind it.
        with server.client() as client:
            started = time.monotonic()
            withdrawn = client.post(
                "/hooks/generic",
                content=json.dumps({**FIRING, "summary": "withdrawn"}),
                headers=AUTH,
            )
            seconds = time.monotonic() - started
    finally:
        lock.restore()
    # The batch ahead of it has not committed for a second: the database is not keeping up,
    # and the sender is told to wait as for an outage.
    assert withdrawn.status_code == 503, withdrawn.text
    assert withdrawn.json()["error"] == (
        "not stored: the database does not answer (the writes ahead of it are not finished)"
    )
    assert withdrawn.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert QUEUE_WAIT_SECONDS <= seconds < QUEUE_WAIT_SECONDS + 1
    # The request the writer had taken is committed (its sender would have had its 202)...
    assert isinstance(first.result(timeout=30), tuple)
    # ... the withdrawn one is not, and the next hook is stored as usual.
    with server.client() as client:
        after = client.post("/hooks/generic", content=json.dumps(FIRING), headers=AUTH)
    assert after.status_code == 202
    bodies = stored_bodies(server.runtime)
    assert len(bodies) == 2 and all(b"withdrawn" not in b for b in bodies)


# -- a database that hangs ------------------------------------------------------------------------


def test_a_postgresql_server_that_hangs_without_closing_connections_gets_503s_not_a_hang(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    database = PostgresOutage(own_postgres_database())
    try:
        catalog = tmp_path / "catalog.yml"
        catalog.write_text(CATALOG)
        runtime = make_runtime(make_settings(database.url, catalog))
        server = start_server(runtime)
        try:
            with server.client() as client:
                body = json.dumps(FIRING)
                assert client.post("/hooks/generic", content=body, headers=AUTH).status_code == 202
                assert client.post(f"/ping/{LOAD_KEY}", content="before").status_code == 200
            database.proxy.freeze()
            # A hook and a ping whose queries go unanswered, and a health check meanwhile.
            load = Load(server)
            patient = httpx.Client(base_url=server.url, timeout=60)
            senders = [
                threading.Thread(target=load.record, args=(kind, "frozen", send))
                for kind, send in (
                    ("hook", lambda: _after_the_outage(patient)),
                    ("ping", lambda: patient.post(f"/ping/{LOAD_KEY}", content="frozen")),
                )
            ]
            for sender in senders:
                sender.start()
            asked = time.monotonic()
            assert healthz(server).status_code == 503
            assert time.monotonic() - asked < CHECK_SECONDS + 0.5
            for sender in senders:
                sender.join(60)
            patient.close()
            answers = load.answers
            database.restore()
            wait_for(lambda: healthz(server).status_code == 200, 15, "/healthz says 200")
            with server.client() as client:
                after = client.post("/hooks/generic", content=body, headers=AUTH)
            assert after.status_code == 202
        finally:
            stop_server(server)
    finally:
        database.close()
    assert [a.status for a in answers] == [503, 503]
    assert all(a.seconds < STUCK_SECONDS + 1 for a in answers)
    assert all(a.retry_after == str(RETRY_AFTER_SECONDS) for a in answers)
