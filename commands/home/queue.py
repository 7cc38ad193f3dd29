"""Asking for a Home tab to be published again, cheaply and at most once at a time.

A Home is published through the outbox (a HOME row, rendered when it is sent). What asks for
one:

- a change to what it shows: an alert's state (`alert_changed`, from every transition), an
  integration's silence, review or maintenance window, a vendor incident on one of its
  systems (`integrations_changed`), the catalog (`everyone_changed`). These are gathered in
  the session and asked for once, when the transaction commits: a batch of a hundred new
  alerts at intake costs one statement, not one per alert. The Homes asked for are those
  whose last render showed one of those integrations (`home_integrations`).
- the person opening it (`opened`), a click answered in it (`tell`), its system menu
  (`narrow`), and a refresh every few minutes while it is in use (`due_refreshes`), for
  what changes with time alone: a heartbeat running late, a review falling due.

`home_views.publish_queued_at` marks a Home whose publish is queued and not yet claimed:
while it is set, changes ask for nothing more, since that publish is rendered after them.
The claim clears it (`claimed`), in its own transaction, before the render reads anything; a
change locks the Homes it asks for (in user order, on PostgreSQL) before it looks at the
mark, so a claim's clearing waits for it, and the render that follows sees it. People who
never opened their Home have no row, and changes cost them nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, event, insert, or_, select, update
from sqlalchemy.orm import Session

from storage import leases
from storage.db import insert_for, table_of
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
# The pace key of every Home at once: Slack limits views.publish per workspace, so a 429 on
# one person's Home holds back everyone's (commands/outbox/results.py).
ALL_HOMES = "home:*"
# A mark older than this is taken for lost (its row failed before a claim could clear it,
# under a release that did not know HOME rows, say), so that no Home stays frozen.
STALE_MARK = timedelta(minutes=10)
# Homes opened within RECENTLY are published again when their last render is older than
# REFRESH, so that what changes with time alone shows without waiting for an event.
RECENTLY = timedelta(days=1)
REFRESH = timedelta(minutes=10)
_CHUNK = 500  # ids per statement: far below any database's limit on parameters

_views = table_of(HomeView)
_shown = table_of(HomeIntegration)
_alerts = table_of(Alert)
_outbox = table_of(OutboxMessage)
_INSERT = insert(_outbox)
_MARK = (
    update(_views)
    .where(
        _views.c.user_id.in_(bindparam("p_users", expanding=True)),
        or_(
            _views.c.publish_queued_at.is_(None),
            _views.c.publish_queued_at < bindparam("p_stale", type_=_views.c.opened_at.type),
        ),
    )
    .values(publish_queued_at=bindparam("p_now", type_=_views.c.opened_at.type))
    .returning(_views.c.user_id)
)


def home_channel(user_id: str) -> str:
    """The outbox `channel` of a person's Home: publishes to it are paced like a channel."""
    return f"{_PREFIX}{user_id}"


def user_of(channel: str) -> str | None:
    """The person whose Home an outbox channel is, or None for a real channel."""
    if not channel.startswith(_PREFIX) or channel == ALL_HOMES:
        return None
    return channel.removeprefix(_PREFIX)


# -- changes, asked for at commit -------------------------------------------------------------


@dataclass
class _Changes:
    now: datetime
    alerts: set[int] = field(default_factory=set)
    integrations: set[str] = field(default_factory=set)
    everyone: bool = False


_CHANGES = "integ_home_changes"


def _changes(session: Session, now: datetime) -> _Changes:
    found: _Changes | None = session.info.get(_CHANGES)
    if found is None:
        found = session.info[_CHANGES] = _Changes(now)
    found.now = max(found.now, now)
    return found


def alert_changed(session: Session, alert_id: int, now: datetime) -> None:
    """The alert's state changed in this transaction: the Homes showing its integration are
    asked for when it commits."""
    _changes(session, now).alerts.add(alert_id)


def integrations_changed(session: Session, integration_ids: Iterable[str], now: datetime) -> None:
    """Something these integrations' Homes show changed in this transaction."""
    _changes(session, now).integrations.update(integration_ids)


def everyone_changed(session: Session, now: datetime) -> None:
    """Every Home is asked for when this transaction commits (the catalog changed: who
    answers for what may have too)."""
    _changes(session, now).everyone = True


@event.listens_for(Session, "before_commit")
def _ask_for_homes(session: Session) -> None:
    changes: _Changes | None = session.info.pop(_CHANGES, None)
    if changes is not None:
        _queue_for(session, _users_for(session, changes), changes.now)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes(session: Session, previous_transaction: object) -> None:
    # Rolled back: those changes never happened.
    session.info.pop(_CHANGES, None)


