"""The report's chart: failures per week, counted from a history worked out by hand, and
drawn by matplotlib into a PNG that goes through Slack's upload flow."""

from __future__ import annotations

import json
from datetime import date

from bot.listeners.slash_commands import answer
from commands.reports.chart import weekly_failures
from storage.db import transaction
from tests.catalog.test_diagram import png_size, wait_until_done
from tests.reports.history import NOW, PERIOD, history

CHANNEL = "C0INTEG01"


def test_failures_per_week_count_each_start_of_firing_in_its_week(runtime):
    with runtime.deps.sessions() as session:
        every = weekly_failures(session, PERIOD)
        crm = weekly_failures(session, PERIOD, ["crm"])
    # November 2026 in weeks from Monday: 26 Oct holds the 1st. B and C fired on the 10th,
    # B again and canvas-enroll on the 20th, D on the 30th (A fired in October).
    assert every == [
        (date(2026, 10, 26), 0),
        (date(2026, 11, 2), 0),
        (date(2026, 11, 9), 2),
        (date(2026, 11, 16), 2),
        (date(2026, 11, 23), 0),
        (date(2026, 11, 30), 1),
    ]
    assert [n for _, n in crm] == [0, 0, 2, 1, 0, 1]


def test_a_report_with_chart_uploads_a_png_of_failures_per_week(slack_server, fake_slack, clock):
    clock.now = NOW
    runtime = slack_server.runtime
    with transaction(runtime.deps.sessions) as s:
        history(
            s,
            "crm",
            "load",
            [("2026-11-10T10:00", None, "firing"), ("2026-11-10T12:00", "firing", "resolved")],
        )
    runtime.start_workers()
    reply = answer(runtime.deps, "report crm month chart", "U0OWNER01", CHANNEL)
    assert "A chart of alerts opened per week is on its way" in json.dumps(reply.blocks)
    [complete] = fake_slack.wait_for("files.completeUploadExternal", timeout=30)
    [get_url] = fake_slack.calls_to("files.getUploadURLExternal")
    png = fake_slack.uploads[get_url.response["file_id"]]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = png_size(png)
    assert width > 500 and height > 300
    assert "09 Nov 1" in get_url.args["alt_txt"]  # the counts, for who cannot see it
    assert complete.args["channel_id"] == CHANNEL
    [row] = [r for r in wait_until_done(slack_server) if r.kind == "upload"]
    assert row.status == "sent" and row.payload["chart"]["values"] == [0, 0, 1, 0, 0, 0]
