"""`integ-bot export kb DIR`: Markdown pages for a wiki, from the catalog as synced into the
database and from the change log and reviews, with the diagram as a PNG (or its DOT source
when Graphviz is missing)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.graphviz import PNG_SIGNATURE, render_png_if_installed
from commands.catalog.knowledge_base import md_code, md_link, md_text, page_name, write_kb
from storage.db import transaction
from storage.models import Change, Review
from tests.helpers.runtime import make_settings

# A table row's cells: split on pipes that are not escaped.
_CELL_BORDER = re.compile(r"(?<!\\)\|")


def cells(row: str) -> list[str]:
    assert row.startswith("|") and row.endswith("|"), row
    return [c.strip() for c in _CELL_BORDER.split(row)[1:-1]]


def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (header first, separator dropped) of the first table after `heading`."""
    rest = text.split(heading, 1)[1]
    rows = []
    for line in rest.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return [cells(r) for r in rows if not re.fullmatch(r"\|(---\|)+", r)]


@pytest.fixture
def runtime(database_url, make_runtime):
    return make_runtime(make_settings(database_url))


@pytest.fixture
def graphviz():
    if shutil.which("dot") is None:
        if os.environ.get("INTEG_REQUIRE_GRAPHVIZ") == "1":
            pytest.fail("INTEG_REQUIRE_GRAPHVIZ=1 but Graphviz's `dot` is not on PATH")
        pytest.skip("Graphviz's `dot` is not installed")


def no_graphviz(source: str) -> bytes | None:
    return None


def export(runtime, directory: Path, clock, render=no_graphviz) -> list[Path]:
    with transaction(runtime.deps.sessions) as session:
        return write_kb(session, directory, clock.now, render)


def add_change(runtime, integration: str, summary: str, at, **extra) -> None:
    with transaction(runtime.deps.sessions) as session:
        session.add(
            Change(
                integration_id=integration,
                category=extra.pop("category", "config"),
                summary=summary,
                author=extra.pop("author", "U0OWNER01"),
                happened_at=at,
                logged_at=at,
                source="command",
                **extra,
            )
        )


# -- files --------------------------------------------------------------------------------


def test_the_export_writes_an_index_a_page_per_integration_and_a_png_diagram(
    graphviz, runtime, tmp_path, clock
):
    out = tmp_path / "kb"

    written = export(runtime, out, clock, render_png_if_installed)

    names = sorted(p.name for p in written)
    assert written[0] == out / "index.md"
    assert (out / "diagram.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not (out / "diagram.dot").exists()
    pages = [n for n in names if n.startswith("integration-")]
    assert len(pages) == 9 and "integration-crm.md" in pages
    assert sorted(p.name for p in out.iterdir()) == names
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "![Diagram of the systems and integrations](diagram.png)" in index
    assert "Graphviz was missing" not in index


def test_without_graphviz_the_export_keeps_the_dot_source_and_says_so(runtime, tmp_path, clock):
    written = export(runtime, tmp_path, clock)

    assert tmp_path / "diagram.dot" in written
    assert not (tmp_path / "diagram.png").exists()
    source = (tmp_path / "diagram.dot").read_text(encoding="utf-8")
    assert source.startswith("digraph integrations {")
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "Graphviz was missing when this was exported" in index
    assert "[diagram.dot](diagram.dot)" in index
    # The text version is there either way.
    assert "slate --crm (api, realtime)--> banner" in index


def test_the_index_links_every_integration_page_and_each_page_links_back(runtime, tmp_path, clock):
    written = export(runtime, tmp_path, clock)

    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((integration-[^)]+\.md)\)", index))
    pages = {p.name for p in written if p.name.startswith("integration-")}
    assert linked == pages
    rows = table_after(index, "## Integrations")
    assert rows[0] == [
        "Integration",
        "Name",
        "Source",
        "Target",
        "Mechanism",
        "Schedule",
        "Owner",
        "Status",
    ]
    assert [
        "[crm](integration-crm.md)",
        "Slate to Banner admissions",
        "Slate CRM (`slate`)",
        "Ellucian Banner (Student, Finance AR) (`banner`)",
        "api",
        "realtime",
        "U0OWNER01",
        "ok",
    ] in rows
    assert len(rows) == 1 + 9
    systems = table_after(index, "## Systems")
    [banner] = [r for r in systems if r[0] == "`banner`"]
    assert banner[4].count("](integration-") == 8
    [mulesoft] = [r for r in systems if r[0] == "`mulesoft`"]
    assert mulesoft[4] == "none"
    for page in pages:
        assert "[All integrations](index.md)" in (tmp_path / page).read_text(encoding="utf-8")


