"""The Home tab: publish it when it is opened, and its own review button and system menu.

Its alert buttons are the alert messages' (bot/listeners/alerts.py), which answer a click in
the Home through `tell_in_home`: a Home has no response_url, so the answer is shown at its
top and the Home is published again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import wire_ids
from bot.deps import Deps
from bot.listeners.actors import actor_of
from commands.home import queue as home
from commands.home.view import ALL_SYSTEMS, HomeActions
from commands.permissions.check import permit
from commands.permissions.people import Surface
from commands.permissions.rules import Action
from commands.reviews import actions as reviews
from commands.reviews.messages import review_modal
from commands.reviews.nudges import waiting_nudge
from storage import queries
from storage.db import transaction

log = logging.getLogger(__name__)

HOME_ACTIONS = HomeActions(
    ack=wire_ids.ACK_ACTION,
    resolve=wire_ids.RESOLVE_ACTION,
    review=wire_ids.HOME_REVIEW_ACTION,
    system=wire_ids.HOME_SYSTEM_ACTION,
)


def from_home(body: dict[str, Any]) -> bool:
    """Whether the click came from a Home tab rather than a message."""
    container = body.get("container") or {}
    return container.get("type") == "view" and (body.get("view") or {}).get("type") == "home"


def surface_of(body: dict[str, Any]) -> Surface:
    return Surface.HOME if from_home(body) else Surface.BUTTON


def tell_in_home(
    deps: Deps, body: dict[str, Any], message: str, notify: Callable[[], None]
) -> None:
    """Answer a click in the Home at its top, and publish it again."""
    user = str((body.get("user") or {}).get("id") or "")
    if not user:
        return
    with transaction(deps.sessions) as session:
        home.tell(session, user, message, deps.clock())
    notify()


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    @app.event("app_home_opened")
    def on_opened(event: dict[str, Any]) -> None:
        # The Messages tab sends this event too; only the Home tab shows a view.
        user = str(event.get("user") or "")
        if event.get("tab") != "home" or not user:
            return
        with transaction(deps.sessions) as session:
            home.opened(session, user, deps.clock())
        notify()

    @app.action(wire_ids.HOME_REVIEW_ACTION)
    def on_review(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        integration_id = str((body.get("actions") or [{}])[0].get("value") or "")
        actor = actor_of(deps, body, Surface.HOME)
        with transaction(deps.sessions) as session:
            refused = reviews.may_review(
                session, actor, integration_id, deps.clock(), Action.REVIEW
            )
            integ = queries.integration(session, integration_id)
            view = (
                review_modal(integ, wire_ids.REVIEW_VIEW, waiting_nudge(session, integ.id))
                if refused is None and integ is not None
                else None
            )
        if view is None:
            message = refused.message if refused is not None else "That integration is gone."
            tell_in_home(deps, body, message, notify)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(wire_ids.HOME_SYSTEM_ACTION)
    def on_system(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        picked = str((action.get("selected_option") or {}).get("value") or ALL_SYSTEMS)
        actor = actor_of(deps, body, Surface.HOME)
        if not actor.user_id:
            return
        with transaction(deps.sessions) as session:
            # What the overview shows is what `/integ status` shows anyone; the choice is
            # the clicker's own, kept on their Home only.
            refused = permit(session, actor, Action.STATUS, None, deps.clock(), "home menu")
            if refused is not None:
                home.tell(session, actor.user_id, refused.message, deps.clock())
            else:
                known = picked != ALL_SYSTEMS and queries.system(session, picked) is not None
                home.narrow(session, actor.user_id, picked if known else None, deps.clock())
        notify()
