"""`integ-bot export changes`, `integ-bot export audit` and `integ-bot export kb`, run for real
in a subprocess against a database that the console logged changes (and silences) into."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from commands.permissions.audit import CSV_COLUMNS
from storage.db import make_engine
from storage.models import AuditEntry, Change, Integration
from tests.helpers.cli_runner import run_cli
from tests.helpers.runtime import EXAMPLE_CATALOG


@pytest.fixture
def env(database_url, tmp_path):
    return {"DATABASE_URL": database_url, "INTEG_CATALOG": str(EXAMPLE_CATALOG)}


def log(tmp_path, env, line):
    result = run_cli("shell", "-c", f"/integ log {line}", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Logged change #" in result.stdout, result.stdout


def test_export_changes_writes_every_entry_as_csv_with_the_text_as_stored(tmp_path, env):
    log(tmp_path, env, 'crm config Moved the drop; "quoted", commas, 🎉')
    log(tmp_path, env, 'hr-feed =HYPERLINK("http://evil") looks like a formula')
    result = run_cli("export", "changes", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["integration"], r["category"]) for r in rows] == [
        ("crm", "config"),
        ("hr-feed", "other"),
    ]
    assert rows[0]["summary"] == 'Moved the drop; "quoted", commas, 🎉'
    # A spreadsheet would run a cell starting with "="; the export makes it text.
    assert rows[1]["summary"] == '\'=HYPERLINK("http://evil") looks like a formula'
    assert rows[0]["author"] == "U0SHELL" and rows[0]["source"] == "command"


def test_export_changes_filters_by_integration_and_day_into_a_file(tmp_path, env):
    log(tmp_path, env, "crm resync re-ran term 202710")
    log(tmp_path, env, "grades schedule every 15 minutes now")
    out = tmp_path / "changes.csv"
    result = run_cli(
        "export",
        "changes",
        "--integration",
        "CRM",
        "--since",
        "2020-01-01",
        "-o",
        str(out),
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"1 change written to {out}"
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [r["summary"] for r in rows] == ["re-ran term 202710"]

    later = run_cli("export", "changes", "--since", "2999-01-01", cwd=tmp_path, env=env)
    assert later.returncode == 0 and len(later.stdout.splitlines()) == 1  # the header alone


def test_export_changes_refuses_an_unknown_integration_or_date_and_writes_no_file(tmp_path, env):
    log(tmp_path, env, "crm config one")
    out = tmp_path / "changes.csv"
    unknown = run_cli(
        "export", "changes", "--integration", "crmm", "-o", str(out), cwd=tmp_path, env=env
    )
    assert unknown.returncode == 1
    assert "no integration called 'crmm'" in unknown.stderr and "crm" in unknown.stderr
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
    bad_day = run_cli("export", "changes", "--since", "last week", cwd=tmp_path, env=env)
    assert bad_day.returncode == 2
    assert "'last week' is not a date like 2026-11-01" in bad_day.stderr


def shell(tmp_path, env, *lines):
    """/integ lines typed at the console, which acts as an admin and is audited as the shell."""
    typed = "".join(f"/integ {line}\n" for line in lines)
    result = run_cli("shell", cwd=tmp_path, env=env, stdin=typed)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_export_audit_writes_every_entry_oldest_first_with_formulas_as_text(tmp_path, env):
    shell(
        tmp_path,
        env,
        'silence crm 2h =HYPERLINK("http://evil") cutover, "quoted"',
        "unsilence crm",
        "silence hr-feed 1h planned outage",
    )
    result = run_cli("export", "audit", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["action"], r["integration"]) for r in rows] == [
        ("silence", "crm"),
        ("unsilence", "crm"),
        ("silence", "hr-feed"),
    ]
    first = rows[0]
    assert (first["actor"], first["allowed"], first["surface"], first["channel"]) == (
        "U0SHELL",
        "yes",
        "shell",
        "",
    )
    assert first["subject"] == "for 2h"
    # A spreadsheet would run a cell starting with "="; the export makes it text.
    assert first["detail"] == '\'=HYPERLINK("http://evil") cutover, "quoted"'
    assert rows[2]["detail"] == "planned outage"
    assert rows[0]["at"] <= rows[1]["at"] <= rows[2]["at"] and rows[0]["at"].endswith("Z")


def add_audit_row(database_url, at, integration_id, detail):
    """A row as a Slack button would have left it, on a day the console cannot reach."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(AuditEntry),
                {
                    "at": at,
                    "actor": "U0OWNER01",
                    "action": "resolve",
                    "integration_id": integration_id,
                    "subject": "alert #1",
                    "allowed": True,
                    "surface": "button",
                    "channel_id": "C0INTEG01",
                    "detail": detail,
                },
            )
    finally:
        engine.dispose()


