"""Vendor status pages and the outbox's EDIT kind that keeps their messages
current.

A Statuspage is served over real HTTP on loopback (`StatusSite`), answering the recorded
summary.json files in tests/data/statuspage/ (shaped exactly like Statuspage's), and the
test swaps what it answers between polls. The outbox worker sends to the fake Slack Web API.
Time comes from the injected clock: a test moves it past the poll period or a channel's pace
instead of sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.runtime import Runtime
from bot.workers.status_pages import LEASE, StatusPoller
from commands.monitors import statuspage, vendor_status
from commands.outbox.queue import EDIT, MESSAGE, enqueue, queue_edit
from storage.db import transaction
from storage.models import OutboxMessage, StatusPage, System, VendorNotice, VendorNoticePost
from tests.helpers.fake_slack import Call, FakeSlack
from tests.helpers.runtime import BOT_TOKEN, EXAMPLE_CATALOG, FixedClock, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET

PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "statuspage"
POLL_SECONDS = 300
# examples/catalog.yml: canvas-enroll (banner -> canvas) and grades (canvas -> banner) share
# the LMS channel; Workday is touched by hr-feed, ar-journal and workday-okta, each in its
# own channel.
LMS_CHANNEL = "C0LMS0001"
WORKDAY_CHANNELS = {
    "C0HRIS001": ["hr-feed"],
    "C0FIN0001": ["ar-journal"],
    "C0IAM0001": ["workday-okta"],
}
INCIDENT_LINK = "https://stspg.io/p31zjtct2jer"


# -- a status page on loopback ----------------------------------------------------------------


class StatusSite:
    """Statuspage's public API for several pages, `/<page>/api/v2/summary.json`, on a free
    loopback port. `answer` sets what a page returns; `hold` keeps its next request waiting
    until the test lets it go, to catch a poller mid-fetch."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self._holds: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, page: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/{page}"

    def answer(self, page: str, fixture: str | None = None, *, status: int = 200, body: Any = None):
        """Serve a fixture file by name, or `body` (bytes as they are, else as JSON)."""
        if fixture is not None:
            raw = (PAYLOADS / fixture).read_bytes()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        with self._lock:
            self.answers[page] = (status, raw)

    def hold(self, page: str) -> tuple[threading.Event, threading.Event]:
        """(arrived, release): the next request for `page` sets `arrived` and waits for
        `release` before answering."""
        gate = (threading.Event(), threading.Event())
        with self._lock:
            self._holds[page] = gate
        return gate

    def requests_for(self, page: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r == page)

    def close(self) -> None:
        with self._lock:
            for _, release in self._holds.values():
                release.set()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        page, _, rest = handler.path.lstrip("/").partition("/")
        with self._lock:
            gate = self._holds.pop(page, None)
            answer = self.answers.get(page)
            self.requests.append(page)
        if gate is not None:
            gate[0].set()
            gate[1].wait(10)
        status, raw = answer if rest == "api/v2/summary.json" and answer else (404, b"{}")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the poller gave up waiting


@pytest.fixture
def site() -> Iterator[StatusSite]:
    served = StatusSite()
    served.answer("canvas", "summary_all_clear.json")
    served.answer("workday", "summary_all_clear.json")
    yield served
    served.close()


@pytest.fixture
def fake_slack(clock: FixedClock) -> Iterator[FakeSlack]:
    # Message ts from the injected clock, as in test_outbox.py.
    with FakeSlack(clock=lambda: clock.now.timestamp()) as fake:
        yield fake


def write_catalog(path: Path, *, canvas: str | None, workday: str | None) -> Path:
    """examples/catalog.yml with the two systems' status pages pointed where the test says
    (never at the real Instructure page the example names)."""
    text = EXAMPLE_CATALOG.read_text(encoding="utf-8")
    example = "    status_page: https://status.instructure.com\n"
    assert example in text
    text = text.replace(example, f"    status_page: {canvas}\n" if canvas else "")
    anchor = "    name: Workday HCM and Financials\n"
    assert anchor in text
    if workday:
        text = text.replace(anchor, anchor + f"    status_page: {workday}\n")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def catalog(tmp_path: Path, site: StatusSite) -> Path:
    return write_catalog(
        tmp_path / "catalog.yml", canvas=site.url("canvas"), workday=site.url("workday")
    )


