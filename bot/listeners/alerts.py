"""The buttons on an alert's message and the resolve modal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import wire_ids
from bot.deps import Deps
from bot.listeners.actors import actor_of
from bot.listeners.home import from_home, surface_of, tell_in_home
from commands.alerts.actions import ROOT_CAUSES, Outcome, acknowledge_as, may_resolve, resolve_as
from commands.alerts.messages import AlertActions, resolve_modal
from commands.alerts.silences import silence_as
from commands.core.render.plain import to_plain
from commands.permissions.people import Surface
from storage.db import transaction
from storage.models import Alert, AlertStatus

log = logging.getLogger(__name__)

SILENCE_FROM_BUTTON = "2h"

# The buttons an alert's message carries, as the outbox renders it.
ALERT_ACTIONS = AlertActions(
    ack=wire_ids.ACK_ACTION,
    resolve=wire_ids.RESOLVE_ACTION,
    silence=wire_ids.SILENCE_ACTION,
    runbook=wire_ids.RUNBOOK_ACTION,
)


def _alert_id(body: dict[str, Any]) -> int | None:
    value = str(body.get("actions", [{}])[0].get("value", ""))
    return int(value) if value.isdigit() else None


def _tell(
    deps: Deps, body: dict[str, Any], respond: Respond, outcome: Outcome, notify: Callable[[], None]
) -> None:
    if from_home(body):
        # A Home has no message to update and no response_url: the answer goes at its top.
        tell_in_home(deps, body, outcome.message, notify)
    elif not outcome.changed:
        # Only the person who clicked sees this; the channel sees the updated message.
        respond(text=outcome.message, response_type="ephemeral", replace_original=False)


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    @app.action(wire_ids.ACK_ACTION)
    def on_ack(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        alert_id = _alert_id(body)
        if alert_id is None:
            return
        actor = actor_of(deps, body, surface_of(body))
        with transaction(deps.sessions) as session:
            outcome = acknowledge_as(session, actor, alert_id, deps.clock())
        notify()
        _tell(deps, body, respond, outcome, notify)

    @app.action(wire_ids.RESOLVE_ACTION)
    def on_resolve(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        alert_id = _alert_id(body)
        if alert_id is None:
            return
        actor = actor_of(deps, body, surface_of(body))
        with transaction(deps.sessions) as session:
            # Refused before the form opens, so nobody fills in a form they cannot submit.
            refused = may_resolve(session, actor, alert_id, deps.clock())
            alert = session.get(Alert, alert_id)
            view = (
                resolve_modal(alert, wire_ids.RESOLVE_VIEW, ROOT_CAUSES)
                if refused is None and alert is not None and alert.status != AlertStatus.RESOLVED
                else None
            )
        if refused is not None:
            _tell(deps, body, respond, refused, notify)
            return
        if view is None:
            done = Outcome(False, f"Alert #{alert_id} is already resolved.")
            _tell(deps, body, respond, done, notify)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(wire_ids.RESOLVE_VIEW)
    def on_resolve_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        selected = values.get("cause", {}).get("cause", {}).get("selected_option") or {}
        cause = selected.get("value", "")
        note = (values.get("note", {}).get("note", {}).get("value") or "").strip()
        errors = {}
        if cause not in ROOT_CAUSES:
            errors["cause"] = "Pick the root cause."
        if not note:
            errors["note"] = "Say what was wrong and what fixed it."
        metadata = str(view.get("private_metadata", ""))
        if not metadata.isdigit():
            errors["note"] = "This form lost track of its alert; resolve it with /integ resolve."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        user = body.get("user", {})
        actor = actor_of(deps, body, Surface.MODAL)
        with transaction(deps.sessions) as session:
            # Checked again: a responder when the form opened may not be one now.
            refused = may_resolve(session, actor, int(metadata), deps.clock())
            if refused is None:
                outcome = resolve_as(
                    session,
                    actor,
                    int(metadata),
                    cause,
                    note,
                    deps.clock(),
                    display_name=user.get("name") or user.get("username"),
                )
        if refused is not None:
            ack(response_action="errors", errors={"note": to_plain(refused.message)[:150]})
            return
        ack()
        notify()
        if not outcome.changed:
            log.info("resolve of #%s from the modal changed nothing: %s", metadata, outcome.message)

    @app.action(wire_ids.SILENCE_ACTION)
    def on_silence(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        alert_id = _alert_id(body)
        if alert_id is None:
            return
        actor = actor_of(deps, body, Surface.BUTTON)
        with transaction(deps.sessions) as session:
            alert = session.get(Alert, alert_id)
            if alert is None or alert.integration_id is None:
                return
            outcome = silence_as(
                session,
                actor,
                alert.integration_id,
                SILENCE_FROM_BUTTON,
                f"from alert #{alert_id}",
                deps.clock(),
            )
        notify()
        respond(text=outcome.message, response_type="ephemeral", replace_original=False)

    @app.action(wire_ids.RUNBOOK_ACTION)
    def on_runbook(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL, and still sends the click
