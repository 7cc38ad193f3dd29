"""A clone of the project is all a user has: no file in it may read a path outside it, and its
comments and documents say things themselves instead of pointing at documents elsewhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match its own patterns.
SIBLING = "sha" + "red"
OUTSIDE_PATHS = re.compile(
    "|".join(
        [
            re.escape("../" + SIBLING),
            re.escape("..\\" + SIBLING),
            "INTEG_" + SIBLING.upper() + "_DIR",
            r"parents\[\d+\]\s*/\s*[\"']" + SIBLING,
        ]
    )
)
OUTSIDE_DOCUMENTS = re.compile(
    r"\b(?:DESIGN|STYLE)\.md\b|\b[Ii]ssue #?\d+\b|\b[Pp]ractice \d+\b|\b" + SIBLING + "/"
)
# Third-party files kept verbatim, with their licences.
VENDORED = ("tests/data/slack/",)


def project_files() -> list[str]:
    """Every file a clone holds: git's list when this is a checkout, else a walk of the tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        names = []
    if not names:
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
        names = [
            str(path.relative_to(REPO))
            for path in REPO.rglob("*")
            if path.is_file() and not skip.intersection(path.relative_to(REPO).parts)
        ]
    return sorted(n for n in names if not n.startswith(VENDORED) and (REPO / n).is_file())


def matches(pattern: re.Pattern[str]) -> list[str]:
    found = []
    for name in project_files():
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a picture or another binary file
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_the_file_list_covers_the_code_and_the_tests() -> None:
    files = project_files()
    assert "bot/cli.py" in files
    assert "tests/test_self_contained.py" in files


def test_no_project_file_reads_a_folder_beside_the_repository() -> None:
    assert matches(OUTSIDE_PATHS) == []


def test_comments_and_documents_do_not_point_at_documents_outside_the_repository() -> None:
    assert matches(OUTSIDE_DOCUMENTS) == []


def test_the_patterns_catch_what_they_are_for() -> None:
    assert OUTSIDE_PATHS.search('Path(__file__).resolve().parents[2] / "' + SIBLING + '"')
    assert OUTSIDE_PATHS.search("open('../" + SIBLING + "/slack/payloads/x.json')")
    assert OUTSIDE_DOCUMENTS.search("# as DESIGN" + ".md section 2 says")
    assert OUTSIDE_DOCUMENTS.search("Runs the probes of " + "is" + "sue 4")
    assert not OUTSIDE_DOCUMENTS.search("the tissue 4 layers")


def test_the_slack_test_data_is_in_the_repository_with_its_licences() -> None:
    data = REPO / "tests" / "data" / "slack"
    assert (data / "manifest-schema" / "LICENSE").is_file()
    assert (data / "payloads" / "LICENSE").is_file()
    assert (data / "payloads" / "slash_command.urlencoded").is_file()
