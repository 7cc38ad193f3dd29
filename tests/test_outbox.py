"""The durable outbox: every Slack write is a row, sent by a worker that paces channels,
honours Retry-After, retries with backoff, keeps order per alert and never sends twice.

The worker talks HTTP to the fake Slack Web API on loopback. Time for due dates, pacing and
backoff comes from the injected clock, so the tests move it and call `run_once()` instead of
sleeping; only the tests of the running threads wait in real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from bot.deps import Deps
from bot.outbox_worker import ConsoleSender, OutboxWorker, SlackSender
from bot.runtime import Runtime
from commands.outbox import MESSAGE, POST, REPLY, UPDATE, enqueue
from storage.db import make_engine, make_session_factory, transaction
from storage.models import Alert, ChannelPace, OutboxAttempt, OutboxMessage
from tests.conftest import BOT_TOKEN, FixedClock, make_settings
from tests.fake_slack import Call, FakeSlack
from tests.slack_signing import SIGNING_SECRET

CHANNEL = "C0INTEG01"  # the channel of integration "crm" in examples/catalog.yml


@pytest.fixture
def runtime(
    database_url: str, fake_slack: FakeSlack, make_runtime: Callable[..., Runtime]
) -> Runtime:
    settings = make_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    return make_runtime(settings)


@pytest.fixture
def worker(runtime: Runtime) -> OutboxWorker:
    assert runtime.outbox is not None
    return runtime.outbox


# -- helpers --------------------------------------------------------------------------------


def new_alert(runtime: Runtime, key: str = "nightly-load") -> int:
    now = runtime.deps.clock()
    with transaction(runtime.deps.sessions) as session:
        alert = Alert(
            integration_name="crm",
            integration_id="crm",
            key=key,
            status="firing",
            severity="critical",
            summary=f"Nightly load failed: {key}",
            source="generic",
            count=1,
            first_seen_at=now,
            last_seen_at=now,
        )
        session.add(alert)
        session.flush()
        return alert.id


def queue(
    runtime: Runtime,
    kind: str,
    alert_id: int | None = None,
    *,
    channel: str = CHANNEL,
    payload: dict[str, Any] | None = None,
) -> int | None:
    """Queue the way the bot does, through `enqueue`."""
    with transaction(runtime.deps.sessions) as session:
        message = enqueue(
            session,
            kind=kind,
            channel=channel,
            now=runtime.deps.clock(),
            alert_id=alert_id,
            payload=payload,
        )
        return message.id if message is not None else None


def queue_row(runtime: Runtime, kind: str, alert_id: int, *, channel: str = CHANNEL) -> int:
    """Add a row directly: `enqueue` folds an update into one already waiting, but a second
    one is queued when the first was claimed at the time, which this stands for."""
    now = runtime.deps.clock()
    with transaction(runtime.deps.sessions) as session:
        message = OutboxMessage(
            created_at=now,
            due_at=now,
            kind=kind,
            channel=channel,
            alert_id=alert_id,
            payload={},
            status="pending",
            attempts=0,
        )
        session.add(message)
        session.flush()
        return message.id


def row(runtime: Runtime, message_id: int) -> OutboxMessage:
    with transaction(runtime.deps.sessions) as session:
        return session.get_one(OutboxMessage, message_id)


def alert_row(runtime: Runtime, alert_id: int) -> Alert:
    with transaction(runtime.deps.sessions) as session:
        return session.get_one(Alert, alert_id)


def attempts(runtime: Runtime, message_id: int) -> list[OutboxAttempt]:
    with transaction(runtime.deps.sessions) as session:
        return list(
            session.scalars(
                select(OutboxAttempt)
                .where(OutboxAttempt.message_id == message_id)
                .order_by(OutboxAttempt.id)
            )
        )


def later(clock: FixedClock, seconds: float = 1) -> None:
    clock.now += timedelta(seconds=seconds)


def ok_calls(fake: FakeSlack, method: str = "chat.postMessage") -> list[Call]:
    return [c for c in fake.calls_to(method) if c.ok]


def alert_of(call: Call) -> str:
    """The alert a posted message is about, from its buttons' block id."""
    [actions] = [b for b in call.args["blocks"] if b["type"] == "actions"]
    return str(actions["block_id"])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- posts, updates, replies ----------------------------------------------------------------


