"""Queueing Slack writes. The worker in bot/ sends them; nothing here talks to Slack.

Alert messages are queued by alert id and rendered when sent, so a burst of repeats becomes
one update showing the latest count instead of one Slack call per repeat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Insert,
    bindparam,
    cast,
    exists,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from commands.core.render import blocks as bk
from commands.core.render.blocks import Block
from storage.db import table_of
from storage.models import Alert, OutboxKind, OutboxMessage, OutboxStatus

# Short names for the kinds, as the code that queues rows writes them.
POST = OutboxKind.POST
UPDATE = OutboxKind.UPDATE
REPLY = OutboxKind.REPLY
REFIRE = OutboxKind.REFIRE
MESSAGE = OutboxKind.MESSAGE
EDIT = OutboxKind.EDIT
UPLOAD = OutboxKind.UPLOAD

_outbox = table_of(OutboxMessage)
_PENDING = OutboxStatus.PENDING.value


def _waiting_for(alert_id: Any) -> Any:
    """A post, repost or update of this alert queued and not yet claimed: it will render the
    alert as it is when sent, so another update would only repeat it."""
    return exists().where(
        _outbox.c.alert_id == alert_id,
        # Not IN (…): an expanding list cannot be sent as an executemany (queue_updates).
        or_(
            _outbox.c.kind == POST.value,
            _outbox.c.kind == UPDATE.value,
            _outbox.c.kind == REFIRE.value,
        ),
        _outbox.c.status == _PENDING,
        _outbox.c.claimed_by.is_(None),
    )


def _queue_update_statement(dialect: str) -> Insert:
    # PostgreSQL cannot infer a JSON parameter's type in a SELECT list; SQLite must not be
    # told it, since CAST there changes a value's affinity rather than checking it.
    payload: Any = type_coerce(literal({}, JSON()), _outbox.c.payload.type)
    if dialect == "postgresql":
        payload = cast(payload, _outbox.c.payload.type)
    return insert(_outbox).from_select(
        ["created_at", "due_at", "kind", "channel", "alert_id", "payload", "status", "attempts"],
        select(
            type_coerce(bindparam("p_now"), _outbox.c.created_at.type),
            type_coerce(bindparam("p_now"), _outbox.c.due_at.type),
            literal(UPDATE.value),
            bindparam("p_channel"),
            bindparam("p_alert"),
            payload,
            literal(_PENDING),
            literal(0),
        ).where(~_waiting_for(bindparam("p_alert"))),
    )


# The check and the insert in one statement, built once per dialect: a failure storm
# queues an update for nearly every event, and this is most of what each costs. Two
# transactions racing past the check queue two updates, which the worker folds into one
# when it claims them.
_QUEUE_UPDATE = {name: _queue_update_statement(name) for name in ("sqlite", "postgresql")}


def post_pending(session: Session, alert_id: int) -> bool:
    """Whether the alert's message is queued, neither sent yet nor failed for good."""
    pending = exists().where(
        _outbox.c.alert_id == alert_id, _outbox.c.kind == POST.value, _outbox.c.status == _PENDING
    )
    return bool(session.connection().execute(select(pending)).scalar())


def queue_update(session: Session, *, alert_id: int, channel: str, now: datetime) -> None:
    """Queue a chat.update of the alert's message, unless one is already waiting."""
    statement = _QUEUE_UPDATE[session.get_bind().dialect.name]
    session.connection().execute(
        statement, {"p_now": now, "p_channel": channel, "p_alert": alert_id}
    )


def queue_updates(session: Session, alerts: list[tuple[int, str]], now: datetime) -> None:
    """`queue_update` for each (alert id, channel), sent as one executemany."""
    if alerts:
        statement = _QUEUE_UPDATE[session.get_bind().dialect.name]
        session.connection().execute(
            statement,
            [{"p_now": now, "p_channel": channel, "p_alert": alert} for alert, channel in alerts],
        )


_INSERT = insert(_outbox).returning(_outbox.c.id)
# Queuing an alert's post is when people are about to see it: escalation counts from then
# (commands/alerts/schedule.py), read from the alert's row, not from outbox rows that the
# retention duty may have deleted.
_alerts = table_of(Alert)
_SHOWN = (
    update(_alerts)
    .where(_alerts.c.id == bindparam("p_alert"))
    .values(shown_at=bindparam("p_now", type_=_alerts.c.shown_at.type))
)


