"""What the outbox worker sends: a claimed row becomes one prepared Slack call.

Each kind of row has a renderer that turns it into a `Call` just before it is sent, so the
message shows the state of things at that moment. The renderers for plain messages and their
edits live here; the alerts' live with the alerts (`commands.alerts.outbox_calls`), and the
composition root hands the worker the whole table, so the worker never imports alert code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from commands.core.render.blocks import Block
from storage.models import OutboxKind, OutboxMessage

# The Slack message metadata that ties a message to its outbox row. Slack's chat.postMessage
# has no idempotency key; a worker that died after Slack accepted a post but before the ts was
# recorded leaves a row whose next claim looks for this in the channel's history.
OUTBOX_EVENT = "integ_outbox"


@dataclass(frozen=True)
class Delivered:
    """Slack accepted the message: where it is now."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Job:
    """A claimed row, copied out of its transaction."""

    id: int
    kind: str
    channel: str
    alert_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    # When this claim's hold on the channel ends unless the result is recorded first.
    held_until: datetime
    # An earlier claim ended without a recorded result (its worker died, or could not tell
    # whether Slack has the message): a message it was creating may be on Slack already.
    unresolved: bool = False
    # False while a diagram is drawn: that claim is on the row alone, `held_until` is when
    # its lease ends, and the channel stays free for other writes (`claims.claim_upload`).
    holds_channel: bool = True


@dataclass(frozen=True)
class File:
    """A rendered file to upload, and how Slack should show it."""

    content: bytes
    filename: str
    title: str
    alt_text: str = ""


@dataclass(frozen=True)
class Call:
    """One prepared Slack call: `ts` set means chat.update of that message; `file` set
    means an upload of it, with `text` as its comment."""

    channel: str
    text: str
    blocks: list[Block] | None = None
    thread_ts: str | None = None
    ts: str | None = None
    metadata: dict[str, Any] | None = None
    file: File | None = None
    # A reply in the thread `thread_ts` that is also shown in the channel.
    reply_broadcast: bool = False
    # Set: views.publish of `view` as this person's Home tab (`channel` is then only the
    # outbox's pacing key for them, "home:<user id>").
    home_of: str | None = None
    view: dict[str, Any] | None = None

    @property
    def creates_message(self) -> bool:
        """A post, which may be looked for by its metadata after a crash (an upload cannot
        be: a file carries no metadata; a Home replaces itself, so it is simply sent again)."""
        return self.ts is None and self.file is None and self.home_of is None


class Unsendable(Exception):
    """The row can never become a Slack call (its alert is gone, its payload is broken):
    recorded as failed for good rather than retried."""


class Later(Exception):
    """The row cannot be rendered yet (what it needs cannot be known just now, such as who
    a Home is for): tried again with backoff, like a failed send."""


class Renderer(Protocol):
    def __call__(self, session: Session, job: Job, now: datetime) -> Call: ...


def outbox_metadata(outbox_id: int) -> dict[str, Any]:
    """Slack message metadata naming the outbox row a message was posted for."""
    return {"event_type": OUTBOX_EVENT, "event_payload": {"outbox_id": outbox_id}}


def carries_outbox_id(message: Any, outbox_id: int) -> bool:
    if not isinstance(message, dict):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != OUTBOX_EVENT:
        return False
    payload = metadata.get("event_payload")
    # Compared as text: the same row whether the id comes back as a number or a string.
    return isinstance(payload, dict) and str(payload.get("outbox_id")) == str(outbox_id)


def message_call(session: Session, job: Job, now: datetime) -> Call:
    """A plain message, in a thread when its payload names one."""
    return Call(
        channel=job.channel,
        text=str(job.payload.get("text") or ""),
        blocks=job.payload.get("blocks") or None,
        thread_ts=job.payload.get("thread_ts") or None,
        metadata=outbox_metadata(job.id),
    )


def edit_call(session: Session, job: Job, now: datetime) -> Call:
    """chat.update of the message that the MESSAGE row `of` posted."""
    of = job.payload.get("of")
    if not isinstance(of, int):
        raise Unsendable("an edit needs the outbox id of its message")
    original = session.get(OutboxMessage, of)
    if original is None or original.kind != OutboxKind.MESSAGE:
        raise Unsendable(f"outbox #{of} is not a message to edit")
    if not original.result_ts:
        # Reached only once the original stopped being pending: it failed for good.
        raise Unsendable(f"outbox #{of} was never posted")
    return Call(
        channel=original.channel,
        text=str(job.payload.get("text") or ""),
        blocks=job.payload.get("blocks") or None,
        ts=original.result_ts,
    )


RENDERERS: dict[OutboxKind, Renderer] = {
    OutboxKind.MESSAGE: message_call,
    OutboxKind.EDIT: edit_call,
}
