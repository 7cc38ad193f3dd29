"""Diagrams are drawn and uploaded on threads of their own (bot/workers/diagrams.py), so that
`dot` taking its time never holds up an alert: the alerts keep their channel's pace while the
pictures are drawn, one diagram at a time waits per channel, and a diagram's claim survives
its process the way every outbox claim does.

Graphviz here is a `dot` of the test's own on PATH, which bot/graphviz.py runs as it runs the
real one: it takes as long as the test says, notes each run, and prints a PNG's signature (or
refuses the source). So these tests run where Graphviz is not installed too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.deps import utcnow
from bot.graphviz import PNG_SIGNATURE
from bot.runtime import Runtime, build_runtime
from commands.outbox import claims
from commands.outbox.queue import UPLOAD, queue_message
from storage.db import transaction
from storage.models import ChannelPace, OutboxAttempt, OutboxMessage
from tests.helpers.fake_slack import Call, FakeSlack
from tests.helpers.runtime import (
    BOT_TOKEN,
    WEBHOOK_TOKEN,
    FixedClock,
    RunningServer,
    make_settings,
    start_server,
    stop_server,
)
from tests.helpers.slack_answers import send, shown
from tests.helpers.slack_signing import SIGNING_SECRET

CHANNEL = "C0INTEG01"  # the channel of integration "crm" in examples/catalog.yml
OTHER_CHANNELS = ["C0DIAG002", "C0DIAG003", "C0DIAG004", "C0DIAG005"]
DRAWING = "it will appear in this channel in a moment"
ON_ITS_WAY = "A diagram is already on its way to this channel"


# -- a `dot` of the test's own ----------------------------------------------------------------


@dataclass
class FakeDot:
    log: Path

    def runs(self) -> int:
        """How many times `dot` was started."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


