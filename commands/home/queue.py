"""Asking for a Home tab to be published again, cheaply and at most once at a time.

A change to an integration asks for the Homes that show it (`home_integrations`, written
when each Home is rendered): one statement that also tells whether one is already waiting.
An alert's changes are asked for once per transaction, when it commits (`alert_changed`),
so that a batch of new alerts at intake costs one statement, not one per alert.
`home_views.publish_queued_at` is set when a publish is queued and cleared when the worker
renders it, so a storm of a thousand alerts queues one publish per Home while the first
waits, and the outbox paces the rest (`commands.outbox.results.HOME_PACE`). People who
never opened the Home have no row, and a change costs them nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, delete, event, insert, select, update
from sqlalchemy.orm import Session

from storage.db import table_of
from storage.models import (
    Alert,
    HomeIntegration,
    HomeView,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
)

HOME = OutboxKind.HOME
_PREFIX = "home:"

_views = table_of(HomeView)
_shown = table_of(HomeIntegration)
_alerts = table_of(Alert)
_INSERT = insert(table_of(OutboxMessage))


def home_channel(user_id: str) -> str:
    """The outbox `channel` of a person's Home: publishes to it are paced like a channel."""
    return f"{_PREFIX}{user_id}"


def user_of(channel: str) -> str | None:
    """The person whose Home an outbox channel is, or None for a real channel."""
    return channel.removeprefix(_PREFIX) if channel.startswith(_PREFIX) else None


def _mark(now: datetime) -> dict[str, datetime]:
    return {"publish_queued_at": now}


# Sets the mark only where it was clear, and says where: those Homes get a row each.
_MARK_FOR_INTEGRATION = (
    update(_views)
    .where(
        _views.c.publish_queued_at.is_(None),
        _views.c.user_id.in_(
            select(_shown.c.user_id).where(_shown.c.integration_id == bindparam("p_integration"))
        ),
    )
    .values(publish_queued_at=bindparam("p_now"))
    .returning(_views.c.user_id)
)
_MARK_FOR_ALERTS = (
    update(_views)
    .where(
        _views.c.publish_queued_at.is_(None),
        _views.c.user_id.in_(
            select(_shown.c.user_id)
            .join(_alerts, _alerts.c.integration_id == _shown.c.integration_id)
            .where(_alerts.c.id.in_(bindparam("p_alerts", expanding=True)))
        ),
    )
    .values(publish_queued_at=bindparam("p_now"))
    .returning(_views.c.user_id)
)
# Alerts changed in a transaction, and when, until it commits (see `alert_changed`).
_CHANGED = "integ_home_changed_alerts"
_CHUNK = 500  # ids per statement: far below any database's limit on parameters


def _queue(session: Session, users: Iterable[str], now: datetime) -> int:
    rows = [
        {
            "created_at": now,
            "due_at": now,
            "kind": HOME.value,
            "channel": home_channel(user),
            "payload": {"user": user},
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
        }
        for user in users
    ]
    if rows:
        session.connection().execute(_INSERT, rows)
    return len(rows)


def alert_changed(session: Session, alert_id: int, now: datetime) -> None:
    """The alert's state changed in this transaction: the Homes that show its integration
    are asked for when it commits, in one statement for all its alerts. A storm's batch of a
    hundred new alerts then costs one statement, not one per alert."""
    changed: tuple[set[int], datetime] | None = session.info.get(_CHANGED)
    if changed is None:
        session.info[_CHANGED] = ({alert_id}, now)
    else:
        changed[0].add(alert_id)
        session.info[_CHANGED] = (changed[0], max(changed[1], now))


def queue_for_alerts(session: Session, alert_ids: Iterable[int], now: datetime) -> int:
    """Ask for every Home that shows one of these alerts' integrations; how many were
    queued."""
    ids = sorted(set(alert_ids))
    users: list[str] = []
    for at in range(0, len(ids), _CHUNK):
        found = session.connection().execute(
            _MARK_FOR_ALERTS, {"p_alerts": ids[at : at + _CHUNK], "p_now": now}
        )
        users += found.scalars().all()
    return _queue(session, users, now)


