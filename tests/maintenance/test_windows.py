"""Maintenance windows end to end, with the clock injected: crm's Sunday patch window holds
its alerts and its heartbeat's deadline, the channel hears when it starts and ends, what
still fails is posted on the first tick after, a vendor's scheduled maintenance is a window
of its own, and `/integ maintenance` starts, lists and ends one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.listeners.slash_commands import answer
from bot.runtime import Runtime
from commands.alerts.payloads import parse_generic
from commands.monitors.ping_batches import Ping
from storage.models import Alert, MaintenanceWindow
from tests.helpers.runtime import BOT_TOKEN, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET
from tests.monitors.test_vendor_status import POLL_SECONDS, deliver, posts, shown, write_catalog

CRM_CHANNEL = "C0INTEG01"
HEARTBEAT_KEY = "3f6c0d2e-crm-nightly"  # 02:00 Chicago, 1h grace


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def catalog(tmp_path: Path, site) -> Path:
    """The example catalog, Workday's status page on loopback, and crm patched every Sunday
    from 01:00 to 04:00 in Chicago (07:00-10:00 UTC in winter)."""
    path = write_catalog(tmp_path / "catalog.yml", canvas=None, workday=site.url("workday"))
    data = yaml.safe_load(path.read_text())
    [crm] = [i for i in data["integrations"] if i["id"] == "crm"]
    crm["maintenance"] = [{"every": "0 1 * * SUN", "for": "3h", "reason": "Banner patch window"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build(database_url, fake_slack, make_runtime, catalog) -> Runtime:
    return make_runtime(
        make_settings(
            database_url,
            catalog=catalog,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake_slack.url,
            INTEG_STATUS_POLL_SECONDS=str(POLL_SECONDS),
        )
    )


@pytest.fixture
def runtime(database_url, fake_slack, make_runtime, catalog) -> Runtime:
    return build(database_url, fake_slack, make_runtime, catalog)


def hook(runtime: Runtime, ident: str = "crm", key: str = "load") -> None:
    body = json.dumps({"integration": ident, "key": key, "summary": f"{ident} {key} failed"})
    runtime.intake.submit("generic", body.encode(), parse_generic(body.encode())).result(10)


def crm_posts(fake_slack) -> list[str]:
    return [shown(c) for c in posts(fake_slack, CRM_CHANNEL) if "thread_ts" not in c.args]


def test_an_alert_inside_the_window_waits_for_its_end_and_the_channel_hears_both_ends(
    runtime, fake_slack, clock
):
    clock.now = at("2026-11-29T07:05")  # Sunday 01:05 in Chicago
    runtime.tick()
    hook(runtime)
    deliver(runtime, clock)
    [started] = crm_posts(fake_slack)
    assert (
        ":wrench: *Maintenance* of `crm` from 2026-11-29 07:00 until 2026-11-29 10:00 UTC"
        in started
    )
    assert "UTC: Banner patch window. Alerts are recorded but neither posted" in started
    with runtime.deps.sessions() as session:
        [alert] = session.scalars(select(Alert).where(Alert.key == "load")).all()
        assert (alert.status, alert.count, alert.channel) == ("firing", 1, None)
    clock.now = at("2026-11-29T09:59")
    hook(runtime)  # counted, still held
    runtime.tick()
    deliver(runtime, clock)
    assert len(crm_posts(fake_slack)) == 1
    clock.now = at("2026-11-29T10:00:30")  # the first tick after the window
    runtime.tick()
    deliver(runtime, clock)
    after = crm_posts(fake_slack)[1:]
    assert "Maintenance of `crm` is over" in after[0]
    # (The heartbeat missed on Friday, raised during the window, is let out with it.)
    [alert_post] = [t for t in after if "crm load failed" in t]
    assert "Seen 2 times" in alert_post
    # Next Sunday's window is another one, told again.
    clock.now = at("2026-12-06T07:01")
    runtime.tick()
    deliver(runtime, clock)
    assert any(
        ":wrench: *Maintenance* of `crm` from 2026-12-06 07:00" in t for t in crm_posts(fake_slack)
    )


def test_a_heartbeat_due_inside_the_window_is_judged_at_its_end_plus_the_grace(
    runtime, fake_slack, clock
):
    # crm's run is expected at 02:00 Chicago (08:00 UTC), due at 03:00 (09:00 UTC): inside.
    # It ran on Friday and Saturday.
    for night in ("2026-11-27T08:10", "2026-11-28T08:10"):
        clock.now = at(night)
        ping(runtime)
    for moment in ("2026-11-29T07:05", "2026-11-29T09:30", "2026-11-29T10:30", "2026-11-29T10:59"):
        clock.now = at(moment)
        runtime.tick()
        assert crm_heartbeat_alerts(runtime) == []
    clock.now = at("2026-11-29T11:01")  # the window's end (10:00) plus the grace (1h)
    runtime.tick()
    [missed] = crm_heartbeat_alerts(runtime)
    assert "02:00 America/Chicago did not report" in missed.summary
    deliver(runtime, clock)
    assert any("did not report" in text for text in crm_posts(fake_slack))


def ping(runtime: Runtime) -> None:
    """crm's job reporting success, as `GET /ping/<key>` hands it to the writer."""
    done = Ping(HEARTBEAT_KEY, "success", "GET", "curl/8", "127.0.0.1", None)
    assert runtime.intake.submit_ping(done).result(10) is not None