@pytest.fixture
def make_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeDot]:
    def make(seconds: float = 0.0, refuse: str = "") -> FakeDot:
        """Put first on PATH a `dot` that notes its start, reads the source, takes `seconds`
        and prints a PNG's signature; with `refuse`, it says that on stderr and exits 1."""
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        log = tmp_path / "dot-runs.log"
        script = folder / "dot"
        script.write_text(
            f"#!{sys.executable}\n"
            "import sys, time\n"
            f"with open({str(log)!r}, 'a') as log:\n"
            "    log.write('started\\n')\n"
            "source = sys.stdin.buffer.read()\n"
            f"time.sleep({seconds!r})\n"
            f"if {refuse!r}:\n"
            f"    sys.stderr.write({refuse!r})\n"
            "    sys.exit(1)\n"
            f"sys.stdout.buffer.write({PNG_SIGNATURE!r} + source[:32])\n"
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
        return FakeDot(log)

    return make


# -- the bot --------------------------------------------------------------------------------


@pytest.fixture
def live_server(database_url: str, fake_slack: FakeSlack) -> Iterator[RunningServer]:
    """The bot as `integ-bot serve` runs it: workers started, and time passing on the wall
    clock, since writes that share a channel wait for its pace."""
    settings = make_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    runtime = build_runtime(settings, clock=utcnow)
    running = start_server(runtime)
    runtime.start_workers()
    try:
        yield running
    finally:
        stop_server(running)
        runtime.close()


def outbox_rows(runtime: Runtime) -> list[OutboxMessage]:
    with transaction(runtime.deps.sessions) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def uploads(runtime: Runtime) -> list[OutboxMessage]:
    return [row for row in outbox_rows(runtime) if row.kind == UPLOAD]


def attempts_of(runtime: Runtime, message_id: int) -> list[OutboxAttempt]:
    with transaction(runtime.deps.sessions) as session:
        return list(
            session.scalars(
                select(OutboxAttempt)
                .where(OutboxAttempt.message_id == message_id)
                .order_by(OutboxAttempt.id)
            )
        )


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def ask_for_diagram(server: RunningServer, channel: str) -> str:
    with server.client() as client:
        return shown(send(client, "diagram", channel_id=channel))


def fire_alert(server: RunningServer) -> float:
    """An alert for integration crm, posted as a monitoring tool posts it; when it was sent."""
    alert = {"integration": "crm", "summary": "Nightly load failed", "key": "nightly-load"}
    sent = time.time()
    with server.client() as client:
        response = client.post(
            "/hooks/generic",
            content=json.dumps(alert),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert response.status_code == 202, response.text
    return sent


def writes(fake: FakeSlack) -> list[str]:
    """The calls that write to a channel; the slash commands' questions about people and
    channels left out."""
    return [c.method for c in fake.calls if c.method.startswith(("chat.", "files.", "upload:"))]


def channel_of(complete: Call) -> str:
    return str(complete.args["channel_id"])


def later(clock: FixedClock, seconds: float) -> None:
    clock.now += timedelta(seconds=seconds)


# -- alerts do not wait for pictures -----------------------------------------------------------


def test_an_alert_reaches_slack_within_two_seconds_while_five_diagrams_are_being_drawn(
    make_dot, live_server, fake_slack
):
    dot = make_dot(seconds=2.0)
    runtime = live_server.runtime
    # Five channels ask for a picture, the alert's own channel first; while the first two
    # are being drawn (two threads draw, the other three wait their turn), the alert comes.
    for channel in [CHANNEL, *OTHER_CHANNELS]:
        assert DRAWING in ask_for_diagram(live_server, channel)
    wait_until(lambda: dot.runs() == 2)
    fired = fire_alert(live_server)

    [post] = fake_slack.wait_for("chat.postMessage", 1, timeout=5)
    assert post.args["channel"] == CHANNEL
    assert post.time - fired < 2.0
    # Not one picture was done when the alert got there: they were still being drawn.
    assert fake_slack.calls_to("files.getUploadURLExternal") == []
    assert dot.runs() == 2

    # The pictures follow, one per channel, the alert's channel's after the alert.
    completes = fake_slack.wait_for("files.completeUploadExternal", 5, timeout=15)
    assert sorted(channel_of(c) for c in completes) == sorted([CHANNEL, *OTHER_CHANNELS])
    assert all(c.ok for c in completes)
    [same_channel] = [c for c in completes if channel_of(c) == CHANNEL]
    assert same_channel.received > post.time
    assert dot.runs() == 5
    wait_until(lambda: all(row.status == "sent" for row in outbox_rows(runtime)))
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_a_drawn_diagram_waits_for_its_channels_pace_and_the_message_before_it_does_not_wait(
    make_dot, slack_server, fake_slack, clock
):
    make_dot()
    runtime = slack_server.runtime
    assert runtime.outbox is not None
    assert DRAWING in ask_for_diagram(slack_server, CHANNEL)
    with transaction(runtime.deps.sessions) as session:
        queue_message(session, channel=CHANNEL, now=clock.now, text="Catalog reloaded")

    # The message goes first, though queued after the diagram; the picture is drawn, finds
    # its channel paced, and is given back rather than sent within the second.
    assert runtime.outbox.run_once() == 1
    assert writes(fake_slack) == ["chat.postMessage"]
    [diagram] = uploads(runtime)
    assert (diagram.status, diagram.claimed_by, diagram.claimed_until) == ("pending", None, None)
    assert attempts_of(runtime, diagram.id) == []

    later(clock, 1.1)
    assert runtime.outbox.run_once() == 1
    [complete] = fake_slack.calls_to("files.completeUploadExternal")
    assert channel_of(complete) == CHANNEL
    assert uploads(runtime)[0].status == "sent"


# -- one diagram per channel at a time --------------------------------------------------------


def test_a_second_diagram_for_a_channel_while_one_is_on_its_way_is_told_so_and_one_is_uploaded(
    make_dot, slack_server, fake_slack, clock
):
    dot = make_dot()
    runtime = slack_server.runtime
    assert runtime.outbox is not None

    assert DRAWING in ask_for_diagram(slack_server, CHANNEL)
    second = ask_for_diagram(slack_server, CHANNEL)
    assert ON_ITS_WAY in second
    assert "Integrations, 2026-11-26 09:30 UTC" in second  # which one: its title
    # Another channel's request is its own.
    assert DRAWING in ask_for_diagram(slack_server, OTHER_CHANNELS[0])
    assert sorted(row.channel for row in uploads(runtime)) == sorted([CHANNEL, OTHER_CHANNELS[0]])

    assert runtime.outbox.run_once() == 2
    completes = fake_slack.calls_to("files.completeUploadExternal")
    assert sorted(channel_of(c) for c in completes) == sorted([CHANNEL, OTHER_CHANNELS[0]])
    assert dot.runs() == 2

    # Once it is there, asking again draws a newer one.
    later(clock, 1.1)
    assert DRAWING in ask_for_diagram(slack_server, CHANNEL)
    assert runtime.outbox.run_once() == 1
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 3


# -- claims ---------------------------------------------------------------------------------


def test_a_diagram_whose_process_died_while_drawing_it_is_drawn_again_after_its_lease(
    make_dot, slack_server, fake_slack, clock
):
    dot = make_dot()
    runtime = slack_server.runtime
    assert runtime.outbox is not None
    ask_for_diagram(slack_server, CHANNEL)
    [diagram] = uploads(runtime)
    # Another process claimed it to draw it, and died drawing.
    with transaction(runtime.deps.sessions) as session:
        claims.claim_upload(session, diagram.id, clock.now, clock.now, "dead-host:4242/diagrams")

    # Its claim held the row and nothing else: the channel still takes messages.
    with transaction(runtime.deps.sessions) as session:
        queue_message(session, channel=CHANNEL, now=clock.now, text="Catalog reloaded")
    assert runtime.outbox.run_once() == 1
    assert writes(fake_slack) == ["chat.postMessage"]
    later(clock, 58)
    assert runtime.outbox.run_once() == 0
    assert dot.runs() == 0

    later(clock, 3)  # the lease has run out
    assert runtime.outbox.run_once() == 1
    assert dot.runs() == 1
    [complete] = fake_slack.calls_to("files.completeUploadExternal")
    assert channel_of(complete) == CHANNEL
    [sent] = uploads(runtime)
    assert (sent.status, sent.claimed_by) == ("sent", f"{runtime.outbox.worker_id}/diagrams")
    assert [a.ok for a in attempts_of(runtime, diagram.id)] == [True]


def test_a_worker_stopping_while_a_diagram_is_drawn_gives_it_back_for_the_next_start(
    make_dot, slack_server, fake_slack, clock
):
    dot = make_dot(seconds=1.0)
    runtime = slack_server.runtime
    assert runtime.outbox is not None
    runtime.start_workers()
    ask_for_diagram(slack_server, CHANNEL)
    wait_until(lambda: dot.runs() == 1)

    runtime.outbox.stop()

    [diagram] = uploads(runtime)
    assert (diagram.status, diagram.claimed_by, diagram.claimed_until) == ("pending", None, None)
    assert attempts_of(runtime, diagram.id) == []
    assert fake_slack.calls_to("files.getUploadURLExternal") == []
    # Claimable at once, not a minute later: the next start draws and sends it.
    assert runtime.outbox.run_once() == 1
    assert dot.runs() == 2
    assert uploads(runtime)[0].status == "sent"


# -- failures -------------------------------------------------------------------------------


def test_a_diagram_dot_refuses_is_recorded_failed_by_the_diagram_threads_and_holds_no_channel(
    make_dot, slack_server, fake_slack, clock
):
    make_dot(refuse="Error: <stdin>: syntax error in line 1")
    runtime = slack_server.runtime
    runtime.start_workers()
    ask_for_diagram(slack_server, CHANNEL)

    wait_until(lambda: uploads(runtime)[0].status != "pending")
    [failed] = uploads(runtime)
    assert failed.status == "failed"
    assert failed.last_error == "graphviz: `dot` exited 1: Error: <stdin>: syntax error in line 1"
    [attempt] = attempts_of(runtime, failed.id)
    assert (attempt.ok, attempt.error) == (False, failed.last_error)
    assert not [c for c in fake_slack.calls if c.method.startswith(("files.", "upload:"))]
    with transaction(runtime.deps.sessions) as session:
        assert session.get(ChannelPace, CHANNEL) is None  # never held, never paced