@pytest.fixture
def build(
    database_url: str,
    fake_slack: FakeSlack,
    make_runtime: Callable[..., Runtime],
    catalog: Path,
) -> Callable[[], Runtime]:
    """A bot process; calling it twice gives two processes on one database."""

    def make() -> Runtime:
        settings = make_settings(
            database_url,
            catalog=catalog,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake_slack.url,
            INTEG_STATUS_POLL_SECONDS=str(POLL_SECONDS),
        )
        return make_runtime(settings)

    return make


@pytest.fixture
def runtime(build: Callable[[], Runtime]) -> Runtime:
    return build()


@pytest.fixture
def make_poller(runtime: Runtime) -> Iterator[Callable[..., StatusPoller]]:
    made: list[StatusPoller] = []

    def make(
        worker_id: str = "poller-a",
        *,
        on: Runtime | None = None,
        client: httpx.Client | None = None,
    ) -> StatusPoller:
        rt = on or runtime
        assert rt.outbox is not None
        poller = StatusPoller(rt.deps, rt.outbox.notify, worker_id, client=client)
        made.append(poller)
        return poller

    yield make
    for poller in made:
        poller.close()


@pytest.fixture
def poller(make_poller: Callable[..., StatusPoller]) -> StatusPoller:
    return make_poller()


# -- helpers ---------------------------------------------------------------------------------


def pending(runtime: Runtime) -> int:
    with transaction(runtime.deps.sessions) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "pending")
            )
            or 0
        )


def outbox_rows(runtime: Runtime) -> int:
    with transaction(runtime.deps.sessions) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def deliver(runtime: Runtime, clock: FixedClock) -> None:
    """Run the outbox worker until nothing is pending, moving past each channel's pace."""
    assert runtime.outbox is not None
    for _ in range(30):
        runtime.outbox.run_once()
        if not pending(runtime):
            return
        clock.now += timedelta(seconds=1.1)
    raise AssertionError("the outbox did not drain")


def next_period(clock: FixedClock) -> None:
    clock.now += timedelta(seconds=POLL_SECONDS)


def posts(fake: FakeSlack, channel: str | None = None) -> list[Call]:
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.ok and (channel is None or c.args["channel"] == channel)
    ]


def updates(fake: FakeSlack, channel: str | None = None) -> list[Call]:
    return [
        c
        for c in fake.calls_to("chat.update")
        if c.ok and (channel is None or c.args["channel"] == channel)
    ]


def shown(call: Call) -> str:
    """Everything a person can see of a message: the fallback text and every block's text."""
    parts = [str(call.args.get("text") or "")]
    for block in call.args.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements") or []:
            parts.append(str(element.get("text") or ""))
        for item in block.get("fields") or []:
            parts.append(item["text"])
    return "\n".join(parts)


def notice(runtime: Runtime, notice_id: str) -> VendorNotice:
    with transaction(runtime.deps.sessions) as session:
        return session.scalars(
            select(VendorNotice).where(VendorNotice.notice_id == notice_id)
        ).one()


def page_row(runtime: Runtime, system_id: str) -> StatusPage:
    with transaction(runtime.deps.sessions) as session:
        return session.get_one(StatusPage, system_id)


def incident_on(site: StatusSite, page: str, fixture: str = "summary_incident_investigating.json"):
    site.answer(page, fixture)


# -- incidents --------------------------------------------------------------------------------


