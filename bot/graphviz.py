"""Graphviz DOT source to PNG, with the `dot` program: a subprocess, so it lives in bot/.

commands/catalog/diagram.py writes the source; the outbox worker renders it just before uploading,
and `integ-bot export kb` renders it for the wiki.
"""

from __future__ import annotations

import shutil
import subprocess

from commands.catalog.diagram import DOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A catalog of a few hundred integrations lays out in about a second; the first run on a
# machine may also build fontconfig's cache. The worker's claim on the row lasts 60 s and the
# three Slack calls of an upload take at most 10 s each, so rendering must stay well inside
# the other 30.
RENDER_TIMEOUT = 20.0
ERROR_CHARS = 300


class GraphvizError(Exception):
    """The source could not be turned into a picture."""


class GraphvizMissing(GraphvizError):
    """`dot` is not installed (or not on PATH) here."""


class RenderTimedOut(GraphvizError):
    """`dot` took longer than the timeout; it was killed. Another try may be quicker."""


def available() -> bool:
    return shutil.which(DOT) is not None


def render_png(source: str, *, timeout: float = RENDER_TIMEOUT) -> bytes:
    """The PNG `dot` draws from `source`; raises a GraphvizError when it cannot."""
    program = shutil.which(DOT)
    if program is None:
        raise GraphvizMissing(f"`{DOT}` is not installed here (apt install graphviz)")
    try:
        done = subprocess.run(
            [program, "-Tpng"],
            # A lone surrogate cannot be encoded; it is shown as "?" rather than failing.
            input=source.encode("utf-8", "replace"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed it already.
        raise RenderTimedOut(f"`{DOT}` took longer than {timeout:g}s") from None
    except OSError as exc:  # removed between the look and the run, or not executable
        raise GraphvizMissing(f"`{DOT}` could not be run: {exc}") from None
    if done.returncode != 0 or not done.stdout.startswith(PNG_SIGNATURE):
        said = done.stderr.decode("utf-8", "replace").strip() or "no PNG written"
        raise GraphvizError(f"`{DOT}` exited {done.returncode}: {said[:ERROR_CHARS]}")
    return done.stdout


def render_png_if_installed(source: str) -> bytes | None:
    """For the knowledge-base export: None when Graphviz is missing, so that the export
    keeps the DOT source instead; any other failure still raises."""
    try:
        return render_png(source)
    except GraphvizMissing:
        return None
