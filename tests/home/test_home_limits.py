"""The Home within Slack's limits and over time: 200 integrations for one owner, people
Slack cannot tell about, a catalog change, Homes nobody opens any more, and the console."""

import json
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import func, select

from bot.workers.retention import Retention
from storage.models import HomeIntegration, HomeView, OutboxKind, OutboxMessage
from tests.bot.test_cli import shell_env
from tests.helpers.block_kit import view_errors
from tests.helpers.cli_runner import run_cli
from tests.helpers.runtime import (
    BOT_TOKEN,
    EXAMPLE_CATALOG,
    make_settings,
    start_server,
    stop_server,
)
from tests.helpers.slack_signing import SIGNING_SECRET
from tests.home.test_home_tab import (
    OWNER,
    alert,
    deliver,
    fire,
    open_home,
    publishes,
    text_of,
    view_of,
)

BIG_OWNER = "U0BIGOWNR"


def big_catalog(path: Path, count: int = 200) -> Path:
    """Two systems and `count` integrations, all owned by one person, every review overdue,
    with names and runbooks as long as the catalog allows."""
    systems = [
        {"id": "erp", "name": "ERP " + "x" * 150, "vendor": "V"},
        {"id": "crm", "name": "CRM " + "y" * 150, "vendor": "V"},
    ]
    integrations = [
        {
            "id": f"feed-{n:03d}",
            "name": f"Feed {n:03d} " + "z" * 180,
            "source": "erp",
            "target": "crm",
            "mechanism": "api",
            "schedule": "realtime",
            "owner": BIG_OWNER,
            "backups": ["U0BACKUP1"],
            "channel": f"C0FEED{n:03d}",
            "runbook": "https://wiki.example.edu/" + "r" * 400 + f"/{n}",
            "review": {"every": "monthly", "first_due": "2026-01-01"},
        }
        for n in range(count)
    ]
    path.write_text(yaml.safe_dump({"systems": systems, "integrations": integrations}))
    return path


def test_two_hundred_integrations_for_one_owner_fit_in_a_valid_home_that_says_what_is_more(
    database_url, fake_slack, make_runtime, tmp_path
):
    settings = make_settings(
        database_url,
        catalog=big_catalog(tmp_path / "catalog.yml"),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    server = start_server(make_runtime(settings))
    try:
        fire(server, *(alert(f"k{n}", integration=f"feed-{n:03d}") for n in range(200)))
        fire(server, *(alert(f"j{n}", integration=f"feed-{n:03d}") for n in range(200)))
        open_home(server, user=BIG_OWNER)
        # The alerts' 400 posts to 200 channels go first, 50 channels a pass.
        deliver(server, rounds=10)
    finally:
        stop_server(server)
    [call] = publishes(fake_slack, BIG_OWNER)
    assert call.ok, call.response  # the fake refuses what Slack would
    view = view_of(call)
    assert view_errors(view) == []
    assert len(view["blocks"]) <= 100
    assert len(json.dumps(view)) < 250_000
    text = text_of(call)
    assert "You answer for *200* integrations: 200 failing" in text
    assert "140 more of yours: `/integ list`" in text
    assert "385 more open alerts: `/integ alerts`" in text
    assert "190 more reviews due: `/integ reviews`" in text


def test_someone_slack_cannot_tell_about_gets_their_home_once_slack_answers(
    slack_server, fake_slack
):
    fake_slack.fail_next("users.info", status=500)
    open_home(slack_server)
    deliver(slack_server, rounds=1)
    assert publishes(fake_slack) == []
    with slack_server.runtime.deps.sessions() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.HOME.value)
        ).one()
        assert (row.status, row.last_error) == (
            "pending",
            f"Slack could not say who {OWNER} is just now",
        )
    deliver(slack_server, rounds=3)  # Slack answers now
    assert [c.ok for c in publishes(fake_slack)] == [True]


def test_a_deactivated_person_gets_no_home(slack_server, fake_slack):
    fake_slack.users[OWNER] = {"deleted": True}
    open_home(slack_server)
    deliver(slack_server)
    assert publishes(fake_slack) == []
    with slack_server.runtime.deps.sessions() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.HOME.value)
        ).one()
        assert (row.status, row.last_error) == ("failed", f"{OWNER} is deactivated")
        # Its claim cleared the Home's mark: opening it again asks Slack again.
        assert session.get(HomeView, OWNER).publish_queued_at is None
    open_home(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        assert session.get(HomeView, OWNER).publish_queued_at is not None


def test_a_catalog_change_publishes_every_home_with_who_answers_for_what_now(
    database_url, fake_slack, make_runtime, tmp_path
):
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(EXAMPLE_CATALOG.read_text())
    settings = make_settings(
        database_url,
        catalog=catalog,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
    )
    runtime = make_runtime(settings)
    server = start_server(runtime)
    try:
        open_home(server)
        deliver(server)
        assert "Slate to Banner admissions" in text_of(publishes(fake_slack)[-1])
        data = yaml.safe_load(catalog.read_text())
        crm = next(i for i in data["integrations"] if i["id"] == "crm")
        crm["owner"] = "U0NEWOWNR"
        catalog.write_text(yaml.safe_dump(data))
        assert runtime.watcher.check()
        deliver(server)
    finally:
        stop_server(server)
    assert len(publishes(fake_slack)) == 2
    text = text_of(publishes(fake_slack)[-1])
    # crm is U0NEWOWNR's now, and U0OWNER01 answers for nothing else.
    assert "Slate to Banner admissions" not in text
    assert "You are not the owner, a backup or on the team of any integration" in text


def test_a_home_not_opened_for_the_retention_is_forgotten_and_costs_nothing_after(
    slack_server, fake_slack
):
    runtime = slack_server.runtime
    open_home(slack_server)
    deliver(slack_server)
    runtime.deps.clock.now += timedelta(days=91)
    with runtime.deps.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HomeIntegration)) == 1
    deleted = Retention.from_deps(runtime.deps).run_once()
    assert deleted is not None and deleted["home_views"] == 1
    with runtime.deps.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HomeView)) == 0
        assert session.scalar(select(func.count()).select_from(HomeIntegration)) == 0
    fire(slack_server, alert("after"))
    deliver(slack_server)
    assert len(publishes(fake_slack)) == 1
    open_home(slack_server)  # opened again: remembered again
    deliver(slack_server)
    assert len(publishes(fake_slack)) == 2
    assert "Nightly load failed (after)" in text_of(publishes(fake_slack)[-1])


def test_the_console_shows_the_home_a_person_would_see(tmp_path):
    result = run_cli("shell", "--as", OWNER, "home", cwd=tmp_path, env=shell_env(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Your integrations")
    assert "Slate to Banner admissions (`crm`) · owner · #C0INTEG01" in out
    assert "Review of Slate to Banner admissions" in out and "[Review]" in out
    assert "9 integrations: 9 ok" in out
    nobody = run_cli("shell", "--as", "U0NOBODY1", "home", cwd=tmp_path, env=shell_env(tmp_path))
    assert "You are not the owner, a backup or on the team of any integration" in nobody.stdout
