"""The durable outbox: every Slack write is a row, sent by a worker that paces channels,
honours Retry-After, retries with backoff, keeps order per alert and never sends twice.

The worker talks HTTP to the fake Slack Web API on loopback. Time for due dates, pacing and
backoff comes from the injected clock, so the tests move it and call `run_once()` instead of
sleeping; only the tests of the running threads wait in real time.

Pacing: a channel's next write may start 1.1 s after the previous call to it returned (Slack
allows one a second; the margin covers clocks). Under the injected clock a call takes no time
unless a test's sender says it does, so "1.1 s after the call" is 1.1 s after the last step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from bot.deps import Deps, utcnow
from bot.runtime import Runtime, outbox_renderers
from bot.workers.outbox import OutboxWorker
from bot.workers.senders import ConsoleSender, Sender, SlackSender
from commands.outbox.calls import Delivered
from commands.outbox.queue import MESSAGE, POST, REPLY, UPDATE, enqueue
from storage.db import make_engine, make_session_factory, transaction
from storage.models import Alert, ChannelPace, OutboxAttempt, OutboxMessage
from tests.helpers.fake_slack import Call, FakeSlack
from tests.helpers.runtime import BOT_TOKEN, FixedClock, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET

CHANNEL = "C0INTEG01"  # the channel of integration "crm" in examples/catalog.yml


@pytest.fixture
def fake_slack(clock: FixedClock) -> Iterator[FakeSlack]:
    # Slack stamps a message with the time it was posted; here that is the injected clock's
    # time, so the worker's own times and the messages' ts agree as they do in production.
    with FakeSlack(clock=lambda: clock.now.timestamp()) as fake:
        yield fake


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
        return enqueue(
            session,
            kind=kind,
            channel=channel,
            now=runtime.deps.clock(),
            alert_id=alert_id,
            payload=payload,
        )


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


def later(clock: FixedClock, seconds: float) -> None:
    clock.now += timedelta(seconds=seconds)


def after_pace(clock: FixedClock) -> None:
    """Move past the channel's pace after a write: 1.1 s after the call returned."""
    later(clock, 1.1)


def outbox_id_of(call: Call) -> int:
    metadata = call.args["metadata"]
    assert metadata["event_type"] == "integ_outbox"
    return int(metadata["event_payload"]["outbox_id"])


def ok_calls(fake: FakeSlack, method: str = "chat.postMessage") -> list[Call]:
    return [c for c in fake.calls_to(method) if c.ok]


