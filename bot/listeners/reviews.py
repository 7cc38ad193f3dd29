"""The review nudge's buttons, its review modal, and `/integ review i`, which opens it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import wire_ids
from bot.deps import Deps
from bot.listeners.actors import actor_of
from bot.listeners.slash_commands import ack_failure, invocation
from commands.core import router
from commands.core.render.plain import to_plain
from commands.core.replies import Reply
from commands.permissions.people import Surface
from commands.permissions.rules import Action
from commands.reviews import actions as reviews
from commands.reviews.messages import ReviewActions, review_modal
from storage import queries
from storage.db import transaction
from storage.models import ReviewNudge, ReviewNudgeStatus

log = logging.getLogger(__name__)

REVIEW_ACTIONS = ReviewActions(
    done=wire_ids.REVIEW_DONE_ACTION,
    snooze=wire_ids.REVIEW_SNOOZE_ACTION,
    reassign=wire_ids.REVIEW_REASSIGN_ACTION,
)


def _nudge_id(body: dict[str, Any]) -> int | None:
    action = (body.get("actions") or [{}])[0]
    value = str(action.get("value") or "")
    if not value:  # the users select has no value; its block names the nudge
        value = str(action.get("block_id") or "").removeprefix("review-")
    return int(value) if value.isdigit() else None


def _is_review_command(command: dict[str, Any]) -> bool:
    words = (command.get("text") or "").split()
    return len(words) >= 1 and words[0].lower() == "review"


def _private(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    @app.action(wire_ids.REVIEW_DONE_ACTION)
    def on_done(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        nudge_id = _nudge_id(body)
        if nudge_id is None:
            return
        actor = actor_of(deps, body, Surface.BUTTON)
        refused = None
        with transaction(deps.sessions) as session:
            nudge = session.get(ReviewNudge, nudge_id)
            integ = queries.integration(session, nudge.integration_id) if nudge else None
            if nudge is None or integ is None or nudge.status == ReviewNudgeStatus.DONE:
                view = None
            else:
                refused = reviews.may_review(session, actor, integ.id, deps.clock(), Action.REVIEW)
                view = review_modal(integ, wire_ids.REVIEW_VIEW, nudge.id)
        if refused is not None:
            _private(respond, refused.message)
            return
        if view is None:
            _private(respond, "This review is done already.")
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(wire_ids.REVIEW_SNOOZE_ACTION)
    def on_snooze(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        nudge_id = _nudge_id(body)
        if nudge_id is None:
            return
        actor = actor_of(deps, body, Surface.BUTTON)
        with transaction(deps.sessions) as session:
            outcome = reviews.snooze_as(session, actor, nudge_id, deps.clock(), REVIEW_ACTIONS)
        notify()
        _private(respond, outcome.message)

    @app.action(wire_ids.REVIEW_REASSIGN_ACTION)
    def on_reassign(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        nudge_id = _nudge_id(body)
        assignee = str((body.get("actions") or [{}])[0].get("selected_user") or "")
        if nudge_id is None or not assignee:
            return
        thread_ts = (body.get("container") or {}).get("message_ts")
        actor = actor_of(deps, body, Surface.BUTTON)
        with transaction(deps.sessions) as session:
            outcome = reviews.reassign_as(
                session,
                actor,
                nudge_id,
                assignee,
                deps.clock(),
                REVIEW_ACTIONS,
                thread_ts=str(thread_ts) if thread_ts else None,
            )
        notify()
        _private(respond, outcome.message)

    @app.view(wire_ids.REVIEW_VIEW)
    def on_review_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        answers, errors = reviews.parse_answers(view.get("state", {}).get("values", {}))
        values = view.get("state", {}).get("values", {})
        notes = (values.get("notes", {}).get("notes", {}).get("value") or "").strip()
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        integration_id = metadata.get("integration") if isinstance(metadata, dict) else None
        if not isinstance(integration_id, str):
            errors["notes"] = "This form lost track of its integration; use /integ review."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        actor = actor_of(deps, body, Surface.MODAL)
        now = deps.clock()
        with transaction(deps.sessions) as session:
            # Checked again on submit: a responder when the form opened may not be one now.
            refused = reviews.may_review(session, actor, str(integration_id), now, Action.REVIEW)
            if refused is None:
                outcome = reviews.record_review(
                    session,
                    str(integration_id),
                    actor.user_id,
                    answers,
                    notes,
                    now,
                    REVIEW_ACTIONS,
                )
        if refused is not None:
            ack(response_action="errors", errors={"notes": to_plain(refused.message)[:150]})
            return
        ack()
        notify()
        log.info("review of %s submitted: %s", integration_id, outcome.message)

    # Registered before the general `/integ` listener: Bolt runs the first that matches, and
    # only this one can open a modal with the command's trigger_id.
    @app.command(wire_ids.SLASH_COMMAND, matchers=[_is_review_command])
    def on_review_command(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        words = (command.get("text") or "").split()
        inv = invocation(
            deps, command.get("text") or "", command.get("user_id", ""), command.get("channel_id")
        )
        try:
            with transaction(deps.sessions) as session:
                form = router.gate(session, inv, "review") or reviews.review_form(
                    session, inv, words[1] if len(words) > 1 else "", wire_ids.REVIEW_VIEW
                )
        except Exception:
            ack_failure(ack, command)
            return
        if isinstance(form, Reply):
            ack(text=form.text, blocks=form.blocks, response_type="ephemeral")
            return
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=form)
