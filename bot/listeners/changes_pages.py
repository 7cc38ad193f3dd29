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
from bot.listeners.slash_commands import ack_failure
from commands.changes import listing as change_list
from commands.core import router
from commands.core.render.mrkdwn import typed_words
from commands.core.replies import Invocation, Reply

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


def _page(deps: Deps, args: str, user_id: str, channel_id: str | None) -> Reply:
    inv = Invocation(
        text=f"{change_list.VERB} {args}",
        user_id=user_id,
        channel_id=channel_id,
        now=deps.clock(),
        public_url=deps.settings.integ_public_url,
    )
    with deps.sessions() as session:  # only reads: no transaction to commit
        return change_list.changes_reply(session, inv, args, PAGE_ACTIONS)


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    # Registered before the general `/integ` listener: Bolt runs the first that matches.
    @app.command(wire_ids.SLASH_COMMAND, matchers=[_is_changes_command])
    def on_changes_command(ack: Ack, command: dict[str, Any]) -> None:
        args = " ".join(_words(command.get("text") or "")[1:])
        try:
            reply = _page(deps, args, command.get("user_id", ""), command.get("channel_id"))
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
            reply = _page(deps, args, (body.get("user") or {}).get("id", ""), channel)
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
