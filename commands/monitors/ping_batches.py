"""Pings taken many to a transaction, as the intake writer commits them with the hooks.

Nearly every ping is a job saying it started or succeeded while its heartbeat was not down:
all that changes is the heartbeat's row and a new ping row. For those the heartbeat is found
from memory (`HeartbeatIndex`), its row is moved by one UPDATE built once, and the batch's
ping rows are inserted together. The UPDATE names the key and the schedule it was worked out
from, so a key rotated or a schedule changed since (by this process or another) changes no
row, and that ping takes the full path (`heartbeats.record_ping`), as does every /fail and
every success that ends an outage: those raise or resolve an alert.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from commands.monitors.heartbeats import (
    FAIL,
    KINDS,
    MAX_BODY,
    START,
    SUCCESS,
    PingResult,
    Schedule,
    record_ping,
)
from storage.db import table_of
from storage.models import Heartbeat, HeartbeatPing, HeartbeatStatus, Integration
from storage.types import UTCDateTime, storable

# Keys remembered at most; only keys found in the database are, so this bounds a catalog's
# heartbeats, with room for keys rotated over the years.
MAX_REMEMBERED = 100_000

_HEARTBEATS = table_of(Heartbeat)
_DOWN = HeartbeatStatus.DOWN.value


@dataclass(frozen=True)
class Ping:
    """A ping as received, before it is stored."""

    key: str
    kind: str
    method: str
    user_agent: str | None
    remote_addr: str | None
    body: str | None


@dataclass
class Known:
    """What a ping needs of its heartbeat, and the schedule the stored deadline came from."""

    integration_id: str
    schedule: Schedule
    signature: str
    # The last answer of `schedule.next_after`: (asked at, next run). A cron's next run is
    # the same for every moment until it comes, and walking the cron is most of a ping's cost.
    _next: tuple[datetime, datetime] | None = None

    def next_run(self, now: datetime) -> datetime:
        cached = self._next
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[1]
        found = self.schedule.next_after(now)
        if self.schedule.cron is not None:
            self._next = (now, found)
        return found


class HeartbeatIndex:
    """Heartbeat keys to their integration and schedule, remembered once read. Never trusted
    alone: every write made from it names the key and schedule it remembers."""

    def __init__(self) -> None:
        self._known: dict[str, Known] = {}
        self._lock = threading.Lock()

    def remembers(self, key: str) -> bool:
        return key in self._known

    def lookup(self, session: Session, key: str) -> Known | None:
        """The heartbeat with this key, from memory or else the database; None when no
        live heartbeat has it (not remembered: anyone can guess at keys)."""
        found = self._known.get(key)
        if found is not None:
            return found
        row = session.execute(
            select(Heartbeat.integration_id, Integration.spec)
            .join(Integration, Integration.id == Heartbeat.integration_id)
            .where(Heartbeat.key == key, Integration.removed_at.is_(None))
        ).first()
        if row is None:
            return None
        schedule = Schedule.of(row.spec)
        if schedule is None:
            return None
        known = Known(row.integration_id, schedule, schedule.signature)
        with self._lock:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[key] = known
        return known

    def forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)


def _at(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


_MATCHES = (
    _HEARTBEATS.c.key == bindparam("k"),
    _HEARTBEATS.c.schedule == bindparam("sig"),
)
# A success that ends an outage resolves its alert: only the full path does that.
_SUCCEEDED = (
    update(_HEARTBEATS)
    .where(*_MATCHES, _HEARTBEATS.c.status != _DOWN)
    .values(
        last_ping_at=_at("now"),
        status=HeartbeatStatus.UP.value,
        expected_at=_at("expected"),
        due_at=_at("due"),
    )
)
# A run that started must also finish: it is late once the grace has passed. A heartbeat
# that is down stays down (its alert is open) until a success.
_STARTED = (
    update(_HEARTBEATS)
    .where(*_MATCHES)
    .values(
        last_start_at=_at("now"),
        due_at=_at("due"),
        status=case((_HEARTBEATS.c.status == _DOWN, _DOWN), else_=HeartbeatStatus.RUNNING.value),
    )
)
_INSERT = insert(table_of(HeartbeatPing))


def record_pings(
    session: Session, pings: list[Ping], now: datetime, index: HeartbeatIndex
) -> list[PingResult | None]:
    """Take the pings, in order, in the caller's transaction; for each, what it did, or None
    when no heartbeat has its key (nothing is stored for it)."""
    results: list[PingResult | None] = []
    rows: list[dict[str, Any]] = []
    for ping in pings:
        if ping.kind not in KINDS:
            raise ValueError(f"unknown ping kind {ping.kind!r}")
        known = index.lookup(session, ping.key) if ping.kind != FAIL else None
        if known is not None and _moved(session, ping, known, now):
            rows.append(_ping_row(ping, known.integration_id, now))
            results.append(PingResult(known.integration_id, ping.kind, None))
            continue
        result = record_ping(
            session,
            ping.key,
            ping.kind,
            now=now,
            method=ping.method,
            user_agent=ping.user_agent,
            remote_addr=ping.remote_addr,
            body=ping.body,
        )
        if result is None:
            index.forget(ping.key)
        results.append(result)
    if rows:
        session.connection().execute(_INSERT, rows)
    return results


def _moved(session: Session, ping: Ping, known: Known, now: datetime) -> bool:
    """The heartbeat's row moved on by the ping, if it is as remembered and the ping changes
    nothing else; False leaves the ping to the full path."""
    grace = known.schedule.grace
    values: dict[str, Any] = {"k": ping.key, "sig": known.signature, "now": now}
    if ping.kind == SUCCESS:
        expected = known.next_run(now)
        values.update(expected=expected, due=expected + grace)
        statement = _SUCCEEDED
    else:
        assert ping.kind == START
        values.update(due=now + grace)
        statement = _STARTED
    # On the connection: a Core statement needs none of the ORM's handling of one.
    changed = session.connection().execute(statement, values)
    return changed.rowcount == 1


def _ping_row(ping: Ping, integration_id: str, now: datetime) -> dict[str, Any]:
    return {
        "integration_id": integration_id,
        "at": now,
        "kind": ping.kind,
        "method": ping.method,
        "user_agent": (ping.user_agent or "")[:500] or None,
        "remote_addr": ping.remote_addr,
        "body": storable(ping.body or "")[:MAX_BODY] or None,
    }
