"""Leases are measured on the database's clock: a replica whose clock runs ahead, or a host
whose clock steps forward, does not find another worker's claim run out and do its work a
second time.

Every runtime here leases on the production clock (`database_clock`: PostgreSQL's
`statement_timestamp()`, or on SQLite the one host's clock all its processes share), while
each has its own, skewed, process clock for what is due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from bot.runtime import Runtime, build_runtime
from commands.monitors.probes import claim_probe, due_probes, sync_probes
from commands.monitors.vendor_status import claim_page, due_pages, sync_status_pages
from commands.outbox.calls import Job
from commands.outbox.queue import queue_message
from storage.db import transaction
from storage.leases import database_clock
from storage.models import OutboxMessage, Probe, StatusPage
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import BOT_TOKEN, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET

SKEW = timedelta(minutes=10)  # far past every lease (the outbox's is a minute)
CHANNEL = "C0SKEW001"


class HostClock:
    """A process's own clock: the wall clock, off by `skew`."""

    def __init__(self, skew: timedelta = timedelta(0)) -> None:
        self.skew = skew

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skew


@pytest.fixture
def make_replica(
    database_url: str, fake_slack: FakeSlack
) -> Iterator[Callable[[timedelta], Runtime]]:
    """A replica of the bot on the shared database whose clock is off by the skew given."""
    built: list[Runtime] = []

    def make(skew: timedelta) -> Runtime:
        settings = make_settings(
            database_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake_slack.url,
        )
        runtime = build_runtime(settings, clock=HostClock(skew), lease_clock=database_clock)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


def test_the_lease_clock_is_the_databases_and_is_utc(make_replica):
    replica = make_replica(SKEW)
    with transaction(replica.deps.sessions) as session:
        leased_at = replica.deps.lease_clock(session)
        if session.get_bind().dialect.name == "postgresql":
            server = session.scalar(text("SELECT clock_timestamp()"))
            assert abs(server - leased_at) < timedelta(seconds=5)
    assert leased_at.utcoffset() == timedelta(0)
    # The replica's own clock is ten minutes ahead; the lease clock is not.
    assert replica.deps.clock() - leased_at > SKEW - timedelta(seconds=5)


def test_a_replica_whose_clock_runs_ahead_does_not_send_a_message_another_is_sending(
    make_replica, fake_slack
):
    sending = make_replica(timedelta(0))
    ahead = make_replica(SKEW)
    assert ahead.outbox is not None
    # `sending` has claimed the message and its call to Slack is in flight.
    message_id, job = queued_and_claimed(sending)
    assert sending.outbox is not None

    # By its own clock the lease ran out nine minutes ago; by the database's it has not.
    assert ahead.deps.clock() > job.held_until
    assert ahead.outbox.run_once() == 0
    assert fake_slack.calls_to("chat.postMessage") == []

    assert sending.outbox._deliver(job)
    assert ahead.outbox.run_once() == 0
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.args["text"] == "Catalog reloaded"
    with transaction(sending.deps.sessions) as session:
        row = session.get_one(OutboxMessage, message_id)
        assert (row.status, row.claimed_by) == ("sent", sending.outbox.worker_id)


def test_a_replica_whose_clock_runs_ahead_takes_a_claim_once_it_ran_out_on_the_database(
    make_replica, fake_slack
):
    """The other half: the replica does take over a claim whose lease really ran out."""
    dead = make_replica(timedelta(0))
    ahead = make_replica(SKEW)
    assert ahead.outbox is not None
    queued_and_claimed(dead)
    lease_ran_out(dead, OutboxMessage)
    with transaction(dead.deps.sessions) as session:
        session.execute(text("UPDATE channel_pace SET next_at = :at"), {"at": long_ago()})

    assert ahead.outbox.run_once() == 1
    assert [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")] == ["Catalog reloaded"]


def test_a_replica_whose_clock_runs_ahead_takes_no_probe_or_status_page_another_holds(
    make_replica,
):
    holder = make_replica(timedelta(0))
    ahead = make_replica(SKEW)
    with transaction(holder.deps.sessions) as session:
        now, lease_now = holder.deps.clock(), database_clock(session)
        sync_probes(session, now)
        sync_status_pages(session, now)
        probes = due_probes(session, now, lease_now)
        pages = due_pages(session, now, lease_now)
        assert probes and pages, "the example catalog gives a probe and a status page"
        held_probes = [claim_probe(session, p, "holder", now, lease_now) for p in probes]
        held_pages = [
            claim_page(session, s, now, lease_now, "holder", timedelta(minutes=1)) for s in pages
        ]
    assert all(held_probes) and all(held_pages)

    with transaction(ahead.deps.sessions) as session:
        now, lease_now = ahead.deps.clock(), database_clock(session)
        assert due_probes(session, now, lease_now) == []
        assert due_pages(session, now, lease_now) == []
        assert [claim_probe(session, p, "ahead", now, lease_now) for p in probes] == [None] * len(
            probes
        )
        assert [
            claim_page(session, s, now, lease_now, "ahead", timedelta(minutes=1)) for s in pages
        ] == [None] * len(pages)

    lease_ran_out(holder, Probe)
    lease_ran_out(holder, StatusPage)
    with transaction(ahead.deps.sessions) as session:
        now, lease_now = ahead.deps.clock(), database_clock(session)
        assert sorted(due_probes(session, now, lease_now)) == sorted(probes)
        assert sorted(due_pages(session, now, lease_now)) == sorted(pages)
    with transaction(ahead.deps.sessions) as session:
        owners = {p.claimed_by for p in session.scalars(select(Probe))}
    assert owners == {"holder"}  # only looked at, not taken


def queued_and_claimed(replica: Runtime) -> tuple[int, Job]:
    """A message queued, and claimed by `replica`'s outbox worker: (its id, the claim)."""
    assert replica.outbox is not None
    with transaction(replica.deps.sessions) as session:
        message_id = queue_message(
            session, channel=CHANNEL, now=replica.deps.clock(), text="Catalog reloaded"
        )
    assert message_id is not None
    job = replica.outbox._claim(message_id, replica.deps.clock())
    assert job is not None
    return message_id, job


def long_ago() -> datetime:
    return datetime(2000, 1, 1, tzinfo=UTC)


def lease_ran_out(
    runtime: Runtime, model: type[OutboxMessage] | type[Probe] | type[StatusPage]
) -> None:
    """Every live claim of `model` ran out, on the database's clock: its holder died long
    ago."""
    with transaction(runtime.deps.sessions) as session:
        session.execute(
            update(model)
            .where(model.claimed_until.is_not(None))
            .values(claimed_until=long_ago())
            .execution_options(synchronize_session=False)
        )
