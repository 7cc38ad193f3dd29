"""Every kind of scheduled work is claimed by one process only: two runtimes on one database
(two engines, as two processes) claim the same due work at the same moment, and each piece
goes to exactly one of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from commands.monitors.heartbeats import raise_missed
from commands.monitors.probes import claim_probe, due_probes, sync_probes
from commands.monitors.vendor_status import claim_page, due_pages, sync_status_pages
from commands.outbox import claims
from commands.outbox.queue import queue_message, queue_upload
from storage.db import transaction
from storage.models import Alert, Heartbeat
from tests.helpers.runtime import FixedClock, make_settings

CHANNELS = [f"C0CLAIM{i:02d}" for i in range(8)]  # one message each, so pacing holds none back


def queued_messages(runtime: Runtime, clock: FixedClock) -> list[object]:
    with transaction(runtime.deps.sessions) as session:
        return [
            queue_message(session, channel=channel, now=clock.now, text=f"to {channel}")
            for channel in CHANNELS
        ]


def claim_message(runtime: Runtime, key: object, clock: FixedClock, name: str) -> int:
    try:
        with transaction(runtime.deps.sessions) as session:
            claims.claim(session, int(str(key)), clock.now, clock.now, name)
    except claims.Skipped:
        return 0
    return 1


def queued_diagrams(runtime: Runtime, clock: FixedClock) -> list[object]:
    with transaction(runtime.deps.sessions) as session:
        return [
            queue_upload(
                session,
                channel=channel,
                now=clock.now,
                dot="digraph { a -> b }",
                filename="integrations.png",
                title="Integrations",
                comment="",
            )
            for channel in CHANNELS
        ]


def claim_diagram(runtime: Runtime, key: object, clock: FixedClock, name: str) -> int:
    try:
        with transaction(runtime.deps.sessions) as session:
            claims.claim_upload(session, int(str(key)), clock.now, clock.now, name)
    except claims.Skipped:
        return 0
    return 1


def due_probe_ids(runtime: Runtime, clock: FixedClock) -> list[object]:
    with transaction(runtime.deps.sessions) as session:
        sync_probes(session, clock.now)  # as each probe run does first
        return list(due_probes(session, clock.now, clock.now))


def claim_one_probe(runtime: Runtime, key: object, clock: FixedClock, name: str) -> int:
    with transaction(runtime.deps.sessions) as session:
        return int(claim_probe(session, str(key), name, clock.now, clock.now) is not None)


def due_page_ids(runtime: Runtime, clock: FixedClock) -> list[object]:
    with transaction(runtime.deps.sessions) as session:
        sync_status_pages(session, clock.now)  # as each poll does first
        return list(due_pages(session, clock.now, clock.now))


def claim_one_page(runtime: Runtime, key: object, clock: FixedClock, name: str) -> int:
    with transaction(runtime.deps.sessions) as session:
        return int(
            claim_page(session, str(key), clock.now, clock.now, name, timedelta(minutes=1))
            is not None
        )


def missed_heartbeats(runtime: Runtime, clock: FixedClock) -> list[object]:
    with transaction(runtime.deps.sessions) as session:
        latest = max(d for d in session.scalars(select(Heartbeat.due_at)) if d is not None)
    clock.now = latest + timedelta(minutes=1)  # every heartbeat's run is missed
    with transaction(runtime.deps.sessions) as session:
        return [h.integration_id for h in session.scalars(select(Heartbeat))]


def raise_all_missed(runtime: Runtime, key: object, clock: FixedClock, name: str) -> int:
    # Missed runs are raised in batches rather than by key: each process raises what it can.
    with transaction(runtime.deps.sessions) as session:
        return raise_missed(session, clock.now, limit=1000)


@dataclass(frozen=True)
class Work:
    due: Callable[[Runtime, FixedClock], list[object]]
    claim: Callable[[Runtime, object, FixedClock, str], int]
    batch: bool = False  # claimed all at once rather than one key at a time


WORK = {
    "outbox messages": Work(queued_messages, claim_message),
    "diagrams to draw": Work(queued_diagrams, claim_diagram),
    "probes": Work(due_probe_ids, claim_one_probe),
    "status pages": Work(due_page_ids, claim_one_page),
    "missed heartbeats": Work(missed_heartbeats, raise_all_missed, batch=True),
}


@pytest.mark.parametrize("kind", sorted(WORK))
def test_two_processes_claiming_at_the_same_moment_take_each_piece_of_work_once(
    kind, database_url, make_runtime, clock
):
    work = WORK[kind]
    one = make_runtime(make_settings(database_url))
    two = make_runtime(make_settings(database_url))
    due = work.due(one, clock)
    assert due, f"the example catalog gives no {kind} to race for"
    keys = ["all"] if work.batch else due
    taken: dict[str, int] = {}
    start = threading.Barrier(2)

    def run(name: str, runtime: Runtime) -> None:
        start.wait()
        taken[name] = sum(work.claim(runtime, key, clock, name) for key in keys)

    threads = [threading.Thread(target=run, args=item) for item in (("a", one), ("b", two))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert taken["a"] + taken["b"] == len(due)
    if kind == "missed heartbeats":
        with transaction(one.deps.sessions) as session:
            alerts = list(session.scalars(select(Alert)))
        assert sorted(a.integration_id for a in alerts) == sorted(str(k) for k in due)
        assert all(a.count == 1 for a in alerts)
