"""Keeps the database in step with the catalog file: at start-up and on every tick."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from commands.catalog.spec import Catalog, CatalogInvalid, parse_catalog
from commands.catalog.sync import last_accepted, record_refusal, sync_catalog
from commands.home import queue as home
from storage.db import transaction
from storage.models import CatalogLoad

log = logging.getLogger(__name__)


class CatalogWatcher:
    def __init__(
        self,
        path: Path,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.path = path
        self.sessions = sessions
        self.clock = clock
        self.catalog: Catalog | None = None
        # Why this process's file is not the catalog in force, for /healthz; None when it is.
        self.warning: str | None = None
        self._seen_sha: str | None = None

    def check(self) -> bool:
        """Load the file if it changed since the last look; True when a new one was synced.

        An invalid edit is refused with its reasons logged, and the last good catalog stays
        in force: a typo must not make every integration disappear.
        """
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            if self._seen_sha != "unreadable":
                log.error(
                    "catalog %s cannot be read (%s); keeping the last good one",
                    self.path,
                    exc.strerror or exc,
                )
                self._seen_sha = "unreadable"
            return False
        sha = hashlib.sha256(raw).hexdigest()
        if sha == self._seen_sha:
            return False
        try:
            catalog = parse_catalog(raw, str(self.path))
        except CatalogInvalid as exc:
            metrics.CATALOG_LOADS.labels("refused").inc()
            kept = "keeping the last good catalog" if self.catalog else "no catalog loaded yet"
            log.error("catalog %s refused (%s):\n%s", self.path, kept, exc)
            with transaction(self.sessions) as session:
                record_refusal(session, exc, str(self.path), sha, self.clock())
            self._seen_sha = sha
            return False
        written = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        for attempt in (1, 2):
            try:
                with transaction(self.sessions) as session:
                    applied = last_accepted(session)
                    if applied is not None and _older(sha, written, applied):
                        self._refuse_older(sha, written, applied)
                        return False
                    result = sync_catalog(session, catalog, str(self.path), self.clock())
                    if result.changed:
                        # Who answers for what may have changed: every Home is published.
                        home.everyone_changed(session, self.clock())
                break
            except IntegrityError:
                # Another process inserted the same rows first; the second pass updates them.
                if attempt == 2:
                    raise
        # Only now that the sync is committed: a sync that failed (a locked database) is
        # tried again on the next tick instead of being taken for done.
        self._seen_sha = sha
        self.warning = None
        self.catalog = catalog
        # The YAML node tree of a large catalog is tens of MB of small objects, held in
        # reference cycles by the loader; collect it now rather than whenever the collector
        # next gets round to it. Collecting after a small catalog pays too: what the load
        # left in the young generations is otherwise scanned again by every collection the
        # next tick triggers (a busy tick took a third longer without it, bench.monitors).
        gc.collect()
        metrics.CATALOG_LOADS.labels("accepted").inc()
        metrics.INTEGRATIONS.set(len(catalog.integrations))
        log.info(
            "catalog %s loaded: %d systems, %d integrations (%s)",
            self.path,
            len(catalog.systems),
            len(catalog.integrations),
            result.summary(),
        )
        return True

    def _refuse_older(self, sha: str, written: datetime, applied: CatalogLoad) -> None:
        """Another replica applied a newer file: reverting it from an old copy would mark
        the integrations added since removed. Said once per file, and by /healthz."""
        self._seen_sha = sha
        self.warning = (
            f"catalog {self.path} (written {written:%Y-%m-%d %H:%M:%S} UTC) is older than the "
            f"catalog in force (applied {applied.loaded_at:%Y-%m-%d %H:%M:%S} UTC from "
            f"{applied.path}); not applied. Edit this file (a comment will do) to apply it "
            "anyway."
        )
        metrics.CATALOG_LOADS.labels("older").inc()
        log.warning("%s", self.warning)


def _older(sha: str, written: datetime, applied: CatalogLoad) -> bool:
    return sha != applied.sha256 and written < applied.loaded_at
