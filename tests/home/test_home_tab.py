"""The Home tab end to end: Slack's app_home_opened and a click in the Home, sent signed as
Slack sends them, and the views the bot publishes to the fake Web API, which refuses any
view Slack would refuse."""

import json
import threading
from datetime import timedelta

from sqlalchemy import func, select

from bot import wire_ids
from commands.alerts.actions import acknowledge
from commands.home import queue as home
from storage.db import transaction
from storage.models import Alert, AuditEntry, HomeView, OutboxKind, OutboxMessage
from tests.helpers.runtime import WEBHOOK_TOKEN
from tests.helpers.slack_signing import event_body, interactive_body, load_payload, signed_headers

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
OWNER = "U0OWNER01"  # owns crm in examples/catalog.yml


def open_home(server, user=OWNER):
    payload = load_payload("event_app_home_opened_no_view")
    payload["event"]["user"] = user
    body = event_body(payload)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text


def click_in_home(server, action_id, value, user=OWNER, selected=None):
    payload = load_payload("block_actions_home")
    payload["user"]["id"] = user
    action = {"action_id": action_id, "block_id": "home", "type": "button", "value": value}
    if selected is not None:
        action = {
            "action_id": action_id,
            "block_id": "home",
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": selected},
        }
    payload["actions"] = [action]
    body = interactive_body(payload)
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text


def fire(server, *events):
    with server.client() as client:
        response = client.post("/hooks/generic", content=json.dumps(list(events)), headers=AUTH)
    assert response.status_code == 202, response.text


def alert(key, integration="crm", summary=None, severity="critical"):
    return {
        "integration": integration,
        "status": "firing",
        "summary": summary or f"Nightly load failed ({key})",
        "key": key,
        "severity": severity,
    }


def deliver(server, rounds=4):
    """Send what is queued, letting the injected clock run past each Home's pace."""
    clock = server.runtime.deps.clock
    for _ in range(rounds):
        server.runtime.outbox.run_once()
        clock.now += timedelta(seconds=2.1)


def publishes(fake_slack, user=OWNER):
    return [c for c in fake_slack.calls_to("views.publish") if c.args.get("user_id") == user]


def view_of(call):
    view = call.args["view"]
    return json.loads(view) if isinstance(view, str) else view


def text_of(call):
    return json.dumps(view_of(call)["blocks"])


def buttons(view):
    found = []
    for block in view["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        accessory = block.get("accessory")
        found += [e for e in [*elements, accessory] if e and e.get("type") == "button"]
    return found


def home_rows(server):
    with server.runtime.deps.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == OutboxKind.HOME.value)
        )


def test_opening_the_home_publishes_the_persons_integrations_and_what_needs_them(
    slack_server, fake_slack
):
    fire(slack_server, alert("nightly", summary="Nightly load failed: 12 rows rejected"))
    open_home(slack_server)
    deliver(slack_server)
    [call] = publishes(fake_slack)
    assert call.ok, call.response
    view = view_of(call)
    assert view["type"] == "home"
    text = text_of(call)
    assert "Slate to Banner admissions" in text and "owner" in text
    assert "Nightly load failed: 12 rows rejected" in text
    assert "<#C0INTEG01>" in text and "https://wiki.example.edu/integ/crm" in text
    # Its integration only: canvas-enroll is someone else's and is only counted below.
    assert "Banner to Canvas enrollments" not in text
    assert "9 integrations" in text
    labels = {b["text"]["text"] for b in buttons(view)}
    assert {"Acknowledge", "Resolve", "Review"} <= labels
    assert fake_slack.homes[OWNER]["blocks"] == view["blocks"]


def test_an_alert_for_one_of_theirs_publishes_the_home_again(slack_server, fake_slack):
    open_home(slack_server)
    deliver(slack_server)
    assert "What needs you" in text_of(publishes(fake_slack)[-1])
    fire(slack_server, alert("late-file", summary="File did not arrive"))
    deliver(slack_server)
    assert len(publishes(fake_slack)) == 2
    assert "File did not arrive" in text_of(publishes(fake_slack)[-1])


def test_an_alert_for_someone_elses_integration_leaves_the_home_alone(slack_server, fake_slack):
    open_home(slack_server)
    deliver(slack_server)
    fire(slack_server, alert("sis", integration="canvas-enroll"))
    deliver(slack_server)
    assert len(publishes(fake_slack)) == 1