def enqueue(
    session: Session,
    *,
    kind: OutboxKind,
    channel: str,
    now: datetime,
    alert_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> int | None:
    """Queue one write; its outbox id, or None when it was not needed. An update is not
    queued while one is already waiting: the waiting one will render the alert as it is when
    it is sent. An EDIT folds the older edits of its message that are still waiting."""
    if kind == UPDATE and alert_id is not None:
        if session.connection().execute(select(_waiting_for(alert_id))).scalar():
            return None
    row = session.connection().execute(
        _INSERT,
        {
            "created_at": now,
            "due_at": now,
            "kind": OutboxKind(kind).value,
            "channel": channel,
            "alert_id": alert_id,
            "payload": payload or {},
            "status": _PENDING,
            "attempts": 0,
        },
    )
    message_id: int = row.scalar_one()
    if kind in (POST, REFIRE) and alert_id is not None:
        session.connection().execute(_SHOWN, {"p_alert": alert_id, "p_now": now})
    if kind == EDIT:
        _fold_older_edits(session, of=int((payload or {})["of"]), newer=message_id, now=now)
    return message_id


def queue_message(
    session: Session,
    *,
    channel: str,
    now: datetime,
    text: str,
    blocks: list[Block] | None = None,
    thread_ts: str | None = None,
) -> int:
    """Queue a plain message for `channel` (in the thread `thread_ts` when given); its
    outbox id. Without `blocks`, the message is `text` in one section."""
    payload: dict[str, Any] = {"text": text, "blocks": blocks or [bk.section(text)]}
    if thread_ts:
        payload["thread_ts"] = thread_ts
    message_id = enqueue(session, kind=MESSAGE, channel=channel, now=now, payload=payload)
    assert message_id is not None  # only updates of alerts are ever folded away
    return message_id


def edit_of(column: Any) -> Any:
    """The id of the MESSAGE row an EDIT row changes, as an SQL integer expression."""
    return column["of"].as_integer()


def queue_edit(
    session: Session, *, of: int, text: str, blocks: list[Any] | None, now: datetime
) -> int | None:
    """Queue a chat.update of the message that MESSAGE row `of` posts (or posted), showing
    `text` and `blocks`; its outbox id, or None when that message will never exist.

    The worker holds an edit back until the message has been posted, so it may be queued
    right after the MESSAGE row it changes, in the same transaction. Edits of one message go
    in id order; two transactions editing it at once could commit out of that order, so the
    caller keeps them apart (vendor_status edits only under its claim on the page)."""
    original = (
        session.connection()
        .execute(select(_outbox.c.channel, _outbox.c.status).where(_outbox.c.id == of))
        .first()
    )
    if original is None or original.status == OutboxStatus.FAILED.value:
        return None
    return enqueue(
        session,
        kind=EDIT,
        # The original's channel, so that the edit is paced with every other write to it.
        channel=original.channel,
        now=now,
        payload={"of": of, "text": text, "blocks": blocks or []},
    )


def _fold_older_edits(session: Session, *, of: int, newer: int, now: datetime) -> None:
    """An edit shows the whole message, so an older edit of the same message that nobody
    has claimed yet would only be overwritten: it is marked done in favour of `newer`.

    Only rows with a lower id than `newer`, so that an edit never folds one queued after it;
    a claimed edit is left alone (it is being sent, and the order per message keeps `newer`
    behind it)."""
    session.connection().execute(
        update(_outbox)
        .where(
            _outbox.c.kind == EDIT.value,
            edit_of(_outbox.c.payload) == of,
            _outbox.c.status == _PENDING,
            _outbox.c.claimed_by.is_(None),
            _outbox.c.id < newer,
        )
        .values(
            status=OutboxStatus.SENT.value,
            sent_at=now,
            last_error=f"superseded by outbox #{newer}",
        )
    )


def queue_upload(
    session: Session,
    *,
    channel: str,
    now: datetime,
    dot: str | None = None,
    chart: dict[str, Any] | None = None,
    filename: str,
    title: str,
    comment: str,
    alt_text: str = "",
    fallback: dict[str, Any] | None = None,
) -> int:
    """Queue a picture for `channel`: the worker renders `dot` (Graphviz source) or `chart`
    (commands/reports/chart.py) to a PNG named `filename` and uploads it with `title`,
    `comment` (mrkdwn, shown with the file) and `alt_text`; its outbox id.

    Rendering waits for the worker so that the slash command stays inside Slack's three
    seconds. Unlike a message, an upload carries no metadata to find it by after a crash:
    one whose result was not recorded (a timeout, a worker dying mid-call) is uploaded again
    by the next claim, so an upload in doubt may show twice.

    `fallback` ({"text", "blocks"}) is posted instead when the worker that sends it has no
    Graphviz: another replica may lack what the one answering the command had.

    One diagram per channel at a time: the caller asks `pending_upload` first.
    """
    message_id = enqueue(
        session,
        kind=UPLOAD,
        channel=channel,
        now=now,
        payload={
            **({"chart": chart} if chart is not None else {"dot": dot}),
            "filename": filename,
            "title": title,
            "comment": comment,
            "alt_text": alt_text,
            "fallback": fallback or {},
        },
    )
    assert message_id is not None  # only updates of alerts are ever folded away
    return message_id


def pending_upload(session: Session, channel: str) -> str | None:
    """The title of the diagram queued for `channel` and neither sent nor failed for good
    yet (being drawn, waiting for the channel, or due again after a failed try), if there is
    one. A burst of requests then draws one picture per channel instead of queueing a
    diagram each behind the others."""
    found = (
        session.connection()
        .execute(
            select(_outbox.c.payload)
            .where(
                _outbox.c.status == _PENDING,
                _outbox.c.kind == UPLOAD.value,
                _outbox.c.channel == channel,
            )
            .order_by(_outbox.c.id)
            .limit(1)
        )
        .first()
    )
    if found is None:
        return None
    title = found.payload.get("title") if isinstance(found.payload, dict) else None
    return str(title or "a diagram")