def test_a_new_incident_is_posted_once_to_each_channel_of_the_integrations_touching_it(
    runtime, poller, site, fake_slack, clock
):
    incident_on(site, "workday")

    assert poller.run_due() == 2  # both pages in the catalog
    deliver(runtime, clock)

    assert sorted(c.args["channel"] for c in posts(fake_slack)) == sorted(WORKDAY_CHANNELS)
    for channel, integrations in WORKDAY_CHANNELS.items():
        [message] = posts(fake_slack, channel)
        text = shown(message)
        assert "*Workday*" in text
        assert "Delayed SIS imports" in text
        assert "Status: *Investigating*" in text
        assert "Impact: *major*" in text
        assert "taking longer than usual" in text
        assert "Affects: SIS Imports" in text
        assert f"<{INCIDENT_LINK}|Details on the status page>" in text
        for integration in integrations:
            assert f"(`{integration}`)" in text
        others = {i for ids in WORKDAY_CHANNELS.values() for i in ids} - set(integrations)
        assert not any(f"(`{other}`)" in text for other in others)


def test_one_message_in_a_channel_names_every_integration_there_that_it_touches(
    runtime, poller, site, fake_slack, clock
):
    incident_on(site, "canvas")

    poller.run_due()
    deliver(runtime, clock)

    [message] = posts(fake_slack)
    assert message.args["channel"] == LMS_CHANNEL
    text = shown(message)
    assert "*Instructure* (Canvas LMS)" in text
    assert "*Banner to Canvas enrollments (SIS import)* (`canvas-enroll`)" in text
    assert "*Canvas final grades to Banner* (`grades`)" in text


def test_an_updated_incident_updates_its_message_in_place(runtime, poller, site, fake_slack, clock):
    incident_on(site, "canvas")
    poller.run_due()
    deliver(runtime, clock)
    [posted] = posts(fake_slack)

    next_period(clock)
    site.answer("canvas", "summary_incident_identified.json")
    assert poller.run_due() == 2
    deliver(runtime, clock)

    assert len(posts(fake_slack)) == 1
    [edited] = updates(fake_slack)
    assert edited.args["channel"] == LMS_CHANNEL
    assert edited.args["ts"] == posted.response["ts"]
    text = shown(edited)
    assert "Status: *Identified*" in text
    assert "a queue backlog in one region" in text
    assert "taking longer than usual" not in text  # only the latest update is shown
    assert [m["text"] for m in fake_slack.messages(LMS_CHANNEL)] == [edited.args["text"]]


def test_an_incident_that_disappears_from_the_page_is_shown_resolved(
    runtime, poller, site, fake_slack, clock
):
    incident_on(site, "canvas")
    poller.run_due()
    deliver(runtime, clock)
    [posted] = posts(fake_slack)

    next_period(clock)
    site.answer("canvas", "summary_all_clear.json")
    gone_at = clock.now
    poller.run_due()
    deliver(runtime, clock)

    assert len(posts(fake_slack)) == 1
    [edited] = updates(fake_slack)
    assert edited.args["ts"] == posted.response["ts"]
    text = shown(edited)
    assert ":white_check_mark: *Instructure* (Canvas LMS) reported an incident" in text
    assert f"*Resolved* at {gone_at:%Y-%m-%d %H:%M} UTC" in text
    assert "the status page no longer lists it" in text
    assert "Status: *Investigating*" not in text
    resolved = notice(runtime, "p31zjtct2jer")
    assert (resolved.status, resolved.resolved_at) == ("resolved", gone_at)


def test_a_repeat_poll_with_nothing_new_changes_nothing(runtime, poller, site, fake_slack, clock):
    incident_on(site, "canvas")
    poller.run_due()
    deliver(runtime, clock)
    rows = outbox_rows(runtime)
    calls = len(fake_slack.calls)

    for _ in range(3):
        next_period(clock)
        assert poller.run_due() == 2
        deliver(runtime, clock)

    assert outbox_rows(runtime) == rows
    assert len(fake_slack.calls) == calls
    assert site.requests_for("canvas") == 4


def test_a_page_is_polled_once_per_period(runtime, poller, site, clock):
    assert poller.run_due() == 2
    clock.now += timedelta(seconds=POLL_SECONDS - 1)
    assert poller.run_due() == 0
    clock.now += timedelta(seconds=1)
    assert poller.run_due() == 2
    assert site.requests_for("canvas") == 2