# -- an integration's page ------------------------------------------------------------------


def test_a_page_shows_systems_mechanism_schedule_owners_support_test_instances_and_runbook(
    runtime, tmp_path, clock
):
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-hr-feed.md").read_text(encoding="utf-8")

    assert page.startswith("# Workday to Banner HR feed (`hr-feed`)\n")
    facts = dict((row[0], row[1]) for row in table_after(page, "# Workday"))
    assert facts["Source"] == "Workday HCM and Financials (`workday`)"
    assert facts["Target"] == "Ellucian Banner (Student, Finance AR) (`banner`)"
    assert facts["Mechanism"] == "vendor"
    assert facts["Schedule"] == "`30 5 * * 1-5` (America/Chicago)"
    assert facts["Owner"] == "U0HRIS001"
    assert facts["Status at export"] == "ok"
    assert "### Workday HCM and Financials (`workday`)" in page
    assert "### Ellucian Banner (Student, Finance AR) (`banner`)" in page
    assert "| Vendor | Ellucian |" in page
    tests = table_after(page, "## Test instances")
    workday_test = "https://impl.workday.com/example_preview"
    assert tests[1][1] == f"[{workday_test.replace('_', chr(92) + '_')}]({workday_test})"
    runbook = "https://wiki.example.edu/integ/hr-feed"
    assert f"## Runbook\n\n[{runbook}]({runbook})\n" in page
    assert "No changes logged." in page
    assert "Not reviewed yet." in page


def test_a_text_runbook_keeps_its_lines_code_and_markup_without_raw_html(runtime, tmp_path, clock):
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-ar-journal.md").read_text(encoding="utf-8")
    runbook = page.split("## Runbook\n\n", 1)[1].split("\n## ", 1)[0]

    assert runbook.startswith("**Journal file missing or rejected by Workday**  \n")
    # A `•` bullet becomes a list item; code spans are kept as written, `<` and all.
    assert "- The file is `ARJE_<yyyymmdd>.csv` on `sftp.example.edu:/outbound/workday/`." in (
        runbook
    )
    outside_code = re.sub(r"`[^`]*`", "", runbook)
    assert "<" not in outside_code


def test_fields_holding_pipes_stay_in_their_cells(runtime, tmp_path, clock):
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-canvas-enroll.md").read_text(encoding="utf-8")

    rows = table_after(page, "## Fields")
    assert rows[0] == ["Source field (`banner`)", "Target field (`canvas`)"]
    assert all(len(row) == 2 for row in rows)
    assert ["`SSBSECT.TERM_CODE \\|\\| SSBSECT.CRN`", "`sections.csv section_id`"] in rows


