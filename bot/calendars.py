"""Fetching the ICS calendars the catalog names (change freezes, working hours' holidays):
on the tick, each at most every REFRESH, a URL with httpx or a file from disk. A copy that
fails to download or parse never replaces the last good one (commands/changes/freezes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from bot.deps import Deps
from commands.changes.freezes import calendar_sources, copy_age, parses, store_copy
from commands.hours.working import holiday_sources
from storage.write_turns import write_transaction

log = logging.getLogger(__name__)

REFRESH = timedelta(hours=1)
TIMEOUT_SECONDS = 10.0
MAX_BYTES = 5 * 1024 * 1024


def fetch(source: str) -> str:
    """The calendar's text; raises OSError, httpx.HTTPError or ValueError when it cannot."""
    if source.startswith(("http://", "https://")):
        answer = httpx.get(source, timeout=TIMEOUT_SECONDS, follow_redirects=True)
        answer.raise_for_status()
        if len(answer.content) > MAX_BYTES:
            raise ValueError(f"over {MAX_BYTES // 1024 // 1024} MiB")
        return answer.text
    data = Path(source).read_bytes()
    if len(data) > MAX_BYTES:
        raise ValueError(f"over {MAX_BYTES // 1024 // 1024} MiB")
    return data.decode("utf-8", "replace")


def refresh_duty(deps: Deps, fetcher: Callable[[str], str] = fetch) -> Callable[[], int]:
    """A tick duty: fetch each freeze's calendar whose last try is REFRESH old; how many
    copies were renewed."""

    def run() -> int:
        now = deps.clock()
        with deps.sessions() as session:
            due = [
                s
                for s in sorted({*calendar_sources(session), *holiday_sources(session)})
                if (tried := copy_age(session, s)) is None or now - tried >= REFRESH
            ]
        renewed = 0
        for source in due:
            body: str | None = None
            try:
                body = fetcher(source)
                error = parses(body)
            except (OSError, httpx.HTTPError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            if error is not None:
                log.warning("calendar %s not renewed (%s); the last good copy stays", source, error)
            with write_transaction(deps.sessions) as session:
                store_copy(session, source, body, error, now)
            renewed += error is None
        return renewed

    return run
