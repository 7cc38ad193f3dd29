"""Asking for a Home publish: once while one waits, again once it is claimed, never for a
change that was rolled back or for someone who did not open their Home, and never frozen by
a publish lost before its claim. The outbox worker of local mode renders and prints them."""

from datetime import timedelta

from sqlalchemy import select, update

from commands.alerts.actions import acknowledge
from commands.home import queue as home
from storage.db import transaction
from storage.models import Alert, OutboxKind, OutboxMessage, OutboxStatus
from tests.helpers.runtime import make_settings
from tests.home.test_home_tab import OWNER


def home_rows(runtime):
    with runtime.deps.sessions() as session:
        return session.execute(
            select(OutboxMessage.channel, OutboxMessage.status, OutboxMessage.last_error)
            .where(OutboxMessage.kind == OutboxKind.HOME.value)
            .order_by(OutboxMessage.id)
        ).all()


def new_alert(runtime, key):
    clock = runtime.deps.clock
    with transaction(runtime.deps.sessions) as session:
        alert = Alert(
            integration_name="crm",
            integration_id="crm",
            key=key,
            summary="Load failed",
            first_seen_at=clock.now,
            last_seen_at=clock.now,
        )
        session.add(alert)
        session.flush()
        return alert.id


def ack(runtime, alert_id):
    with transaction(runtime.deps.sessions) as session:
        assert acknowledge(session, alert_id, "U0OTHER01", runtime.deps.clock.now).changed


def opened_and_published(runtime, user=OWNER):
    with transaction(runtime.deps.sessions) as session:
        assert home.opened(session, user, runtime.deps.clock.now)
    runtime.outbox.run_once()
    runtime.deps.clock.now += timedelta(seconds=3)


def test_changes_while_a_publish_waits_ask_for_no_other_and_its_claim_lets_them_again(
    database_url, make_runtime
):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime)
    alerts = [new_alert(runtime, f"k{n}") for n in range(3)]
    ack(runtime, alerts[0])
    ack(runtime, alerts[1])
    assert [r.status for r in home_rows(runtime)] == ["sent", "pending"]
    runtime.outbox.run_once()
    ack(runtime, alerts[2])
    assert [r.status for r in home_rows(runtime)] == ["sent", "sent", "pending"]


def test_a_change_rolled_back_asks_for_nothing(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime)
    alert_id = new_alert(runtime, "k")
    session = runtime.deps.sessions()
    with session.begin():
        acknowledge(session, alert_id, "U0OTHER01", runtime.deps.clock.now)
        session.rollback()
    # The same session, used again for something else, does not carry the change over.
    with session.begin():
        session.execute(select(Alert.id))
    session.close()
    assert len(home_rows(runtime)) == 1  # the opening's only
    with runtime.deps.sessions() as session:
        assert session.get(Alert, alert_id).status == "firing"


def test_changes_to_integrations_no_home_shows_ask_for_nothing(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime, "U0LMSADM1")  # canvas-enroll and grades
    ack(runtime, new_alert(runtime, "k"))
    with transaction(runtime.deps.sessions) as session:
        home.integrations_changed(session, ["crm", "hr-feed"], runtime.deps.clock.now)
    assert len(home_rows(runtime)) == 1
    with transaction(runtime.deps.sessions) as session:
        home.integrations_changed(session, ["grades"], runtime.deps.clock.now)
    assert [r.channel for r in home_rows(runtime)] == ["home:U0LMSADM1"] * 2


def test_a_publish_lost_before_its_claim_does_not_freeze_the_home(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime)
    ack(runtime, new_alert(runtime, "a"))
    # The queued publish ends without a claim that clears its mark (a release that did not
    # know Home rows failed it, say).
    with transaction(runtime.deps.sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING.value)
            .values(status=OutboxStatus.FAILED.value, last_error="unknown outbox kind 'home'")
        )
    ack(runtime, new_alert(runtime, "b"))
    assert len(home_rows(runtime)) == 2  # the mark still holds...
    runtime.deps.clock.now += home.STALE_MARK + timedelta(seconds=1)
    ack(runtime, new_alert(runtime, "c"))
    assert [r.status for r in home_rows(runtime)] == [
        "sent",
        "failed",
        "pending",
    ]  # ...not for ever


def test_a_claim_does_the_other_publishes_waiting_for_the_same_home(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime)
    ack(runtime, new_alert(runtime, "a"))
    runtime.deps.clock.now += home.STALE_MARK + timedelta(seconds=1)
    ack(runtime, new_alert(runtime, "b"))  # a second row, the first one's mark being stale
    runtime.outbox.run_once()
    rows = home_rows(runtime)
    assert [r.status for r in rows] == ["sent", "sent", "sent"]
    assert rows[2].last_error == f"superseded by outbox #{_ids(runtime)[1]}"


def test_a_home_in_use_is_refreshed_every_few_minutes_and_one_left_alone_is_not(
    database_url, make_runtime
):
    runtime = make_runtime(make_settings(database_url))
    opened_and_published(runtime)
    opened_and_published(runtime, "U0LMSADM1")
    clock = runtime.deps.clock
    with transaction(runtime.deps.sessions) as session:
        assert home.due_refreshes(session, clock.now) == 0  # rendered a moment ago
    clock.now += home.REFRESH
    with transaction(runtime.deps.sessions) as session:
        assert home.due_refreshes(session, clock.now) == 2
        assert home.due_refreshes(session, clock.now) == 0  # already waiting
    runtime.outbox.run_once()
    clock.now += home.RECENTLY  # not opened for a day
    with transaction(runtime.deps.sessions) as session:
        assert home.due_refreshes(session, clock.now) == 0


def _ids(runtime):
    with runtime.deps.sessions() as session:
        return session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.kind == OutboxKind.HOME.value)
            .order_by(OutboxMessage.id)
        ).all()
