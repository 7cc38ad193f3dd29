"""The `integ-bot` console script, run for real in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from storage.models import Base, Integration
from tests.helpers.cli_runner import clean_env, console_script, run_cli
from tests.helpers.runtime import EXAMPLE_CATALOG

SCHEMA = set(Base.metadata.tables) | {"alembic_version"}


def tables_and_version(url: str) -> tuple[set[str], list[str]]:
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            versions = list(conn.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()
    return tables, versions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_db_upgrade_creates_the_tables_and_can_run_again(empty_database_url, tmp_path):
    if empty_database_url.startswith("sqlite"):
        assert not (tmp_path / "integ.db").exists()
    first = run_cli("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": empty_database_url})
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout
    tables, versions = tables_and_version(empty_database_url)
    assert SCHEMA <= tables
    assert len(versions) == 1

    second = run_cli("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": empty_database_url})
    assert second.returncode == 0, second.stderr
    assert tables_and_version(empty_database_url) == (tables, versions)


def test_db_upgrade_does_not_print_the_database_password(tmp_path):
    # SQLite has no password, but a PostgreSQL URL must never be echoed with one.
    result = run_cli(
        "db",
        "upgrade",
        cwd=tmp_path,
        env={"DATABASE_URL": "postgresql://integ:hunter2@127.0.0.1:1/integ"},
    )
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr


def shell_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'integ.db'}",
        "INTEG_CATALOG": str(EXAMPLE_CATALOG),
    }


def assert_readable(answer: str) -> None:
    """Plain text for a terminal: no Slack link syntax, no HTML entities."""
    for raw in ("<@", "<#", "<http", "&gt;", "&lt;", "&amp;"):
        assert raw not in answer, f"{raw!r} in {answer!r}"


def test_shell_answers_one_line_given_with_c(tmp_path):
    result = run_cli("shell", "-c", "/integ status crm", cwd=tmp_path, env=shell_env(tmp_path))
    assert result.returncode == 0, result.stderr
    answer = result.stdout
    headline = answer.splitlines()[0]
    assert "Slate to Banner admissions" in headline and "crm" in headline
    assert " ok" in headline
    assert "Slate CRM → Ellucian Banner" in answer
    assert "@U0OWNER01" in answer
    assert_readable(answer)
    assert "Traceback" not in result.stderr


def test_shell_shows_a_cron_schedule_as_written(tmp_path):
    # `* * *` inside a code span is a cron expression, not bold markers to strip.
    result = run_cli("shell", "-c", "/integ heartbeat crm", cwd=tmp_path, env=shell_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cron `0 2 * * *` (America/Chicago), grace 1h" in result.stdout
    assert "/ping/3f6c0d2e-crm-nightly" in result.stdout


def test_shell_answers_each_line_piped_into_it(tmp_path):
    lines = [
        "/integ status crm",
        "",
        "owners grades",
        "/integ status nosuch",
        "/integ runbook crm",
        "quit",
        "/integ status hr-feed",
    ]
    result = run_cli("shell", cwd=tmp_path, env=shell_env(tmp_path), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    answers = [
        out.find("Slate to Banner admissions"),
        out.find("registrar-it@example.edu"),
        out.find("No integration called `nosuch`"),
        out.find("https://wiki.example.edu/integ/crm"),
    ]
    assert -1 not in answers, out
    assert answers == sorted(answers)
    # Nothing after `quit` is read, and no prompt is printed when stdin is not a terminal.
    assert "Workday to Banner HR feed" not in out
    assert "integ>" not in out
    assert_readable(out)


def test_shell_with_an_empty_stdin_exits_0(tmp_path):
    result = run_cli("shell", cwd=tmp_path, env=shell_env(tmp_path), stdin="")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory far from the repository, with no catalog.yml in it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd


def test_serve_in_local_mode_answers_healthz_and_stops_cleanly(tmp_path, elsewhere):
    port = free_port()
    database = tmp_path / "integ.db"
    log_path = tmp_path / "serve.log"
    env = clean_env(DATABASE_URL=f"sqlite:///{database}")
    assert not any(key.startswith(("SLACK_", "INTEG_")) for key in env)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [console_script(), "serve", "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}/healthz", process, within=10)
        assert health.status_code == 200
        assert health.json()["mode"] == "local"
        logged = log_path.read_text()
        assert "local mode" in logged
        # INTEG_CATALOG is unset and there is no ./catalog.yml: the bundled example is used.
        assert f"catalog {EXAMPLE_CATALOG} loaded: 8 systems, 9 integrations" in logged
    finally:
        process.terminate()
        try:
            returncode = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert returncode == 0, log_path.read_text()
    logged = log_path.read_text()
    assert "Traceback" not in logged
    assert not (elsewhere / "integ.db").exists()
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            count = conn.scalar(select(func.count()).select_from(Integration.__table__))
    finally:
        engine.dispose()
    assert count == 9


def wait_for_health(url: str, process: subprocess.Popen[bytes], within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise AssertionError(f"integ-bot serve exited early with {process.returncode}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {within} seconds") from None
            time.sleep(0.1)
