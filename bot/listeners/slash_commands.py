"""`/integ`: acknowledge with the answer, inside Slack's 3 seconds."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot import metrics, wire_ids
from bot.deps import Deps
from commands.core import router
from commands.core.replies import Invocation, Reply
from commands.permissions.people import Directory, Surface
from storage.db import transaction

log = logging.getLogger(__name__)


def invocation(
    deps: Deps,
    text: str,
    user_id: str,
    channel_id: str | None,
    *,
    directory: Directory | None = None,
    surface: Surface = Surface.SLASH,
) -> Invocation:
    return Invocation(
        text=text,
        user_id=user_id,
        channel_id=channel_id,
        now=deps.clock(),
        public_url=deps.settings.integ_public_url,
        mail_domain=deps.settings.integ_mail_domain,
        directory=directory or deps.directory,
        surface=surface,
    )


def answer(
    deps: Deps,
    text: str,
    user_id: str,
    channel_id: str | None,
    *,
    directory: Directory | None = None,
    surface: Surface = Surface.SLASH,
) -> Reply:
    """Run one `/integ` line in its own transaction; the shell uses this too."""
    inv = invocation(deps, text, user_id, channel_id, directory=directory, surface=surface)
    with transaction(deps.sessions) as session:
        reply = router.handle(session, inv)
    verb = (text.split() or ["help"])[0].lower()[:20]
    metrics.COMMANDS.labels(verb if verb in router.HANDLERS else "other").inc()
    return reply


def ack_failure(ack: Ack, command: dict[str, Any]) -> None:
    """Answer a command that failed on our side: the person still gets an answer in time,
    with a reference to the details in the log."""
    ref = uuid.uuid4().hex[:8]
    log.exception("/integ %r failed (ref %s)", command.get("text"), ref)
    ack(
        text=f":warning: Something went wrong on my side (ref `{ref}`); it is logged.",
        response_type="ephemeral",
    )


def register(app: App, deps: Deps, notify_outbox: Callable[[], None]) -> None:
    @app.command(wire_ids.SLASH_COMMAND)
    def integ_command(ack: Ack, command: dict[str, Any]) -> None:
        try:
            reply = answer(
                deps,
                command.get("text") or "",
                command.get("user_id", ""),
                command.get("channel_id"),
            )
        except Exception:
            ack_failure(ack, command)
            return
        notify_outbox()  # ack, resolve and the like queue updates of alert messages
        ack(
            text=reply.text,
            blocks=reply.blocks,
            response_type="ephemeral" if reply.ephemeral else "in_channel",
        )
