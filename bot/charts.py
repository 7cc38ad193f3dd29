"""A chart spec (commands/reports/chart.py) to PNG, drawn by matplotlib in a child process.

A child process, as Graphviz is one: matplotlib takes a second to import and holds the GIL
while it draws, which the process answering hooks and pings cannot spare, and a chart that
hangs is killed by the timeout rather than left holding the worker."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bot.graphviz import PNG_SIGNATURE

RENDER_TIMEOUT = 20.0
ERROR_CHARS = 300


class ChartError(Exception):
    """The chart could not be drawn; trying again would fail the same way."""


class ChartTimedOut(ChartError):
    """Drawing took longer than the timeout; another try may be quicker."""


def render_chart_png(spec: dict[str, Any], *, timeout: float = RENDER_TIMEOUT) -> bytes:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot.chart_render"],
            input=json.dumps(spec).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChartTimedOut(f"the chart took longer than {timeout:g}s") from None
    if done.returncode != 0 or not done.stdout.startswith(PNG_SIGNATURE):
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ChartError(f"the chart could not be drawn: {(said or ['no PNG'])[-1][:ERROR_CHARS]}")
    return done.stdout