def test_a_resolved_incident_is_not_posted_again_on_later_polls(
    runtime, poller, site, fake_slack, clock
):
    incident_on(site, "canvas")
    poller.run_due()
    next_period(clock)
    site.answer("canvas", "summary_all_clear.json")
    poller.run_due()
    deliver(runtime, clock)
    next_period(clock)
    poller.run_due()
    deliver(runtime, clock)

    assert len(posts(fake_slack)) == 1
    assert len(updates(fake_slack)) == 1


def test_an_incident_resolved_before_its_post_was_sent_is_posted_then_shown_resolved(
    runtime, poller, site, fake_slack, clock
):
    # The post and its edit are queued before the worker runs: the edit waits for the post.
    incident_on(site, "canvas")
    poller.run_due()
    next_period(clock)
    site.answer("canvas", "summary_all_clear.json")
    poller.run_due()
    deliver(runtime, clock)

    [posted] = posts(fake_slack)
    [edited] = updates(fake_slack)
    assert edited.args["ts"] == posted.response["ts"]
    assert edited.time >= posted.time
    assert "*Resolved*" in shown(edited)


def test_an_integration_added_while_an_incident_is_open_hears_of_it_at_the_next_poll(
    runtime, poller, site, catalog, fake_slack, clock
):
    incident_on(site, "canvas")
    poller.run_due()
    deliver(runtime, clock)
    catalog.write_text(
        catalog.read_text(encoding="utf-8")
        + """
  - id: canvas-reports
    name: Canvas usage reports to the data warehouse
    source: canvas
    target: workday
    mechanism: api
    schedule: "0 4 * * *"
    owner: U0LMSADM1
    channel: C0DATA001
""",
        encoding="utf-8",
    )
    runtime.watcher.check()

    next_period(clock)
    poller.run_due()
    deliver(runtime, clock)

    assert [c.args["channel"] for c in posts(fake_slack)] == [LMS_CHANNEL, "C0DATA001"]
    [late] = posts(fake_slack, "C0DATA001")
    assert "(`canvas-reports`)" in shown(late)
    assert "(`grades`)" not in shown(late)
    assert updates(fake_slack) == []  # nothing changed for the channel that already knew


# -- scheduled maintenance --------------------------------------------------------------------


def test_a_scheduled_maintenance_is_posted_then_updated_then_shown_completed(
    runtime, poller, site, fake_slack, clock
):
    site.answer("canvas", "summary_maintenance_scheduled.json")
    poller.run_due()
    deliver(runtime, clock)
    [posted] = posts(fake_slack, LMS_CHANNEL)
    text = shown(posted)
    assert ":wrench:" in text
    assert "reports a maintenance: *Canvas database upgrade*" in text
    assert "Status: *Scheduled*" in text
    assert "Impact" not in text  # a maintenance's impact is "maintenance"
    assert "Scheduled: 2026-11-29 08:00 to 10:00 UTC" in text
    assert "<https://stspg.io/kz1m4nt9w0dx|Details on the status page>" in text

    next_period(clock)
    site.answer("canvas", "summary_maintenance_in_progress.json")
    poller.run_due()
    deliver(runtime, clock)
    [started] = updates(fake_slack)
    assert started.args["ts"] == posted.response["ts"]
    assert "Status: *In progress*" in shown(started)
    assert "currently in progress" in shown(started)

    next_period(clock)
    site.answer("canvas", "summary_all_clear.json")
    poller.run_due()
    deliver(runtime, clock)
    [_, completed] = updates(fake_slack)
    assert completed.args["ts"] == posted.response["ts"]
    text = shown(completed)
    assert ":white_check_mark: *Instructure* (Canvas LMS) reported a maintenance" in text
    assert "*Completed* at" in text
    assert notice(runtime, "kz1m4nt9w0dx").status == "completed"
    assert len(posts(fake_slack)) == 1


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b'{"error": "internal"}', "HTTP 500"),
        (404, b"Not Found", "HTTP 404"),
        (200, b"<html><body>Status</body></html>", "not JSON"),
        (200, b'{"page": {"name": "x"}}', "not a Statuspage summary"),
        (200, b"[1, 2, 3]", "not a Statuspage summary"),
        (200, b'{"incidents": [{"name": "no id"}], "scheduled_maintenances": []}', "has no id"),
    ],
)
def test_a_page_answering_an_error_or_garbage_records_it_and_posts_nothing(
    runtime, poller, site, fake_slack, clock, caplog, status, body, error
):
    site.answer("canvas", status=status, body=body)
    polled_at = clock.now

    assert poller.run_due() == 2
    deliver(runtime, clock)

    row = page_row(runtime, "canvas")
    assert row.last_error is not None and error in row.last_error
    assert row.last_polled_at == polled_at
    assert row.due_at == polled_at + timedelta(seconds=POLL_SECONDS)  # tried next period
    assert row.claimed_by is None
    assert outbox_rows(runtime) == 0
    assert fake_slack.calls == []
    assert any(error in r.getMessage() for r in caplog.records)
    assert page_row(runtime, "workday").last_error is None  # the other page is unaffected