def alert_of(call: Call) -> str:
    """The alert a posted message is about, from its buttons' block id."""
    [actions] = [b for b in call.args["blocks"] if b["type"] == "actions"]
    return str(actions["block_id"])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TimedSender:
    """A sender whose writes take time on the injected clock, as real calls take time on the
    wall clock. It notes when each write started and returned, in that time; `during` runs
    while a write is still in flight."""

    def __init__(
        self,
        inner: Sender,
        clock: FixedClock,
        takes: Iterator[float],
        spans: list[tuple[datetime, datetime]],
        during: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.takes = takes
        self.spans = spans
        self.during = during

    def post(self, **kwargs: Any) -> Delivered:
        return self._timed(lambda: self.inner.post(**kwargs))

    def update(self, **kwargs: Any) -> Delivered:
        return self._timed(lambda: self.inner.update(**kwargs))

    def find_posted(self, **kwargs: Any) -> Delivered | None:
        return self.inner.find_posted(**kwargs)

    def _timed(self, call: Callable[[], Delivered]) -> Delivered:
        started = self.clock.now
        delivered = call()
        later(self.clock, next(self.takes))
        if self.during is not None:
            self.during()
        self.spans.append((started, self.clock.now))
        return delivered


class Died(BaseException):
    """The process ending: nothing after it runs, not even the worker's `except Exception`."""


class DiesWhenSlackAnswers:
    """A sender whose process dies right after Slack accepted a write, before the worker
    could record it: the ts Slack returned is lost with the process."""

    def __init__(self, inner: Sender) -> None:
        self.inner = inner

    def post(self, **kwargs: Any) -> Delivered:
        self.inner.post(**kwargs)
        raise Died

    def update(self, **kwargs: Any) -> Delivered:
        self.inner.update(**kwargs)
        raise Died

    def find_posted(self, **kwargs: Any) -> Delivered | None:
        return self.inner.find_posted(**kwargs)


def dies_after_posting(runtime: Runtime, fake_slack: FakeSlack) -> Call:
    """Run a worker that posts the next message and dies before recording it."""
    doomed = OutboxWorker(
        runtime.deps,
        DiesWhenSlackAnswers(SlackSender(BOT_TOKEN, fake_slack.url)),
        worker_id="doomed",
        renderers=outbox_renderers(),
    )
    with pytest.raises(Died):
        doomed.run_once()
    posted = fake_slack.calls_to("chat.postMessage")[-1]
    assert posted.ok
    return posted


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
    # The message names its outbox row, so that it can be found again after a crash.
    assert call.args["metadata"] == {
        "event_type": "integ_outbox",
        "event_payload": {"outbox_id": message_id},
    }
    # A first claim posts straight away: no history lookup on the normal path.
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage"]
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
    after_pace(clock)

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
    after_pace(clock)
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
    after_pace(clock)
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
    after_pace(clock)
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
    after_pace(clock)
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

    later(clock, 0.5)  # t+1: due, but the failed call paces the channel until t+1.1
    worker.run_once()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    later(clock, 0.1)  # t+1.1
    worker.run_once()
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    assert row(runtime, message_id).due_at == start + timedelta(seconds=3.1)  # 2 s
    later(clock, 2)  # t+3.1
    worker.run_once()
    assert row(runtime, message_id).due_at == start + timedelta(seconds=7.1)  # 4 s
    later(clock, 3.9)
    assert worker.run_once() == 0
    later(clock, 0.1)  # t+7.1
    assert worker.run_once() == 1

    assert len(ok_calls(fake_slack)) == 1
    assert [a.http_status for a in attempts(runtime, message_id)] == [500, 500, 500, 200]
    assert row(runtime, message_id).status == "sent"


def test_a_timeout_is_retried_and_the_message_sent(runtime, fake_slack, clock):
    sender = SlackSender(BOT_TOKEN, fake_slack.url, timeout=0.3)
    worker = OutboxWorker(runtime.deps, sender, worker_id="impatient", renderers=outbox_renderers())
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.fail_next("chat.postMessage", 500, delay=1.0)

    assert worker.run_once() == 0
    [timed_out] = attempts(runtime, message_id)
    assert timed_out.http_status is None and "timed out" in (timed_out.error or "")

    after_pace(clock)  # the 1 s backoff, and the channel's pace after the call
    assert worker.run_once() == 1
    fake_slack.wait_for("chat.postMessage", 2)  # the slow answer is recorded late
    assert len(ok_calls(fake_slack)) == 1


def test_a_post_that_timed_out_but_reached_slack_is_found_and_not_posted_again(
    runtime, fake_slack, clock
):
    sender = SlackSender(BOT_TOKEN, fake_slack.url, timeout=0.3)
    worker = OutboxWorker(runtime.deps, sender, worker_id="impatient", renderers=outbox_renderers())
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    fake_slack.delay_next("chat.postMessage", 1.0)  # Slack posts it, but answers too late

    assert worker.run_once() == 0
    [slow] = fake_slack.wait_for("chat.postMessage")  # recorded once answered
    assert slow.ok

    after_pace(clock)
    assert worker.run_once() == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_slack.calls_to("conversations.history")) == 1
    assert alert_row(runtime, alert_id).message_ts == slow.response["ts"]
    assert row(runtime, message_id).status == "sent"


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
    assert worker.run_once() == 0  # a second after the calls: Slack's limit, no margin yet
    later(clock, 0.1)
    assert worker.run_once() == 2
    after_pace(clock)
    assert worker.run_once() == 1
    after_pace(clock)
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
        after_pace(clock)
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


