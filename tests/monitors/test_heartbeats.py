"""Heartbeats end to end: jobs ping over HTTP, the clock is moved by hand, and a missed run
becomes an alert on its way to the integration's channel."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.listeners.slash_commands import answer
from storage.models import Alert, AlertTransition, Heartbeat, HeartbeatPing, OutboxMessage
from tests.helpers.runtime import EXAMPLE_CATALOG, make_settings, start_server, stop_server

KEY = "3f6c0d2e-crm-nightly"  # crm's heartbeat in the example catalog: 02:00 Chicago, 1h grace
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rows(runtime, model):
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(model)))


def heartbeat(runtime) -> Heartbeat:
    with runtime.deps.sessions() as session:
        return session.get_one(Heartbeat, "crm")


def alerts(runtime) -> list[Alert]:
    """crm's heartbeat alerts (the example catalog has other heartbeats, which miss too)."""
    return [a for a in rows(runtime, Alert) if (a.integration_name, a.key) == ("crm", "heartbeat")]


def posts(runtime) -> list[OutboxMessage]:
    ours = {a.id for a in alerts(runtime)}
    return [m for m in rows(runtime, OutboxMessage) if m.kind == "post" and m.alert_id in ours]


def catalog_with(tmp_path: Path, **heartbeat: str) -> Path:
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    [crm] = [i for i in data["integrations"] if i["id"] == "crm"]
    crm["heartbeat"] = {"key": KEY, **heartbeat}
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def server(database_url, make_runtime):
    running = start_server(make_runtime(make_settings(database_url)))
    yield running
    stop_server(running)


def ping(server, suffix="", method="GET", **kwargs):
    with server.client() as client:
        return client.request(method, f"/ping/{KEY}{suffix}", **kwargs)


def test_a_missed_nightly_run_raises_one_alert_after_its_deadline_and_the_next_ping_resolves_it(
    server, clock
):
    runtime = server.runtime
    # 2026-11-26 09:30 UTC is 03:30 in Chicago: tonight's run is expected at 02:00 CST.
    beat = heartbeat(runtime)
    assert (beat.status, beat.expected_at, beat.due_at) == (
        "new",
        at("2026-11-27T08:00:00"),
        at("2026-11-27T09:00:00"),
    )
    clock.now = at("2026-11-27T08:59:59")
    runtime.tick()
    assert alerts(runtime) == []

    clock.now = at("2026-11-27T09:00:00")
    runtime.tick()
    clock.now += timedelta(minutes=5)
    runtime.tick()  # the same missed run is not raised twice
    [alert] = alerts(runtime)
    assert alert.status == "firing" and alert.count == 1 and alert.source == "heartbeat"
    assert alert.summary == (
        "The nightly run expected at 2026-11-27 02:00 America/Chicago did not report (grace 1h)"
    )
    [post] = posts(runtime)
    assert (post.channel, post.alert_id) == ("C0INTEG01", alert.id)
    assert heartbeat(runtime).status == "down"
    assert heartbeat(runtime).due_at == at("2026-11-28T09:00:00")  # the next night's run

    clock.now = at("2026-11-27T09:20:00")
    answered = ping(server)
    assert answered.status_code == 200 and answered.text == "OK\n"
    [alert] = alerts(runtime)
    assert alert.status == "resolved"
    moves = [
        (t.from_status, t.to_status)
        for t in sorted(rows(runtime, AlertTransition), key=lambda t: t.id)
        if t.alert_id == alert.id
    ]
    assert moves == [(None, "firing"), ("firing", "resolved")]
    beat = heartbeat(runtime)
    assert (beat.status, beat.last_ping_at, beat.due_at) == (
        "up",
        at("2026-11-27T09:20:00"),
        at("2026-11-28T09:00:00"),
    )


