"""Durability end to end, with real `integ-bot serve` processes: a 202 survives a SIGKILL, and
every alert reaches Slack exactly once, across a restart and across two processes sharing one
PostgreSQL database.

The bots are subprocesses on loopback talking to the fake Slack Web API; the tests read the
database directly to check what was promised, and the fake's record of calls to check what
Slack was sent. A catalog of many integrations, each with its own channel, keeps delivery fast
under the one-message-a-second pacing per channel.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from storage.models import (
    Alert,
    AlertTransition,
    ChannelPace,
    OutboxAttempt,
    OutboxMessage,
    OutboxStatus,
    ReceivedEvent,
)
from tests.helpers.cli_runner import clean_env, console_script
from tests.helpers.fake_slack import Call, FakeSlack, _Reply

WEBHOOK_TOKEN = "durability-webhook-token"
ALERT_ID = re.compile(r"Alert #(\d+)(?!\d)")
SEEN = re.compile(r"Seen (once|\d+ times)")

# -- helpers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_catalog(path: Path, integrations: int) -> list[tuple[str, str]]:
    """A valid catalog with `integrations` integrations, each with a channel of its own and
    nothing scheduled (no heartbeats, probes or reviews), so the only Slack writes are the
    alerts'. Returns (integration id, channel) pairs."""
    pairs = [(f"dur-{i:03d}", f"C0DUR{i:04d}") for i in range(integrations)]
    lines = [
        "systems:",
        "  - {id: source-system, name: Source system}",
        "  - {id: target-system, name: Target system}",
        "integrations:",
    ]
    for integ, channel in pairs:
        lines.append(
            f"  - {{id: {integ}, name: Integration {integ}, source: source-system,"
            f" target: target-system, mechanism: api, schedule: realtime,"
            f" owner: U0OWNER01, channel: {channel}}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return pairs


class ThrottlingSlack(FakeSlack):
    """The fake Web API, plus a switch: while `throttled` is set, every chat.postMessage is
    answered 429 with Retry-After, as Slack answers a storm."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.throttled = threading.Event()

    def _api(self, method: str, headers: Any, args: dict[str, Any]) -> _Reply:
        if method == "chat.postMessage" and self.throttled.is_set():
            return _Reply(
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(self.retry_after)},
            )
        return super()._api(method, headers, args)


@dataclass
class Bot:
    """One `integ-bot serve` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Bots:
    """Starts bots and makes sure each one is dead when the test ends."""

    tmp_path: Path
    env: dict[str, str]
    started: list[Bot] = field(default_factory=list)

    def start(self, name: str) -> Bot:
        port = free_port()
        log_path = self.tmp_path / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [console_script(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=self.tmp_path,
                env=clean_env(**self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        bot = Bot(process, f"http://127.0.0.1:{port}", log_path)
        self.started.append(bot)
        return bot

    def kill_all(self) -> None:
        for bot in self.started:
            if bot.process.poll() is None:
                bot.process.kill()  # by the Popen's own pid
            try:
                bot.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def logs(self) -> str:
        return "\n".join(f"--- {b.log_path.name} ---\n{b.log()[-4000:]}" for b in self.started)


@contextmanager
def bots(tmp_path: Path, fake: FakeSlack, database_url: str, catalog: Path) -> Iterator[Bots]:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "x",
        "SLACK_API_URL": fake.url,
        "DATABASE_URL": database_url,
        "INTEG_CATALOG": str(catalog),
        "INTEG_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "INTEG_TICK_SECONDS": "1",
        # Every alert is to be posted on its own: the catalog's integrations share systems,
        # and this many failing at once would otherwise be taken for one system's outage.
        "INTEG_OUTAGE_INTEGRATIONS": "0",
        "LOG_LEVEL": "WARNING",
    }
    started = Bots(tmp_path, env)
    try:
        yield started
    finally:
        started.kill_all()


def wait_healthy(bot: Bot, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        if bot.process.poll() is not None:
            raise AssertionError(
                f"integ-bot serve exited with {bot.process.returncode}:\n{bot.log()[-4000:]}"
            )
        try:
            if httpx.get(f"{bot.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{bot.url}/healthz not 200 within {within}s:\n{bot.log()}")
        time.sleep(0.1)


def event(integ: str, key: str) -> dict[str, str]:
    return {
        "integration": integ,
        "summary": f"Nightly load failed ({key})",
        "key": key,
        "severity": "critical",
        "details": f"details of {key}",
    }


def post_hook(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return client.post(
        f"{url}/hooks/generic",
        content=body,
        headers={
            "Authorization": f"Bearer {WEBHOOK_TOKEN}",
            "Content-Type": "application/json",
        },
    )


@contextmanager
def database(url: str) -> Iterator[Session]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def pending_outbox(url: str) -> int:
    with database(url) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING.value)
            )
            or 0
        )


def wait_drained(url: str, started: Bots, within: float) -> float:
    """Wait until the outbox has nothing pending; return how long that took."""
    began = time.monotonic()
    while True:
        for bot in started.started:
            if bot.process.poll() is None:
                continue
            if bot is started.started[-1] or bot.process.returncode != -signal.SIGKILL:
                raise AssertionError(f"a bot exited while draining:\n{started.logs()}")
        left = pending_outbox(url)
        if left == 0:
            return time.monotonic() - began
        if time.monotonic() - began > within:
            raise AssertionError(
                f"{left} outbox rows still pending after {within}s:\n{started.logs()}"
            )
        time.sleep(0.25)


def alert_posts(fake: FakeSlack) -> dict[int, list[Call]]:
    """Slack's record of each alert's message: the accepted chat.postMessage calls outside
    threads, by the alert id their blocks show."""
    posts: dict[int, list[Call]] = defaultdict(list)
    for call in fake.calls_to("chat.postMessage"):
        if not call.ok or call.args.get("thread_ts"):
            continue
        found = ALERT_ID.findall(json.dumps(call.args.get("blocks", [])))
        assert len(found) == 1, f"a non-thread post that is not one alert's message: {call.args}"
        posts[int(found[0])].append(call)
    return posts


def assert_posted_once(fake: FakeSlack, alerts: list[Alert]) -> dict[int, Call]:
    posts = alert_posts(fake)
    twice = {
        a.id: [(c.args.get("channel"), c.response.get("ts")) for c in posts[a.id]]
        for a in alerts
        if len(posts.get(a.id, [])) > 1
    }
    never = sorted(a.id for a in alerts if not posts.get(a.id))
    assert not twice, f"alerts posted more than once (channel, ts): {twice}"
    assert not never, f"alerts never posted: {never}"
    assert set(posts) == {a.id for a in alerts}, "posts for alerts that are not in the database"
    for alert in alerts:
        [call] = posts[alert.id]
        assert call.args["channel"] == alert.channel, alert.id
        assert call.response["ts"] == alert.message_ts, alert.id
    return {alert_id: calls[0] for alert_id, calls in posts.items()}


# -- 1. a SIGKILL while hooks are being posted --------------------------------------------


@dataclass
class Sent:
    """One hook request and what became of it."""

    body: bytes
    keys: list[str]
    status: int | None = None  # None: no answer (the connection broke)
    event_id: int | None = None


INTEGRATIONS = 50
# Seconds. Long enough for the worker to reach every channel (and be held there) before the
# first holds run out, even while SQLite's one writer is busy with the hooks.
RETRY_AFTER = 8


def worker_idle(url: str, channels: set[str]) -> bool:
    """True when no outbox row is claimed and every channel is held for a while yet: no
    worker can be writing to Slack, nor start to before the kill."""
    now = datetime.now(UTC)
    with database(url) as session:
        claimed = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING.value,
                OutboxMessage.claimed_until > now,
            )
        )
        held = set(
            session.scalars(
                select(ChannelPace.channel).where(ChannelPace.next_at > now + timedelta(seconds=2))
            )
        )
    return claimed == 0 and held >= channels