def test_the_next_write_to_a_channel_starts_a_second_after_the_previous_call_returned(
    runtime, fake_slack, clock
):
    for n in range(4):
        queue(runtime, MESSAGE, channel="C0SLOW", payload={"text": f"m{n}"})
    # Slack takes its own time to answer: slow, quick, slow, quick. Pacing from the claim
    # would let a write follow a slow one within 0.1 s of its answer.
    spans: list[tuple[datetime, datetime]] = []
    sender = TimedSender(
        SlackSender(BOT_TOKEN, fake_slack.url), clock, iter([0.9, 0.1, 0.6, 0.3]), spans
    )
    worker = OutboxWorker(runtime.deps, sender, worker_id="timed", renderers=outbox_renderers())

    for _ in range(200):  # a look every 50 ms
        worker.run_once()
        later(clock, 0.05)

    assert [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")] == [
        "m0",
        "m1",
        "m2",
        "m3",
    ]
    assert len(spans) == 4
    end_to_start = [(nxt[0] - prev[1]).total_seconds() for prev, nxt in pairwise(spans)]
    assert min(end_to_start) >= 1.0, end_to_start


def test_no_other_worker_writes_to_a_channel_while_a_call_to_it_is_in_flight(
    runtime, fake_slack, clock
):
    queue(runtime, MESSAGE, channel="C0SLOW", payload={"text": "first"})
    queue(runtime, MESSAGE, channel="C0SLOW", payload={"text": "second"})
    slack = SlackSender(BOT_TOKEN, fake_slack.url)
    other = OutboxWorker(runtime.deps, slack, worker_id="other", renderers=outbox_renderers())
    sent_meanwhile: list[int] = []
    # Slack takes 5 s to answer the first write; the other worker looks while it waits.
    sender = TimedSender(
        slack, clock, iter([5.0]), [], during=lambda: sent_meanwhile.append(other.run_once())
    )
    first = OutboxWorker(runtime.deps, sender, worker_id="first", renderers=outbox_renderers())

    assert first.run_once() == 1

    assert sent_meanwhile == [0]
    later(clock, 1.0)
    assert other.run_once() == 0
    later(clock, 0.1)  # 1.1 s after the slow call returned
    assert other.run_once() == 1
    assert [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")] == [
        "first",
        "second",
    ]


def test_writes_reach_a_jittery_slack_a_second_after_the_previous_call_to_the_channel_ended(
    runtime, fake_slack, database_url
):
    """Real time, two workers on two engines, and a Slack that answers after 0.6, 0 and
    0.4 s: measured by the fake, from the end of one call to the start of the next."""
    for n in range(3):
        queue(runtime, MESSAGE, channel="C0JITTER", payload={"text": f"j{n}"})
    fake_slack.delay_next("chat.postMessage", 0.6, 0.0, 0.4)
    engine = make_engine(database_url)
    settings = runtime.deps.settings
    sender = SlackSender(BOT_TOKEN, fake_slack.url)
    workers = [
        OutboxWorker(
            Deps(settings, runtime.deps.sessions, utcnow),
            sender,
            "a",
            0.01,
            renderers=outbox_renderers(),
        ),
        OutboxWorker(
            Deps(settings, make_session_factory(engine), utcnow),
            sender,
            "b",
            0.01,
            renderers=outbox_renderers(),
        ),
    ]
    try:
        for w in workers:
            w.start()
        fake_slack.wait_for("chat.postMessage", 3, timeout=15)
    finally:
        for w in workers:
            w.stop()
        engine.dispose()

    calls = fake_slack.calls_to("chat.postMessage")
    assert [c.args["text"] for c in calls] == ["j0", "j1", "j2"] and all(c.ok for c in calls)
    end_to_start = [nxt.received - prev.answered for prev, nxt in pairwise(calls)]
    assert min(end_to_start) >= 1.0, end_to_start


# -- several workers, crashes, restarts ----------------------------------------------------


