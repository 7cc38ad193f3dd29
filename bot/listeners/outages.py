"""The Acknowledge all and Resolve all buttons on a system outage's messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import wire_ids
from bot.deps import Deps
from bot.listeners.actors import actor_of
from commands.outages.actions import acknowledge_all, resolve_all
from commands.permissions.people import Surface
from storage.db import transaction


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    for action_id, act in (
        (wire_ids.OUTAGE_ACK_ACTION, acknowledge_all),
        (wire_ids.OUTAGE_RESOLVE_ACTION, resolve_all),
    ):
        app.action(action_id)(_handler(deps, notify, act))


def _handler(deps: Deps, notify: Callable[[], None], act: Any) -> Callable[..., None]:
    def on_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        value = str(body.get("actions", [{}])[0].get("value", ""))
        if not value.isdigit():
            return
        actor = actor_of(deps, body, Surface.BUTTON)
        with transaction(deps.sessions) as session:
            outcome = act(session, actor, int(value), deps.clock())
        notify()
        # Only the person who clicked reads this; the channel sees the message change.
        respond(text=outcome.message, response_type="ephemeral", replace_original=False)

    return on_click