def test_every_event_answered_202_survives_a_sigkill_and_every_alert_is_posted_once(
    database_url: str, tmp_path: Path
) -> None:
    """Hooks are posted from four threads, one event or a list of three per request, spread
    over 50 integrations with a channel each. Once the first alerts are on Slack, Slack starts
    answering 429 (Retry-After 8 s), and as soon as every channel is held, while the hooks are
    still coming in, the bot is SIGKILLed. It is restarted on the same database and nothing
    more is posted. Everything answered 202 must be in the database, and every alert must be
    on Slack exactly once: those posted before the kill are not posted again.

    The kill lands while no Slack call is in flight on purpose. A post that Slack accepted but
    whose ts the bot had not recorded yet is posted again after a restart (Slack's
    chat.postMessage has no idempotency key); that is a different hazard from the one tested
    here, which is losing or duplicating what the hooks promised.
    """
    pairs = write_catalog(tmp_path / "catalog.yml", INTEGRATIONS)
    channels = {channel for _, channel in pairs}
    sent: list[Sent] = []
    sent_lock = threading.Lock()
    stop = threading.Event()
    sequence = itertools.count()
    transport_errors: list[str] = []

    with (
        ThrottlingSlack(retry_after=RETRY_AFTER) as fake,
        bots(tmp_path, fake, database_url, tmp_path / "catalog.yml") as started,
    ):
        first = started.start("first")
        wait_healthy(first)

        def sender() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    n = next(sequence)
                    if n >= 3000:  # a bound, never reached in a normal run
                        return
                    size = 3 if n % 5 == 0 else 1
                    events = []
                    for j in range(size):
                        integ, _ = pairs[(n * 3 + j) % INTEGRATIONS]
                        events.append(event(integ, f"k{n}-{j}"))
                    payload: Any = events if size > 1 else events[0]
                    record = Sent(json.dumps(payload).encode(), [e["key"] for e in events])
                    with sent_lock:
                        sent.append(record)
                    try:
                        answer = post_hook(client, first.url, record.body)
                    except httpx.TransportError as exc:
                        transport_errors.append(type(exc).__name__)
                        time.sleep(0.02)
                        continue
                    record.status = answer.status_code
                    if answer.status_code == 202:
                        record.event_id = answer.json()["event_id"]
                    time.sleep(0.05)

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(4)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            # Phase 1: alerts flow to Slack while hooks come in.
            fake.wait_for("chat.postMessage", count=20, timeout=20)
            # Phase 2: Slack starts rate limiting. Kill as soon as every channel is held by
            # a Retry-After and no message is claimed: then no Slack call can be in flight.
            fake.throttled.set()
            throttled_after = time.monotonic() - began
            # On a machine too slow for that, kill anyway: a claim cut short only waits for
            # its lease (60 s), and a 429 means Slack accepted nothing, so the assertions
            # below still hold; it just takes longer.
            deadline = time.monotonic() + 20
            while not worker_idle(database_url, channels) and time.monotonic() < deadline:
                time.sleep(0.05)
            answered_before_kill = sum(1 for s in sent if s.status == 202)
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=10)
            killed_after = time.monotonic() - began
            time.sleep(0.3)  # the senders see the dead bot: the kill was mid-stream
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
        fake.throttled.clear()
        posted_before_kill = {c.response["ts"] for c in fake.calls_to("chat.postMessage") if c.ok}

        second = started.start("second")
        wait_healthy(second)
        drained_in = wait_drained(database_url, started, within=90)

        promised = [s for s in sent if s.status == 202]
        assert answered_before_kill >= 50, "the kill came before the stream got going"
        assert transport_errors, "the kill did not come while hooks were being posted"
        assert all(s.status in (None, 202) for s in sent), Counter(s.status for s in sent)
        promised_keys = {key for s in promised for key in s.keys}
        all_keys = {key for s in sent for key in s.keys}

        with database(database_url) as session:
            alerts = list(session.scalars(select(Alert).order_by(Alert.id)))
            bodies = {
                row.id: (row.source, bytes(row.body))
                for row in session.scalars(select(ReceivedEvent))
            }
            failed = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status != OutboxStatus.SENT.value)
            )
            session.expunge_all()

        # Every 202 is kept: the raw body and each of its alerts.
        by_key = {a.key: a for a in alerts}
        missing = sorted(promised_keys - set(by_key))
        assert not missing, f"{len(missing)} keys answered 202 are not in alerts: {missing[:10]}"
        for s in promised:
            assert s.event_id is not None
            assert bodies.get(s.event_id) == ("generic", s.body), s.event_id
        assert len(by_key) == len(alerts), "an alert key appears twice"
        assert set(by_key) <= all_keys
        assert all(a.count == 1 for a in alerts)
        # Requests answered 202 and those whose answer the kill cut off, nothing more.
        assert promised_keys <= set(by_key)

        # Every alert is on Slack exactly once, in its integration's channel.
        assert failed == 0
        assert_posted_once(fake, alerts)
        assert {a.message_ts for a in alerts} >= posted_before_kill
        print(
            f"\n{database_url.split(':')[0]}: {len(sent)} requests, {len(promised)} answered 202"
            f" ({len(promised_keys)} events), {len(alerts)} alerts; Slack throttled after"
            f" {throttled_after:.1f}s, killed after {killed_after:.1f}s with"
            f" {len(posted_before_kill)} posted; drained"
            f" {drained_in:.1f}s after the restart"
        )