def test_two_workers_never_send_a_message_twice(runtime, fake_slack, clock, database_url):
    channels = [f"C0LOAD{n:03d}" for n in range(5)]
    alert_ids = [new_alert(runtime, key=f"job-{n}") for n in range(30)]
    for n, alert_id in enumerate(alert_ids):
        queue(runtime, POST, alert_id, channel=channels[n % len(channels)])
    # A second engine: as close to a second process as one test can get.
    engine = make_engine(database_url)
    other_deps = Deps(
        runtime.deps.settings,
        make_session_factory(engine),
        runtime.deps.clock,
        lease_clock=runtime.deps.lease_clock,
    )
    sender = SlackSender(BOT_TOKEN, fake_slack.url)
    workers = [
        OutboxWorker(
            runtime.deps,
            sender,
            worker_id="worker-a",
            poll_seconds=0.01,
            renderers=outbox_renderers(),
        ),
        OutboxWorker(
            other_deps,
            sender,
            worker_id="worker-b",
            poll_seconds=0.01,
            renderers=outbox_renderers(),
        ),
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
    slow = OutboxWorker(
        runtime.deps,
        SlackSender(BOT_TOKEN, fake_slack.url),
        worker_id="slow",
        renderers=outbox_renderers(),
    )
    # The race the conditional claim exists for, made deterministic: `slow` has read the
    # due rows, `worker` claims and sends one, then `slow` tries to claim what it read, at a
    # time when the channel's pace would let it through.
    seen = slow._candidates(clock.now, 50)
    assert worker.run_once() == 1
    later(clock, 5)

    assert [slow._claim(message_id, clock.now) for message_id in seen] == [None]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def claimed_by_a_worker_that_died(runtime: Runtime, message_id: int | None) -> None:
    """A worker claimed the row and died before sending it: its lease runs for a minute."""
    now = runtime.deps.clock()
    with transaction(runtime.deps.sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(claimed_by="crashed-worker", claimed_until=now + timedelta(seconds=60))
        )


def test_a_claim_whose_lease_expired_is_picked_up_again_and_posted_once(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    assert message_id is not None
    created = clock.now
    claimed_by_a_worker_that_died(runtime, message_id)

    assert worker.run_once() == 0
    later(clock, 59)
    assert worker.run_once() == 0
    assert fake_slack.calls == []

    later(clock, 2)
    assert worker.run_once() == 1

    # The dead worker might have posted it: Slack was asked first, and had nothing.
    [looked] = fake_slack.calls_to("conversations.history")
    assert looked.args["channel"] == CHANNEL
    assert looked.args["include_all_metadata"] == "1"
    assert float(looked.args["oldest"]) <= created.timestamp()
    assert looked.response["messages"] == []
    [post] = ok_calls(fake_slack)
    assert outbox_id_of(post) == message_id
    assert alert_row(runtime, alert_id).message_ts == post.response["ts"]
    resumed = row(runtime, message_id)
    assert (resumed.status, resumed.claimed_by) == ("sent", worker.worker_id)


def test_a_post_slack_accepted_before_its_worker_died_is_recorded_and_not_posted_again(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    created = clock.now
    posted = dies_after_posting(runtime, fake_slack)
    assert outbox_id_of(posted) == message_id
    assert alert_row(runtime, alert_id).message_ts is None  # the ts died with the worker
    # While the post is in doubt the alert is acknowledged; the update waits for the post.
    with transaction(runtime.deps.sessions) as session:
        acked = session.get_one(Alert, alert_id)
        acked.status = "acknowledged"
        acked.acknowledged_by = "U0OWNER01"
        acked.acknowledged_at = clock.now
    queue(runtime, UPDATE, alert_id)

    later(clock, 59)
    assert worker.run_once() == 0  # the dead worker's lease (and hold on the channel) runs
    later(clock, 2)
    assert worker.run_once() == 1
    after_pace(clock)
    assert worker.run_once() == 1  # the update, to the message found
    after_pace(clock)
    assert worker.run_once() == 0

    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    [looked] = fake_slack.calls_to("conversations.history")
    assert (looked.args["channel"], looked.args["include_all_metadata"]) == (CHANNEL, "1")
    assert float(looked.args["oldest"]) <= created.timestamp()
    alert = alert_row(runtime, alert_id)
    assert (alert.channel, alert.message_ts) == (CHANNEL, posted.response["ts"])
    found = row(runtime, message_id)
    assert (found.status, found.result_ts, found.claimed_by) == (
        "sent",
        posted.response["ts"],
        worker.worker_id,
    )
    assert [(a.ok, a.worker, a.error) for a in attempts(runtime, message_id)] == [
        (True, worker.worker_id, "found by outbox id in conversations.history")
    ]
    [update] = fake_slack.calls_to("chat.update")
    assert update.args["ts"] == posted.response["ts"]
    assert "Acknowledged by <@U0OWNER01>" in str(update.args["blocks"])


def test_a_thread_reply_slack_accepted_before_its_worker_died_is_not_posted_again(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    queue(runtime, POST, alert_id)
    assert worker.run_once() == 1
    parent = alert_row(runtime, alert_id).message_ts
    after_pace(clock)
    reply_id = queue(runtime, REPLY, alert_id, payload={"text": "Acknowledged by <@U0OWNER01>"})
    posted = dies_after_posting(runtime, fake_slack)
    assert posted.args["thread_ts"] == parent

    later(clock, 61)
    assert worker.run_once() == 1

    replies = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert replies == [posted]
    # A reply is not in the channel's history, only in its thread.
    assert fake_slack.calls_to("conversations.history") == []
    [looked] = fake_slack.calls_to("conversations.replies")
    assert (looked.args["channel"], looked.args["ts"]) == (CHANNEL, parent)
    assert row(runtime, reply_id).result_ts == posted.response["ts"]


def test_when_the_history_cannot_be_read_the_post_waits_rather_than_risk_a_duplicate(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    posted = dies_after_posting(runtime, fake_slack)
    fake_slack.fail_next("conversations.history", 500)
    later(clock, 61)
    start = clock.now

    assert worker.run_once() == 0

    waiting = row(runtime, message_id)
    assert (waiting.status, waiting.due_at) == ("pending", start + timedelta(seconds=1))
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    # Still marked: whichever worker claims it next must look before it posts.
    assert waiting.claimed_by is not None and waiting.claimed_until is None

    after_pace(clock)
    assert worker.run_once() == 1

    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_slack.calls_to("conversations.history")) == 2
    assert alert_row(runtime, alert_id).message_ts == posted.response["ts"]
    assert [(a.ok, a.http_status) for a in attempts(runtime, message_id)] == [
        (False, 500),
        (True, 200),
    ]


def test_a_channel_whose_history_the_bot_cannot_read_still_gets_the_message_once(
    runtime, worker, fake_slack, clock
):
    alert_id = new_alert(runtime)
    message_id = queue(runtime, POST, alert_id)
    claimed_by_a_worker_that_died(runtime, message_id)
    # chat:write.public posts where the bot has not joined; reading needs membership.
    fake_slack.fail_next("conversations.history", error="not_in_channel")
    later(clock, 61)

    assert worker.run_once() == 1
    after_pace(clock)
    assert worker.run_once() == 0

    [post] = ok_calls(fake_slack)
    assert outbox_id_of(post) == message_id
    assert alert_row(runtime, alert_id).message_ts == post.response["ts"]


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
    assert not worker.running


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
    after_pace(clock)
    assert runtime.outbox.run_once() == 1

    out = capsys.readouterr().out
    ts = alert_row(runtime, alert_id).message_ts
    assert ts is not None
    assert f"[#{CHANNEL}] " in out
    assert "Nightly load failed: nightly-load" in out
    assert "[Acknowledge] [Resolve]" in out
    assert f"[#{CHANNEL} thread {ts}] Acknowledged by @U0OWNER01" in out


def test_local_mode_prints_a_message_whose_worker_died_before_recording_it(
    database_url, make_runtime, clock, capsys: pytest.CaptureFixture[str]
):
    runtime = make_runtime(make_settings(database_url))
    assert runtime.outbox is not None
    message_id = queue(runtime, MESSAGE, channel=CHANNEL, payload={"text": "Catalog reloaded"})
    claimed_by_a_worker_that_died(runtime, message_id)
    later(clock, 61)

    # The console has no history to ask: what a dead process printed is printed again.
    assert runtime.outbox.run_once() == 1
    after_pace(clock)
    assert runtime.outbox.run_once() == 0

    assert capsys.readouterr().out.count(f"[#{CHANNEL}] Catalog reloaded") == 1
    assert row(runtime, message_id).status == "sent"
