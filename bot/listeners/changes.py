"""The change log from chat: the message shortcut and its form, the :memo: reaction, and
edits and deletions of logged messages (Events API)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import wire_ids
from bot.deps import Deps
from bot.listeners.actors import actor_of
from commands.changes import from_chat as change_log
from commands.changes.from_chat import SourceMessage
from commands.changes.messages import change_form, read_form
from commands.core import slack_events
from commands.core.render.mrkdwn import escape, mention
from commands.core.render.plain import to_plain
from commands.permissions.check import permit
from commands.permissions.people import Actor, Surface
from commands.permissions.rules import Action
from storage import queries
from storage.db import transaction

log = logging.getLogger(__name__)

# Slack names the 📝 emoji `memo`; `pencil` is its other name.
MEMO = {"memo", "pencil"}


def _source(channel: str, message: dict[str, Any]) -> SourceMessage:
    return SourceMessage(
        channel=channel,
        ts=str(message["ts"]),
        # An app's message has a bot_id and maybe no user: no person to name as author.
        author=message.get("user") if not message.get("bot_id") else None,
        text=str(message.get("text") or ""),
        thread_ts=message.get("thread_ts") or None,
    )


def _permalink(client: WebClient, channel: str, ts: str) -> str | None:
    try:
        return str(client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
    except SlackApiError as exc:
        # The entry is still worth having without its link; the log says why it has none.
        log.warning("no permalink for %s/%s: %s", channel, ts, exc.response.get("error"))
        return None


def _fetch(client: WebClient, channel: str, ts: str) -> dict[str, Any] | None:
    """The message at `ts`, in a thread or not. conversations.replies answers for a thread's
    parent, a reply (with its whole thread, parent first) or a message alone; the window of
    just `ts` keeps a long thread to the parent and that one reply."""
    try:
        found = client.conversations_replies(
            channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=10
        )
    except SlackApiError as exc:
        if exc.response.status_code >= 500 or exc.response.status_code == 429:
            raise  # Slack retries the event, and nothing has been claimed yet
        log.warning("cannot read %s/%s: %s", channel, ts, exc.response.get("error"))
        return None
    for message in found.get("messages") or []:
        if str(message.get("ts")) == ts:
            return dict(message)
    return None


def _tell_privately(client: WebClient, channel: str, user: str, text: str) -> None:
    # A reaction has nowhere to answer but an ephemeral message; at worst it is not seen.
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s why a :memo: was refused: %s", user, exc)


def register(app: App, deps: Deps, notify: Callable[[], None]) -> None:
    def refused(actor: Actor, event_id: str | None = None) -> str | None:
        with transaction(deps.sessions) as session:
            refusal = permit(session, actor, Action.LOG_CHANGE, None, deps.clock(), "change")
            if refusal is not None and event_id:
                # Slack's retry of this event then finds it done: one refusal, told once.
                slack_events.first_delivery(session, event_id, deps.clock())
        return refusal.message if refusal is not None else None

    @app.shortcut(wire_ids.LOG_CHANGE_SHORTCUT)
    def on_log_shortcut(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        channel = str((body.get("channel") or {}).get("id") or "")
        message = body.get("message") or {}
        if not channel or not message.get("ts"):
            return
        refusal = refused(actor_of(deps, body, Surface.SHORTCUT))
        if refusal is not None:
            respond(text=refusal, response_type="ephemeral", replace_original=False)
            return
        source = _source(channel, message)
        with deps.sessions() as session:
            here = list(queries.integrations_in_channel(session, channel))
            view = change_form(
                queries.integrations(session),
                here[0].id if len(here) == 1 else None,
                source.written,
                f"From {mention(source.author) if source.author else 'an app'}'s message of "
                f"{source.happened_at:%Y-%m-%d %H:%M} UTC in <#{escape(channel)}>",
                wire_ids.LOG_CHANGE_VIEW,
                {
                    "channel": channel,
                    "ts": source.ts,
                    "thread_ts": source.thread_ts,
                    "author": source.author,
                },
            )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(wire_ids.LOG_CHANGE_VIEW)
    def on_log_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        values = read_form(view.get("state", {}).get("values", {}))
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict) or not meta.get("channel") or not meta.get("ts"):
            ack(
                response_action="errors",
                errors={"summary": "This form lost track of its message; use the shortcut again."},
            )
            return
        refusal = refused(actor_of(deps, body, Surface.MODAL))
        if refusal is not None:  # checked again: the form may have stayed open a while
            ack(response_action="errors", errors={"summary": to_plain(refusal)[:150]})
            return
        with deps.sessions() as session:
            errors = change_log.check_form(session, values)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        source = SourceMessage(
            channel=str(meta["channel"]),
            ts=str(meta["ts"]),
            author=meta.get("author"),
            text=values.summary,
            thread_ts=meta.get("thread_ts"),
        )
        permalink = _permalink(client, source.channel, source.ts)
        user = str(body.get("user", {}).get("id") or "")
        with transaction(deps.sessions) as session:
            logged = change_log.log_from_form(
                session, values, source, user, permalink, deps.clock()
            )
        if not logged.new:
            ack(
                response_action="errors",
                errors={
                    "integration": f"This message is logged for {values.integration_id} "
                    f"already, as change #{logged.change.id}."
                },
            )
            return
        ack()
        notify()

    @app.event("reaction_added")
    def on_reaction(body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        item = event.get("item") or {}
        event_id = str(body.get("event_id") or "")
        if event.get("reaction") not in MEMO or item.get("type") != "message" or not event_id:
            return
        channel, ts = str(item.get("channel") or ""), str(item.get("ts") or "")
        with deps.sessions() as session:
            # Looked at before any Slack call: most reactions are in no integration's channel.
            if slack_events.seen(session, event_id) or not change_log.reaction_target(
                session, channel
            ):
                return
        user = str(event.get("user") or "")
        refusal = refused(Actor(user, channel, Surface.REACTION, deps.directory), event_id)
        if refusal is not None:
            _tell_privately(client, channel, user, refusal)
            return
        message = _fetch(client, channel, ts)
        if message is None:
            return
        permalink = _permalink(client, channel, ts)
        with transaction(deps.sessions) as session:
            if not slack_events.first_delivery(session, event_id, deps.clock()):
                return
            change_log.log_from_reaction(
                session,
                _source(channel, message),
                str(event.get("user") or ""),
                permalink,
                deps.clock(),
            )
        notify()

    @app.event({"type": "message", "subtype": "message_changed"})
    def on_message_changed(body: dict[str, Any], event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        channel, ts = str(event.get("channel") or ""), str(message.get("ts") or "")
        previous = (event.get("previous_message") or {}).get("text")
        with transaction(deps.sessions) as session:
            if not change_log.is_logged(session, channel, ts):
                return
            if not slack_events.first_delivery(session, str(body.get("event_id")), deps.clock()):
                return
            now = deps.clock()
            if message.get("subtype") == "tombstone":
                # A thread's parent deleted while it has replies stays as a tombstone.
                change_log.message_deleted(session, channel, ts, now)
            else:
                text = str(message.get("text") or "")
                change_log.message_edited(session, channel, ts, text, previous, now)

    @app.event({"type": "message", "subtype": "message_deleted"})
    def on_message_deleted(body: dict[str, Any], event: dict[str, Any]) -> None:
        channel, ts = str(event.get("channel") or ""), str(event.get("deleted_ts") or "")
        with transaction(deps.sessions) as session:
            if not change_log.is_logged(session, channel, ts):
                return
            if not slack_events.first_delivery(session, str(body.get("event_id")), deps.clock()):
                return
            change_log.message_deleted(session, channel, ts, deps.clock())

    # Subscribing to message.channels delivers every message; those not handled above need
    # an answer too, or Bolt replies 404 and Slack counts the deliveries as failed.
    @app.event("message")
    def on_other_message() -> None:
        return None
