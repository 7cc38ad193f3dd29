"""`/integ changes` with its Newer and Older buttons, and the clicks on them.

The general `/integ` listener answers through the router, which knows no wire ids (they
belong to bot/), so its answer can carry no buttons. This listener takes `/integ changes`
first and passes the buttons' ids in; the shell keeps the router's answer, which names the
commands for the other pages instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import metrics, wire_ids
from bot.deps import Deps
from bot.listeners.slash_commands import ack_failure, invocation
from commands.changes import listing as change_list
from commands.core import router
from commands.core.render.mrkdwn import typed_words
from commands.core.replies import Reply
from commands.permissions.people import Surface
from storage.db import transaction

log = logging.getLogger(__name__)

PAGE_ACTIONS = change_list.PageActions(
    newer=wire_ids.CHANGES_PAGE_NEWER_ACTION,
    older=wire_ids.CHANGES_PAGE_ACTION,
)


def _words(text: str) -> list[str]:
    # As the router reads a command.
    return typed_words(text).split()


def _is_changes_command(command: dict[str, Any]) -> bool:
    text = command.get("text") or ""
    if len(text) > router.MAX_TEXT:  # the router refuses it, saying why
        return False
    words = _words(text)
    return bool(words) and words[0].lower().lstrip("/") == change_list.VERB


def _page(deps: Deps, args: str, user_id: str, channel_id: str | None, surface: Surface) -> Reply:
    inv = invocation(deps, f"{change_list.VERB} {args}", user_id, channel_id, surface=surface)
    # A transaction, though it only reads the log: a refusal is recorded.
    with transaction(deps.sessions) as session:
        refused = router.gate(session, inv, change_list.VERB)
        if refused is not None:
            return refused
        return change_list.changes_reply(session, inv, args, PAGE_ACTIONS)


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    # Registered before the general `/integ` listener: Bolt runs the first that matches.
    @app.command(wire_ids.SLASH_COMMAND, matchers=[_is_changes_command])
    def on_changes_command(ack: Ack, command: dict[str, Any]) -> None:
        args = " ".join(_words(command.get("text") or "")[1:])
        try:
            reply = _page(
                deps, args, command.get("user_id", ""), command.get("channel_id"), Surface.SLASH
            )
        except Exception:
            ack_failure(ack, command)
            return
        metrics.COMMANDS.labels(change_list.VERB).inc()
        ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    def on_page(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        args = str(action.get("value") or "")[:200]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        try:
            user = (body.get("user") or {}).get("id", "")
            reply = _page(deps, args, user, channel, Surface.BUTTON)
        except Exception:
            log.exception("changes page %r failed", args)
            respond(
                text=":warning: Something went wrong on my side showing that page; it is logged.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        # The list is only ever shown to the person who asked, so the page replaces it.
        respond(
            text=reply.text,
            blocks=reply.blocks,
            response_type="ephemeral",
            replace_original=True,
        )

    app.action(wire_ids.CHANGES_PAGE_ACTION)(on_page)
    app.action(wire_ids.CHANGES_PAGE_NEWER_ACTION)(on_page)