@event.listens_for(Session, "before_commit")
def _ask_for_homes(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    if changed is not None:
        queue_for_alerts(session, changed[0], changed[1])


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, previous_transaction: object) -> None:
    # Rolled back: those changes never happened.
    session.info.pop(_CHANGED, None)


def queue_for_integrations(session: Session, integration_ids: Iterable[str], now: datetime) -> int:
    """Ask for every Home that shows one of these integrations; how many were queued."""
    users: list[str] = []
    for integration_id in dict.fromkeys(integration_ids):
        found = session.connection().execute(
            _MARK_FOR_INTEGRATION, {"p_integration": integration_id, "p_now": now}
        )
        users += found.scalars().all()
    return _queue(session, users, now)


def queue_all(session: Session, now: datetime) -> int:
    """Ask for every Home (the catalog changed: who answers for what may have too)."""
    found = session.connection().execute(
        update(_views)
        .where(_views.c.publish_queued_at.is_(None))
        .values(_mark(now))
        .returning(_views.c.user_id)
    )
    return _queue(session, found.scalars().all(), now)


def queue_publish(session: Session, user_id: str, now: datetime) -> bool:
    """Ask for this person's Home, unless a publish is already waiting for it."""
    found = session.connection().execute(
        update(_views)
        .where(_views.c.user_id == user_id, _views.c.publish_queued_at.is_(None))
        .values(_mark(now))
        .returning(_views.c.user_id)
    )
    return _queue(session, found.scalars().all(), now) > 0


def opened(session: Session, user_id: str, now: datetime) -> bool:
    """The person opened their Home tab: remember them, and publish it now (a publish still
    waiting will show the same). Whether one was queued."""
    view = session.get(HomeView, user_id, with_for_update=True)
    if view is None:
        session.add(HomeView(user_id=user_id, opened_at=now))
        session.flush()
    else:
        view.opened_at = now
    return queue_publish(session, user_id, now)


def tell(session: Session, user_id: str, notice: str, now: datetime) -> None:
    """Answer a click in the Home: shown at its top, and published now."""
    view = session.get(HomeView, user_id, with_for_update=True)
    if view is None:
        view = HomeView(user_id=user_id, opened_at=now)
        session.add(view)
    view.notice, view.notice_at = notice, now
    session.flush()
    queue_publish(session, user_id, now)


def narrow(session: Session, user_id: str, system_id: str | None, now: datetime) -> None:
    """Narrow the Home's overview to one system (None: all of them), and publish it."""
    view = session.get(HomeView, user_id, with_for_update=True)
    if view is None:
        view = HomeView(user_id=user_id, opened_at=now)
        session.add(view)
    view.system_filter = system_id
    session.flush()
    queue_publish(session, user_id, now)


def rendering(session: Session, user_id: str, shown: Iterable[str]) -> HomeView | None:
    """The worker is rendering this Home now: clear its mark, so that a change from here on
    asks for another publish, and remember which integrations it shows. The Home's row,
    or None when it was forgotten (retention) and so should not be published."""
    view = session.get(HomeView, user_id, with_for_update=True)
    if view is None:
        return None
    view.publish_queued_at = None
    wanted = set(shown)
    have = set(
        session.scalars(select(HomeIntegration.integration_id).where(_shown.c.user_id == user_id))
    )
    if have - wanted:
        session.execute(
            delete(HomeIntegration).where(
                HomeIntegration.user_id == user_id,
                HomeIntegration.integration_id.in_(sorted(have - wanted)),
            )
        )
    session.add_all(
        HomeIntegration(user_id=user_id, integration_id=i) for i in sorted(wanted - have)
    )
    session.flush()
    return view