def test_a_change_summary_with_pipes_and_newlines_does_not_break_the_table(
    runtime, tmp_path, clock
):
    add_change(
        runtime,
        "crm",
        "Moved | the nightly file to SFTP\nthen <b>back</b> | *again*\r\n| --- |",
        clock.now,
        permalink="https://example.slack.com/archives/C0INTEG01/p1700000000000100",
        ticket_url="https://tickets.example.edu/browse/INT-42 (x)",
    )
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-crm.md").read_text(encoding="utf-8")

    rows = table_after(page, "## Recent changes")
    assert rows[0] == ["When (UTC)", "Category", "Summary", "By", "Links"]
    assert len(rows) == 2 and len(rows[1]) == 5
    when, category, summary, author, links = rows[1]
    assert (when, category, author) == ("2026-11-26 09:30", "config", "U0OWNER01")
    assert summary == (
        "Moved \\| the nightly file to SFTP<br>then &lt;b&gt;back&lt;/b&gt; \\| \\*again\\*"
        "<br>\\| --- \\|"
    )
    assert links == (
        "[message](https://example.slack.com/archives/C0INTEG01/p1700000000000100), "
        "[ticket](https://tickets.example.edu/browse/INT-42%20%28x%29)"
    )


def test_recent_changes_are_the_latest_twenty_not_deleted_newest_first(runtime, tmp_path, clock):
    for n in range(25):
        add_change(runtime, "crm", f"change {n:02d}", clock.now - timedelta(hours=25 - n))
    add_change(
        runtime,
        "crm",
        "deleted later",
        clock.now,
        deleted_at=clock.now + timedelta(minutes=1),
    )
    add_change(runtime, "grades", "another integration's change", clock.now)
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-crm.md").read_text(encoding="utf-8")

    summaries = [row[2] for row in table_after(page, "## Recent changes")[1:]]
    assert summaries == [f"change {n:02d}" for n in range(24, 4, -1)]


def test_the_last_review_is_shown_with_its_answers_and_notes(runtime, tmp_path, clock):
    with transaction(runtime.deps.sessions) as session:
        for days, notes in ((40, "older"), (3, "Runbook | needs\nan update")):
            session.add(
                Review(
                    integration_id="crm",
                    reviewed_at=clock.now - timedelta(days=days),
                    reviewed_by="U0OWNER01",
                    answers={"purpose": "yes", "runbook": "no"},
                    notes=notes,
                )
            )
    export(runtime, tmp_path, clock)
    page = (tmp_path / "integration-crm.md").read_text(encoding="utf-8")

    last = page.split("## Last review\n\n", 1)[1]
    assert last.startswith("Reviewed 2026-11-23 09:30 UTC by U0OWNER01.")
    assert "| Is the runbook current? | no |" in last
    assert "Notes: Runbook \\| needs<br>an update" in last
    assert "older" not in page
    # The next review counts from the last one.
    assert "| Review | monthly, next due 2026-12-23 |" in page


# -- escaping and file names ----------------------------------------------------------------


def test_markdown_text_is_escaped_for_tables_html_and_inline_syntax():
    assert md_text("a | b") == "a \\| b"
    assert md_text("one\ntwo\r\nthree") == "one<br>two<br>three"
    assert md_text("<script>x</script> & [link](y)") == (
        "&lt;script&gt;x&lt;/script&gt; &amp; \\[link\\](y)"
    )
    assert md_text("*bold* _it_ `code` ~s~ \\") == "\\*bold\\* \\_it\\_ \\`code\\` \\~s\\~ \\\\"
    assert md_text("title\nline", newline=" ") == "title line"
    assert md_code("a|b") == "`a\\|b`"
    assert md_code("has `tick`") == "`` has `tick` ``"
    assert md_link("x", "javascript:alert(1)") == "x (javascript:alert(1))"
    assert md_link("a|b", "https://e.x/a b|c") == "[a\\|b](https://e.x/a%20b%7Cc)"


def test_page_names_are_safe_and_distinct():
    assert page_name("crm") == "integration-crm.md"
    assert page_name("hr-feed") == "integration-hr-feed.md"
    hostile = page_name("../../etc/passwd")
    assert "/" not in hostile and ".." not in hostile
    assert re.fullmatch(r"integration-[a-z0-9_-]+\.md", hostile)
    assert page_name("CRM") != page_name("crm")
    assert page_name("a b") != page_name("a-b")
    assert re.fullmatch(r"integration-[0-9a-f]{8}\.md", page_name("日本"))
