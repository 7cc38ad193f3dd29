"""Logging changes from chat: `/integ log`, the message shortcut's form and the
:memo: reaction all end in `log_change`, and edits and deletions of a logged message follow it.

A message is logged once per integration: the unique (integration, channel, ts) decides, so
two people reacting at once, or Slack retrying an event, store one entry. What was written is
stored as written; it is escaped where it is shown (commands/changes/messages.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commands.catalog.impact import impact_lines
from commands.catalog.lookups import resolve_integration, usage
from commands.changes import entries as changes
from commands.changes.freezes import active_freeze
from commands.changes.messages import FormInput, confirmation, form_errors, freeze_warning
from commands.core import slack_events
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, from_slack, typed_words
from commands.core.replies import Invocation, Reply
from commands.outbox import queue as outbox
from storage import queries
from storage.models import Change, ChangeCategory, ChangeSource, Integration

SUMMARY_LIMIT = 3000  # what the form accepts; `/integ log` is held to the same
# Categories a person may choose; "silence" is written by the bot only.
CHOOSABLE: tuple[str, ...] = tuple(c.value for c in ChangeCategory if c != ChangeCategory.SILENCE)
# Words people type for a category at the start of `/integ log i …`.
CATEGORY_WORDS: dict[str, str] = {
    **{c: c for c in CHOOSABLE},
    "mapping": ChangeCategory.FIELD_MAPPING,
    "field": ChangeCategory.FIELD_MAPPING,
    "fields": ChangeCategory.FIELD_MAPPING,
    "vendor": ChangeCategory.VENDOR_UPDATE,
    "upgrade": ChangeCategory.VENDOR_UPDATE,
    "credential": ChangeCategory.CREDENTIALS,
    "password": ChangeCategory.CREDENTIALS,
    "cert": ChangeCategory.CREDENTIALS,
}
_LOG_ARGS = re.compile(r"\s*(\S+)\s*(.*)", re.DOTALL)


@dataclass(frozen=True)
class Logged:
    change: Change
    new: bool  # False when the message was logged for this integration already


@dataclass(frozen=True)
class SourceMessage:
    """The Slack message an entry is made from."""

    channel: str
    ts: str
    author: str | None
    text: str  # as Slack sends it (mrkdwn with its escapes)
    thread_ts: str | None = None

    @property
    def happened_at(self) -> datetime:
        return ts_time(self.ts)

    @property
    def written(self) -> str:
        """The text as the person wrote it."""
        return written(self.text)


_LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^<>|]*)\|([^<>]*)>")


def written(text: str) -> str:
    """Text as Slack sends it, back to what the person wrote. A link Slack shows by a label
    keeps its address too (`ABC-1 (https://jira/ABC-1)`): a change log that lost the ticket's
    URL would have lost the point of it."""

    def label_and_url(match: re.Match[str]) -> str:
        url, label = match.group(1), match.group(2)
        return label if label == url.removeprefix("mailto:") else f"{label} ({url})"

    return from_slack(_LABELLED_LINK.sub(label_and_url, text))


def ts_time(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


def log_change(
    session: Session,
    integ: Integration,
    *,
    category: str,
    summary: str,
    author: str | None,
    logged_by: str | None,
    source: str,
    now: datetime,
    message: SourceMessage | None = None,
    permalink: str | None = None,
    ticket_url: str | None = None,
    confirm_in: tuple[str, str | None] | None = None,
) -> Logged:
    """Store one entry and queue its confirmation (to `confirm_in`: channel and thread, or
    the integration's channel). A message already logged for this integration is returned
    as it is, with nothing queued."""
    if message is not None:
        existing = logged_entry(session, integ.id, message.channel, message.ts)
        if existing is not None:
            return Logged(existing, new=False)
    try:
        # A savepoint, so that losing the race for the unique message leaves the caller's
        # transaction usable: the other writer's entry is the answer.
        with session.begin_nested():
            change = changes.record(
                session,
                integration_id=integ.id,
                category=category,
                summary=summary,
                author=author,
                logged_by=logged_by,
                source=source,
                happened_at=message.happened_at if message is not None else now,
                logged_at=now,
                permalink=permalink,
                ticket_url=ticket_url,
                message_channel=message.channel if message is not None else None,
                message_ts=message.ts if message is not None else None,
            )
    except IntegrityError:
        assert message is not None  # only the message's unique constraint can collide
        existing = logged_entry(session, integ.id, message.channel, message.ts)
        assert existing is not None
        return Logged(existing, new=False)
    freeze = active_freeze(session, now)
    if freeze is not None:
        # Still logged: a freeze is a policy for people, and the record must be complete.
        change.freeze = freeze.name
    channel, thread_ts = confirm_in or (integ.channel, None)
    reply = confirmation(change, integ, impact_lines(session, integ.id), freeze)
    outbox.queue_message(
        session, channel=channel, now=now, text=reply.text, blocks=reply.blocks, thread_ts=thread_ts
    )
    return Logged(change, new=True)


def logged_entry(session: Session, integration_id: str, channel: str, ts: str) -> Change | None:
    return session.scalars(
        select(Change).where(
            Change.integration_id == integration_id,
            Change.message_channel == channel,
            Change.message_ts == ts,
        )
    ).first()


# -- `/integ log i text` ------------------------------------------------------------------------


def log_reply(session: Session, inv: Invocation, raw_args: str) -> Reply:
    """`/integ log crm [category] what changed`. `raw_args` is what followed the verb as
    Slack sent it, so the text keeps its lines and characters."""
    match = _LOG_ARGS.fullmatch(raw_args)
    if match is None or not match.group(2).strip():
        return usage("log")
    found = resolve_integration(session, inv, typed_words(match.group(1)), "log")
    if isinstance(found, Reply):
        return found
    text = written(match.group(2)).strip()
    first, _, rest = text.partition(" ")
    category = CATEGORY_WORDS.get(first.rstrip(":").lower())
    if category is not None and rest.strip():
        text = rest.strip()
    else:
        category = ChangeCategory.OTHER.value
    if len(text) > SUMMARY_LIMIT:
        message = (
            f"That change is {len(text):,} characters; the log takes up to {SUMMARY_LIMIT:,}. "
            "Nothing was logged: shorten it, or put the detail in a ticket and link it."
        )
        return Reply(text=message, blocks=[bk.section(message)])
    logged = log_change(
        session,
        found,
        category=category,
        summary=text,
        author=inv.user_id,
        logged_by=inv.user_id,
        source=ChangeSource.COMMAND.value,
        now=inv.now,
    )
    where = "here" if inv.channel_id == found.channel else f"in <#{found.channel}>"
    lines = [
        f":memo: Logged change #{logged.change.id} for `{escape(found.id)}` "
        f"({escape(category)}); posted {where}."
    ]
    freeze = active_freeze(session, inv.now)
    if freeze is not None:
        lines.append(freeze_warning(freeze))
    return Reply(text=lines[0], blocks=bk.sections_for_lines(lines))


# -- the message shortcut's form ----------------------------------------------------------------


def check_form(session: Session, values: FormInput) -> dict[str, str]:
    """What is wrong with a submitted form, by block id; empty when it can be stored."""
    return form_errors(
        values,
        known=queries.integration(session, values.integration_id) is not None,
        categories=CHOOSABLE,
        limit=SUMMARY_LIMIT,
    )


def log_from_form(
    session: Session,
    values: FormInput,
    message: SourceMessage,
    logged_by: str,
    permalink: str | None,
    now: datetime,
) -> Logged:
    integ = queries.integration(session, values.integration_id)
    assert integ is not None  # check_form said so
    return log_change(
        session,
        integ,
        category=values.category,
        summary=values.summary,
        author=message.author,
        logged_by=logged_by,
        source=ChangeSource.SHORTCUT.value,
        now=now,
        message=message,
        permalink=permalink,
        ticket_url=values.ticket_url,
        confirm_in=_confirm_in(integ, message),
    )


def _confirm_in(integ: Integration, message: SourceMessage) -> tuple[str, str | None]:
    """In the message's thread when it is in the integration's channel; elsewhere (another
    channel, a private one the bot is not in, a DM) in the integration's channel, where the
    people who care about it are and where the bot can always post."""
    if message.channel == integ.channel:
        return message.channel, message.thread_ts or message.ts
    return integ.channel, None


# -- the :memo: reaction ----------------------------------------------------------------------


def reaction_target(session: Session, channel: str) -> list[Integration]:
    """The integrations a :memo: in `channel` could log for."""
    return list(queries.integrations_in_channel(session, channel))


def log_from_reaction(
    session: Session,
    message: SourceMessage,
    reacted_by: str,
    permalink: str | None,
    now: datetime,
) -> Logged | None:
    """Log a message someone reacted to with :memo:, for the integration of its channel.

    A channel that belongs to no integration is not a change log: nothing happens. One
    that belongs to several cannot say which was meant: the thread is told, once, to use
    the shortcut instead."""
    here = reaction_target(session, message.channel)
    if not here:
        return None
    thread = message.thread_ts or message.ts
    if len(here) > 1:
        # Once per message (for a day, as long as deliveries are remembered), however many
        # people react: the note is claimed like an event.
        if not slack_events.first_delivery(session, f"note:{message.channel}:{message.ts}", now):
            return None
        names = ", ".join(f"`{escape(i.id)}`" for i in here)
        note = (
            f":memo: This channel belongs to {names}, so a reaction cannot say which one "
            "changed. Use the message's *Log integration change* shortcut to choose."
        )
        outbox.queue_message(session, channel=message.channel, now=now, text=note, thread_ts=thread)
        return None
    [integ] = here
    return log_change(
        session,
        integ,
        category=ChangeCategory.OTHER.value,
        summary=message.written,
        author=message.author,
        logged_by=reacted_by,
        source=ChangeSource.REACTION.value,
        now=now,
        message=message,
        permalink=permalink,
        confirm_in=_confirm_in(integ, message),
    )


# -- edits and deletions of a logged message --------------------------------------------------


def is_logged(session: Session, channel: str, ts: str) -> bool:
    """Whether any entry was made from this message: most edits and deletions are not."""
    found = session.scalar(
        select(Change.id).where(Change.message_channel == channel, Change.message_ts == ts).limit(1)
    )
    return found is not None


def message_edited(
    session: Session, channel: str, ts: str, text: str, previous: str | None, now: datetime
) -> int:
    """Follow an edit of a logged message; how many entries it touched.

    An entry whose summary is the message's text takes the new text. One whose summary was
    rewritten in the shortcut's form keeps it: the person chose those words, and the entry
    says the message was edited."""
    before = written(previous) if previous is not None else None
    after = written(text)
    if before == after:
        # Slack sends message_changed for an unfurled link or a new reply in the thread too;
        # the words are the same, so the entry is not edited.
        return 0
    entries = _entries_of(session, channel, ts)
    for entry in entries:
        if before is not None and entry.summary == before:
            entry.summary = after
        entry.edited_at = now
    return len(entries)


def message_deleted(session: Session, channel: str, ts: str, now: datetime) -> int:
    """Mark the entries of a deleted message deleted: kept for the record, no longer
    listed; how many."""
    entries = [e for e in _entries_of(session, channel, ts) if e.deleted_at is None]
    for entry in entries:
        entry.deleted_at = now
    return len(entries)


def _entries_of(session: Session, channel: str, ts: str) -> list[Change]:
    return list(
        session.scalars(
            select(Change).where(Change.message_channel == channel, Change.message_ts == ts)
        )
    )
