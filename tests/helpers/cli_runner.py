"""Run the real `integ-bot` console script in a subprocess, with an environment of the
test's own: nothing from the developer's shell (a Slack token, a DATABASE_URL) leaks in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Variables the bot reads; the parent's values must never decide a test's outcome.
_BOT_VARIABLES = {"DATABASE_URL", "PORT", "LOG_LEVEL"}


def console_script() -> str:
    beside = Path(sys.executable).parent / "integ-bot"
    if beside.exists():
        return str(beside)
    found = shutil.which("integ-bot")
    if found is None:
        raise RuntimeError("the integ-bot console script is not installed")
    return found


def clean_env(**env: str) -> dict[str, str]:
    """The parent environment without SLACK_*, INTEG_* and the bot's other variables,
    plus `env`."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("SLACK_", "INTEG_")) and key.upper() not in _BOT_VARIABLES
    }
    return {**kept, **env}


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