# -- 2. two processes on one PostgreSQL ------------------------------------------------------

SHARED_KEYS = 30
ROUNDS = 3  # each shared key goes this many times to each bot
DISTINCT_KEYS = 30


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_bot_processes_on_one_postgresql_post_each_alert_once(
    database_url: str, tmp_path: Path
) -> None:
    """Two bots started together on one PostgreSQL database and one Slack. Each shared alert
    key is sent to both bots, concurrently, three times each; other keys go to one bot or the
    other in turn. Each alert is posted once, counts every event, and exists once."""
    pairs = write_catalog(tmp_path / "catalog.yml", SHARED_KEYS)
    with (
        FakeSlack() as fake,
        bots(tmp_path, fake, database_url, tmp_path / "catalog.yml") as started,
    ):
        # Replicas start together: migrations and the catalog sync race too.
        one, two = started.start("one"), started.start("two")
        wait_healthy(one)
        wait_healthy(two)

        requests: list[tuple[Bot, str, str]] = []
        expected: Counter[tuple[str, str]] = Counter()
        for _ in range(ROUNDS):
            for i, (integ, _) in enumerate(pairs):
                for bot in (one, two):
                    requests.append((bot, integ, f"shared-{i}"))
                    expected[(integ, f"shared-{i}")] += 1
        for i in range(DISTINCT_KEYS):
            integ, _ = pairs[i % len(pairs)]
            requests.append(((one, two)[i % 2], integ, f"distinct-{i}"))
            expected[(integ, f"distinct-{i}")] += 1
        random.Random(3).shuffle(requests)

        local = threading.local()

        def send(request: tuple[Bot, str, str]) -> int:
            bot, integ, key = request
            if not hasattr(local, "client"):
                local.client = httpx.Client(timeout=10)
            body = json.dumps(event(integ, key)).encode()
            return post_hook(local.client, bot.url, body).status_code

        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(send, requests))
        sent_in = time.monotonic() - began
        assert Counter(statuses) == {202: len(requests)}

        drained_in = wait_drained(database_url, started, within=60)
        time.sleep(0.5)  # nothing more should come after the drain

        with database(database_url) as session:
            alerts = list(session.scalars(select(Alert).order_by(Alert.id)))
            unsent = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status != OutboxStatus.SENT.value)
            )
            workers = set(session.scalars(select(OutboxAttempt.worker).distinct()))
            transitions = Counter(
                (t.alert_id, t.from_status, t.to_status)
                for t in session.scalars(select(AlertTransition))
            )
            session.expunge_all()

        keys = Counter((a.integration_name, a.key) for a in alerts)
        assert [k for k, n in keys.items() if n > 1] == [], "an alert exists twice"
        assert set(keys) == set(expected)
        assert {(a.integration_name, a.key): a.count for a in alerts} == dict(expected)
        assert unsent == 0
        # Each alert opened once: one transition, however many processes saw it first.
        assert transitions == Counter((a.id, None, "firing") for a in alerts)
        assert_posted_once(fake, alerts)

        # Repeats updated the one message: the last thing written to it shows every event.
        last: dict[str, Call] = {}
        for call in fake.calls:
            if call.ok and call.method in ("chat.postMessage", "chat.update"):
                if not call.args.get("thread_ts"):
                    last[call.response["ts"]] = call
        for alert in alerts:
            shown = SEEN.findall(json.dumps(last[alert.message_ts].args.get("blocks", [])))
            want = "once" if alert.count == 1 else f"{alert.count} times"
            assert shown == [want], (alert.id, alert.key, shown)
        assert "Traceback" not in started.logs(), started.logs()
        print(
            f"\n{len(requests)} events to two bots in {sent_in:.1f}s, {len(alerts)} alerts,"
            f" drained {drained_in:.1f}s later; workers that sent: {len(workers)}"
        )