def test_a_page_that_times_out_records_it_and_the_next_good_poll_clears_it(
    runtime, make_poller, site, fake_slack, clock
):
    poller = make_poller(client=httpx.Client(timeout=0.2))
    arrived, release = site.hold("canvas")

    assert poller.run_due() == 2
    release.set()
    assert arrived.is_set()
    assert "timed out" in (page_row(runtime, "canvas").last_error or "")
    assert fake_slack.calls == []

    next_period(clock)
    poller.run_due()
    assert page_row(runtime, "canvas").last_error is None
    assert page_row(runtime, "canvas").indicator == "none"


def test_a_failed_poll_leaves_open_incidents_open(runtime, poller, site, fake_slack, clock):
    incident_on(site, "canvas")
    poller.run_due()
    deliver(runtime, clock)

    next_period(clock)
    site.answer("canvas", status=503, body=b"upstream unavailable")
    poller.run_due()
    deliver(runtime, clock)

    assert notice(runtime, "p31zjtct2jer").resolved_at is None
    assert updates(fake_slack) == []
    assert page_row(runtime, "canvas").indicator == "major"  # the last thing the page said


def test_an_unreachable_page_is_recorded_and_the_poller_carries_on(
    runtime, poller, site, catalog, clock
):
    # A port nothing listens on: the connection is refused.
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace(site.url("workday"), "http://127.0.0.1:9"),
        encoding="utf-8",
    )
    runtime.watcher.check()

    assert poller.run_due() == 2
    assert "ConnectError" in (page_row(runtime, "workday").last_error or "")
    assert page_row(runtime, "canvas").last_error is None


# -- several processes ------------------------------------------------------------------------


def test_two_pollers_polling_at_once_post_each_notice_once(
    build, make_poller, site, fake_slack, clock
):
    first, second = build(), build()
    pollers = [make_poller("host-a:1", on=first), make_poller("host-b:1", on=second)]
    incident_on(site, "canvas")
    incident_on(site, "workday")

    def together() -> list[int]:
        start = threading.Barrier(len(pollers))
        polled: list[int] = []

        def run(p: StatusPoller) -> None:
            start.wait()
            polled.append(p.run_due())

        threads = [threading.Thread(target=run, args=(p,)) for p in pollers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return polled

    for _ in range(2):
        assert sum(together()) == 2  # each page once between them
        next_period(clock)
        site.answer("canvas", "summary_incident_identified.json")
        site.answer("workday", "summary_incident_identified.json")
    deliver(first, clock)

    channels = [c.args["channel"] for c in posts(fake_slack)]
    assert sorted(channels) == sorted([LMS_CHANNEL, *WORKDAY_CHANNELS])
    assert sorted(c.args["channel"] for c in updates(fake_slack)) == sorted(channels)
    assert site.requests_for("canvas") == 2


def test_a_page_being_polled_by_one_process_is_not_polled_by_another(
    build, make_poller, site, fake_slack, clock
):
    first, second = build(), build()
    a = make_poller("host-a:1", on=first)
    b = make_poller("host-b:1", on=second)
    incident_on(site, "canvas")
    site.answer("workday", "summary_all_clear.json")
    arrived, release = site.hold("canvas")
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(a.run_due()))
    thread.start()
    assert arrived.wait(10)

    # A holds canvas mid-fetch; B may take workday (if A has not yet) but never canvas.
    b.run_due()
    release.set()
    thread.join(30)
    deliver(first, clock)

    assert site.requests_for("canvas") == 1
    assert [c.args["channel"] for c in posts(fake_slack)] == [LMS_CHANNEL]