def _users_for(session: Session, changes: _Changes) -> list[str]:
    if changes.everyone:
        return list(session.scalars(select(HomeView.user_id)))
    users: set[str] = set()
    alerts = sorted(changes.alerts)
    for at in range(0, len(alerts), _CHUNK):
        users.update(
            session.scalars(
                select(_shown.c.user_id)
                .join(_alerts, _alerts.c.integration_id == _shown.c.integration_id)
                .where(_alerts.c.id.in_(alerts[at : at + _CHUNK]))
            )
        )
    integrations = sorted(changes.integrations)
    for at in range(0, len(integrations), _CHUNK):
        users.update(
            session.scalars(
                select(_shown.c.user_id).where(
                    _shown.c.integration_id.in_(integrations[at : at + _CHUNK])
                )
            )
        )
    return sorted(users)


def _queue_for(session: Session, users: Sequence[str], now: datetime) -> int:
    """A publish for each of these Homes that has none waiting; how many were queued."""
    queued: list[str] = []
    for at in range(0, len(users), _CHUNK):
        chunk = sorted(users[at : at + _CHUNK])
        # Locked first, marked or not, in one order everywhere: a claim clearing a mark then
        # waits for this transaction, and its render sees what this one changed.
        session.execute(
            select(HomeView.user_id)
            .where(HomeView.user_id.in_(chunk))
            .order_by(HomeView.user_id)
            .with_for_update()
        ).all()
        found = session.connection().execute(
            _MARK, {"p_users": chunk, "p_now": now, "p_stale": now - STALE_MARK}
        )
        queued += found.scalars().all()
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
        for user in queued
    ]
    if rows:
        session.connection().execute(_INSERT, rows)
    return len(rows)


# -- the person's own doings ------------------------------------------------------------------


def _home(session: Session, user_id: str, now: datetime) -> HomeView:
    """Their row, created when missing; two events for a new person at once both get it."""
    session.execute(
        insert_for(session)(HomeView)
        .values(user_id=user_id, opened_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    return session.get_one(HomeView, user_id, with_for_update=True, populate_existing=True)


def opened(session: Session, user_id: str, now: datetime) -> bool:
    """The person opened their Home tab: remember them, and publish it now (a publish still
    waiting will show the same). Whether one was queued."""
    _home(session, user_id, now).opened_at = now
    session.flush()
    return _queue_for(session, [user_id], now) > 0


def tell(session: Session, user_id: str, notice: str, now: datetime) -> None:
    """Answer a click in the Home: shown at its top, and published now."""
    view = _home(session, user_id, now)
    view.notice, view.notice_at = notice, now
    session.flush()
    _queue_for(session, [user_id], now)


def narrow(session: Session, user_id: str, system_id: str | None, now: datetime) -> None:
    """Narrow the Home's overview to one system (None: all of them), and publish it."""
    _home(session, user_id, now).system_filter = system_id
    session.flush()
    _queue_for(session, [user_id], now)


def due_refreshes(session: Session, now: datetime) -> int:
    """Ask for the Homes opened recently whose last render is older than REFRESH (a duty of
    the tick); how many were queued."""
    users = session.scalars(
        select(HomeView.user_id).where(
            HomeView.opened_at >= now - RECENTLY,
            or_(HomeView.rendered_at.is_(None), HomeView.rendered_at < now - REFRESH),
        )
    ).all()
    return _queue_for(session, sorted(users), now)


# -- the outbox's side ------------------------------------------------------------------------


def claimed(
    session: Session, user_id: str, message_id: int, now: datetime, lease_now: datetime
) -> int:
    """A worker claimed publish `message_id` of this Home: changes from here on ask for a
    publish of their own, and the other publishes waiting for it are done by this one (it
    is rendered after this claim commits). How many were."""
    session.execute(
        update(HomeView).where(HomeView.user_id == user_id).values(publish_queued_at=None)
    )
    m = OutboxMessage
    done = session.execute(
        update(m)
        .where(
            m.channel == home_channel(user_id),
            m.kind == HOME.value,
            m.status == OutboxStatus.PENDING.value,
            m.id != message_id,
            leases.unclaimed(m, lease_now),
        )
        .values(
            status=OutboxStatus.SENT.value,
            sent_at=now,
            claimed_until=None,
            last_error=f"superseded by outbox #{message_id}",
        )
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


def rendering(
    session: Session, user_id: str, shown: Iterable[str], now: datetime
) -> HomeView | None:
    """The worker is rendering this Home: remember which integrations it shows (changes to
    them ask for it again) and when. Its row, or None when it was forgotten (retention), so
    that it is not published."""
    view = session.get(HomeView, user_id)
    if view is None:
        return None
    view.rendered_at = now
    wanted = set(shown)
    have = shown_before(session, user_id)
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


def shown_before(session: Session, user_id: str) -> set[str]:
    """The integrations this Home showed at its last render."""
    return set(
        session.scalars(select(HomeIntegration.integration_id).where(_shown.c.user_id == user_id))
    )