def test_a_run_that_pings_in_time_raises_nothing(server, clock):
    runtime = server.runtime
    clock.now = at("2026-11-27T08:10:00")  # 02:10 Chicago
    assert ping(server).status_code == 200
    clock.now = at("2026-11-27T12:00:00")
    runtime.tick()
    assert alerts(runtime) == []
    assert heartbeat(runtime).expected_at == at("2026-11-28T08:00:00")


def test_a_weekly_run_keeps_its_local_time_across_the_spring_daylight_saving_change(
    database_url, make_runtime, clock, tmp_path
):
    catalog = catalog_with(tmp_path, cron="0 2 * * 0", grace="1h")  # Sundays 02:00 Chicago
    clock.now = at("2027-03-08T12:00:00")  # a Monday, CST (UTC-6)
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    # 2027-03-14 is the night clocks spring forward at 02:00: that run comes at 03:00 CDT.
    assert heartbeat(runtime).expected_at == at("2027-03-14T08:00:00")
    running = start_server(runtime)
    try:
        clock.now = at("2027-03-14T08:30:00")
        assert ping(running).status_code == 200
    finally:
        stop_server(running)
    # A week later 02:00 CDT is 07:00 UTC, an hour earlier in UTC than before the change.
    beat = heartbeat(runtime)
    assert (beat.expected_at, beat.due_at) == (at("2027-03-21T07:00:00"), at("2027-03-21T08:00:00"))
    clock.now = at("2027-03-21T07:59:59")
    runtime.tick()
    assert alerts(runtime) == []
    clock.now = at("2027-03-21T08:00:00")
    runtime.tick()
    [alert] = alerts(runtime)
    assert "expected at 2027-03-21 02:00 America/Chicago" in alert.summary


def test_an_every_heartbeat_expects_the_next_run_an_interval_after_the_last(
    database_url, make_runtime, clock, tmp_path
):
    catalog = catalog_with(tmp_path, every="30m", grace="5m")
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    assert heartbeat(runtime).due_at == clock.now + timedelta(minutes=35)
    clock.now += timedelta(minutes=35)
    runtime.tick()
    [alert] = alerts(runtime)
    assert alert.summary.startswith("The run expected at 2026-11-26 04:00 America/Chicago")
    # Still missing half an hour later: the same alert counts up, no second message.
    clock.now += timedelta(minutes=30)
    runtime.tick()
    [alert] = alerts(runtime)
    assert alert.count == 2 and len(posts(runtime)) == 1


def test_fail_raises_an_alert_at_once_with_the_posted_log(server, clock):
    runtime = server.runtime
    log = "ORA-01017: invalid username/password; logon denied\nexport aborted after 0 rows"
    answered = ping(server, "/fail", method="POST", content=log.encode())
    assert answered.status_code == 200
    [alert] = alerts(runtime)
    assert alert.status == "firing"
    assert alert.summary == "The job reported failure at 2026-11-26 03:30 America/Chicago"
    assert alert.details == log
    [stored] = rows(runtime, HeartbeatPing)
    assert (stored.kind, stored.method, stored.body) == ("fail", "POST", log)
    clock.now += timedelta(hours=1)
    ping(server)
    [alert] = alerts(runtime)
    assert alert.status == "resolved"


def test_a_run_that_started_and_never_finished_is_late_once_its_grace_has_passed(server, clock):
    runtime = server.runtime
    clock.now = at("2026-11-27T08:00:00")
    assert ping(server, "/start").text == "OK: started\n"
    assert heartbeat(runtime).status == "running"
    clock.now = at("2026-11-27T08:59:00")
    runtime.tick()
    assert alerts(runtime) == []
    clock.now = at("2026-11-27T09:00:00")
    runtime.tick()
    [alert] = alerts(runtime)
    assert alert.summary == (
        "Run started at 2026-11-27 02:00 America/Chicago has not reported success within 1h"
    )


