"""`/integ diagram`: Graphviz source from the catalog, a PNG uploaded to the channel through
the outbox and Slack's external upload flow, and the text version where Graphviz is missing.

Tests that run `dot` skip when it is not installed, unless INTEG_REQUIRE_GRAPHVIZ=1 (CI)
makes a missing Graphviz a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.graphviz import PNG_SIGNATURE
from bot.runtime import outbox_renderers
from bot.shell import respond
from bot.workers.outbox import OutboxWorker
from bot.workers.senders import ConsoleSender
from commands.catalog import diagram
from commands.core.replies import Invocation
from commands.outbox.queue import UPLOAD
from storage.db import transaction
from storage.models import (
    Alert,
    Heartbeat,
    Integration,
    OutboxAttempt,
    OutboxMessage,
    Probe,
    System,
)
from tests.helpers.runtime import make_settings
from tests.helpers.slack_answers import send, shown

CHANNEL = "C0INTEG01"
RED = 'color="#d62728"'
TITLE = "Integrations, 2026-11-26 09:30 UTC"  # the injected clock's time


@pytest.fixture
def graphviz() -> str:
    """The path of `dot`; skips the test without it, or fails it when CI requires it."""
    found = shutil.which("dot")
    if found is None:
        if os.environ.get("INTEG_REQUIRE_GRAPHVIZ") == "1":
            pytest.fail("INTEG_REQUIRE_GRAPHVIZ=1 but Graphviz's `dot` is not on PATH")
        pytest.skip("Graphviz's `dot` is not installed")
    return found


@pytest.fixture
def client(slack_server) -> Iterator[httpx.Client]:
    with slack_server.client() as http:
        yield http


def sessions(server):
    return server.runtime.deps.sessions


def outbox_rows(server) -> list[OutboxMessage]:
    with transaction(sessions(server)) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def attempts_of(server, message_id: int) -> list[OutboxAttempt]:
    with transaction(sessions(server)) as session:
        return list(
            session.scalars(
                select(OutboxAttempt)
                .where(OutboxAttempt.message_id == message_id)
                .order_by(OutboxAttempt.id)
            )
        )


def add_alert(server, integration: str, at: datetime, status: str = "firing") -> None:
    with transaction(sessions(server)) as session:
        session.add(
            Alert(
                integration_name=integration,
                integration_id=integration,
                key=f"{integration}-broken",
                summary="Broken",
                status=status,
                first_seen_at=at,
                last_seen_at=at,
            )
        )


def wait_until_done(server, timeout: float = 10) -> list[OutboxMessage]:
    """The outbox rows once none is pending: the worker thread records a result just after
    Slack answers it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = outbox_rows(server)
        if all(row.status != "pending" for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, which always comes first."""
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def edge_line(dot: str, integration_id: str) -> str:
    [line] = [line for line in dot.splitlines() if f'[label="{integration_id}\\n' in line]
    return line


# -- the picture, end to end ----------------------------------------------------------------


def test_diagram_in_a_channel_uploads_a_png_through_slacks_upload_flow(
    graphviz, slack_server, client, fake_slack, clock
):
    add_alert(slack_server, "grades", clock.now)
    # The worker runs in its own thread, as in `integ-bot serve`; the command wakes it.
    slack_server.runtime.start_workers()

    answer = send(client, "diagram", channel_id=CHANNEL)

    text = shown(answer)
    assert "9 integrations between 8 systems, 1 failing" in text
    assert "it will appear in this channel in a moment" in text
    [complete] = fake_slack.wait_for("files.completeUploadExternal", timeout=30)
    [get_url] = fake_slack.calls_to("files.getUploadURLExternal")
    file_id = get_url.response["file_id"]
    png = fake_slack.uploads[file_id]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = png_size(png)
    assert width > 200 and height > 100
    assert get_url.args["filename"] == "integrations.png"
    assert int(get_url.args["length"]) == len(png)
    assert "9 integrations between 8 systems, 1 failing" in get_url.args["alt_txt"]
    assert complete.ok
    assert complete.args["channel_id"] == CHANNEL
    [shared] = json.loads(complete.args["files"])
    assert (shared["id"], shared["title"]) == (file_id, TITLE)
    comment = complete.args["initial_comment"]
    assert "Diagram of 9 integrations between 8 systems, 1 failing" in comment
    assert "In red, failing: `grades`." in comment
    # Recorded as sent, with the file's id where a message would keep its ts.
    [row] = wait_until_done(slack_server)
    assert (row.kind, row.channel, row.status, row.result_ts) == (UPLOAD, CHANNEL, "sent", file_id)
    assert row.payload["dot"].startswith("digraph integrations {")


def test_without_graphviz_the_answer_is_the_text_version_and_nothing_is_uploaded(
    slack_server, client, fake_slack, clock, monkeypatch, tmp_path
):
    # A PATH without `dot` on it: Graphviz is missing the way it is on a bare machine.
    monkeypatch.setenv("PATH", str(tmp_path))
    add_alert(slack_server, "grades", clock.now)

    answer = send(client, "diagram", channel_id=CHANNEL)

    text = shown(answer)
    assert text.startswith("Graphviz is not installed here, so this is the text version.")
    assert "*9 integrations between 8 systems, 1 failing*" in text
    assert "`slate --crm (api, realtime)--&gt; banner`" in text
    assert "`canvas --grades (api, */30 * * * *)--&gt; banner  [failing]`" in text
    assert "`banner` Ellucian Banner (Student, Finance AR) (Ellucian)" in text
    # A system no integration touches is still shown.
    assert "`mulesoft` MuleSoft Anypoint (campus ESB)" in text
    assert outbox_rows(slack_server) == []
    slack_server.runtime.outbox.run_once()
    assert not [c for c in fake_slack.calls if c.method.startswith(("files.", "upload:"))]


def test_the_availability_of_graphviz_is_decided_by_the_callable_given_to_the_command(
    slack_server, clock
):
    inv = Invocation(text="diagram", user_id="U1", channel_id=CHANNEL, now=clock.now)
    with transaction(sessions(slack_server)) as session:
        missing = diagram.diagram_reply(session, inv, "", graphviz_available=lambda: False)
        there = diagram.diagram_reply(session, inv, "", graphviz_available=lambda: True)
    assert missing.text.startswith(diagram.MISSING)
    assert "appear in this channel" in there.text
    assert [row.kind for row in outbox_rows(slack_server)] == [UPLOAD]


def test_the_console_shows_the_text_version(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url))

    out = respond(runtime.deps, "/integ diagram")

    assert out.startswith("The console shows the text version of the diagram.")
    # Code spans keep a cron expression's asterisks in the console.
    assert "`banner --canvas-enroll (flat-file, 0 2 * * *)--> canvas`" in out
    assert "`slate --crm (api, realtime)--> banner`" in out
    with transaction(runtime.deps.sessions) as session:
        assert session.scalars(select(OutboxMessage)).all() == []


def test_the_console_sender_saves_an_upload_and_says_where(tmp_path, capsys):
    sender = ConsoleSender(upload_dir=tmp_path)
    delivered = sender.upload(
        channel=CHANNEL,
        content=PNG_SIGNATURE + b"rest",
        filename="../integrations.png",
        title="Integrations",
        initial_comment="Diagram of *9* integrations",
    )
    [saved] = list(tmp_path.iterdir())
    assert saved.read_bytes() == PNG_SIGNATURE + b"rest"
    assert saved.name.endswith("-integrations.png")
    printed = capsys.readouterr().out
    assert f"[#{CHANNEL} file] Integrations: 12 bytes saved to {saved}" in printed
    assert "Diagram of 9 integrations" in printed
    assert delivered.channel == CHANNEL


# -- what the diagram shows ----------------------------------------------------------------


def test_failing_integrations_are_drawn_in_red_with_a_legend(slack_server, clock):
    now = clock.now
    add_alert(slack_server, "grades", now, status="acknowledged")
    add_alert(slack_server, "payments", now, status="resolved")
    with transaction(sessions(slack_server)) as session:
        session.get_one(Heartbeat, "hr-feed").status = "down"
        session.add(Probe(integration_id="crm", due_at=now, failures=1, last_checked_at=now))
    with transaction(sessions(slack_server)) as session:
        graph = diagram.load_graph(session)
        dot = diagram.to_dot(graph, "t")
        text = diagram.to_text(graph)

    # An open alert (acknowledged still counts), a heartbeat down, a probe failing.
    for failing in ("grades", "hr-feed", "crm"):
        line = edge_line(dot, failing)
        assert RED in line and 'fontcolor="#d62728"' in line and "\\nfailing" in line
    # A resolved alert is history, not a failure.
    for fine in ("payments", "canvas-enroll", "advising"):
        assert RED not in edge_line(dot, fine)
    assert "subgraph cluster_legend" in dot
    assert 'label="failing: open alert,\\nheartbeat or probe down", color="#d62728"' in dot
    assert "canvas --grades (api, */30 * * * *)--> banner  [failing]" in text
    assert "touchnet --payments (vendor, realtime)--> banner" in text


def test_a_system_argument_limits_the_diagram_to_it_and_its_neighbours(slack_server, client, clock):
    inv = Invocation(text="diagram canvas", user_id="U1", channel_id=CHANNEL, now=clock.now)
    with transaction(sessions(slack_server)) as session:
        reply = diagram.diagram_reply(session, inv, "CANVAS", graphviz_available=lambda: True)
    assert "2 integrations of Canvas LMS (canvas) with its neighbours" in reply.text
    [row] = outbox_rows(slack_server)
    dot = row.payload["dot"]
    assert row.payload["filename"] == "integrations-canvas.png"
    assert row.payload["title"] == "Integrations of Canvas LMS, 2026-11-26 09:30 UTC"
    nodes = {line.split()[0] for line in dot.splitlines() if line.startswith('  "system:')}
    assert nodes == {'"system:banner"', '"system:canvas"'}
    edges = [line for line in dot.splitlines() if " -> " in line and "legend:" not in line]
    assert len(edges) == 2
    assert "canvas-enroll" in dot and "grades" in dot and "crm" not in dot
    # The system itself stands out.
    assert 'label="Canvas LMS\\nInstructure", penwidth=2' in dot


def test_a_misspelt_or_unknown_system_answers_with_suggestions_and_queues_nothing(
    slack_server, client
):
    assert shown(send(client, "diagram canvs", channel_id=CHANNEL)) == (
        "No system called `canvs`. Did you mean `/integ diagram canvas`?"
    )
    assert shown(send(client, "diagram crm", channel_id=CHANNEL)) == (
        "`crm` is an integration, not a system. "
        "Try `/integ diagram slate` or `/integ diagram banner`."
    )
    assert shown(send(client, "diagram zzzzzz", channel_id=CHANNEL)) == (
        "No system called `zzzzzz`. `/integ diagram` alone draws every system."
    )
    assert outbox_rows(slack_server) == []


# -- escaping ------------------------------------------------------------------------------


def test_dot_strings_escape_quotes_backslashes_newlines_and_control_characters():
    assert diagram.dot_string('say "hi"') == '"say \\"hi\\""'
    assert diagram.dot_string("C:\\dir\\") == '"C:\\\\dir\\\\"'
    assert diagram.dot_string("\\N and \\n") == '"\\\\N and \\\\n"'
    assert diagram.dot_string("one\ntwo\r\nthree\rfour") == '"one\\ntwo\\nthree\\nfour"'
    assert diagram.dot_string("bell\x07tab\tnul\x00") == '"bell tab\tnul "'
    assert diagram.dot_string("Zürich ✓ 😀") == '"Zürich ✓ 😀"'
    # Graphviz reads HTML entities in every string: `&` must stay an ampersand.
    assert diagram.dot_string("AT&T &amp; &#945;") == '"AT&amp;T &amp;amp; &amp;#945;"'


HOSTILE_SYSTEM = 'Evil "Corp" \\N back\\slash\\\nline two ✓ 😀'
HOSTILE_VENDOR = "Vendor }; digraph x { a -> b"
HOSTILE_INTEGRATION = 'x"]; "injected" [label="pwned'


def hostile_graph() -> diagram.Graph:
    evil = System(id="evil", name=HOSTILE_SYSTEM, vendor=HOSTILE_VENDOR, spec={})
    plain = System(id="plain", name="Plain <b>&amp;</b> &#945; AT&T", vendor=None, spec={})
    integ = Integration(
        id=HOSTILE_INTEGRATION,
        name="n",
        source_id="evil",
        target_id="plain",
        mechanism="api",
        schedule="0 2 * * *",
    )
    return diagram.Graph(
        systems=[evil, plain], integrations=[integ], failing=frozenset({HOSTILE_INTEGRATION})
    )


def svg_texts(dot_binary: str, source: str) -> tuple[list[str], int, int]:
    """The label lines Graphviz drew, and how many nodes and edges it drew."""
    done = subprocess.run(
        [dot_binary, "-Tsvg"], input=source.encode(), capture_output=True, check=True, timeout=30
    )
    root = ET.fromstring(done.stdout)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    texts = [t.text or "" for t in root.iterfind(".//svg:text", ns)]
    groups = [g.get("class") for g in root.iterfind(".//svg:g", ns)]
    return texts, groups.count("node"), groups.count("edge")


def test_hostile_names_are_drawn_exactly_as_written_and_inject_nothing(graphviz):
    source = diagram.to_dot(hostile_graph(), 'Title "quoted" \\ end\\')

    texts, nodes, edges = svg_texts(graphviz, source)

    assert 'Evil "Corp" \\N back\\slash\\' in texts
    assert "line two ✓ 😀" in texts
    assert HOSTILE_VENDOR in texts
    assert "Plain <b>&amp;</b> &#945; AT&T" in texts
    assert HOSTILE_INTEGRATION in texts
    assert 'Title "quoted" \\ end\\' in texts
    # Two systems and the legend's four points; one integration and the legend's two.
    assert (nodes, edges) == (6, 3)
    assert "injected" not in [t for t in texts if t != HOSTILE_INTEGRATION]


def test_hostile_names_render_to_a_png_through_the_worker_seam(graphviz):
    from bot.graphviz import render_png

    png = render_png(diagram.to_dot(hostile_graph(), "t"))
    assert png.startswith(PNG_SIGNATURE)


def test_the_text_version_keeps_each_integration_on_one_line():
    lines = diagram.to_text(hostile_graph())
    assert lines[0] == 'evil --x"]; "injected" [label="pwned (api, 0 2 * * *)--> plain  [failing]'
    shown_system = "  evil: " + HOSTILE_SYSTEM.replace("\n", " ") + f" ({HOSTILE_VENDOR})"
    assert shown_system in lines


# -- the upload's errors, mapped like every other Slack call -------------------------------
#
# These are about Slack's answers, not about drawing: the worker's renderer is a stand-in,
# so they run where Graphviz is missing too.


def stand_in_png(source: str) -> bytes:
    return PNG_SIGNATURE + source.encode()[:64]


@pytest.fixture
def worker(slack_server) -> OutboxWorker:
    runtime = slack_server.runtime
    return OutboxWorker(
        runtime.deps,
        runtime.outbox.sender,
        worker_id="test",
        render_png=stand_in_png,
        renderers=outbox_renderers(),
    )


def queue_diagram(server, clock) -> OutboxMessage:
    inv = Invocation(text="diagram", user_id="U1", channel_id=CHANNEL, now=clock.now)
    with transaction(sessions(server)) as session:
        diagram.diagram_reply(session, inv, "", graphviz_available=lambda: True)
    [row] = outbox_rows(server)
    return row


def later(clock, seconds: float) -> None:
    clock.now += timedelta(seconds=seconds)


def test_a_429_on_the_upload_waits_for_retry_after_then_uploads_once(
    worker, slack_server, fake_slack, clock
):
    row = queue_diagram(slack_server, clock)
    fake_slack.fail_next("files.completeUploadExternal", 429, retry_after=7)

    assert worker.run_once() == 0
    later(clock, 6.5)
    assert worker.run_once() == 0  # still inside Retry-After: no call at all
    assert len(fake_slack.calls_to("files.getUploadURLExternal")) == 1
    later(clock, 0.6)
    assert worker.run_once() == 1

    completes = fake_slack.calls_to("files.completeUploadExternal")
    assert [c.status for c in completes] == [429, 200]
    assert completes[1].args["channel_id"] == CHANNEL
    tries = attempts_of(slack_server, row.id)
    assert [(a.ok, a.http_status, a.retry_after) for a in tries] == [
        (False, 429, 7.0),
        (True, 200, None),
    ]
    [sent] = outbox_rows(slack_server)
    assert sent.status == "sent" and sent.attempts == 2
    # Each attempt starts over with a new upload URL; only the second file was shared.
    shared = json.loads(completes[1].args["files"])[0]["id"]
    assert fake_slack.uploads[shared].startswith(PNG_SIGNATURE)


def test_a_429_from_the_upload_url_itself_is_honoured_too(worker, slack_server, fake_slack, clock):
    row = queue_diagram(slack_server, clock)
    # The fake numbers files from F00000001; the first upload URL is that file's.
    fake_slack.fail_next("upload:F00000001", 429, retry_after=4)

    assert worker.run_once() == 0
    assert fake_slack.calls_to("files.completeUploadExternal") == []
    later(clock, 3.9)
    assert worker.run_once() == 0
    later(clock, 0.2)
    assert worker.run_once() == 1
    assert [(a.http_status, a.retry_after) for a in attempts_of(slack_server, row.id)] == [
        (429, 4.0),
        (200, None),
    ]


def test_a_5xx_on_the_upload_is_retried_with_backoff(worker, slack_server, fake_slack, clock):
    row = queue_diagram(slack_server, clock)
    fake_slack.fail_next("files.getUploadURLExternal", 503)

    assert worker.run_once() == 0
    later(clock, 1.2)
    assert worker.run_once() == 1
    assert [(a.ok, a.http_status) for a in attempts_of(slack_server, row.id)] == [
        (False, 503),
        (True, 200),
    ]


def test_a_permanent_error_on_the_upload_is_recorded_and_not_retried(
    worker, slack_server, fake_slack, clock
):
    row = queue_diagram(slack_server, clock)
    fake_slack.fail_next("files.completeUploadExternal", error="not_in_channel")

    assert worker.run_once() == 0
    later(clock, 600)
    assert worker.run_once() == 0
    [failed] = outbox_rows(slack_server)
    assert (failed.status, failed.last_error) == ("failed", "not_in_channel")
    assert len(attempts_of(slack_server, row.id)) == 1


def without_graphviz(server, error):
    def render(source: str) -> bytes:
        raise error

    return OutboxWorker(
        server.runtime.deps,
        server.runtime.outbox.sender,
        worker_id="other",
        render_png=render,
        renderers=outbox_renderers(),
    )


def test_a_replica_without_graphviz_posts_the_text_version_instead_of_the_picture(
    slack_server, fake_slack, clock
):
    from bot.graphviz import GraphvizMissing

    worker = without_graphviz(slack_server, GraphvizMissing("`dot` is not installed here"))
    queue_diagram(slack_server, clock)

    assert worker.run_once() == 1
    [sent] = outbox_rows(slack_server)
    assert sent.status == "sent"
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.args["channel"] == CHANNEL
    assert post.args["text"].startswith(diagram.MISSING_WHERE_SENT)
    assert "--crm (api" in json.dumps(post.args["blocks"])
    assert fake_slack.calls_to("files.getUploadURLExternal") == []


def test_a_diagram_graphviz_refuses_fails_for_good_with_the_reason(slack_server, fake_slack, clock):
    from bot.graphviz import GraphvizError

    worker = without_graphviz(slack_server, GraphvizError("`dot` exited 1: syntax error"))
    queue_diagram(slack_server, clock)

    assert worker.run_once() == 0
    [failed] = outbox_rows(slack_server)
    assert failed.status == "failed"
    assert failed.last_error == "graphviz: `dot` exited 1: syntax error"
    assert fake_slack.calls_to("files.getUploadURLExternal") == []


def test_an_upload_in_doubt_is_uploaded_again_without_looking_for_it(
    worker, slack_server, fake_slack, clock
):
    """An upload has no metadata to find it by: after a timeout or a crash it is simply made
    again (documented: it may show twice), and no history lookup is made for it."""
    row = queue_diagram(slack_server, clock)
    fake_slack.fail_next("files.completeUploadExternal", 500)

    assert worker.run_once() == 0
    later(clock, 1.2)
    assert worker.run_once() == 1
    assert fake_slack.calls_to("conversations.history") == []
    assert [c.status for c in fake_slack.calls_to("files.completeUploadExternal")] == [500, 200]
    assert outbox_rows(slack_server)[0].id == row.id


def test_the_diagram_title_is_in_utc():
    moment = datetime(2026, 11, 26, 4, 30, tzinfo=UTC).astimezone()
    graph = diagram.Graph(systems=[], integrations=[], failing=frozenset())
    assert diagram.title_of(graph, moment) == "Integrations, 2026-11-26 04:30 UTC"


def test_files_are_not_written_outside_the_upload_dir(tmp_path: Path):
    sender = ConsoleSender(upload_dir=tmp_path / "up")
    sender.upload(channel=CHANNEL, content=b"x", filename="../../etc/passwd", title="t")
    [saved] = list((tmp_path / "up").iterdir())
    assert saved.parent == tmp_path / "up" and "/" not in saved.name
