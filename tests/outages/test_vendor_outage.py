"""A vendor incident on a system with six integrations in three channels: one message per
channel, the integrations' alerts folded under it (no posts, no escalations of their own),
and the recovery reported, with what still fails posted on its own. End to end: a status
page on loopback, hooks through the intake writer, the outbox to the fake Web API."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot import wire_ids
from bot.runtime import Runtime
from commands.alerts.payloads import parse_generic
from storage.models import Alert, SystemOutage
from tests.alerts.test_slack_messages import click
from tests.helpers.runtime import BOT_TOKEN, make_settings, start_server, stop_server
from tests.helpers.slack_signing import SIGNING_SECRET
from tests.monitors.test_vendor_status import (
    POLL_SECONDS,
    WORKDAY_CHANNELS,
    deliver,
    posts,
    shown,
    updates,
    write_catalog,
)

EXTRA = {"C0HRIS001": "hr-extra", "C0FIN0001": "fin-extra", "C0IAM0001": "iam-extra"}


@pytest.fixture
def catalog(tmp_path: Path, site) -> Path:
    """The example catalog with Workday's status page on loopback and three more
    integrations touching Workday: six, two in each of its three channels."""
    path = write_catalog(tmp_path / "catalog.yml", canvas=None, workday=site.url("workday"))
    data = yaml.safe_load(path.read_text())
    [model] = [i for i in data["integrations"] if i["id"] == "hr-feed"]
    for channel, ident in EXTRA.items():
        extra = {k: v for k, v in model.items() if k not in ("heartbeat", "fields")}
        extra.update(id=ident, name=f"Workday feed {ident}", channel=channel, escalate_after="10m")
        data["integrations"].append(extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def runtime(database_url, fake_slack, make_runtime, catalog) -> Runtime:
    return make_runtime(outage_settings(database_url, catalog, fake_slack))


def outage_settings(database_url: str, catalog: Path, fake_slack) -> Any:
    return make_settings(
        database_url,
        catalog=catalog,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
        INTEG_STATUS_POLL_SECONDS=str(POLL_SECONDS),
        INTEG_OUTAGE_INTEGRATIONS="3",  # the default, which tests turn off
    )


WORKDAY_INTEGRATIONS = sorted(
    [i for names in WORKDAY_CHANNELS.values() for i in names] + list(EXTRA.values())
)


def hook(runtime: Runtime, ident: str, status: str = "firing") -> None:
    body = json.dumps(
        {"integration": ident, "key": "run", "status": status, "summary": f"{ident} failed"}
    ).encode()
    runtime.intake.submit("generic", body, parse_generic(body)).result(timeout=10)


def workday_posts(fake_slack):
    return [c for c in posts(fake_slack) if c.args["channel"] in WORKDAY_CHANNELS]


def alerts(runtime: Runtime) -> list[Alert]:
    with runtime.deps.sessions() as session:
        return list(session.scalars(select(Alert).order_by(Alert.integration_name)))


def test_a_vendor_incident_folds_six_integrations_alerts_into_one_message_per_channel(
    runtime,
    poller,
    site,
    fake_slack,
    clock,
):
    site.answer("workday", "summary_incident_investigating.json")
    poller.run_due()
    deliver(runtime, clock)
    incident_posts = posts(fake_slack)
    assert sorted(c.args["channel"] for c in incident_posts) == sorted(WORKDAY_CHANNELS)

    for ident in WORKDAY_INTEGRATIONS:
        hook(runtime, ident)
    # A storm folds thousands: the messages are edited by the next tick, not per alert.
    runtime.tick()
    deliver(runtime, clock)
    # Nothing posted one by one: the three messages are all there is.
    assert len(posts(fake_slack)) == 3
    assert all(a.outage_id is not None and a.channel is None for a in alerts(runtime))
    latest = {c.args["channel"]: shown(c) for c in updates(fake_slack)}
    for channel in WORKDAY_CHANNELS:
        assert "Failing meanwhile:* 6 alert(s)" in latest[channel]
        for ident in WORKDAY_INTEGRATIONS:
            assert f"`{ident}`: {ident} failed" in latest[channel]

    # Past every escalate_after: nobody is mentioned one alert at a time.
    clock.now += timedelta(hours=3)
    runtime.tick()
    deliver(runtime, clock)
    # (Other integrations' heartbeats, late by now, post in their own channels.)
    assert len(workday_posts(fake_slack)) == 3
    assert not [
        c for c in fake_slack.calls_to("chat.postMessage") if "Not acknowledged" in shown(c)
    ]

    # Four recover while the incident lasts; then the vendor says it is over.
    for ident in WORKDAY_INTEGRATIONS[:4]:
        hook(runtime, ident, "resolved")
    site.answer("workday", "summary_all_clear.json")
    clock.now += timedelta(seconds=POLL_SECONDS)
    over_at = clock.now
    poller.run_due()
    deliver(runtime, clock)
    still = WORKDAY_INTEGRATIONS[4:]  # iam-extra and workday-okta, both in C0IAM0001
    new_posts = workday_posts(fake_slack)[3:]
    assert sorted((c.args["channel"], c.args["text"]) for c in new_posts) == [
        ("C0IAM0001", f"ERROR {ident}: {ident} failed") for ident in still
    ]
    final = {c.args["channel"]: shown(c) for c in updates(fake_slack)}
    for channel in WORKDAY_CHANNELS:
        assert "recovered* at" in final[channel]
        assert (
            "*Recovered:* " + ", ".join(f"`{i}`" for i in WORKDAY_INTEGRATIONS[:4])
            in final[channel]
        )
        assert (
            "*Still failing, now posted on their own:* " + ", ".join(f"`{i}`" for i in still)
            in final[channel]
        )
    with runtime.deps.sessions() as session:
        [outage] = session.scalars(select(SystemOutage)).all()
        assert (outage.system_id, outage.cause, outage.ended_at) == ("workday", "vendor", over_at)


def test_failures_of_three_integrations_of_one_system_within_minutes_open_an_outage(
    runtime,
    fake_slack,
    clock,
):
    # Three of Workday's integrations fail within two minutes, with no word from the vendor.
    hook(runtime, "hr-feed")
    clock.now += timedelta(minutes=1)
    hook(runtime, "ar-journal")
    deliver(runtime, clock)
    assert len(posts(fake_slack)) == 2  # two failures are two failures
    clock.now += timedelta(minutes=1)
    hook(runtime, "workday-okta")
    hook(runtime, "hr-extra")
    deliver(runtime, clock)
    looks_down = [c for c in posts(fake_slack) if "looks down" in shown(c)]
    # One message per channel of the integrations touching Workday; the third and fourth
    # failures are in it and were not posted on their own.
    assert sorted(c.args["channel"] for c in looks_down) == sorted(WORKDAY_CHANNELS)
    assert len(posts(fake_slack)) == 2 + 3
    assert "3 integrations using it failed within 5m" in shown(looks_down[0])

    for ident in ("hr-feed", "ar-journal", "workday-okta", "hr-extra"):
        hook(runtime, ident, "resolved")
    clock.now += timedelta(minutes=6)
    runtime.tick()
    deliver(runtime, clock)
    final = {c.args["channel"]: shown(c) for c in updates(fake_slack) if "Workday" in shown(c)}
    assert all("recovered* at" in text for text in final.values())
    # Nothing left failing to post: the two alerts' and the three outage messages.
    assert len([c for c in posts(fake_slack) if "thread_ts" not in c.args]) == 5


def test_an_outage_is_opened_once_by_two_processes(
    database_url, fake_slack, make_runtime, catalog, clock
):
    settings = outage_settings(database_url, catalog, fake_slack)
    first, second = make_runtime(settings), make_runtime(settings)
    for n, ident in enumerate(WORKDAY_INTEGRATIONS):
        hook(first if n % 2 else second, ident)
    first.tick()
    second.tick()
    with first.deps.sessions() as session:
        assert len(session.scalars(select(SystemOutage)).all()) == 1


def test_acknowledge_all_and_resolve_all_act_on_each_alert_as_its_own_button_would(
    runtime, poller, site, fake_slack, clock
):
    site.answer("workday", "summary_incident_investigating.json")
    poller.run_due()
    for ident in ("hr-feed", "hr-extra", "ar-journal"):
        hook(runtime, ident)
    runtime.tick()
    deliver(runtime, clock)
    with runtime.deps.sessions() as session:
        [outage] = session.scalars(select(SystemOutage)).all()
    server = start_server(runtime)
    try:
        # Any full member may acknowledge.
        answer = click(server, fake_slack, wire_ids.OUTAGE_ACK_ACTION, outage.id, "U0OWNER01")
        assert answer.status_code == 200
        assert {a.integration_name: a.status for a in alerts(runtime)} == dict.fromkeys(
            ("ar-journal", "hr-extra", "hr-feed"), "acknowledged"
        )
        deliver(runtime, clock)
        latest = {c.args["channel"]: shown(c) for c in updates(fake_slack)}
        assert "`hr-feed`: hr-feed failed :eyes: acknowledged" in latest["C0HRIS001"]
        # Resolving needs a responder of each: HR's owner resolves HR's two, not Finance's.
        click(server, fake_slack, wire_ids.OUTAGE_RESOLVE_ACTION, outage.id, "U0HRIS001")
        assert {a.integration_name: a.status for a in alerts(runtime)} == {
            "ar-journal": "acknowledged",
            "hr-extra": "resolved",
            "hr-feed": "resolved",
        }
        [told] = [c for c in fake_slack.responses_to("click") if "Resolved 2" in str(c.args)]
        assert "Not resolved: #" in str(told.args) and "(ar-journal)" in str(told.args)
        causes = {a.integration_name: a.root_cause for a in alerts(runtime)}
        assert causes["hr-feed"] == "vendor"
    finally:
        stop_server(server)


def test_a_system_with_its_own_channel_is_told_about_there_only(
    database_url, fake_slack, make_runtime, make_poller, catalog, site, clock
):
    data = yaml.safe_load(catalog.read_text())
    [workday] = [s for s in data["systems"] if s["id"] == "workday"]
    workday["channel"] = "C0WORKDAY1"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    runtime = make_runtime(outage_settings(database_url, catalog, fake_slack))
    site.answer("workday", "summary_incident_investigating.json")
    make_poller(on=runtime).run_due()
    for ident in ("hr-feed", "ar-journal"):
        hook(runtime, ident)
    runtime.tick()
    deliver(runtime, clock)
    [message] = [c for c in posts(fake_slack) if "thread_ts" not in c.args]
    assert message.args["channel"] == "C0WORKDAY1"
    # It names every integration touching Workday, wherever their own channel is.
    for ident in WORKDAY_INTEGRATIONS:
        assert ident in shown(message)
    [edited] = {c.args["channel"] for c in updates(fake_slack)}
    assert edited == "C0WORKDAY1"
