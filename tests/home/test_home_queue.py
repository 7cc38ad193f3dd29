"""Asking for a Home publish: once while one waits, again once it is rendered, never for a
change that was rolled back, and never for someone who did not open their Home."""

from sqlalchemy import select

from commands.alerts.actions import acknowledge
from commands.home import queue as home
from storage.db import transaction
from storage.models import Alert, OutboxKind, OutboxMessage
from tests.helpers.runtime import make_settings
from tests.home.test_home_tab import OWNER

INGEST_BODY = {"integration": "crm", "summary": "Load failed", "key": "k"}


def home_rows(sessions):
    with sessions() as session:
        return session.scalars(
            select(OutboxMessage.channel)
            .where(OutboxMessage.kind == OutboxKind.HOME.value)
            .order_by(OutboxMessage.id)
        ).all()


def new_alert(sessions, clock, key):
    with transaction(sessions) as session:
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


def test_changes_while_a_publish_waits_ask_for_no_other_and_a_render_lets_them_again(
    database_url, make_runtime, clock
):
    sessions = make_runtime(make_settings(database_url)).deps.sessions
    with transaction(sessions) as session:
        assert home.opened(session, OWNER, clock.now)
        home.rendering(session, OWNER, ["crm"])  # as the worker does: shows crm, mark cleared
    alerts = [new_alert(sessions, clock, f"k{n}") for n in range(3)]
    for alert_id in alerts[:2]:
        with transaction(sessions) as session:
            acknowledge(session, alert_id, "U0OTHER01", clock.now)
    assert home_rows(sessions) == [f"home:{OWNER}", f"home:{OWNER}"]
    with transaction(sessions) as session:
        home.rendering(session, OWNER, ["crm"])
    with transaction(sessions) as session:
        acknowledge(session, alerts[2], "U0OTHER01", clock.now)
    assert len(home_rows(sessions)) == 3


def test_a_change_rolled_back_asks_for_nothing(database_url, make_runtime, clock):
    sessions = make_runtime(make_settings(database_url)).deps.sessions
    with transaction(sessions) as session:
        home.opened(session, OWNER, clock.now)
        home.rendering(session, OWNER, ["crm"])
    alert_id = new_alert(sessions, clock, "k")
    session = sessions()
    with session.begin():
        acknowledge(session, alert_id, "U0OTHER01", clock.now)
        session.rollback()
    # The same session, used again for something else, does not carry the change over.
    with session.begin():
        session.execute(select(Alert.id))
    session.close()
    assert home_rows(sessions) == [f"home:{OWNER}"]  # the opening's only
    with sessions() as session:
        assert session.get(Alert, alert_id).status == "firing"


def test_changes_to_integrations_nobody_shows_ask_for_nothing(database_url, make_runtime, clock):
    sessions = make_runtime(make_settings(database_url)).deps.sessions
    with transaction(sessions) as session:
        home.opened(session, "U0LMSADM1", clock.now)
        home.rendering(session, "U0LMSADM1", ["canvas-enroll", "grades"])
    alert_id = new_alert(sessions, clock, "k")
    with transaction(sessions) as session:
        acknowledge(session, alert_id, "U0OTHER01", clock.now)
        assert home.queue_for_integrations(session, ["crm", "hr-feed"], clock.now) == 0
    assert home_rows(sessions) == ["home:U0LMSADM1"]


def test_rendering_remembers_what_the_home_shows_now(database_url, make_runtime, clock):
    sessions = make_runtime(make_settings(database_url)).deps.sessions
    with transaction(sessions) as session:
        home.opened(session, OWNER, clock.now)
        home.rendering(session, OWNER, ["crm", "grades"])
    with transaction(sessions) as session:
        home.rendering(session, OWNER, ["grades"])  # crm is no longer theirs
    with transaction(sessions) as session:
        assert home.queue_for_integrations(session, ["crm"], clock.now) == 0
        assert home.queue_for_integrations(session, ["grades"], clock.now) == 1
    with transaction(sessions) as session:
        assert home.rendering(session, "U0NEVER01", []) is None