def test_a_queued_post_reaches_chat_post_message_once_and_the_alert_keeps_its_ts(
    runtime, worker, fake_slack
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    sent_before = sample("integ_outbox_sent_total", kind="post")

    assert worker.run_once() == 1
    assert worker.run_once() == 0

    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.args["channel"] == CHANNEL
    assert "Nightly load failed" in call.args["text"]
    assert alert_of(call) == f"alert-{alert_id}"
    assert call.args["unfurl_links"] is False and call.args["unfurl_media"] is False
    alert = alert_row(runtime, alert_id)
    assert (alert.channel, alert.message_ts) == (CHANNEL, call.response["ts"])
    sent = row(runtime, message_id)
    assert (sent.status, sent.result_ts, sent.attempts) == ("sent", call.response["ts"], 1)
    assert [a.ok for a in attempts(runtime, message_id)] == [True]
    assert sample("integ_outbox_sent_total", kind="post") == sent_before + 1


def test_an_update_after_the_post_goes_to_chat_update_with_the_stored_ts(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    worker.run_once()
    ts = alert_row(runtime, alert_id).message_ts
    with transaction(runtime.deps.sessions) as session:
        acked = session.get_one(Alert, alert_id)
        acked.status = "acknowledged"
        acked.acknowledged_by = "U0OWNER01"
        acked.acknowledged_at = clock.now
    queue(runtime, UPDATE, alert_id)
    later(clock)

    assert worker.run_once() == 1

    [call] = fake_slack.calls_to("chat.update")
    assert (call.args["channel"], call.args["ts"]) == (CHANNEL, ts)
    # Rendered when sent: the message shows the alert as it is now.
    [actions] = [b for b in call.args["blocks"] if b["type"] == "actions"]
    assert "Acknowledge" not in [e["text"]["text"] for e in actions["elements"]]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_three_queued_updates_become_one_chat_update(runtime, worker, fake_slack, clock):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    worker.run_once()
    later(clock)
    first = queue(runtime, UPDATE, alert_id)
    assert queue(runtime, UPDATE, alert_id) is None  # folded into the waiting one
    second = queue_row(runtime, UPDATE, alert_id)
    third = queue_row(runtime, UPDATE, alert_id)

    assert worker.run_once() == 1
    later(clock, 5)
    assert worker.run_once() == 0

    assert len(fake_slack.calls_to("chat.update")) == 1
    assert first is not None
    rows = [row(runtime, i) for i in (first, second, third)]
    assert [r.status for r in rows] == ["sent", "sent", "sent"]
    assert [r.last_error for r in rows[1:]] == [f"superseded by outbox #{first}"] * 2
    # Superseded rows were never sent, so they have no attempts.
    assert attempts(runtime, second) == [] and attempts(runtime, third) == []


def test_a_reply_goes_into_the_alerts_thread(runtime, worker, fake_slack, clock):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    worker.run_once()
    later(clock)
    queue(runtime, REPLY, alert_id, payload={"text": "Acknowledged by <@U0OWNER01>"})

    assert worker.run_once() == 1

    post, reply = fake_slack.calls_to("chat.postMessage")
    assert reply.args["thread_ts"] == post.response["ts"]
    assert reply.args["channel"] == CHANNEL
    assert reply.args["text"] == "Acknowledged by <@U0OWNER01>"


def test_a_reply_queued_before_the_alert_was_posted_waits_for_the_post(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, REPLY, alert_id, payload={"text": "Acknowledged while silenced"})

    assert worker.run_once() == 0
    assert fake_slack.calls == []

    queue(runtime, POST, alert_id)  # e.g. the silence ended
    assert worker.run_once() == 1
    later(clock)
    assert worker.run_once() == 1

    post, reply = fake_slack.calls_to("chat.postMessage")
    assert "thread_ts" not in post.args
    assert reply.args["thread_ts"] == post.response["ts"]


def test_a_post_queued_twice_updates_the_message_instead_of_posting_it_again(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    worker.run_once()
    later(clock)
    queue(runtime, POST, alert_id)

    assert worker.run_once() == 1

    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    [call] = fake_slack.calls_to("chat.update")
    assert call.args["ts"] == alert_row(runtime, alert_id).message_ts


# -- failures -------------------------------------------------------------------------------


def test_a_429_delays_the_message_until_retry_after_and_then_sends_it_once(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", 429, retry_after=30)
    start = clock.now

    assert worker.run_once() == 0
    waiting = row(runtime, message_id)
    assert (waiting.status, waiting.due_at) == ("pending", start + timedelta(seconds=30))
    with transaction(runtime.deps.sessions) as session:
        pace = session.get_one(ChannelPace, CHANNEL)
    assert pace.next_at == start + timedelta(seconds=30)

    later(clock, 29)
    assert worker.run_once() == 0
    assert len(fake_slack.calls_to("chat.postMessage")) == 1

    later(clock, 1)
    assert worker.run_once() == 1
    later(clock, 60)
    assert worker.run_once() == 0

    assert len(ok_calls(fake_slack)) == 1
    tries = attempts(runtime, message_id)
    assert [(a.ok, a.http_status, a.retry_after) for a in tries] == [
        (False, 429, 30.0),
        (True, 200, None),
    ]
    assert row(runtime, message_id).attempts == 2


def test_a_500_is_retried_with_growing_backoff_and_sent_once(runtime, worker, fake_slack, clock):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", 500, times=3)
    start = clock.now

    worker.run_once()
    assert row(runtime, message_id).due_at == start + timedelta(seconds=1)
    later(clock, 0.5)
    worker.run_once()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # not before the backoff ends

    later(clock, 0.5)  # t+1
    worker.run_once()
    assert row(runtime, message_id).due_at == start + timedelta(seconds=3)  # 2 s
    later(clock, 2)  # t+3
    worker.run_once()
    assert row(runtime, message_id).due_at == start + timedelta(seconds=7)  # 4 s
    later(clock, 3.9)
    assert worker.run_once() == 0
    later(clock, 0.1)  # t+7
    assert worker.run_once() == 1

    assert len(ok_calls(fake_slack)) == 1
    assert [a.http_status for a in attempts(runtime, message_id)] == [500, 500, 500, 200]
    assert row(runtime, message_id).status == "sent"


def test_a_timeout_is_retried_and_the_message_sent(runtime, fake_slack, clock):
    sender = SlackSender(BOT_TOKEN, fake_slack.url, timeout=0.3)
    worker = OutboxWorker(runtime.deps, sender, worker_id="impatient")
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", 500, delay=1.0)

    assert worker.run_once() == 0
    [timed_out] = attempts(runtime, message_id)
    assert timed_out.http_status is None and "timed out" in (timed_out.error or "")

    later(clock, 1)
    assert worker.run_once() == 1
    fake_slack.wait_for("chat.postMessage", 2)  # the slow answer is recorded late
    assert len(ok_calls(fake_slack)) == 1


def test_channel_not_found_marks_the_message_failed_without_retrying(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", error="channel_not_found")

    assert worker.run_once() == 0
    later(clock, 3600)
    assert worker.run_once() == 0

    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    failed = row(runtime, message_id)
    assert (failed.status, failed.last_error) == ("failed", "channel_not_found")
    assert [(a.ok, a.error) for a in attempts(runtime, message_id)] == [
        (False, "channel_not_found")
    ]
    assert alert_row(runtime, alert_id).message_ts is None


# -- pacing and order -----------------------------------------------------------------------


def test_two_channels_are_paced_independently_and_one_channel_gets_one_write_a_second(
    runtime, worker, fake_slack, clock
):
    for n in range(3):
        queue(runtime, MESSAGE, channel="C0AAA", payload={"text": f"a{n}"})
    for n in range(2):
        queue(runtime, MESSAGE, channel="C0BBB", payload={"text": f"b{n}"})

    assert worker.run_once() == 2  # one in each channel
    assert worker.run_once() == 0  # neither channel is ready again yet
    later(clock, 0.5)
    assert worker.run_once() == 0
    later(clock, 0.5)
    assert worker.run_once() == 2
    later(clock, 1)
    assert worker.run_once() == 1
    later(clock, 1)
    assert worker.run_once() == 0

    texts = [(c.args["channel"], c.args["text"]) for c in fake_slack.calls_to("chat.postMessage")]
    assert [t for ch, t in texts if ch == "C0AAA"] == ["a0", "a1", "a2"]
    assert [t for ch, t in texts if ch == "C0BBB"] == ["b0", "b1"]


def test_order_per_alert_is_kept_even_when_the_post_was_rate_limited(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", 429, retry_after=5)
    assert worker.run_once() == 0

    # Queued while the post waits: a note for the thread, then a change of the message.
    queue(runtime, REPLY, alert_id, payload={"text": "Acknowledged by <@U0OWNER01>"})
    queue_row(runtime, UPDATE, alert_id)
    later(clock, 1)
    assert worker.run_once() == 0  # both are due, but the post comes first

    later(clock, 4)
    assert worker.run_once() == 1
    for _ in range(3):
        later(clock, 1)
        worker.run_once()

    sent = [
        (c.method, c.status, "thread_ts" in c.args)
        for c in fake_slack.calls
        if c.method in ("chat.postMessage", "chat.update")
    ]
    assert sent == [
        ("chat.postMessage", 429, False),
        ("chat.postMessage", 200, False),
        ("chat.postMessage", 200, True),
        ("chat.update", 200, False),
    ]


# -- several workers, crashes, restarts ----------------------------------------------------


def test_two_workers_never_send_a_message_twice(runtime, fake_slack, clock, database_url):
    channels = [f"C0LOAD{n:03d}" for n in range(5)]
    alert_ids = [new_alert(runtime, key=f"job-{n}") for n in range(30)]
    for n, alert_id in enumerate(alert_ids):
        queue(runtime, POST, alert_id, channel=channels[n % len(channels)])
    # A second engine: as close to a second process as one test can get.
    engine = make_engine(database_url)
    other_deps = Deps(runtime.deps.settings, make_session_factory(engine), runtime.deps.clock)
    sender = SlackSender(BOT_TOKEN, fake_slack.url)
    workers = [
        OutboxWorker(runtime.deps, sender, worker_id="worker-a", poll_seconds=0.01),
        OutboxWorker(other_deps, sender, worker_id="worker-b", poll_seconds=0.01),
    ]
    # Pacing follows the injected clock; move it on quickly so every channel frees up.
    ticking = threading.Event()

    def tick() -> None:
        while not ticking.wait(0.005):
            later(clock, 0.1)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        for w in workers:
            w.start()
        fake_slack.wait_for("chat.postMessage", 30, timeout=30)
        time.sleep(0.3)  # room for a duplicate to show up, if there were one
    finally:
        for w in workers:
            w.stop()
        ticking.set()
        ticker.join()
        engine.dispose()

    calls = fake_slack.calls_to("chat.postMessage")
    assert len(calls) == 30 and all(c.ok for c in calls)
    assert sorted(alert_of(c) for c in calls) == sorted(f"alert-{i}" for i in alert_ids)
    with transaction(runtime.deps.sessions) as session:
        rows = list(session.scalars(select(OutboxMessage)))
        tries = list(session.scalars(select(OutboxAttempt)))
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}
    assert len(tries) == 30
    assert {r.claimed_by for r in rows} <= {"worker-a", "worker-b"}


def test_a_worker_that_looked_before_another_sent_the_message_does_not_send_it_again(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    slow = OutboxWorker(runtime.deps, SlackSender(BOT_TOKEN, fake_slack.url), worker_id="slow")
    # The race the conditional claim exists for, made deterministic: `slow` has read the
    # due rows, `worker` claims and sends one, then `slow` tries to claim what it read, at a
    # time when the channel's pace would let it through.
    seen = slow._candidates(clock.now, 50)
    assert worker.run_once() == 1
    later(clock, 5)

    assert [slow._claim(message_id, clock.now) for message_id in seen] == [None]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_a_claim_whose_lease_expired_is_picked_up_again(runtime, worker, fake_slack, clock):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    # A worker claimed it and died before sending: its lease runs for a minute.
    with transaction(runtime.deps.sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(claimed_by="crashed-worker", claimed_until=clock.now + timedelta(seconds=60))
        )

    assert worker.run_once() == 0
    later(clock, 59)
    assert worker.run_once() == 0
    assert fake_slack.calls == []

    later(clock, 2)
    assert worker.run_once() == 1

    assert len(ok_calls(fake_slack)) == 1
    resumed = row(runtime, message_id)
    assert (resumed.status, resumed.claimed_by) == ("sent", worker.worker_id)


def test_the_running_worker_sends_what_is_queued_and_stops_with_the_runtime(
    runtime, worker, fake_slack
):
    runtime.start_workers()
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    worker.notify()  # what the hooks do after they commit

    [call] = fake_slack.wait_for("chat.postMessage", 1, timeout=5)
    assert alert_of(call) == f"alert-{alert_id}"

    runtime.close()
    assert worker._thread is None


# -- local mode -----------------------------------------------------------------------------


def test_local_mode_prints_the_message_readably(
    database_url, make_runtime, clock, capsys: pytest.CaptureFixture[str]
):
    runtime = make_runtime(make_settings(database_url))
    assert runtime.outbox is not None and isinstance(runtime.outbox.sender, ConsoleSender)
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    queue(runtime, REPLY, alert_id, payload={"text": "Acknowledged by <@U0OWNER01>"})

    assert runtime.outbox.run_once() == 1
    later(clock)
    assert runtime.outbox.run_once() == 1

    out = capsys.readouterr().out
    ts = alert_row(runtime, alert_id).message_ts
    assert ts is not None
    assert f"[#{CHANNEL}] " in out
    assert "Nightly load failed: nightly-load" in out
    assert "[Acknowledge] [Resolve]" in out
    assert f"[#{CHANNEL} thread {ts}] Acknowledged by @U0OWNER01" in out