def test_a_storm_of_a_thousand_events_publishes_the_home_a_few_times_not_a_thousand(
    slack_server, fake_slack
):
    open_home(slack_server)
    deliver(slack_server)
    for batch in range(10):
        fire(slack_server, *(alert(f"row-{batch}-{n}") for n in range(100)))
    # One publish waits for the whole storm: each change found it already queued.
    assert home_rows(slack_server) == 2
    deliver(slack_server, rounds=3)
    calls = publishes(fake_slack)
    assert len(calls) == 2
    assert "985 more open alerts" in text_of(calls[-1])


def test_someone_who_never_opened_the_home_costs_nothing(slack_server, fake_slack):
    fire(slack_server, *(alert(f"k{n}") for n in range(20)))
    deliver(slack_server)
    assert home_rows(slack_server) == 0
    assert fake_slack.calls_to("views.publish") == []


def test_acknowledge_in_the_home_acts_and_publishes_the_home_again(slack_server, fake_slack):
    fire(slack_server, alert("nightly"))
    open_home(slack_server)
    deliver(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        alert_id = session.scalars(select(Alert.id)).one()
    click_in_home(slack_server, wire_ids.ACK_ACTION, str(alert_id))
    deliver(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        acked = session.get(Alert, alert_id)
        assert (acked.status, acked.acknowledged_by) == ("acknowledged", OWNER)
        surfaces = session.scalars(select(AuditEntry.surface)).all()
    last = publishes(fake_slack)[-1]
    assert len(publishes(fake_slack)) == 2
    text = text_of(last)
    assert f"You acknowledged alert #{alert_id}." in text
    assert f"acknowledged by <@{OWNER}>" in text
    # Acknowledged: only Resolve is left on it.
    labels = [b["text"]["text"] for b in buttons(view_of(last)) if b["value"] == str(alert_id)]
    assert labels == ["Resolve"]
    assert surfaces == []  # an allowed acknowledge is not an audited action
    # No response_url in a Home: nothing was sent to one.
    assert not [c for c in fake_slack.calls if c.method.startswith("response:")]


def test_a_refused_click_in_the_home_is_told_at_its_top(slack_server, fake_slack):
    fire(slack_server, alert("nightly"))
    open_home(slack_server, user="U0LMSADM1")
    deliver(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        alert_id = session.scalars(select(Alert.id)).one()
    # Not a responder of crm: the Resolve button (from an old Home, say) is refused.
    click_in_home(slack_server, wire_ids.RESOLVE_ACTION, str(alert_id), user="U0LMSADM1")
    deliver(slack_server)
    assert fake_slack.calls_to("views.open") == []
    text = text_of(publishes(fake_slack, "U0LMSADM1")[-1])
    assert "Only the responders of" in text
    with slack_server.runtime.deps.sessions() as session:
        assert session.get(Alert, alert_id).status == "firing"
        [refusal] = session.scalars(select(AuditEntry)).all()
        assert (refusal.allowed, refusal.surface) == (False, "home")


def test_resolve_in_the_home_opens_the_root_cause_form(slack_server, fake_slack):
    fire(slack_server, alert("nightly"))
    deliver(slack_server)
    with slack_server.runtime.deps.sessions() as session:
        alert_id = session.scalars(select(Alert.id)).one()
    click_in_home(slack_server, wire_ids.RESOLVE_ACTION, str(alert_id))
    [opened] = fake_slack.calls_to("views.open")
    assert opened.ok, opened.response
    assert view_of(opened)["callback_id"] == wire_ids.RESOLVE_VIEW


def test_the_review_button_in_the_home_opens_the_review_form(slack_server, fake_slack):
    click_in_home(slack_server, wire_ids.HOME_REVIEW_ACTION, "crm")
    [opened] = fake_slack.calls_to("views.open")
    assert opened.ok, opened.response
    view = view_of(opened)
    assert view["callback_id"] == wire_ids.REVIEW_VIEW
    assert json.loads(view["private_metadata"])["integration"] == "crm"


def test_a_guest_sees_the_state_of_their_integrations_and_no_buttons(slack_server, fake_slack):
    fake_slack.guest(OWNER)
    fire(slack_server, alert("nightly", summary="Secret failure detail"))
    open_home(slack_server)
    deliver(slack_server)
    [call] = publishes(fake_slack)
    assert call.ok, call.response
    view = view_of(call)
    assert buttons(view) == []
    assert not [b for b in view["blocks"] if b["type"] == "actions"]
    text = text_of(call)
    assert "Slate to Banner admissions" in text and "1 open alert" in text
    assert "Secret failure detail" not in text
    assert "wiki.example.edu" not in text  # `/integ runbook` is refused to guests too
    assert "for full members" in text
    # The system menu is theirs to use: what it lists is what `/integ status` tells anyone.
    click_in_home(slack_server, wire_ids.HOME_SYSTEM_ACTION, "", selected="canvas")
    deliver(slack_server)
    narrowed = publishes(fake_slack)[-1]
    assert "Using Canvas" in text_of(narrowed) and buttons(view_of(narrowed)) == []


def test_the_system_menu_narrows_the_overview_to_one_system(slack_server, fake_slack):
    open_home(slack_server)
    deliver(slack_server)
    click_in_home(slack_server, wire_ids.HOME_SYSTEM_ACTION, "", selected="canvas")
    deliver(slack_server)
    text = text_of(publishes(fake_slack)[-1])
    assert "Using Canvas" in text and "`canvas-enroll`" in text and "`grades`" in text
    assert "`hr-feed`" not in text
    menu = next(
        b["accessory"]
        for b in view_of(publishes(fake_slack)[-1])["blocks"]
        if b.get("accessory", {}).get("type") == "static_select"
    )
    assert menu["initial_option"]["value"] == "canvas"
    # A system that is not in the catalog (a stale menu) shows them all again.
    click_in_home(slack_server, wire_ids.HOME_SYSTEM_ACTION, "", selected="gone")
    deliver(slack_server)
    assert "Using" not in text_of(publishes(fake_slack)[-1])
    with slack_server.runtime.deps.sessions() as session:
        assert session.get(HomeView, OWNER).system_filter is None


def test_a_rate_limited_publish_is_sent_again_after_retry_after(slack_server, fake_slack):
    fake_slack.fail_next("views.publish", status=429, retry_after=3)
    open_home(slack_server)
    deliver(slack_server, rounds=4)
    calls = publishes(fake_slack)
    assert [c.status for c in calls] == [429, 200]


def test_a_review_click_in_the_home_by_someone_not_answering_for_it_is_refused_there(
    slack_server, fake_slack
):
    # A Home shows Review only for one's own; an old Home or a forged click may still ask.
    click_in_home(slack_server, wire_ids.HOME_REVIEW_ACTION, "crm", user="U0LMSADM1")
    deliver(slack_server)
    assert fake_slack.calls_to("views.open") == []
    text = text_of(publishes(fake_slack, "U0LMSADM1")[-1])
    assert "Only the responders of *Slate to Banner admissions*" in text
    with slack_server.runtime.deps.sessions() as session:
        [refusal] = session.scalars(select(AuditEntry)).all()
        assert (refusal.actor, refusal.allowed, refusal.surface) == ("U0LMSADM1", False, "home")


def test_a_claim_waits_for_a_change_that_locked_the_home_so_its_render_shows_the_change(
    slack_server, fake_slack
):
    runtime = slack_server.runtime
    fire(slack_server, alert("nightly"))
    open_home(slack_server)
    deliver(slack_server)
    with runtime.deps.sessions() as session:
        alert_id = session.scalars(select(Alert.id)).one()
    with transaction(runtime.deps.sessions) as session:
        home.integrations_changed(session, ["crm"], runtime.deps.clock.now)  # a publish waits
    session = runtime.deps.sessions()
    session.begin()
    acknowledge(session, alert_id, "U0OTHER01", runtime.deps.clock.now)
    # What committing does first: lock the Homes it asks for (this one's publish is waiting,
    # so it asks for nothing more).
    assert home._queue_for(session, [OWNER], runtime.deps.clock.now) == 0
    worker = threading.Thread(target=runtime.outbox.run_once)
    worker.start()
    worker.join(0.5)
    assert worker.is_alive()  # its claim waits for this transaction...
    session.commit()
    session.close()
    worker.join(10)
    # ...so the Home it renders shows the acknowledgement.
    assert "acknowledged by <@U0OTHER01>" in text_of(publishes(fake_slack)[-1])
