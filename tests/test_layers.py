"""The dependency direction of the layers: bot -> commands -> storage, never back,
and no Slack, HTTP or scheduler library below bot/."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "commands": {"bot", "slack_bolt", "slack_sdk", "starlette", "uvicorn", "httpx", "apscheduler"},
    "storage": {
        "bot",
        "commands",
        "slack_bolt",
        "slack_sdk",
        "starlette",
        "uvicorn",
        "httpx",
        "apscheduler",
        "jinja2",
    },
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_lower_layer_never_imports_a_higher_one_or_an_io_library(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from bot.settings import Settings\nimport slack_sdk.web\n")
    assert imported_packages(sample) & FORBIDDEN["commands"] == {"bot", "slack_sdk"}