def test_a_poller_whose_claim_ran_out_does_not_apply_its_late_result(
    build, make_poller, site, fake_slack, clock
):
    first, second = build(), build()
    slow = make_poller("host-a:1", on=first)
    other = make_poller("host-b:1", on=second)
    site.answer("workday", "summary_all_clear.json")
    incident_on(site, "canvas")
    with transaction(first.deps.sessions) as session:
        vendor_status.sync_status_pages(session, clock.now)
    arrived, release = site.hold("canvas")
    thread = threading.Thread(target=slow.run_due)
    thread.start()
    assert arrived.wait(10)

    # The slow poller's lease runs out mid-fetch; the page is due and claimed by another.
    clock.now += LEASE + timedelta(seconds=1)
    assert other.run_due() >= 1
    release.set()
    thread.join(30)
    deliver(first, clock)

    assert [c.args["channel"] for c in posts(fake_slack)] == [LMS_CHANNEL]
    assert page_row(first, "canvas").claimed_by is None


def test_claiming_a_page_changes_one_row_or_none(runtime, clock):
    with transaction(runtime.deps.sessions) as session:
        vendor_status.sync_status_pages(session, clock.now)
    with transaction(runtime.deps.sessions) as session:
        first = vendor_status.claim_page(session, "canvas", clock.now, clock.now, "a", LEASE)
    with transaction(runtime.deps.sessions) as session:
        second = vendor_status.claim_page(session, "canvas", clock.now, clock.now, "b", LEASE)
    assert first is not None and first.worker_id == "a"
    assert second is None


# -- what a message may contain ---------------------------------------------------------------


def test_text_from_the_page_is_escaped_so_it_cannot_ping_or_link(
    runtime, poller, site, fake_slack, clock
):
    site.answer("canvas", "summary_incident_hostile.json")

    poller.run_due()
    deliver(runtime, clock)

    [message] = posts(fake_slack)
    text = shown(message)
    assert "&lt;!channel&gt;" in text
    assert "&lt;https://evil.example|click here&gt;" in text
    assert "&amp; tell &lt;@U0OWNER01&gt;" in text
    assert "Logins failing &lt;!channel&gt; &amp; &lt;!here&gt;" in text
    for raw in ("<!channel>", "<!here>", "<https://evil", "<@U0OWNER01>", " & "):
        assert raw not in text


