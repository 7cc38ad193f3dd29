"""The catalog file: every kind of mistake is reported with its file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from commands.catalog.spec import CatalogError, CatalogInvalid, load_catalog
from tests.helpers.cli_runner import run_cli
from tests.helpers.runtime import EXAMPLE_CATALOG

VALID = """\
# A small catalog; each test breaks it in one place.
systems:
  - id: slate
    name: Slate CRM
  - id: banner
    name: Ellucian Banner
integrations:
  - id: crm
    name: Slate to Banner admissions
    source: slate
    target: banner
    mechanism: api
    schedule: "0 2 * * *"
    timezone: America/Chicago
    owner: U0OWNER01
    channel: C0INTEG01
    escalate_after: 30m
    review: {every: monthly}
"""

SECOND_INTEGRATION = """\
  - id: grades
    name: Canvas grades to Banner
    source: slate
    target: banner
    mechanism: api
    owner: U0OWNER02
    channel: C0INTEG02
"""


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line on which `fragment` appears for the `occurrence`-th time."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(found) >= occurrence, f"{fragment!r} is not in the test catalog"
    return found[occurrence - 1]


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "catalog.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, content: str | bytes) -> list[CatalogError]:
    path = write(tmp_path, content)
    with pytest.raises(CatalogInvalid) as refused:
        load_catalog(path)
    errors = refused.value.errors
    assert errors, "CatalogInvalid must carry at least one error"
    assert all(e.file == str(path) for e in errors)
    return errors


def the_error(tmp_path: Path, content: str | bytes) -> CatalogError:
    errors = errors_of(tmp_path, content)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_the_example_catalog_is_valid():
    catalog = load_catalog(EXAMPLE_CATALOG)
    assert len(catalog.systems) == 8
    assert len(catalog.integrations) == 9
    crm = catalog.integrations["crm"]
    assert (crm.source, crm.target, crm.owner, crm.channel) == (
        "slate",
        "banner",
        "U0OWNER01",
        "C0INTEG01",
    )
    assert catalog.sha256 and catalog.source == str(EXAMPLE_CATALOG)


def test_the_small_test_catalog_is_valid(tmp_path):
    catalog = load_catalog(write(tmp_path, VALID))
    assert list(catalog.integrations) == ["crm"]
    assert list(catalog.systems) == ["slate", "banner"]


def test_an_unknown_key_is_reported_on_its_own_line(tmp_path):
    text = VALID + "    owners: U0OTHER01\n"
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "owners:")
    assert error.key == "integrations[0].owners"
    assert error.message == "unknown key"


def test_an_unknown_key_deep_in_a_system_is_reported_with_its_whole_path(tmp_path):
    text = VALID.replace(
        "    name: Slate CRM\n", "    name: Slate CRM\n    support:\n      phonee: '555'\n"
    )
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "phonee:")
    assert error.key == "systems[0].support.phonee"
    assert error.message == "unknown key"


@pytest.mark.parametrize("key", ["owner", "channel"])
def test_a_missing_required_key_is_reported_on_the_integrations_first_line(tmp_path, key):
    text = re.sub(rf"^    {key}: .*\n", "", VALID, flags=re.MULTILINE)
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "- id: crm")
    assert error.key == f"integrations[0].{key}"
    assert "missing" in error.message


@pytest.mark.parametrize("end", ["source", "target"])
def test_a_source_or_target_system_that_does_not_exist_is_reported(tmp_path, end):
    text = re.sub(rf"^    {end}: .*$", f"    {end}: salte-{end}", VALID, flags=re.MULTILINE)
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, f"{end}: salte-{end}")
    assert error.key == f"integrations[0].{end}"
    assert f"salte-{end}" in error.message


def test_a_duplicate_integration_id_is_reported_on_the_second_one(tmp_path):
    text = VALID + SECOND_INTEGRATION.replace("id: grades", "id: crm")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "- id: crm", occurrence=2)
    assert error.key == "integrations[1].id"
    assert "duplicate integration id" in error.message and "crm" in error.message


def test_a_duplicate_system_id_is_reported_on_the_second_one(tmp_path):
    text = VALID.replace(
        "  - id: banner\n    name: Ellucian Banner\n",
        "  - id: banner\n    name: Ellucian Banner\n  - id: slate\n    name: Slate again\n",
    )
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "- id: slate", occurrence=2)
    assert error.key == "systems[2].id"
    assert "duplicate system id" in error.message and "slate" in error.message


@pytest.mark.parametrize("cron", ["0 2 * *", "61 * * * *"])
def test_a_bad_cron_expression_is_reported_on_the_schedule_line(tmp_path, cron):
    text = VALID.replace('schedule: "0 2 * * *"', f'schedule: "{cron}"')
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "schedule:")
    assert error.key == "integrations[0].schedule"
    assert cron in error.message and "cron" in error.message


def test_a_bad_cron_expression_in_a_heartbeat_is_reported_with_its_path(tmp_path):
    text = VALID + '    heartbeat: {key: crm-nightly-1, cron: "61 * * * *"}\n'
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "heartbeat:")
    assert error.key == "integrations[0].heartbeat.cron"


def test_a_duration_written_in_words_is_reported(tmp_path):
    text = VALID.replace("escalate_after: 30m", "escalate_after: 30 minutes")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "escalate_after:")
    assert error.key == "integrations[0].escalate_after"
    assert "30 minutes" in error.message and "30m" in error.message


def test_an_unknown_timezone_is_reported(tmp_path):
    text = VALID.replace("timezone: America/Chicago", "timezone: America/Springfield")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "timezone:")
    assert error.key == "integrations[0].timezone"
    assert "America/Springfield" in error.message


@pytest.mark.parametrize("cadence", ["fortnightly", "0d", "monthy"])
def test_an_unknown_review_cadence_is_reported(tmp_path, cadence):
    text = VALID.replace("review: {every: monthly}", f"review: {{every: {cadence}}}")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "review:")
    assert error.key == "integrations[0].review.every"
    assert cadence in error.message and "monthly" in error.message


def test_a_heartbeat_with_both_cron_and_every_is_reported(tmp_path):
    text = VALID + '    heartbeat: {key: crm-nightly-1, cron: "0 2 * * *", every: 1d}\n'
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "heartbeat:")
    assert error.key == "integrations[0].heartbeat"
    assert "exactly one of cron or every" in error.message


def test_invalid_yaml_is_reported_on_the_line_of_the_problem(tmp_path):
    text = VALID.replace("    name: Ellucian Banner\n", "   name: Ellucian Banner\n")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "   name: Ellucian Banner")
    assert error.key == "(yaml)"


def test_an_unclosed_quote_is_reported_where_it_opens_not_at_the_end_of_the_file(tmp_path):
    text = VALID.replace('schedule: "0 2 * * *"', 'schedule: "0 2 * * *')
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "schedule:")
    assert error.key == "(yaml)"


def test_a_tab_in_the_indentation_is_reported_on_its_line(tmp_path):
    text = VALID.replace("    mechanism: api", "\tmechanism: api")
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "mechanism: api")
    assert error.key == "(yaml)"


def test_a_key_given_twice_is_reported_on_the_second_one(tmp_path):
    text = VALID + "    owner: U0OWNER02\n"
    error = the_error(tmp_path, text)
    assert error.line == line_of(text, "owner: U0OWNER02")
    assert error.key == "integrations[0].owner"
    assert "duplicate key" in error.message


@pytest.mark.parametrize("content", ["- crm\n- grades\n", "just some words\n"])
def test_a_top_level_that_is_not_a_mapping_is_reported(tmp_path, content):
    error = the_error(tmp_path, content)
    assert (error.line, error.key) == (1, "(top)")
    assert "systems:" in error.message and "integrations:" in error.message


def test_bytes_that_are_not_utf8_are_reported_on_their_line(tmp_path):
    raw = VALID.replace("Slate CRM", "Slate CRM caf\u00e9").encode("latin-1")
    error = the_error(tmp_path, raw)
    assert error.line == line_of(VALID, "Slate CRM")
    assert error.key == "(file)"
    assert "UTF-8" in error.message


@pytest.mark.parametrize("content", ["", "\n\n", "# nothing catalogued yet\n"])
def test_an_empty_file_is_a_valid_empty_catalog(tmp_path, content):
    catalog = load_catalog(write(tmp_path, content))
    assert catalog.systems == {} and catalog.integrations == {}


def test_several_errors_in_one_file_are_all_reported_in_line_order(tmp_path):
    text = (
        VALID.replace("escalate_after: 30m", "escalate_after: 30 minutes")
        .replace('schedule: "0 2 * * *"', 'schedule: "61 * * * *"')
        .replace("timezone: America/Chicago", "timezone: Mars/Olympus")
        + "    owners: U0OTHER01\n"
        + SECOND_INTEGRATION.replace("source: slate", "source: canvas").replace(
            "    channel: C0INTEG02\n", ""
        )
    )
    errors = errors_of(tmp_path, text)
    found = {(e.line, e.key) for e in errors}
    assert found == {
        (line_of(text, "schedule:"), "integrations[0].schedule"),
        (line_of(text, "timezone:"), "integrations[0].timezone"),
        (line_of(text, "escalate_after:"), "integrations[0].escalate_after"),
        (line_of(text, "owners:"), "integrations[0].owners"),
        (line_of(text, "- id: grades"), "integrations[1].channel"),
        (line_of(text, "source: canvas"), "integrations[1].source"),
    }
    assert [e.line for e in errors] == sorted(e.line for e in errors)


def test_catalog_check_exits_0_with_a_summary_on_a_good_file(tmp_path):
    result = run_cli("catalog", "check", str(EXAMPLE_CATALOG), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{EXAMPLE_CATALOG}: ok, 8 systems, 9 integrations"
    assert "Traceback" not in result.stderr


def test_catalog_check_exits_1_with_one_line_per_error_on_a_bad_file(tmp_path):
    text = VALID.replace("timezone: America/Chicago", "timezone: Mars/Olympus") + (
        "    owners: U0OTHER01\n"
    )
    path = write(tmp_path, text)
    result = run_cli("catalog", "check", str(path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    pattern = re.compile(rf"^{re.escape(str(path))}:(\d+): (\S+): (.+)$")
    matches = [pattern.match(line) for line in lines]
    assert all(matches), lines
    assert [(int(m.group(1)), m.group(2)) for m in matches if m] == [
        (line_of(text, "timezone:"), "integrations[0].timezone"),
        (line_of(text, "owners:"), "integrations[0].owners"),
    ]
    assert "2 errors" in result.stderr
    assert "Traceback" not in result.stderr


def test_catalog_check_on_a_missing_file_exits_1_naming_it(tmp_path):
    missing = tmp_path / "nowhere.yml"
    result = run_cli("catalog", "check", str(missing), cwd=tmp_path)
    assert result.returncode == 1
    assert str(missing) in result.stdout
    assert "Traceback" not in result.stderr


# -- roles ------------------------------------------------------------------------------------


def test_admins_are_user_ids_and_e_mails_or_one_user_group(tmp_path):
    listed = load_catalog(write(tmp_path, "admins: [U0ADMIN01, it-lead@example.edu]\n" + VALID))
    assert (listed.admins.users, listed.admins.group) == (
        ("U0ADMIN01", "it-lead@example.edu"),
        None,
    )
    group = load_catalog(write(tmp_path, "admins: S0INTEGADM\n" + VALID))
    assert (group.admins.users, group.admins.group) == ((), "S0INTEGADM")
    assert load_catalog(write(tmp_path, VALID)).admins.users == ()


@pytest.mark.parametrize(
    ("admins", "message"),
    [
        ("C0INTEG01", "'C0INTEG01' is not a Slack user group ID (like S0123ABCD)"),
        ("[S0INTEGADM]", "'S0INTEGADM' is neither a Slack user ID (U0123ABCD) nor an e-mail"),
        ("{lead: U0ADMIN01}", "give a list of Slack user IDs, or one user group ID (S0123ABCD)"),
    ],
)
def test_admins_of_the_wrong_shape_are_reported_on_their_line(tmp_path, admins, message):
    text = VALID.replace("systems:\n", f"admins: {admins}\nsystems:\n", 1)
    error = the_error(tmp_path, text)
    assert (error.line, error.key) == (line_of(text, "admins:"), "admins")
    assert error.message.startswith(message)


def test_a_team_must_be_a_user_group(tmp_path):
    assert (
        load_catalog(write(tmp_path, VALID + "    team: S0CRMTEAM\n")).integrations["crm"].team
        == "S0CRMTEAM"
    )
    text = VALID + "    team: U0OWNER02\n"
    error = the_error(tmp_path, text)
    assert (error.line, error.key) == (line_of(text, "team:"), "integrations[0].team")
    assert error.message == "'U0OWNER02' is not a Slack user group ID (like S0123ABCD)"
