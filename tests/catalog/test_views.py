"""The typed views of stored catalog entries: defaults from the model, reuse across rows,
and entries that no longer validate read as far as they still do."""

from datetime import UTC, date, datetime

from commands.catalog.spec import IntegrationSpec, SystemSpec
from commands.catalog.views import integration_spec, integration_spec_of, system_spec
from commands.monitors.heartbeats import Schedule
from storage.models import Integration, System

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
ENTRY = {
    "id": "crm",
    "name": "Slate to Banner admissions",
    "source": "slate",
    "target": "banner",
    "mechanism": "api",
    "timezone": "America/Chicago",
    "owner": "U0OWNER01",
    "backups": ["U0BACKUP1"],
    "channel": "C0INTEG01",
    "heartbeat": {"key": "3f6c0d2e-crm-nightly", "cron": "0 2 * * *"},
}


def integration(spec, **columns):
    values = {
        "id": "crm",
        "name": "Slate to Banner admissions",
        "source_id": "slate",
        "target_id": "banner",
        "mechanism": "api",
        "schedule": "realtime",
        "timezone": "America/Chicago",
        "owner": "U0OWNER01",
        "channel": "C0INTEG01",
        "added_at": NOW,
        "updated_at": NOW,
        "removed_at": None,
    }
    return Integration(spec=spec, **{**values, **columns})


def test_what_the_entry_leaves_out_is_the_models_default():
    spec = integration_spec(integration(dict(ENTRY)))
    assert isinstance(spec, IntegrationSpec)
    assert spec.review.every == "yearly"
    assert spec.heartbeat is not None and spec.heartbeat.grace == "1h"
    assert spec.fields == [] and spec.probe is None


def test_an_equal_entry_on_another_row_is_not_validated_again_and_a_changed_one_is():
    first = integration_spec(integration(dict(ENTRY)))
    assert integration_spec(integration(dict(ENTRY))) is first
    changed = integration_spec(integration({**ENTRY, "review": {"every": "monthly"}}))
    assert changed is not first and changed.review.every == "monthly"


def test_an_entry_changed_in_place_is_not_read_from_the_cache():
    row = integration({**ENTRY, "runbook": "https://wiki.example.edu/a"})
    assert integration_spec(row).runbook == "https://wiki.example.edu/a"
    row.spec["runbook"] = "https://wiki.example.edu/b"
    assert integration_spec(row).runbook == "https://wiki.example.edu/b"


def test_an_entry_an_older_bot_wrote_is_read_as_far_as_it_still_validates():
    old = {
        **ENTRY,
        "retired_key": True,  # a key the model no longer has
        "backups": ["U0BACKUP1", "not a user", "ops@example.edu"],
        "heartbeat": {"key": "short", "cron": "0 2 * * *"},  # too short a key today
        "review": {"every": "fortnightly", "first_due": "2026-12-01"},
        "timezone": "Mars/Olympus_Mons",
        "escalate_after": "30m",
    }
    del old["name"]
    spec = integration_spec(integration(old, timezone="America/Denver"))
    assert isinstance(spec, IntegrationSpec)
    assert spec.name == "Slate to Banner admissions"  # from the row's column
    assert spec.timezone == "America/Denver"  # the entry's fails; the column's does not
    assert spec.backups == ["U0BACKUP1", "ops@example.edu"]
    assert spec.heartbeat is None
    assert spec.review.every == "yearly" and spec.review.first_due == date(2026, 12, 1)
    assert spec.escalate_after == "30m"


def test_an_entry_with_nothing_valid_still_reads():
    spec = integration_spec(integration({"heartbeat": "every night"}, name="Old one"))
    assert (spec.id, spec.name, spec.owner, spec.heartbeat) == ("crm", "Old one", "U0OWNER01", None)
    assert integration_spec_of(["not", "a", "mapping"]).id == ""


def test_a_system_row_with_an_empty_entry_reads_from_its_columns():
    row = System(id="slate", name="Slate CRM", vendor="Technolutions", spec={})
    spec = system_spec(row)
    assert isinstance(spec, SystemSpec)
    assert (spec.id, spec.name, spec.vendor, spec.support) == (
        "slate",
        "Slate CRM",
        "Technolutions",
        None,
    )


def test_a_schedule_reads_the_selected_column_and_the_typed_entry_alike():
    from_column = Schedule.of(dict(ENTRY))
    assert from_column is not None
    assert from_column == Schedule.of(integration_spec(integration(dict(ENTRY))))
    assert from_column.timezone == "America/Chicago"
    assert Schedule.of({**ENTRY, "heartbeat": None}) is None
