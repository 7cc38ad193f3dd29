"""Fill a database the way a year of production would: the catalog synced, then alert history.

The schema comes from `integ-bot db upgrade` (the same migrations a deployment runs) and the
catalog from the app's own sync; only the history is written directly, with SQLAlchemy Core
bulk inserts, because feeding 100,000 alerts through the hooks would take longer than the
benchmark itself and measure something else.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text

from bench.harness import upgrade_schema
from commands.catalog.spec import load_catalog
from commands.catalog.sync import sync_catalog
from storage.db import make_engine, make_session_factory, transaction
from storage.models import Alert, AlertTransition, Integration, Review, Silence

CHUNK = 5_000

SUMMARIES = [
    "Nightly load failed: {n} rows rejected",
    "HTTP 503 from the target API ({n} retries)",
    "File not received by 02:00 (expected {n} records)",
    "Heartbeat missed: no ping for {n} minutes",
    "Probe failed: timeout after 10s ({n} consecutive)",
    "Field mapping error: {n} values not in the code table",
    "Authentication to the vendor API failed ({n} attempts)",
    "Duplicate person records created: {n}",
]
_ROOT_CAUSES = [
    "vendor-outage",
    "data-quality",
    "config-change",
    "network",
    "code-defect",
    "expired-credential",
]
_PEOPLE = [f"U0PERSON{n:02d}" for n in range(30)]


@dataclass(frozen=True)
class SeedStats:
    alerts: int
    open_alerts: int
    integrations_with_open_alerts: int
    transitions: int
    reviews: int
    silences: int
    seconds: float


def sync_catalog_file(database_url: str, catalog: Path, now: datetime) -> None:
    """The same sync the server runs at start-up, so alerts can point at integration rows."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            sync_catalog(session, load_catalog(catalog), str(catalog), now)
    finally:
        engine.dispose()


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _history(
    rng: random.Random, channels: dict[str, str], count: int, now: datetime
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Alerts with their transitions. A few integrations are noisy and most are quiet, as in
    production; about 2% of alerts are still open, and those are recent."""
    ids = sorted(channels)
    ranks = list(range(len(ids)))
    rng.shuffle(ranks)
    weights = [1.0 / (r + 1) ** 0.8 for r in ranks]
    names = rng.choices(ids, weights, k=count)
    year = timedelta(days=365).total_seconds()
    transition_id = 0
    for n, name in enumerate(names, start=1):
        known = rng.random() >= 0.005  # a few alerts name an integration the catalog lacks
        integration = name if known else f"legacy-{name[:40]}"
        roll = rng.random()
        status = "firing" if roll < 0.014 else "acknowledged" if roll < 0.02 else "resolved"
        if status == "resolved":
            first = now - timedelta(seconds=rng.uniform(3600, year))
        else:
            first = now - timedelta(seconds=rng.uniform(60, 14 * 86400))
        last = min(now, first + timedelta(seconds=rng.uniform(0, 6 * 3600)))
        acked = status == "acknowledged" or (status == "resolved" and rng.random() < 0.6)
        acked_at = first + timedelta(seconds=rng.uniform(30, 3600)) if acked else None
        resolved_at = (
            min(now, last + timedelta(seconds=rng.uniform(60, 2 * 86400)))
            if status == "resolved"
            else None
        )
        cause = rng.choice(_ROOT_CAUSES) if resolved_at else None
        alert = {
            "id": n,
            "integration_name": integration,
            "integration_id": name if known else None,
            "key": f"bench-{n}",
            "status": status,
            "severity": rng.choices(["critical", "error", "warning"], [15, 60, 25])[0],
            "summary": rng.choice(SUMMARIES).format(n=rng.randint(1, 500)),
            "details": "Job log excerpt: step 3 of 5 failed" if rng.random() < 0.3 else None,
            "url": f"https://logs.example.edu/run/{n}" if rng.random() < 0.5 else None,
            "source": "generic",
            "count": 1 + int(rng.expovariate(0.3)),
            "first_seen_at": first,
            "last_seen_at": last,
            "acknowledged_at": acked_at,
            "acknowledged_by": rng.choice(_PEOPLE) if acked else None,
            "resolved_at": resolved_at,
            "resolved_by": rng.choice(_PEOPLE) if resolved_at else None,
            "root_cause": cause,
            "root_cause_note": f"Fixed: {cause}" if cause else None,
            "channel": channels.get(name),
            "message_ts": f"{int(first.timestamp())}.{n % 1_000_000:06d}",
        }
        steps: list[tuple[datetime, str | None, str, str | None, str | None]] = [
            (first, None, "firing", None, None)
        ]
        if acked_at is not None:
            steps.append((acked_at, "firing", "acknowledged", alert["acknowledged_by"], None))
        if resolved_at is not None:
            steps.append((resolved_at, steps[-1][2], "resolved", alert["resolved_by"], cause))
        transitions = []
        for at, before, after, actor, reason in steps:
            transition_id += 1
            transitions.append(
                {
                    "id": transition_id,
                    "alert_id": n,
                    "at": at,
                    "actor": actor,
                    "from_status": before,
                    "to_status": after,
                    "reason": reason,
                }
            )
        yield alert, transitions


def insert_history(database_url: str, alerts: int, seed: int, now: datetime) -> SeedStats:
    """Alerts, their transitions, some reviews and silences, in chunked bulk inserts."""
    started = time.perf_counter()
    rng = random.Random(seed)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            channels = dict(conn.execute(select(Integration.id, Integration.channel)).all())
        open_by_integration: dict[str, int] = {}
        transitions = 0
        pending: list[dict[str, Any]] = []
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for alert, steps in _history(rng, channels, alerts, now):
                batch.append(alert)
                pending.extend(steps)
                if alert["status"] != "resolved":
                    name = alert["integration_name"]
                    open_by_integration[name] = open_by_integration.get(name, 0) + 1
                if len(batch) >= CHUNK:
                    # Alerts first: the transitions' foreign key points at them.
                    conn.execute(insert(Alert.__table__), batch)
                    conn.execute(insert(AlertTransition.__table__), pending)
                    transitions += len(pending)
                    batch, pending = [], []
            if batch:
                conn.execute(insert(Alert.__table__), batch)
                conn.execute(insert(AlertTransition.__table__), pending)
                transitions += len(pending)
            reviews = _reviews(rng, sorted(channels), now)
            conn.execute(insert(Review.__table__), reviews)
            silences = _silences(rng, sorted(channels), now)
            conn.execute(insert(Silence.__table__), silences)
        _after_bulk_load(engine)
    finally:
        engine.dispose()
    return SeedStats(
        alerts=alerts,
        open_alerts=sum(open_by_integration.values()),
        integrations_with_open_alerts=len(open_by_integration),
        transitions=transitions,
        reviews=len(reviews),
        silences=len(silences),
        seconds=time.perf_counter() - started,
    )


def _reviews(rng: random.Random, ids: list[str], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for ident in ids:
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            rows.append(
                {
                    "integration_id": ident,
                    "reviewed_at": now - timedelta(days=rng.uniform(1, 365)),
                    "reviewed_by": rng.choice(_PEOPLE),
                    "answers": {"still_needed": True, "owner_current": rng.random() < 0.9},
                    "notes": "Reviewed with the data owner." if rng.random() < 0.5 else None,
                }
            )
    return rows


def _silences(rng: random.Random, ids: list[str], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for ident in rng.sample(ids, min(len(ids), 300)):
        active = rng.random() < 0.15
        start = now - timedelta(hours=rng.uniform(1, 48 if active else 24 * 300))
        length = timedelta(hours=rng.uniform(49, 96) if active else rng.uniform(1, 24))
        rows.append(
            {
                "integration_id": ident,
                "starts_at": start,
                "ends_at": start + length,
                "reason": "Vendor maintenance window",
                "created_by": rng.choice(_PEOPLE),
            }
        )
    return rows


def _after_bulk_load(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        # SQLite is left as the app leaves it: the app never runs ANALYZE there.
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Explicit ids were inserted, so move the sequences past them for the app's inserts.
        for table in ("alerts", "alert_transitions"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        # What autovacuum would do within a minute of a load this size; done now so every
        # run plans its queries on the same statistics.
        conn.execute(text("VACUUM ANALYZE"))


def prepare(database_url: str, catalog: Path, alerts: int, seed: int) -> SeedStats:
    now = datetime.now(UTC)
    upgrade_schema(database_url)
    sync_catalog_file(database_url, catalog, now)
    return insert_history(database_url, alerts, seed, now)