def test_slacks_link_expander_is_ignored_and_changes_nothing(server):
    answered = ping(server, headers={"User-Agent": SLACKBOT})
    assert answered.status_code == 200 and "ignored" in answered.text
    assert rows(server.runtime, HeartbeatPing) == []
    assert heartbeat(server.runtime).status == "new"


def test_a_ping_to_an_unknown_key_is_404_and_changes_nothing(server):
    with server.client() as client:
        answered = client.get("/ping/0000-not-a-key")
        wrong_kind = client.get(f"/ping/{KEY}/finish")
    assert answered.status_code == 404 and wrong_kind.status_code == 404
    assert rows(server.runtime, HeartbeatPing) == []
    assert heartbeat(server.runtime).last_ping_at is None


def test_head_and_post_count_and_a_long_log_is_kept_up_to_100_kb(server):
    assert ping(server, method="HEAD").status_code == 200
    ping(server, method="POST", content=b"x" * 300_000)
    head, posted = sorted(rows(server.runtime, HeartbeatPing), key=lambda p: p.id)
    assert (head.method, head.body) == ("HEAD", None)
    assert posted.method == "POST" and posted.body == "x" * 100_000


def test_heartbeat_shows_the_ping_url_only_to_who_asked(database_url, make_runtime, clock):
    settings = make_settings(database_url, INTEG_PUBLIC_URL="https://integ-bot.example.edu")
    runtime = make_runtime(settings)
    reply = answer(runtime.deps, "heartbeat crm", "U0ASKER01", "C0INTEG01")
    assert reply.ephemeral
    assert f"https://integ-bot.example.edu/ping/{KEY}" in reply.text
    assert "2026-11-27 02:00 America/Chicago" in reply.text  # the next run expected
    assert rows(runtime, OutboxMessage) == []  # nothing posted to the channel
    status = answer(runtime.deps, "status crm", "U0ASKER01", None)
    assert "*Heartbeat:* :hourglass: waiting for its first ping" in str(status.blocks)
    assert KEY not in str(status.blocks)
    none = answer(runtime.deps, "heartbeat payments", "U0ASKER01", None)
    assert "has no heartbeat" in none.text


def test_a_restart_neither_repeats_nor_skips_a_missed_deadline(database_url, make_runtime, clock):
    first = make_runtime(make_settings(database_url))
    clock.now = at("2026-11-27T09:00:00")
    first.tick()
    first.close()
    second = make_runtime(make_settings(database_url))
    second.tick()
    [alert] = alerts(second)
    assert alert.count == 1
    clock.now = at("2026-11-28T09:00:00")  # the next night is missed too, and noticed
    second.tick()
    [alert] = alerts(second)
    assert alert.count == 2


def test_two_processes_on_one_database_raise_a_missed_run_once(database_url, make_runtime, clock):
    one = make_runtime(make_settings(database_url))
    two = make_runtime(make_settings(database_url))
    clock.now = at("2026-11-27T09:00:00")
    one.tick()
    two.tick()
    [alert] = alerts(one)
    assert alert.count == 1
    assert len(posts(two)) == 1


def test_a_run_in_the_repeated_autumn_hour_is_expected_once(
    database_url, make_runtime, clock, tmp_path
):
    catalog = catalog_with(tmp_path, cron="30 1 * * *", grace="30m")  # 01:30 Chicago daily
    clock.now = at("2026-10-31T12:00:00")
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    # 2026-11-01 01:30 happens twice (CDT, then CST an hour later); the job runs at the first.
    assert heartbeat(runtime).expected_at == at("2026-11-01T06:30:00")
    running = start_server(runtime)
    try:
        clock.now = at("2026-11-01T06:35:00")
        assert ping(running).status_code == 200
    finally:
        stop_server(running)
    # The second 01:30 (07:30 UTC) is not a run to wait for: the next is tomorrow's, in CST.
    assert heartbeat(runtime).expected_at == at("2026-11-02T07:30:00")
    clock.now = at("2026-11-01T08:30:00")
    runtime.tick()
    assert alerts(runtime) == []