def crm_heartbeat_alerts(runtime: Runtime) -> list[Alert]:
    with runtime.deps.sessions() as session:
        return list(
            session.scalars(
                select(Alert).where(Alert.key == "heartbeat", Alert.integration_name == "crm")
            )
        )


def test_a_vendors_scheduled_maintenance_is_a_window_of_its_system(
    runtime, poller, site, fake_slack, clock
):
    # summary_maintenance_in_progress.json: Workday's maintenance scheduled from 08:00 to
    # 10:00 UTC on Sunday 29 November, in progress.
    clock.now = at("2026-11-29T08:30")
    site.answer("workday", "summary_maintenance_in_progress.json")
    poller.run_due()
    runtime.tick()
    with runtime.deps.sessions() as session:
        [window] = session.scalars(
            select(MaintenanceWindow).where(MaintenanceWindow.source == "vendor")
        ).all()
    assert (window.starts_at, window.ends_at) == (at("2026-11-29T08:00"), at("2026-11-29T10:00"))
    assert (window.scope, window.scope_id, window.source) == ("system", "workday", "vendor")
    hook(runtime, "hr-feed")
    deliver(runtime, clock)
    assert not [c for c in posts(fake_slack, "C0HRIS001") if "hr-feed load failed" in shown(c)]
    # The page says it is completed: the window ends there and then.
    site.answer("workday", "summary_all_clear.json")
    clock.now += timedelta(seconds=POLL_SECONDS)
    poller.run_due()
    runtime.tick()
    clock.now += timedelta(seconds=1)
    runtime.tick()
    deliver(runtime, clock)
    assert [c for c in posts(fake_slack, "C0HRIS001") if "hr-feed load failed" in shown(c)]


def test_integ_maintenance_starts_lists_and_ends_a_window_with_permissions(
    runtime, fake_slack, clock
):
    clock.now = at("2026-11-26T15:00")  # a Thursday
    refused = answer(runtime.deps, "maintenance crm 2h upgrade", "U0STRANGER", None)
    assert "may" in refused.text.lower() or "only" in refused.text.lower()
    started = answer(runtime.deps, "maintenance crm 2h Slate upgrade", "U0OWNER01", None)
    assert "Maintenance of `crm` until 2026-11-26 17:00 UTC" in started.text
    status = answer(runtime.deps, "status crm", "U0OWNER01", None)
    assert ":wrench: In maintenance until 2026-11-26 17:00 UTC: Slate upgrade" in str(status.blocks)
    listed = answer(runtime.deps, "maintenance", "U0OWNER01", None)
    text = str(listed.blocks)
    assert "`crm`: Slate upgrade (open)" in text
    assert "Sun 2026-11-29 07:00 to 10:00 UTC `crm`: Banner patch window" in text
    hook(runtime)
    ended = answer(runtime.deps, "maintenance end crm", "U0OWNER01", None)
    assert "Maintenance of `crm` ended" in ended.text
    runtime.tick()
    deliver(runtime, clock)
    texts = crm_posts(fake_slack)
    assert "Slate upgrade" in texts[0] and "is over" in texts[1] and "crm load failed" in texts[2]
    again = answer(runtime.deps, "maintenance end crm", "U0OWNER01", None)
    assert "has no maintenance window open" in again.text


def test_two_processes_tell_each_start_end_and_held_alert_once(
    database_url, fake_slack, make_runtime, catalog, clock
):
    first = build(database_url, fake_slack, make_runtime, catalog)
    second = build(database_url, fake_slack, make_runtime, catalog)
    clock.now = at("2026-11-29T07:05")
    first.tick()
    second.tick()
    hook(first)
    clock.now = at("2026-11-29T10:00:30")
    second.tick()
    first.tick()
    deliver(first, clock)
    texts = crm_posts(fake_slack)
    assert [":wrench:" in t for t in texts].count(True) == 1
    assert ["is over" in t for t in texts].count(True) == 1
    assert ["crm load failed" in t for t in texts].count(True) == 1
