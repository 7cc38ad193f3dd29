"""Deleting rows that are kept for a while only: heartbeat pings, raw hook bodies, and the
outbox rows that are done with (sent, or failed for good) with their attempts.

Each function deletes at most `limit` rows, the oldest first where an index gives that
order, in the caller's transaction, and says how many. The caller commits after each call
and calls again while a call deletes `limit` (bot/workers/retention.py): one transaction
deleting a month of pings would hold SQLite's only write lock, and so every ping and hook,
for as long as it takes. Deleting rows chosen by age is idempotent, so two processes doing
it at once only delete some rows once each.

Home tabs not opened for a while are forgotten too (`home_views`), so that they are no longer
published on every change.

Kept whatever their age: alerts, alert_transitions, changes, reviews, review nudges, digests,
monthly reports and the audit trail (the history that `/integ` and the exports read). Slack
event ids are pruned on their own (commands/core/slack_events.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from commands.home.queue import home_channel
from storage.models import (
    ChannelPace,
    Digest,
    HeartbeatPing,
    HomeView,
    MonthlyReport,
    OutboxAttempt,
    OutboxMessage,
    OutboxStatus,
    ReceivedEvent,
    ReviewNudge,
    SystemOutagePost,
    VendorNoticePost,
)

# Nothing moves a row out of these: the worker is done with it.
FINAL = (OutboxStatus.SENT.value, OutboxStatus.FAILED.value)

# Columns that keep an outbox id to come back to. A waiting review nudge's message is
# edited and replied to in its thread (its row's result_ts is the message), a vendor
# notice's messages are edited while it changes, and a digest or monthly report names its
# message. The rows they name are kept whatever their age rather than the references nulled:
# there are few (one per nudge, per notice and channel, per week, per month), they grow with
# that history rather than with traffic, and an EDIT queued later would find its message
# gone and fail. Whatever else comes to keep an outbox id must be listed here;
# tests/retention checks that every foreign key to outbox.id is.
KEPT_BY: tuple[Any, ...] = (
    ReviewNudge.outbox_id,
    VendorNoticePost.outbox_id,
    Digest.outbox_id,
    MonthlyReport.outbox_id,
    SystemOutagePost.outbox_id,
)


@dataclass(frozen=True)
class Deleted:
    """What one batch deleted: rows of the table swept, and attempts of the outbox rows."""

    rows: int
    attempts: int = 0


@dataclass(frozen=True)
class Policy:
    """How long each kind of row is kept."""

    pings: timedelta
    hook_bodies: timedelta
    outbox: timedelta
    homes: timedelta = timedelta(days=90)

    @classmethod
    def of_days(cls, pings: int, hook_bodies: int, outbox: int, homes: int = 90) -> Policy:
        return cls(
            timedelta(days=pings),
            timedelta(days=hook_bodies),
            timedelta(days=outbox),
            timedelta(days=homes),
        )


@dataclass(frozen=True)
class Sweep:
    """One table's retention: its name, how long its rows are kept, and one batch of it."""

    table: str
    keep: timedelta
    batch: Callable[[Session, datetime, int], Deleted]


def sweeps(policy: Policy) -> list[Sweep]:
    return [
        Sweep("heartbeat_pings", policy.pings, purge_pings),
        Sweep("received_events", policy.hook_bodies, purge_hook_bodies),
        Sweep("outbox", policy.outbox, purge_outbox),
        Sweep("home_views", policy.homes, purge_homes),
    ]


def purge_pings(session: Session, before: datetime, limit: int) -> Deleted:
    """Delete up to `limit` heartbeat pings received before `before`, oldest first."""
    oldest = (
        select(HeartbeatPing.id)
        .where(HeartbeatPing.at < before)
        .order_by(HeartbeatPing.at)
        .limit(limit)
    )
    return Deleted(_delete_ids(session, HeartbeatPing, oldest))


def purge_homes(session: Session, before: datetime, limit: int) -> Deleted:
    """Forget up to `limit` Home tabs last opened before `before` (and which integrations
    each showed): they stop being published on every change until opened again."""
    idle = (
        select(HomeView.user_id)
        .where(HomeView.opened_at < before)
        .order_by(HomeView.opened_at)
        .limit(limit)
    )
    users = list(session.scalars(idle))
    if not users:
        return Deleted(0)
    # Deleted only if still idle: one opened since the look above is kept. The integrations
    # each showed go with it (ON DELETE CASCADE), and so does its pace.
    gone = list(
        session.scalars(
            delete(HomeView)
            .where(HomeView.user_id.in_(users), HomeView.opened_at < before)
            .returning(HomeView.user_id)
        )
    )
    if gone:
        session.execute(
            delete(ChannelPace).where(ChannelPace.channel.in_([home_channel(u) for u in gone]))
        )
    return Deleted(len(gone))


def purge_hook_bodies(session: Session, before: datetime, limit: int) -> Deleted:
    """Delete up to `limit` raw hook requests received before `before`, oldest first. What
    they meant is in alerts and alert_transitions, which stay."""
    oldest = (
        select(ReceivedEvent.id)
        .where(ReceivedEvent.received_at < before)
        .order_by(ReceivedEvent.received_at)
        .limit(limit)
    )
    return Deleted(_delete_ids(session, ReceivedEvent, oldest))


def purge_outbox(session: Session, before: datetime, limit: int) -> Deleted:
    """Delete up to `limit` outbox rows queued before `before` that were sent or failed for
    good and that nothing keeps (KEPT_BY), with their attempts.

    Pending rows stay however old (retrying, claimed, or waiting for their channel): the
    worker still has them. An alert's message needs no outbox row once posted: the alert
    row holds its channel, ts, and when it was shown (`Alert.shown_at`)."""
    o = OutboxMessage
    kept = [~exists().where(column == o.id) for column in KEPT_BY]
    # The ids first, then both deletes by id: the attempts must go with exactly the rows
    # deleted, which a subquery evaluated twice might not give on PostgreSQL.
    ids = list(
        session.scalars(
            select(o.id).where(o.status.in_(FINAL), o.created_at < before, *kept).limit(limit)
        )
    )
    if not ids:
        return Deleted(0)
    attempts = session.execute(
        delete(OutboxAttempt)
        .where(OutboxAttempt.message_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        delete(o).where(o.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return Deleted(_count(rows), _count(attempts))


def _delete_ids(session: Session, model: type[Any], ids: Any) -> int:
    result = session.execute(
        delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return _count(result)


def _count(result: Any) -> int:
    return int(result.rowcount or 0)
