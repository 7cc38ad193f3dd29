"""manifest.yml is valid for Slack and agrees with the wire ids the code listens for.

The schema is Slack's own (github.com/slackapi/manifest-schema), kept in tests/data/slack so the
test needs no network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from bot import wire_ids

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifest.yml"

# Every verb of /integ (the README's commands); the usage hint is what users see while typing.
VERBS = (
    "help list status owners runbook info support alerts ack resolve silence log changes "
    "reviews review impact diagram heartbeat"
).split()


def _schema_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "slack" / "manifest-schema"


def _load_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _schema_for(manifest: dict[str, Any]) -> dict[str, Any]:
    """The versioned schema, picked the way manifest.schema.json's oneOf picks it.

    Major version 2 selects 2.0.0; version 1, a missing major_version or a missing _metadata
    all select 1.0.0.
    """
    metadata = manifest.get("_metadata") or {}
    major = metadata.get("major_version", 1)
    return _load_json(_schema_dir() / f"manifest.schema.{major}.0.0.json")


def _validator(manifest: dict[str, Any]) -> Draft7Validator:
    schema = _schema_for(manifest)
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(manifest: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in _validator(manifest).iter_errors(manifest)
    ]


@pytest.fixture(scope="module")
def schema_dir() -> Path:
    path = _schema_dir()
    # A missing schema is a broken checkout, not a reason to pass quietly.
    assert (path / "manifest.schema.json").is_file(), (
        f"Slack's manifest schema is not at {path}; the checkout is incomplete"
    )
    return path


@pytest.fixture(scope="module")
def manifest(schema_dir: Path) -> dict[str, Any]:
    with MANIFEST.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), "manifest.yml must be a mapping"
    return data


def test_the_manifest_is_valid_against_slacks_schema(manifest: dict[str, Any]) -> None:
    assert _errors(manifest) == []


def test_the_manifest_is_valid_against_the_top_level_schema_that_picks_the_version(
    manifest: dict[str, Any], schema_dir: Path
) -> None:
    # The top-level schema refers to the versioned files by their GitHub URLs; serve those
    # URLs from the local copies so the oneOf is checked exactly as Slack's tooling would.
    top = _load_json(schema_dir / "manifest.schema.json")
    prefix = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"
    registry: Registry = Registry().with_resources(
        (prefix + name, Resource.from_contents(_load_json(schema_dir / name)))
        for name in ("manifest.schema.1.0.0.json", "manifest.schema.2.0.0.json")
    )
    errors = list(Draft7Validator(top, registry=registry).iter_errors(manifest))
    assert [e.message for e in errors] == []


def test_the_manifest_declares_metadata_version_one_point_one(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}


def test_the_slash_command_is_the_one_the_bot_listens_for(manifest: dict[str, Any]) -> None:
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [wire_ids.SLASH_COMMAND]


def test_the_usage_hint_names_every_verb(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    words = set(command["usage_hint"].replace("|", " ").split())
    assert [v for v in VERBS if v not in words] == []


def test_the_message_shortcut_uses_the_log_change_callback_id(manifest: dict[str, Any]) -> None:
    shortcuts = manifest["features"]["shortcuts"]
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [
        ("message", wire_ids.LOG_CHANGE_SHORTCUT)
    ]


def test_the_bot_events_are_exactly_those_the_bot_handles(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == sorted(wire_ids.BOT_EVENTS)


def test_the_home_tab_is_enabled_and_its_opening_is_subscribed(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_every_slack_request_goes_to_the_one_events_url(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    }
    assert len(urls) == 1
    assert urls.pop().endswith("/slack/events")
    assert settings["interactivity"]["is_enabled"] is True


def test_a_manifest_without_a_display_name_fails_validation(manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    del broken["display_information"]["name"]
    assert any("'name' is a required property" in e for e in _errors(broken))


def test_a_manifest_with_an_unknown_key_fails_validation(manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    broken["settings"]["event_subscriptions"]["bot_event"] = ["reaction_added"]
    assert any("Additional properties are not allowed" in e for e in _errors(broken))


def test_a_shortcut_name_longer_than_slack_allows_fails_validation(
    manifest: dict[str, Any],
) -> None:
    broken = copy.deepcopy(manifest)
    broken["features"]["shortcuts"][0]["name"] = "x" * 25
    assert any("is too long" in e for e in _errors(broken))