def test_export_audit_filters_by_integration_and_day_into_a_file(database_url, tmp_path, env):
    shell(tmp_path, env, "silence crm 2h resync", "silence grades 1h term rollover")
    # Added last, so its id is the highest; it is still the oldest, and written first.
    add_audit_row(database_url, datetime(2020, 6, 1, 23, 59, tzinfo=UTC), "crm", "long ago")

    every_crm = run_cli("export", "audit", "--integration", "CRM", cwd=tmp_path, env=env)
    assert every_crm.returncode == 0, every_crm.stderr
    rows = list(csv.DictReader(io.StringIO(every_crm.stdout)))
    assert [(r["integration"], r["detail"]) for r in rows] == [
        ("crm", "long ago"),
        ("crm", "resync"),
    ]
    assert rows[0]["at"] == "2020-06-01T23:59:00Z" and rows[0]["surface"] == "button"

    out = tmp_path / "audit.csv"
    result = run_cli(
        "export",
        "audit",
        "--integration",
        "crm",
        "--since",
        "2020-06-02",
        "-o",
        str(out),
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"1 audit entry written to {out}"
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [r["detail"] for r in rows] == ["resync"]
    assert list(tmp_path.glob("*.partial")) == []

    # The day counts from its midnight UTC: the 2020 row is in, and so is everything since.
    that_day = run_cli("export", "audit", "--since", "2020-06-01", cwd=tmp_path, env=env)
    assert that_day.returncode == 0, that_day.stderr
    rows = list(csv.DictReader(io.StringIO(that_day.stdout)))
    assert [r["detail"] for r in rows] == ["long ago", "resync", "term rollover"]

    later = run_cli("export", "audit", "--since", "2999-01-01", cwd=tmp_path, env=env)
    assert later.returncode == 0 and later.stdout.splitlines() == [",".join(CSV_COLUMNS)]


def test_export_audit_refuses_an_unknown_integration_or_date_and_writes_nothing(tmp_path, env):
    shell(tmp_path, env, "silence crm 2h resync")
    out = tmp_path / "audit.csv"
    unknown = run_cli(
        "export", "audit", "--integration", "crmm", "-o", str(out), cwd=tmp_path, env=env
    )
    assert unknown.returncode == 1
    assert "integ-bot export: no integration called 'crmm'; did you mean" in unknown.stderr
    assert "crm" in unknown.stderr.split("did you mean", 1)[1]
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
    # To stdout, not even the header: the name is checked before anything is written.
    to_stdout = run_cli("export", "audit", "--integration", "crmm", cwd=tmp_path, env=env)
    assert to_stdout.returncode == 1 and to_stdout.stdout == ""
    bad_day = run_cli("export", "audit", "--since", "last week", cwd=tmp_path, env=env)
    assert bad_day.returncode == 2
    assert "'last week' is not a date like 2026-11-01" in bad_day.stderr


def row_counts(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            counts = {
                model.__name__: conn.scalar(select(func.count()).select_from(model))
                for model in (AuditEntry, Change, Integration)
            }
            counts["removed"] = conn.scalar(
                select(func.count())
                .select_from(Integration)
                .where(Integration.removed_at.is_not(None))
            )
            return counts
    finally:
        engine.dispose()


def test_export_audit_only_reads_the_database(database_url, tmp_path, env):
    shell(tmp_path, env, "silence crm 2h resync")
    before = row_counts(database_url)
    assert before["AuditEntry"] == 1 and before["removed"] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "catalog.yml").write_text(ONE_INTEGRATION)
    # Run from another directory, whose catalog names one integration only; a refusal (an
    # unknown name) is not audited either.
    for extra, code in (((), 0), (("--integration", "no-such"), 1)):
        result = run_cli(
            "export", "audit", *extra, cwd=elsewhere, env={"DATABASE_URL": database_url}
        )
        assert result.returncode == code, result.stderr
    assert row_counts(database_url) == before


def test_export_kb_writes_an_index_a_page_per_integration_and_the_diagram(tmp_path, env):
    log(tmp_path, env, "crm mapping APST_CODE now from application.status | decision")
    kb = tmp_path / "kb"
    result = run_cli("export", "kb", str(kb), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    index = (kb / "index.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in kb.glob("*.md") if p.name != "index.md")
    assert len(pages) >= 8
    for page in pages:
        assert f"({page})" in index
    crm = next(p for p in kb.glob("*.md") if "crm" in p.name and p.name != "index.md")
    text = crm.read_text(encoding="utf-8")
    assert "APST\\_CODE now from application.status \\| decision" in text
    if shutil.which("dot"):
        assert (kb / "diagram.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert (kb / "diagram.dot").exists() and "Graphviz" in index
    assert f"files written to {kb}" in result.stdout


def test_export_kb_into_a_file_says_why_it_cannot(tmp_path, env):
    target = tmp_path / "kb"
    target.write_text("not a directory")
    result = run_cli("export", "kb", str(target), cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "exists and is not a directory" in result.stderr


ONE_INTEGRATION = """
systems:
  - {id: a, name: A}
  - {id: b, name: B}
integrations:
  - {id: ab, name: A to B, source: a, target: b, mechanism: api, schedule: realtime,
     owner: U0OWNER01, backups: [U0BACKUP1], channel: C0AB00001}
"""


def test_an_export_reads_the_database_and_loads_no_catalog_into_it(database_url, tmp_path, env):
    log(tmp_path, env, "crm config one")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "catalog.yml").write_text(ONE_INTEGRATION)
    # Run from another directory, whose catalog names one integration only.
    result = run_cli("export", "changes", cwd=elsewhere, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            removed = conn.scalar(
                select(func.count())
                .select_from(Integration)
                .where(Integration.removed_at.is_not(None))
            )
            known = conn.scalar(select(func.count()).select_from(Integration))
    finally:
        engine.dispose()
    assert removed == 0 and known >= 8


def test_an_export_of_a_database_never_set_up_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_cli("export", "changes", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "is not at the current schema; `integ-bot db upgrade`" in result.stderr


def test_an_audit_export_of_a_database_never_set_up_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_cli("export", "audit", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "is not at the current schema; `integ-bot db upgrade`" in result.stderr


def test_export_report_writes_a_row_per_integration_and_system_into_a_file(tmp_path, env):
    log(tmp_path, env, "crm config a change, to make the database")
    out = tmp_path / "report.csv"
    result = run_cli("export", "report", "--period", "month", "-o", str(out), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert result.stdout.strip() == f"{len(rows)} rows written to {out}"
    kinds = {(r["kind"], r["id"]) for r in rows}
    assert ("integration", "crm") in kinds and ("system", "banner") in kinds
    assert all(r["failing_seconds"] == "0" and r["availability"] == "1.000000" for r in rows)


def test_export_report_refuses_a_period_it_cannot_read_and_writes_nothing(tmp_path, env):
    out = tmp_path / "report.csv"
    result = run_cli(
        "export", "report", "--period", "fortnight", "-o", str(out), cwd=tmp_path, env=env
    )
    assert result.returncode == 1
    assert "fortnight is not a period" in result.stderr
    assert not out.exists()