def test_a_long_update_is_cut_to_block_kit_limits(runtime, poller, site, fake_slack, clock):
    summary = json.loads((PAYLOADS / "summary_incident_investigating.json").read_text())
    summary["incidents"][0]["name"] = "Slow & " * 200
    summary["incidents"][0]["incident_updates"][0]["body"] = "Queue backlog & retries. " * 800
    site.answer("canvas", body=summary)

    poller.run_due()
    deliver(runtime, clock)

    [message] = posts(fake_slack)
    assert len(message.args["text"]) <= 3000
    for block in message.args["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert "…" in shown(message)
    assert "&am…" not in shown(message)  # never an escape cut in half


# -- the catalog decides which pages exist ----------------------------------------------------


def test_status_page_rows_follow_the_catalog(runtime, site, catalog, clock):
    def rows() -> dict[str, str]:
        with transaction(runtime.deps.sessions) as session:
            vendor_status.sync_status_pages(session, clock.now)
        with transaction(runtime.deps.sessions) as session:
            found = session.execute(select(StatusPage.system_id, StatusPage.url))
            return {system_id: url for system_id, url in found}

    assert rows() == {"canvas": site.url("canvas"), "workday": site.url("workday")}

    write_catalog(catalog, canvas=site.url("canvas-new"), workday=None)
    runtime.watcher.check()
    assert rows() == {"canvas": site.url("canvas-new")}
    assert page_row(runtime, "canvas").due_at == clock.now  # a new URL is polled at once

    with transaction(runtime.deps.sessions) as session:
        session.get_one(System, "canvas").removed_at = clock.now
    assert rows() == {}


def test_the_summary_url_is_found_from_the_page_url():
    assert (
        statuspage.summary_url("https://status.example.com/")
        == "https://status.example.com/api/v2/summary.json"
    )
    assert (
        statuspage.summary_url("https://status.example.com/api/v2/summary.json")
        == "https://status.example.com/api/v2/summary.json"
    )


def test_a_notice_row_records_what_the_page_said(runtime, poller, site, clock):
    incident_on(site, "canvas")
    poller.run_due()

    row = notice(runtime, "p31zjtct2jer")
    assert (row.system_id, row.kind, row.status, row.impact) == (
        "canvas",
        "incident",
        "investigating",
        "major",
    )
    assert row.url == INCIDENT_LINK
    assert row.first_seen_at == clock.now
    assert row.page_updated_at is not None and row.page_updated_at.isoformat().startswith(
        "2026-11-26T09:12:44.182"
    )
    assert row.detail["components"] == ["SIS Imports"]
    with transaction(runtime.deps.sessions) as session:
        channels = session.scalars(
            select(VendorNoticePost.channel).where(VendorNoticePost.notice_id == row.id)
        ).all()
    assert channels == [LMS_CHANNEL]
    page = page_row(runtime, "canvas")
    assert (page.indicator, page.description) == ("major", "Partial System Outage")


def test_vendor_states_give_the_last_poll_and_open_notices_of_an_integrations_systems(
    runtime, poller, site, clock
):
    incident_on(site, "canvas")
    site.answer("workday", status=500, body=b"")
    polled_at = clock.now
    poller.run_due()

    with transaction(runtime.deps.sessions) as session:
        states = vendor_status.vendor_states(session, ["banner", "canvas", "workday"])

    assert [s.system_id for s in states] == ["canvas", "workday"]  # banner has no page
    canvas, workday = states
    assert (canvas.indicator, canvas.last_error, canvas.last_polled_at) == (
        "major",
        None,
        polled_at,
    )
    assert [n.name for n in canvas.open_notices] == ["Delayed SIS imports"]
    assert workday.last_error is not None and "HTTP 500" in workday.last_error
    assert workday.open_notices == []


# -- the outbox's EDIT kind -------------------------------------------------------------------

CHANNEL = "C0INTEG01"


def queue_message(runtime: Runtime, text: str = "original") -> int:
    with transaction(runtime.deps.sessions) as session:
        message_id = enqueue(
            session,
            kind=MESSAGE,
            channel=CHANNEL,
            now=runtime.deps.clock(),
            payload={"text": text, "blocks": []},
        )
    assert message_id is not None
    return message_id


def queue_an_edit(runtime: Runtime, of: int, text: str) -> int | None:
    with transaction(runtime.deps.sessions) as session:
        return queue_edit(session, of=of, text=text, blocks=None, now=runtime.deps.clock())


def outbox_row(runtime: Runtime, message_id: int) -> OutboxMessage:
    with transaction(runtime.deps.sessions) as session:
        return session.get_one(OutboxMessage, message_id)


def test_an_edit_updates_the_message_its_original_row_posted(runtime, fake_slack, clock):
    original = queue_message(runtime)
    deliver(runtime, clock)
    [posted] = posts(fake_slack)

    edit = queue_an_edit(runtime, original, "edited")
    assert edit is not None
    deliver(runtime, clock)

    [edited] = updates(fake_slack)
    assert (edited.args["channel"], edited.args["ts"]) == (CHANNEL, posted.response["ts"])
    assert edited.args["text"] == "edited"
    assert outbox_row(runtime, edit).kind == EDIT
    assert outbox_row(runtime, edit).status == "sent"
    assert [m["text"] for m in fake_slack.messages(CHANNEL)] == ["edited"]


def test_an_edit_waits_until_its_message_is_posted(runtime, fake_slack, clock):
    assert runtime.outbox is not None
    fake_slack.fail_next("chat.postMessage", 500)
    original = queue_message(runtime)
    edit = queue_an_edit(runtime, original, "edited")
    assert edit is not None

    runtime.outbox.run_once()  # the post fails and is retried later; the edit must wait
    clock.now += timedelta(seconds=1.1)
    runtime.outbox.run_once()
    assert updates(fake_slack) == []
    assert outbox_row(runtime, edit).status == "pending"

    clock.now += timedelta(seconds=5)
    deliver(runtime, clock)
    [posted] = posts(fake_slack)
    [edited] = updates(fake_slack)
    assert edited.args["ts"] == posted.response["ts"]
    assert edited.time >= posted.time


def test_a_newer_edit_folds_an_older_pending_one_of_the_same_message(runtime, fake_slack, clock):
    original = queue_message(runtime)
    older = queue_an_edit(runtime, original, "first edit")
    newer = queue_an_edit(runtime, original, "second edit")
    assert older is not None and newer is not None

    deliver(runtime, clock)

    assert [c.args["text"] for c in updates(fake_slack)] == ["second edit"]
    assert outbox_row(runtime, older).last_error == f"superseded by outbox #{newer}"
    assert [m["text"] for m in fake_slack.messages(CHANNEL)] == ["second edit"]


def test_edits_of_one_message_are_sent_in_the_order_queued(runtime, fake_slack, clock):
    original = queue_message(runtime)
    deliver(runtime, clock)
    # Rows added directly, as when the first edit was being sent while the second was queued
    # (a claimed edit is never folded).
    with transaction(runtime.deps.sessions) as session:
        for text in ("first edit", "second edit", "third edit"):
            session.add(
                OutboxMessage(
                    created_at=clock.now,
                    due_at=clock.now,
                    kind=EDIT,
                    channel=CHANNEL,
                    payload={"of": original, "text": text, "blocks": []},
                    status="pending",
                    attempts=0,
                )
            )
    fake_slack.fail_next("chat.update", 500)  # the first edit has to be retried

    for _ in range(10):
        assert runtime.outbox is not None
        runtime.outbox.run_once()
        clock.now += timedelta(seconds=1.1)

    texts = [c.args["text"] for c in updates(fake_slack)]
    assert texts == ["first edit", "second edit", "third edit"]


def test_an_edit_of_a_message_that_failed_for_good_fails_too(runtime, fake_slack, clock):
    fake_slack.fail_next("chat.postMessage", error="channel_not_found")
    original = queue_message(runtime)
    edit = queue_an_edit(runtime, original, "edited")
    assert edit is not None

    deliver(runtime, clock)

    assert outbox_row(runtime, original).status == "failed"
    assert outbox_row(runtime, edit).status == "failed"
    assert "never posted" in (outbox_row(runtime, edit).last_error or "")
    assert fake_slack.calls_to("chat.update") == []
    assert queue_an_edit(runtime, original, "again") is None  # nothing left to edit


def test_text_holding_nul_bytes_is_read_without_them():
    # PostgreSQL refuses NUL in text: a page with one must not stop every later poll.
    data = json.loads((PAYLOADS / "summary_incident_investigating.json").read_text())
    incident = data["incidents"][0]
    incident["name"] = "Login\u0000 failures"
    incident["incident_updates"][0]["body"] = "We are\u0000 looking into it"
    [parsed] = [n for n in statuspage.parse_summary(data).notices if n.kind == "incident"]
    assert parsed.name == "Login failures"
    assert parsed.detail["latest_update"] == "We are looking into it"
