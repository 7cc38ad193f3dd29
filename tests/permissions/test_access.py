"""Around the rules: a Slack that is slow or failing, private channels, one silence at a
time, heartbeat keys, and the console acting as an admin."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.shell import respond
from storage.models import Alert, AuditEntry, OutboxMessage, Silence
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.people import CHANNEL, ROLES, command, deliver, fire, permissions_catalog
from tests.helpers.runtime import (
    BOT_TOKEN,
    RunningServer,
    make_settings,
    start_server,
    stop_server,
)
from tests.helpers.slack_signing import SIGNING_SECRET

OWNER, OTHER = ROLES["owner"], ROLES["other member"]
ELSEWHERE = "C0RANDOM1"
SLACK_DEADLINE = 3.0


def stored(server: RunningServer, model: Any) -> list[Any]:
    with server.runtime.deps.sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def status_of(server: RunningServer, alert_id: int) -> str:
    with server.runtime.deps.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.status


def timed(run: Callable[[], str]) -> tuple[str, float]:
    started = time.perf_counter()
    told = run()
    return told, time.perf_counter() - started


# -- a Slack that is slow or failing ------------------------------------------------------------


@pytest.mark.parametrize("trouble", ["slow", "failing"])
def test_a_refusal_arrives_within_slacks_deadline_when_slack_cannot_say_who_asks(
    server: RunningServer, fake_slack: FakeSlack, trouble: str
) -> None:
    alert_id = fire(server, "nightly")
    if trouble == "slow":
        fake_slack.delay_next("users.info", 4.0)
    else:
        fake_slack.fail_next("users.info", 500, times=3)
    told, took = timed(lambda: command(server, f"resolve {alert_id} data fixed", "U0NEWBIE1"))
    assert took < SLACK_DEADLINE, f"answered after {took:.2f}s"
    assert "I could not check with Slack who you are just now" in told
    assert status_of(server, alert_id) == "firing"
    [row] = stored(server, AuditEntry)
    assert (row.actor, row.action, row.subject, row.allowed) == (
        "U0NEWBIE1",
        "resolve",
        f"alert #{alert_id}",
        False,
    )
    assert row.detail == "refused: Slack could not say who this is"


@pytest.fixture
def quickly_forgetting_server(
    database_url: str,
    fake_slack: FakeSlack,
    make_runtime: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[RunningServer]:
    """A bot that asks Slack again about anyone it last heard of 50 ms ago."""
    settings = make_settings(
        database_url,
        permissions_catalog(tmp_path),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
        INTEG_DIRECTORY_TTL_SECONDS="0.05",
    )
    running = start_server(make_runtime(settings))
    yield running
    stop_server(running)


def test_someone_slack_knew_keeps_their_rights_while_slack_fails(
    quickly_forgetting_server: RunningServer, fake_slack: FakeSlack
) -> None:
    server = quickly_forgetting_server
    first, second = fire(server, "first"), fire(server, "second")
    assert "You resolved alert" in command(server, f"resolve {first} data fixed", OWNER)
    time.sleep(0.1)  # what Slack said is stale now
    fake_slack.fail_next("users.info", 500, times=20)
    fake_slack.fail_next("auth.test", 500, times=20)
    told, took = timed(lambda: command(server, f"resolve {second} data fixed", OWNER))
    assert "You resolved alert" in told
    assert took < 1.0, "the last known answer serves at once; the refresh is not waited for"
    assert status_of(server, second) == "resolved"


def test_someone_who_became_a_guest_loses_their_rights_once_slack_says_so(
    quickly_forgetting_server: RunningServer, fake_slack: FakeSlack
) -> None:
    server = quickly_forgetting_server
    alert_id = fire(server, "nightly")
    assert "Owner:" in command(server, "owners crm", OWNER)
    fake_slack.guest(OWNER)
    deadline = time.monotonic() + 5
    # The stale answer serves once more while Slack is asked again; then the new one.
    while "full members" not in command(server, "owners crm", OWNER):
        assert time.monotonic() < deadline, "the guest was never seen as one"
        time.sleep(0.1)
    told = command(server, f"resolve {alert_id} data fixed", OWNER)
    assert "full members of this workspace" in told
    assert status_of(server, alert_id) == "firing"


# -- private channels ---------------------------------------------------------------------------


@pytest.fixture
def private_crm(server: RunningServer, fake_slack: FakeSlack) -> int:
    """crm posts in a private channel, and has an open alert."""
    fake_slack.channels[CHANNEL] = {"is_private": True, "is_channel": False, "is_group": True}
    return fire(server, "nightly")


def test_a_private_channels_alerts_are_listed_only_there_or_to_its_responders(
    server: RunningServer, private_crm: int
) -> None:
    summary = "Nightly load failed"
    assert summary not in command(server, "alerts", OTHER, channel=ELSEWHERE)
    assert summary in command(server, "alerts", OTHER, channel=CHANNEL)
    assert summary in command(server, "alerts", ROLES["team member"], channel=ELSEWHERE)
    told = command(server, "alerts crm", OTHER, channel=ELSEWHERE)
    assert "can be seen and acted on only in its integration's channel" in told
    assert summary not in told


def test_an_alert_of_a_private_channel_cannot_be_acknowledged_from_elsewhere_by_its_number(
    server: RunningServer, private_crm: int
) -> None:
    told = command(server, f"ack {private_crm}", OTHER, channel=ELSEWHERE)
    assert f"Alert #{private_crm} can be seen and acted on only" in told
    # The refusal names nobody: a guessed number tells nothing of the private integration.
    assert "<@U0OWNER01>" not in told and "Slate" not in told
    assert status_of(server, private_crm) == "firing"
    assert "You acknowledged" in command(server, f"ack {private_crm}", OTHER, channel=CHANNEL)


def test_a_private_channels_changes_are_listed_only_there_or_to_its_responders(
    server: RunningServer, private_crm: int
) -> None:
    assert "Logged change" in command(server, "log crm config new decision code", OWNER)
    assert "new decision code" not in command(server, "changes", OTHER, channel=ELSEWHERE)
    assert "new decision code" in command(server, "changes", OTHER, channel=CHANNEL)
    assert "new decision code" in command(server, "changes", OWNER, channel=ELSEWHERE)
    told = command(server, "changes crm", OTHER, channel=ELSEWHERE)
    assert "new decision code" not in told and "can be seen and acted on only" in told


# -- one silence at a time ------------------------------------------------------------------------


def test_a_new_silence_replaces_the_running_one_and_unsilence_posts_what_it_held_back(
    server: RunningServer, fake_slack: FakeSlack
) -> None:
    assert "silenced for 3h" in command(server, "silence crm 3h patching", OWNER)
    told = command(server, "silence crm 1h patching, shorter", ROLES["backup"])
    assert "This replaces the silence that was running." in told
    now = server.runtime.deps.clock()
    active = [s for s in stored(server, Silence) if s.starts_at <= now < s.ends_at]
    assert [(s.created_by, s.ends_at - s.starts_at) for s in active] == [
        (ROLES["backup"], timedelta(hours=1))
    ]
    held = fire(server, "during-silence")
    posted = len(fake_slack.calls_to("chat.postMessage"))
    assert "is no longer silenced" in command(server, "unsilence crm", ROLES["team member"])
    now = server.runtime.deps.clock()
    assert not [s for s in stored(server, Silence) if s.starts_at <= now < s.ends_at]
    server.runtime.tick()
    deliver(server)
    texts = [str(c.args.get("text")) for c in fake_slack.calls_to("chat.postMessage")[posted:]]
    assert any("ended the silence of *Slate to Banner admissions*" in t for t in texts)
    with server.runtime.deps.sessions() as session:
        alert = session.get(Alert, held)
        assert alert is not None and alert.message_ts is not None  # posted at last
    assert "is not silenced" in command(server, "unsilence crm", OWNER)


def test_a_silence_longer_than_thirty_days_is_refused_even_for_an_admin(
    server: RunningServer,
) -> None:
    told = command(server, "silence crm 31d forever", ROLES["admin"])
    assert "A silence lasts at most 30 days" in told
    assert stored(server, Silence) == []


# -- heartbeat keys -------------------------------------------------------------------------------


def test_a_key_changed_in_the_catalog_stops_the_old_one_at_once_and_says_when(
    server: RunningServer, tmp_path: Path
) -> None:
    before = command(server, "heartbeat crm", OWNER)
    assert "*Key last changed:*" in before and "/ping/3f6c0d2e-crm-nightly" in before
    catalog = Path(server.runtime.deps.settings.catalog_path)
    server.runtime.deps.clock.now += timedelta(days=3)
    catalog.write_text(catalog.read_text().replace("3f6c0d2e-crm-nightly", "9a1b7e44-crm-rotated"))
    assert server.runtime.watcher.check()
    with server.client() as client:
        assert client.get("/ping/3f6c0d2e-crm-nightly").status_code == 404
        assert client.get("/ping/9a1b7e44-crm-rotated").status_code == 200
    after = command(server, "heartbeat crm", OWNER)
    assert "/ping/9a1b7e44-crm-rotated" in after and "3f6c0d2e" not in after
    changed = [line for line in after.split("\\n") if "Key last changed" in line]
    assert changed and changed != [
        line for line in before.split("\\n") if "Key last changed" in line
    ]
    assert "(just now)" in changed[0] or "ago" in changed[0]


# -- the console -------------------------------------------------------------------------------


def test_the_console_acts_as_an_admin_and_is_audited_as_the_shell(
    server: RunningServer,
) -> None:
    told = respond(server.runtime.deps, "/integ silence crm 5d upgrade weekend")
    assert "silenced for 5d" in told
    [row] = stored(server, AuditEntry)
    assert (row.actor, row.action, row.allowed, row.surface) == (
        "U0SHELL",
        "silence over 24h",
        True,
        "shell",
    )
    assert "Audit trail of Slate to Banner admissions" in respond(
        server.runtime.deps, "/integ audit crm"
    )


def test_the_audit_trail_lists_the_newest_first_for_responders(
    server: RunningServer,
) -> None:
    alert_id = fire(server, "nightly")
    command(server, f"resolve {alert_id} data", ROLES["guest"])
    command(server, f"resolve {alert_id} vendor their API was down", ROLES["backup"])
    told = command(server, "audit crm", OWNER)
    assert told.index("<@U0BACKUP1> *resolve* alert #") < told.index("<@U0GUEST01> *resolve*")
    assert "vendor: their API was down" in told
    assert "refused: guest" in told
    with server.runtime.deps.sessions() as session:
        messages = session.scalars(select(OutboxMessage)).all()
    assert not any("U0GUEST01" in str(m.payload) for m in messages)  # refusals post nothing


def test_a_guest_cannot_tell_an_alert_number_in_use_from_a_free_one(
    server: RunningServer,
) -> None:
    alert_id = fire(server, "nightly")
    used = command(server, f"ack {alert_id}", ROLES["guest"])
    free = command(server, "ack 9999", ROLES["guest"])
    assert "full members of this workspace" in used and "full members of this workspace" in free
    assert "There is no alert" in command(server, "ack 9999", OTHER)


def test_owners_names_the_team_as_a_user_group_mention(server: RunningServer) -> None:
    told = command(server, "owners crm", OTHER)
    assert "*Team:* <!subteam^S0CRMTEAM>" in told
