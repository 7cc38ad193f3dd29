"""Settings: the defaults of DESIGN's table, and one clear line for each wrong setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import BUNDLED_CATALOG, SettingsError, load_settings
from tests.helpers.cli_runner import run_cli
from tests.helpers.runtime import EXAMPLE_CATALOG

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/x"


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    return str(refused.value)


def test_the_defaults_are_those_of_the_design():
    settings = load_settings({})
    assert settings.database_url == "sqlite:///integ.db"
    assert settings.integ_tick_seconds == 30
    assert settings.integ_status_poll_seconds == 300
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.port == 3000
    assert settings.slack_bot_token is None
    assert settings.slack_app_token is None
    assert settings.integ_webhook_token is None
    assert settings.integ_fallback_channel is None
    assert settings.integ_digest_channel is None


def test_the_environment_given_is_the_only_one_read(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://elsewhere/db")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-shell")
    settings = load_settings({})
    assert settings.database_url == "sqlite:///integ.db"
    assert settings.local_mode


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("INTEG_TICK_SECONDS", "5")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("INTEG_CATALOG", raising=False)
    assert load_settings().integ_tick_seconds == 5


def test_without_a_bot_token_it_runs_in_local_mode():
    assert load_settings({}).local_mode
    # `SLACK_BOT_TOKEN=` in a .env file means unset, not an empty token.
    assert load_settings({"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": " "}).local_mode


def test_a_bot_token_with_a_signing_secret_is_http_mode():
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"})
    assert not settings.local_mode


def test_socket_mode_needs_no_signing_secret():
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert not settings.local_mode
    assert settings.slack_app_token == "xapp-1"


def test_the_slack_api_url_always_ends_with_a_slash():
    settings = load_settings({"SLACK_API_URL": "http://127.0.0.1:8080/api"})
    assert settings.slack_api_url == "http://127.0.0.1:8080/api/"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-x"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_APP_TOKEN": "xapp-x"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token", "SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xoxb-y"}, "SLACK_APP_TOKEN"),
        ({"INTEG_TICK_SECONDS": "often"}, "INTEG_TICK_SECONDS"),
        ({"INTEG_TICK_SECONDS": "0"}, "INTEG_TICK_SECONDS"),
        ({"INTEG_TICK_SECONDS": "-30"}, "INTEG_TICK_SECONDS"),
        ({"INTEG_TICK_SECONDS": "inf"}, "INTEG_TICK_SECONDS"),
        ({"INTEG_STATUS_POLL_SECONDS": "0"}, "INTEG_STATUS_POLL_SECONDS"),
        ({"DATABASE_URL": "mysql://integ@db/integ"}, "DATABASE_URL"),
        ({"DATABASE_URL": "integ.db"}, "DATABASE_URL"),
        ({"INTEG_CATALOG": "/nonexistent/catalog.yml"}, "INTEG_CATALOG"),
        ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL"),
        ({"PORT": "http"}, "PORT"),
    ],
)
def test_a_wrong_setting_gives_one_line_naming_the_variable(env, named):
    message = refusal(env)
    assert named in message
    assert "\n" not in message
    assert len(message) < 200


def test_a_bot_token_without_a_signing_secret_says_both_names():
    message = refusal({"SLACK_BOT_TOKEN": "xoxb-x"})
    assert "SLACK_BOT_TOKEN" in message and "SLACK_SIGNING_SECRET" in message


def test_a_missing_catalog_file_is_named_in_the_message():
    assert "/nonexistent/catalog.yml" in refusal({"INTEG_CATALOG": "/nonexistent/catalog.yml"})


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://integ:pw@db:5432/integ", "postgresql+psycopg://integ:pw@db:5432/integ"),
        ("postgres://integ@db/integ", "postgresql+psycopg://integ@db/integ"),
        ("postgresql+psycopg://integ@db/integ", "postgresql+psycopg://integ@db/integ"),
        ("sqlite:////var/lib/integ/integ.db", "sqlite:////var/lib/integ/integ.db"),
    ],
)
def test_postgresql_urls_are_accepted_and_mapped_to_psycopg(given, used):
    assert load_settings({"DATABASE_URL": given}).database_url == used


def test_the_catalog_is_the_bundled_example_when_there_is_no_catalog_yml_here(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = load_settings({}).catalog_path
    assert path == BUNDLED_CATALOG == EXAMPLE_CATALOG
    assert path.is_file()


def test_the_catalog_is_catalog_yml_in_the_working_directory_when_there_is_one(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "catalog.yml").write_text("systems: []\n", encoding="utf-8")
    assert load_settings({}).catalog_path.resolve() == tmp_path / "catalog.yml"


def test_integ_catalog_names_the_catalog_and_blank_means_unset(tmp_path, monkeypatch):
    mine = tmp_path / "mine.yml"
    mine.write_text("systems: []\n", encoding="utf-8")
    assert load_settings({"INTEG_CATALOG": str(mine)}).catalog_path == mine
    monkeypatch.chdir(tmp_path)
    assert load_settings({"INTEG_CATALOG": ""}).catalog_path == BUNDLED_CATALOG


def test_serve_with_a_bot_token_and_no_signing_secret_exits_2_with_one_line(tmp_path):
    result = run_cli(
        "serve",
        cwd=tmp_path,
        env={"SLACK_BOT_TOKEN": "xoxb-x", "DATABASE_URL": f"sqlite:///{tmp_path / 'integ.db'}"},
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("integ-bot: ")
    assert "SLACK_SIGNING_SECRET" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # Refused before anything was opened.
    assert not (tmp_path / "integ.db").exists()


@pytest.mark.parametrize(
    "command", [("serve",), ("db", "upgrade"), ("shell", "-c", "/integ status crm")]
)
def test_an_unreachable_database_gives_one_line_naming_database_url(tmp_path, command):
    result = run_cli(*command, cwd=tmp_path, env={"DATABASE_URL": UNREACHABLE_DATABASE})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("integ-bot: DATABASE_URL: ")
    assert "127.0.0.1:1" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_catalog_file_stops_serve_with_one_line(tmp_path: Path):
    result = run_cli(
        "serve",
        cwd=tmp_path,
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'integ.db'}",
            "INTEG_CATALOG": str(tmp_path / "catalgo.yml"),
        },
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"integ-bot: INTEG_CATALOG: file not found: {tmp_path / 'catalgo.yml'}"
    ]