def test_a_monthly_run_is_expected_on_its_day(database_url, make_runtime, clock, tmp_path):
    catalog = catalog_with(tmp_path, cron="0 3 1 * *", grace="2h")  # the 1st, 03:00 Chicago
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    beat = heartbeat(runtime)
    assert (beat.expected_at, beat.due_at) == (at("2026-12-01T09:00:00"), at("2026-12-01T11:00:00"))
    clock.now = at("2026-12-01T11:00:00")
    runtime.tick()
    [alert] = alerts(runtime)
    assert "expected at 2026-12-01 03:00 America/Chicago" in alert.summary
    assert heartbeat(runtime).expected_at == at("2027-01-01T09:00:00")


def test_a_rerun_started_after_a_miss_that_never_finishes_keeps_the_next_night_awaited(
    server, clock
):
    runtime = server.runtime
    clock.now = at("2026-11-27T09:00:00")
    runtime.tick()  # tonight's run is missed
    clock.now = at("2026-11-27T16:00:00")  # 10:00 Chicago: someone re-runs it by hand
    ping(server, "/start")
    clock.now = at("2026-11-27T17:00:00")
    runtime.tick()
    [alert] = alerts(runtime)
    assert alert.count == 2
    assert alert.summary == (
        "Run started at 2026-11-27 10:00 America/Chicago has not reported success within 1h"
    )
    # The next night's run is still the one awaited, not skipped.
    beat = heartbeat(runtime)
    assert (beat.expected_at, beat.due_at) == (at("2026-11-28T08:00:00"), at("2026-11-28T09:00:00"))
    clock.now = at("2026-11-27T17:30:00")
    ping(server)
    [alert] = alerts(runtime)
    assert alert.status == "resolved"


def test_a_schedule_changed_in_the_catalog_moves_the_deadline_at_once(
    database_url, make_runtime, clock, tmp_path
):
    catalog = catalog_with(tmp_path, every="30m", grace="5m")
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    assert heartbeat(runtime).due_at == clock.now + timedelta(minutes=35)
    clock.now += timedelta(minutes=10)
    catalog_with(tmp_path, cron="0 2 * * *", grace="1h")  # the job moves to nightly
    runtime.watcher.check()
    beat = heartbeat(runtime)
    assert (beat.expected_at, beat.due_at) == (at("2026-11-27T08:00:00"), at("2026-11-27T09:00:00"))
    clock.now += timedelta(minutes=30)  # past the old deadline: nothing is missed
    runtime.tick()
    assert alerts(runtime) == []


def test_taking_a_failing_heartbeat_out_of_the_catalog_resolves_its_alert(
    database_url, make_runtime, clock, tmp_path
):
    catalog = catalog_with(tmp_path, cron="0 2 * * *", grace="1h")
    runtime = make_runtime(make_settings(database_url, catalog=catalog))
    clock.now = at("2026-11-27T09:00:00")
    runtime.tick()
    [alert] = alerts(runtime)
    assert alert.status == "firing"
    data = yaml.safe_load(catalog.read_text())
    [crm] = [i for i in data["integrations"] if i["id"] == "crm"]
    del crm["heartbeat"]
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    runtime.watcher.check()
    [alert] = alerts(runtime)
    assert alert.status == "resolved"
    with runtime.deps.sessions() as session:
        assert session.get(Heartbeat, "crm") is None


def test_a_log_holding_nul_bytes_is_kept_without_them(server):
    # PostgreSQL refuses NUL in text; a job's binary junk must not cost it its ping.
    answered = ping(server, "/fail", method="POST", content=b"half a line\x00\x00 and the rest")
    assert answered.status_code == 200
    [stored] = rows(server.runtime, HeartbeatPing)
    assert stored.body == "half a line and the rest"
    [alert] = alerts(server.runtime)
    assert alert.details == "half a line and the rest"
