"""The outbox worker: the only code that writes to Slack.

Everything the bot means to say is first a row in `outbox` (committed together with the
change that caused it, by `commands.outbox.queue.enqueue`). This worker claims due rows, sends
them and records each attempt, so a Slack outage, a 429 or a restart delays a message but
never loses it, and two workers (threads or processes on one database) never send one twice.

Each message takes three short steps and never holds a transaction across the Slack call:
claim (one transaction: a conditional UPDATE that must change exactly one row, plus a hold on
the channel), send, record the result (one transaction, which also says when the channel may
be written to next).

Slack's chat.postMessage has no idempotency key, so every message the outbox creates carries
its row id in Slack message metadata. When a worker dies after Slack accepted a post but
before the ts was recorded, whoever claims the row after the lease looks for that id in the
channel's history and records what it finds instead of posting the message a second time.

An upload (a diagram) is rendered from its Graphviz source just before it is sent, and sent
with files_upload_v2. A file carries no message metadata, so there is nothing to look for: an
upload in doubt (a timeout or 5xx after Slack may have shared it, or a worker dying before the
result was recorded) is uploaded again by the next claim, and may show twice. A diagram
twice is a small price, and a retry that never uploaded would be a worse one.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.error import HTTPError, URLError

from prometheus_client import Counter, Gauge, Histogram
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import and_, exists, func, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from bot import graphviz, wire_ids
from bot.deps import Deps
from bot.settings import Settings
from commands.alerts.messages import AlertActions, render_current
from commands.core.render.blocks import Block
from commands.core.render.plain import blocks_to_text
from commands.outbox.queue import EDIT, MESSAGE, POST, REPLY, UPDATE, UPLOAD, edit_of
from storage.db import transaction
from storage.models import Alert, ChannelPace, OutboxAttempt, OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)

# A crashed worker's claims become claimable again after this. It is far longer than one
# Slack call can take (the client times out after 10 s), so a live worker never loses one.
# A claim holds its channel for as long, so no other write to it starts while one is in
# flight, however slow Slack is to answer.
LEASE = timedelta(seconds=60)
# Slack allows about one write per second per channel and answers 429 beyond that. The next
# write to a channel starts PACE after the previous call to it *returned*: Slack received that
# call before it answered, so the two arrive at least PACE apart whatever the network and
# rendering add. Counting from the claim instead let 12-21% of a storm's calls arrive less
# than a second apart (bench/README.md, storm finding 4). The 0.1 s over Slack's second
# absorbs clock differences between the hosts that share channel_pace.
PACE = timedelta(seconds=1.1)
MAX_BACKOFF = timedelta(minutes=5)
# A Retry-After outside this range is a broken header, not advice worth following.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 3600.0
POLL_SECONDS = 0.2
MIN_PASS_GAP = 0.1
PENDING_GAUGE_EVERY = 5.0  # seconds between counts of pending rows for the gauge
RECORD_TRIES = 3

# The Slack message metadata that ties a message to its outbox row (see `outbox_metadata`).
OUTBOX_EVENT = "integ_outbox"
# How far before a row was created to look for its message: our hosts' clocks and Slack's
# differ by far less, and a message cannot be older than the row that asked for it.
LOOKBACK = timedelta(minutes=1)
# Slack advises at most 200 messages a page. Five pages reach 1,000 messages back, more than
# an integration channel receives between a crash and the lease running out.
HISTORY_PAGE = 200
HISTORY_PAGES = 5

ALERT_ACTIONS = AlertActions(
    ack=wire_ids.ACK_ACTION,
    resolve=wire_ids.RESOLVE_ACTION,
    silence=wire_ids.SILENCE_ACTION,
    runbook=wire_ids.RUNBOOK_ACTION,
)

# Metrics live beside the one worker that moves them.
OUTBOX_SENT = Counter("integ_outbox_sent_total", "Outbox messages delivered to Slack", ["kind"])
OUTBOX_ATTEMPTS = Counter(
    "integ_outbox_attempts_total",
    "Slack calls made by the outbox, by result (ok, ratelimited, retry, failed)",
    ["result"],
)
OUTBOX_SUPERSEDED = Counter(
    "integ_outbox_superseded_total",
    "Queued updates not sent because an earlier send already showed the alert's state",
)
OUTBOX_PENDING = Gauge("integ_outbox_pending", "Outbox messages waiting to be sent")
OUTBOX_DELAY = Histogram(
    "integ_outbox_delay_seconds",
    "Time from queueing a message to Slack accepting it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# Slack errors worth retrying; every other error code is a request Slack will refuse again
# (channel_not_found, not_in_channel, is_archived, invalid_blocks, msg_too_long,
# invalid_auth, ...), so retrying it would only hide the problem.
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)


# -- what a sender reports ----------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """Slack accepted the message: where it is now."""

    channel: str
    ts: str


class SendError(Exception):
    def __init__(self, error: str, http_status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.http_status = http_status


class RateLimited(SendError):
    """429: wait `retry_after` seconds before writing to that channel again."""

    def __init__(self, retry_after: float, error: str = "ratelimited") -> None:
        super().__init__(error, 429)
        self.retry_after = retry_after


class TransientError(SendError):
    """5xx, a timeout or a broken connection: the same request may work later."""


class PermanentError(SendError):
    """Slack refused the request and will refuse it again."""


class Sender(Protocol):
    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Block] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Delivered: ...

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered: ...

    def find_posted(
        self, *, channel: str, outbox_id: int, since: datetime, thread_ts: str | None = None
    ) -> Delivered | None:
        """The message posted for outbox row `outbox_id` since `since`, if the channel (or
        the thread `thread_ts`) has one. Raises like a send when it cannot tell."""
        ...

    def upload(
        self,
        *,
        channel: str,
        content: bytes,
        filename: str,
        title: str,
        initial_comment: str = "",
        alt_text: str = "",
    ) -> Delivered:
        """Share a file in the channel, with `initial_comment` (mrkdwn) shown with it. The
        Delivered's ts is the file's id: a file has no message ts to update later."""
        ...


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


def slack_ts(at: datetime) -> str:
    """A datetime as Slack writes times in `oldest`, `latest` and message ts."""
    return f"{at.timestamp():.6f}"


class SlackSender:
    """The Web API without the SDK's retry handlers: a retry inside the SDK would sleep in
    the worker's thread and be forgotten on a restart, so every retry here is a row."""

    def __init__(self, token: str, base_url: str, *, timeout: float = 10) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        self._bot_id: str | None = None
        self._bot_id_known = False

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Block] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Delivered:
        args: dict[str, Any] = {
            "channel": channel,
            "text": text,
            # Alert text carries links to logs and dashboards; previews would bury the alert.
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if blocks:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        if metadata:
            args["metadata"] = metadata
        return self._call("chat.postMessage", args, channel)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered:
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        # An empty list removes the blocks of the message; that is what "no blocks" means.
        args["blocks"] = blocks or []
        return self._call("chat.update", args, channel)

    def find_posted(
        self, *, channel: str, outbox_id: int, since: datetime, thread_ts: str | None = None
    ) -> Delivered | None:
        # A thread reply is not in conversations.history (only its parent is); it is listed
        # by conversations.replies of its thread.
        method = "conversations.replies" if thread_ts else "conversations.history"
        params: dict[str, Any] = {
            "channel": channel,
            "oldest": slack_ts(since),
            "limit": HISTORY_PAGE,
            "include_all_metadata": True,
        }
        if thread_ts:
            params["ts"] = thread_ts
        # Only our own messages count: another deployment of the bot (staging, say) posting
        # to the same channel numbers its outbox rows from 1 too.
        bot_id = self._own_bot_id()
        for _ in range(HISTORY_PAGES):
            data = self._api(method, http_verb="GET", params=params)
            for message in data.get("messages") or []:
                mine = bot_id is None or message.get("bot_id") == bot_id
                if mine and carries_outbox_id(message, outbox_id):
                    return Delivered(channel=channel, ts=str(message.get("ts") or ""))
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or ""
            if not data.get("has_more") or not cursor:
                return None
            params["cursor"] = cursor
        raise PermanentError(f"{method}: not within the newest {HISTORY_PAGE * HISTORY_PAGES}")

    def upload(
        self,
        *,
        channel: str,
        content: bytes,
        filename: str,
        title: str,
        initial_comment: str = "",
        alt_text: str = "",
    ) -> Delivered:
        # files_upload_v2 makes three requests (files.getUploadURLExternal, a POST of the
        # bytes to the URL it returns, files.completeUploadExternal); a failure of any one is
        # mapped like a failed call, and the next attempt starts over with a new URL.
        try:
            response = self.client.files_upload_v2(
                channel=channel,
                content=content,
                filename=filename,
                title=title,
                initial_comment=initial_comment or None,
                alt_txt=alt_text or None,
            )
        except SlackApiError as exc:
            refused = exc.response
            raise classify(refused.status_code, refused.headers, refused.data) from None
        except HTTPError as exc:
            # The upload URL answered with an error status (urllib raises for those).
            headers = dict(exc.headers.items()) if exc.headers else {}
            raise classify(exc.code, headers, {"error": f"upload_http_{exc.code}"}) from None
        except SlackRequestError as exc:
            # The upload URL answered with a status other than 200 that urllib accepts.
            raise TransientError(f"upload: {exc}") from None
        except (TimeoutError, URLError, ConnectionError, http.client.HTTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        data = response.data if isinstance(response.data, dict) else {}
        shared = data.get("file") or next(iter(data.get("files") or []), None) or {}
        return Delivered(channel=channel, ts=str(shared.get("id") or ""))

    def _own_bot_id(self) -> str | None:
        if not self._bot_id_known:
            bot_id = self._api("auth.test").get("bot_id")
            # A user token has no bot id; its messages are then not told apart by sender.
            self._bot_id = str(bot_id) if bot_id else None
            self._bot_id_known = True
        return self._bot_id

    def _call(self, method: str, args: dict[str, Any], channel: str) -> Delivered:
        data = self._api(method, json=args)
        return Delivered(channel=str(data.get("channel") or channel), ts=str(data.get("ts") or ""))

    def _api(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.api_call(method, **kwargs)
        except SlackApiError as exc:
            refused = exc.response
            raise classify(refused.status_code, refused.headers, refused.data) from None
        except (TimeoutError, URLError, ConnectionError, http.client.HTTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        return response.data if isinstance(response.data, dict) else {}


def classify(status: int, headers: dict[str, Any], data: Any) -> SendError:
    """Map a refused Web API call to what the worker does about it."""
    error = str(data.get("error") or "unknown_error") if isinstance(data, dict) else ""
    error = error or f"http_{status}"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return RateLimited(_retry_after(headers), error)
    # A proxy or load balancer answering HTML is the network's trouble, not the request's.
    unreadable = error.startswith("Received a response in a non-JSON format")
    if status >= 500 or status == 408 or error in TRANSIENT_ERRORS or unreadable:
        return TransientError(error, status)
    return PermanentError(error, status)


def _retry_after(headers: dict[str, Any]) -> float:
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(raw, list):  # some SDK paths keep header values as lists
        raw = raw[0] if raw else None
    try:
        seconds = float(raw) if raw is not None else MIN_RETRY_AFTER
    except (TypeError, ValueError):
        seconds = MIN_RETRY_AFTER
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


class ConsoleSender:
    """Local mode (no token): messages meant for Slack are printed readably instead, and
    files are saved under `upload_dir` (by default integ-bot-uploads in the temp directory)."""

    def __init__(self, stream: TextIO | None = None, upload_dir: Path | None = None) -> None:
        # Resolved at each write, so a redirected sys.stdout (pytest's capsys) is honoured.
        self.stream = stream
        self.upload_dir = upload_dir or Path(tempfile.gettempdir()) / "integ-bot-uploads"
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Block] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Delivered:
        # Metadata is for programs reading Slack; a person reading the console has no use for it.
        where = f"#{channel}" + (f" thread {thread_ts}" if thread_ts else "")
        ts = self._next_ts()
        self._print(where, blocks_to_text(blocks or [], text))
        return Delivered(channel=channel, ts=ts)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered:
        self._print(f"#{channel} updated {ts}", blocks_to_text(blocks or [], text))
        return Delivered(channel=channel, ts=ts)

    def find_posted(
        self, *, channel: str, outbox_id: int, since: datetime, thread_ts: str | None = None
    ) -> Delivered | None:
        # What a dead process printed cannot be read back; printing it again harms nobody.
        return None

    def upload(
        self,
        *,
        channel: str,
        content: bytes,
        filename: str,
        title: str,
        initial_comment: str = "",
        alt_text: str = "",
    ) -> Delivered:
        ts = self._next_ts()
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", filename).strip(".-") or "upload"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path = self.upload_dir / f"{ts.replace('.', '-')}-{safe}"
        path.write_bytes(content)
        body = f"{title}: {len(content):,} bytes saved to {path}"
        if initial_comment:
            body += "\n" + blocks_to_text([], initial_comment)
        self._print(f"#{channel} file", body)
        return Delivered(channel=channel, ts=ts)

    def _next_ts(self) -> str:
        # Shaped like a Slack ts and unique within the process, so threads and updates of
        # printed messages work the same way as on Slack.
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _print(self, where: str, body: str) -> None:
        lines = (body or "(empty message)").splitlines() or [""]
        out = [f"[{where}] {lines[0]}", *("    " + line for line in lines[1:])]
        with self._lock:
            print("\n".join(out), file=self.stream or sys.stdout, flush=True)


def build_sender(settings: Settings) -> Sender:
    if settings.slack_bot_token is None:
        return ConsoleSender()
    return SlackSender(settings.slack_bot_token, settings.slack_api_url)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


# -- the worker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
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


@dataclass(frozen=True)
class _File:
    """A rendered file to upload, and how Slack should show it."""

    content: bytes
    filename: str
    title: str
    alt_text: str = ""


@dataclass(frozen=True)
class _Call:
    """One prepared Slack call: `ts` set means chat.update of that message; `file` set
    means an upload of it, with `text` as its comment."""

    channel: str
    text: str
    blocks: list[Block] | None = None
    thread_ts: str | None = None
    ts: str | None = None
    metadata: dict[str, Any] | None = None
    file: _File | None = None

    @property
    def creates_message(self) -> bool:
        """A post, which may be looked for by its metadata after a crash (see the module
        docstring; an upload cannot be)."""
        return self.ts is None and self.file is None


@dataclass
class _Outcome:
    result: str  # ok | ratelimited | retry | failed
    delivered: Delivered | None = None
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    # Slack may have the message, and nobody has looked: the next claim must look first.
    unresolved: bool = False


class _Skip(Exception):
    """Roll back a claim: its channel is not ready or another worker got there first."""


@dataclass
class OutboxWorker:
    deps: Deps
    sender: Sender
    worker_id: str
    poll_seconds: float = POLL_SECONDS
    # Graphviz source to PNG for uploads; a seam so that a test can stand in for `dot`.
    render_png: Callable[[str], bytes] = graphviz.render_png
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _gauge_at: float = field(default=0.0, init=False)

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"outbox-{self.worker_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            # A Slack call in flight finishes (10 s at most) and is recorded; if the process
            # dies first, the lease expires and the message is sent by whoever looks next.
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        limit = 50
        while not self._stopping.is_set():
            # Cleared before looking, so a notify() that arrives while sending is not lost.
            self._wake.clear()
            started = time.monotonic()
            try:
                sent = self.run_once(limit)
            except Exception:
                # The database or a bug; the rows are safe, so log and look again later
                # rather than let the thread die and leave every message unsent.
                log.exception("outbox worker %s: run failed", self.worker_id)
                self._stopping.wait(1.0)
                continue
            if sent < limit:
                self._wake.wait(self.poll_seconds)
                # Every hook notifies; during an intake burst that meant dozens of passes a
                # second for a few sends (bench/README.md, intake findings). Pacing allows
                # one write per channel per second, so looking at most every 100 ms loses
                # nothing, and a lone alert after a quiet spell is not held back at all.
                self._stopping.wait(MIN_PASS_GAP - (time.monotonic() - started))

    # -- one pass ---------------------------------------------------------------------------

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now; return how many messages Slack accepted."""
        self._update_gauge()
        sent = 0
        for message_id in self._candidates(self.deps.clock(), limit):
            # The time of the claim itself, not of the pass: after a few slow calls earlier in
            # the pass, an old time would start this claim's lease already part spent.
            job = self._claim(message_id, self.deps.clock())
            if job is not None and self._deliver(job):
                sent += 1
        return sent

    def _candidates(self, now: datetime, limit: int) -> list[int]:
        """The first eligible message of each channel that may be written to now.

        One per channel because pacing allows no more this second anyway; and picking per
        channel keeps a storm in one channel from hiding the messages of all the others.
        """
        m = OutboxMessage
        earlier = aliased(OutboxMessage)
        # An update or reply needs the alert's message; until it exists the row waits, and
        # does not hold back what comes after it (the post that will create the message).
        waiting = and_(
            m.kind.in_((UPDATE, REPLY)), m.alert_id.is_not(None), Alert.message_ts.is_(None)
        )
        earlier_waiting = and_(earlier.kind.in_((UPDATE, REPLY)), Alert.message_ts.is_(None))
        # An edit needs the message it changes: it waits while the MESSAGE row that posts it
        # is pending, and only the lowest pending edit of one message may go, so that an
        # older text never lands after a newer one. The kind is tested first so that the
        # subqueries run for edits only: an alert storm queues thousands of other rows.
        original = aliased(OutboxMessage)
        edit_free = or_(
            m.kind != EDIT,
            and_(
                ~exists().where(
                    original.id == edit_of(m.payload),
                    original.status == OutboxStatus.PENDING.value,
                ),
                ~exists().where(
                    earlier.kind == EDIT,
                    edit_of(earlier.payload) == edit_of(m.payload),
                    earlier.status == OutboxStatus.PENDING.value,
                    earlier.id < m.id,
                ),
            ),
        )
        query = (
            select(func.min(m.id))
            .select_from(m)
            .outerjoin(Alert, Alert.id == m.alert_id)
            .where(
                m.status == OutboxStatus.PENDING.value,
                m.due_at <= now,
                or_(m.claimed_until.is_(None), m.claimed_until < now),
                not_(waiting),
                # Order per alert: only its lowest pending message may go.
                ~exists().where(
                    earlier.alert_id == m.alert_id,
                    earlier.status == OutboxStatus.PENDING.value,
                    earlier.id < m.id,
                    not_(earlier_waiting),
                ),
                edit_free,
                ~exists().where(ChannelPace.channel == m.channel, ChannelPace.next_at > now),
            )
            .group_by(m.channel)
            .order_by(func.min(m.id))
            .limit(limit)
        )
        with transaction(self.deps.sessions) as session:
            return [int(i) for i in session.scalars(query)]

    def _claim(self, message_id: int, now: datetime) -> _Job | None:
        try:
            with transaction(self.deps.sessions) as session:
                return self._claim_in(session, message_id, now)
        except _Skip:
            return None

    def _claim_in(self, session: Session, message_id: int, now: datetime) -> _Job:
        m = OutboxMessage
        # Read before the claim overwrites it. Every recorded result either finishes the row
        # or clears claimed_by (`_release`), so a pending row that still names a claimant is
        # one whose last claim ended without a result. A race with another claimant cannot
        # mislead this: whoever changes the row in between makes the UPDATE below match
        # nothing.
        earlier_claimant = session.scalar(select(m.claimed_by).where(m.id == message_id))
        held_until = now + LEASE
        claimed = session.execute(
            update(m)
            .where(
                m.id == message_id,
                m.status == OutboxStatus.PENDING.value,
                m.due_at <= now,
                or_(m.claimed_until.is_(None), m.claimed_until < now),
            )
            .values(claimed_by=self.worker_id, claimed_until=held_until)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise _Skip  # another worker claimed it between our look and our claim
        row = session.get_one(m, message_id)
        if not _hold_channel(session, row.channel, now, held_until):
            raise _Skip  # rolls the claim back: the message stays pending for the next look
        job = _Job(
            id=row.id,
            kind=row.kind,
            channel=row.channel,
            alert_id=row.alert_id,
            payload=dict(row.payload or {}),
            created_at=row.created_at,
            held_until=held_until,
            unresolved=earlier_claimant is not None,
        )
        # A post that may be on Slack already might not be rendered now at all: if it is found,
        # the message shows the alert as it was when the earlier claim rendered it, and the
        # updates queued since must still be sent.
        renders_now = not (job.unresolved and job.kind == POST)
        if job.kind in (POST, UPDATE) and job.alert_id is not None:
            # Wait for any transaction changing the alert to finish before the claim commits.
            # Such a transaction may have seen this row still unclaimed and so queued no update
            # of its own; rendered after this claim, the message then shows its change too.
            # (PostgreSQL: FOR SHARE. SQLite has one writer, so it cannot interleave anyway.)
            session.execute(
                select(Alert.id).where(Alert.id == job.alert_id).with_for_update(read=True)
            )
            if renders_now:
                self._supersede(session, job, now)
        return job

    def _supersede(self, session: Session, job: _Job, now: datetime) -> None:
        """Mark the alert's other queued updates sent: this send renders the alert after the
        claim commits, so it shows every change they were queued for. Updates queued after a
        reply stay, so that the reply still comes before them."""
        m = OutboxMessage
        boundary = session.scalar(
            select(func.min(m.id)).where(
                m.alert_id == job.alert_id,
                m.status == OutboxStatus.PENDING.value,
                m.id > job.id,
                m.kind != UPDATE,
            )
        )
        query = update(m).where(
            m.alert_id == job.alert_id,
            m.kind == UPDATE,
            m.status == OutboxStatus.PENDING.value,
            m.id != job.id,
            m.due_at <= now,
            or_(m.claimed_until.is_(None), m.claimed_until < now),
        )
        if boundary is not None:
            query = query.where(m.id < boundary)
        done = session.execute(
            query.values(
                status=OutboxStatus.SENT.value,
                sent_at=now,
                claimed_by=self.worker_id,
                claimed_until=None,
                last_error=f"superseded by outbox #{job.id}",
            ).execution_options(synchronize_session=False)
        )
        if done.rowcount:  # type: ignore[attr-defined]
            OUTBOX_SUPERSEDED.inc(done.rowcount)  # type: ignore[attr-defined]

    # -- sending ----------------------------------------------------------------------------

    def _deliver(self, job: _Job) -> bool:
        try:
            call = self._prepare(job)
        except PermanentError as exc:
            return self._record(job, _Outcome("failed", error=exc.error))
        except TransientError as exc:  # a diagram that took too long to render
            outcome = _Outcome("retry", error=exc.error, unresolved=job.unresolved)
            return self._record(job, outcome)
        except Exception as exc:
            log.exception("outbox #%d: could not be prepared", job.id)
            error = f"{type(exc).__name__}: {exc}"
            return self._record(job, _Outcome("retry", error=error, unresolved=job.unresolved))
        if job.unresolved and call.creates_message:
            # Only a call that creates a message can leave a duplicate; an update is the same
            # however often it is made, so it is simply made again. An upload has nothing to
            # look for, so it is made again too (the module docstring says why).
            found = self._find_earlier_post(job, call)
            if found is not None:
                return self._record(job, found)
        return self._record(job, self._send(call))

    def _find_earlier_post(self, job: _Job, call: _Call) -> _Outcome | None:
        """Ask Slack whether the earlier claim's post got there; None means post it now."""
        method = "conversations.replies" if call.thread_ts else "conversations.history"
        try:
            found = self.sender.find_posted(
                channel=call.channel,
                outbox_id=job.id,
                since=job.created_at - LOOKBACK,
                thread_ts=call.thread_ts,
            )
        except PermanentError as exc:
            # Slack will never answer this question (the bot is not in the channel, or lacks
            # the history scope for it; chat:write.public posts where it has not joined), or
            # the message is further back than we read. Waiting would never post the message
            # at all, so it is posted: at worst it shows twice, which beats not at all.
            log.warning(
                "outbox #%d: cannot tell whether an earlier claim posted it (%s); posting",
                job.id,
                exc.error,
            )
            return None
        except SendError as exc:
            # A 429, 5xx or timeout says nothing about the message; posting now could show it
            # twice. Ask again later, and keep the row marked so that the next claim asks too.
            return _Outcome(
                "retry",
                error=f"{method}: {exc.error}",
                http_status=exc.http_status,
                retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
                unresolved=True,
            )
        except Exception as exc:
            error = f"{method}: {type(exc).__name__}: {exc}"
            return _Outcome("retry", error=error, unresolved=True)
        if found is None:
            return None
        log.info("outbox #%d: already on Slack as %s, posted by an earlier claim", job.id, found.ts)
        # The attempt is recorded as a success with a note, so the history says why no call
        # was made this time.
        return _Outcome(
            "ok", delivered=found, http_status=200, error=f"found by outbox id in {method}"
        )

    def _send(self, call: _Call) -> _Outcome:
        try:
            if call.file is not None:
                delivered = self.sender.upload(
                    channel=call.channel,
                    content=call.file.content,
                    filename=call.file.filename,
                    title=call.file.title,
                    initial_comment=call.text,
                    alt_text=call.file.alt_text,
                )
            elif call.ts is not None:
                delivered = self.sender.update(
                    channel=call.channel, ts=call.ts, text=call.text, blocks=call.blocks
                )
            else:
                delivered = self.sender.post(
                    channel=call.channel,
                    text=call.text,
                    blocks=call.blocks,
                    thread_ts=call.thread_ts,
                    metadata=call.metadata,
                )
        except RateLimited as exc:
            outcome = _Outcome(
                "ratelimited", error=exc.error, http_status=429, retry_after=exc.retry_after
            )
        except TransientError as exc:
            # A timeout, a 5xx or a broken connection does not say whether Slack made the
            # message: one that creates a message is looked for before it is sent again.
            outcome = _Outcome(
                "retry",
                error=exc.error,
                http_status=exc.http_status,
                unresolved=call.creates_message,
            )
        except PermanentError as exc:
            outcome = _Outcome("failed", error=exc.error, http_status=exc.http_status)
        except Exception as exc:
            # Whatever else the transport raises (a reset socket, a proxy answering HTML):
            # retried, because a lost alert is worse than a late one, and looked for first.
            error = f"{type(exc).__name__}: {exc}"
            outcome = _Outcome("retry", error=error, unresolved=call.creates_message)
        else:
            outcome = _Outcome("ok", delivered=delivered, http_status=200)
        return outcome

    def _prepare(self, job: _Job) -> _Call:
        """Render what to send now; read-only, and done after the claim committed."""
        # Every message the outbox creates names its row, so that it can be found again.
        metadata = outbox_metadata(job.id)
        if job.kind == MESSAGE:
            text = str(job.payload.get("text") or "")
            blocks = job.payload.get("blocks") or None
            thread_ts = job.payload.get("thread_ts") or None
            return _Call(
                channel=job.channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        if job.kind == EDIT:
            return self._prepare_edit(job)
        if job.kind == UPLOAD:
            return self._prepare_upload(job)
        if job.kind not in (POST, UPDATE, REPLY):
            raise PermanentError(f"unknown outbox kind {job.kind!r}")
        if job.alert_id is None:
            raise PermanentError(f"a {job.kind} needs an alert")
        now = self.deps.clock()
        with transaction(self.deps.sessions) as session:
            alert = session.get(Alert, job.alert_id)
            if alert is None:
                raise PermanentError(f"alert #{job.alert_id} does not exist")
            channel = alert.channel or job.channel
            if job.kind == REPLY:
                text = str(job.payload.get("text") or "")
                blocks = job.payload.get("blocks") or None
                return _Call(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=alert.message_ts,
                    metadata=metadata,
                )
            reply = render_current(session, alert, now, ALERT_ACTIONS)
            if alert.message_ts:
                # Covers a post queued twice as well: an alert's message is updated in
                # place, never posted again.
                return _Call(
                    channel=channel, text=reply.text, blocks=reply.blocks, ts=alert.message_ts
                )
            return _Call(
                channel=job.channel, text=reply.text, blocks=reply.blocks, metadata=metadata
            )

    def _prepare_edit(self, job: _Job) -> _Call:
        of = job.payload.get("of")
        if not isinstance(of, int):
            raise PermanentError("an edit needs the outbox id of its message")
        with transaction(self.deps.sessions) as session:
            original = session.get(OutboxMessage, of)
            if original is None or original.kind != MESSAGE:
                raise PermanentError(f"outbox #{of} is not a message to edit")
            if not original.result_ts:
                # Reached only once the original stopped being pending: it failed for good.
                raise PermanentError(f"outbox #{of} was never posted")
            channel, ts = original.channel, original.result_ts
        return _Call(
            channel=channel,
            text=str(job.payload.get("text") or ""),
            blocks=job.payload.get("blocks") or None,
            ts=ts,
        )

    def _prepare_upload(self, job: _Job) -> _Call:
        source = job.payload.get("dot")
        if not isinstance(source, str) or not source.strip():
            raise PermanentError("an upload needs its Graphviz source")
        try:
            png = self.render_png(source)
        except graphviz.RenderTimedOut as exc:
            raise TransientError(f"graphviz: {exc}") from None
        except graphviz.GraphvizMissing:
            fallback = job.payload.get("fallback") or {}
            if not fallback.get("text"):
                raise PermanentError("graphviz is missing here; no text version queued") from None
            # The person was told a picture is coming; the text version is the next best.
            return _Call(
                channel=job.channel,
                text=str(fallback["text"]),
                blocks=fallback.get("blocks") or None,
                metadata=outbox_metadata(job.id),
            )
        except graphviz.GraphvizError as exc:
            # Missing here, or refusing the source: trying again would fail the same way.
            raise PermanentError(f"graphviz: {exc}") from None
        filename = str(job.payload.get("filename") or "diagram.png")
        return _Call(
            channel=job.channel,
            text=str(job.payload.get("comment") or ""),
            file=_File(
                content=png,
                filename=filename,
                title=str(job.payload.get("title") or filename),
                alt_text=str(job.payload.get("alt_text") or ""),
            ),
        )

    # -- recording --------------------------------------------------------------------------

    def _record(self, job: _Job, outcome: _Outcome) -> bool:
        # Slack has the message now (or said why not). If this record is lost, the lease
        # runs out and the next claim must ask Slack about it (and resend an update), so a
        # database hiccup is worth a few tries.
        for attempt in range(RECORD_TRIES):
            try:
                return self._record_once(job, outcome)
            except OperationalError:
                if attempt == RECORD_TRIES - 1:
                    raise
                log.warning("outbox #%d: recording the result failed; trying again", job.id)
                time.sleep(0.5 * (attempt + 1))
        return False  # not reached: the last try returns or raises

    def _record_once(self, job: _Job, outcome: _Outcome) -> bool:
        now = self.deps.clock()
        with transaction(self.deps.sessions) as session:
            row = session.get_one(OutboxMessage, job.id)
            # Counted before this attempt's row is added, so it counts the earlier ones only.
            failures = _failures_before(session, job.id) + 1 if outcome.result == "retry" else 0
            session.add(
                OutboxAttempt(
                    message_id=job.id,
                    at=now,
                    ok=outcome.result == "ok",
                    http_status=outcome.http_status,
                    error=outcome.error,
                    retry_after=outcome.retry_after,
                    worker=self.worker_id,
                )
            )
            row.attempts = (row.attempts or 0) + 1
            # `now` is after the call returned, so the channel's next write starts at least
            # PACE after Slack had this one (see PACE).
            free_at = now + PACE
            if outcome.result == "ok":
                self._record_sent(session, row, job, outcome, now)
            elif outcome.result == "ratelimited":
                retry_after = timedelta(seconds=outcome.retry_after or MIN_RETRY_AFTER)
                # Not a failure: Slack said when, so the message simply waits, and so does
                # every other message for that channel (in every process, via the table).
                _release(row, due_at=now + retry_after, error=outcome.error)
                free_at = max(free_at, now + retry_after)
                log.info("outbox #%d: rate limited on %s for %ss", job.id, row.channel, retry_after)
            elif outcome.result == "retry":
                backoff = min(timedelta(seconds=2 ** (failures - 1)), MAX_BACKOFF)
                # A 429 on a read (the history lookup) delays this row only: it says nothing
                # about writing to the channel.
                backoff = max(backoff, timedelta(seconds=outcome.retry_after or 0))
                _release(
                    row, due_at=now + backoff, error=outcome.error, unresolved=outcome.unresolved
                )
                log.warning(
                    "outbox #%d (%s to %s): %s; retry %d in %ss",
                    job.id,
                    job.kind,
                    row.channel,
                    outcome.error,
                    failures,
                    backoff.total_seconds(),
                )
            else:
                row.status = OutboxStatus.FAILED.value
                row.claimed_until = None
                row.last_error = outcome.error
                log.error(
                    "outbox #%d (%s to %s) failed for good: %s",
                    job.id,
                    job.kind,
                    row.channel,
                    outcome.error,
                )
            _free_channel(session, row.channel, held_until=job.held_until, free_at=free_at)
        OUTBOX_ATTEMPTS.labels(outcome.result).inc()
        if outcome.result == "ok":
            OUTBOX_SENT.labels(job.kind).inc()
            OUTBOX_DELAY.observe(max((now - job.created_at).total_seconds(), 0.0))
            return True
        return False

    def _record_sent(
        self, session: Session, row: OutboxMessage, job: _Job, outcome: _Outcome, now: datetime
    ) -> None:
        assert outcome.delivered is not None
        row.status = OutboxStatus.SENT.value
        row.sent_at = now
        row.claimed_until = None
        row.result_ts = outcome.delivered.ts or None
        row.last_error = None
        if job.kind == POST and job.alert_id is not None and outcome.delivered.ts:
            # Conditional, so that a message posted twice (a timeout whose post did reach
            # Slack; it had no recorded result to look for) never moves the alert off the
            # message people already see.
            session.execute(
                update(Alert)
                .where(Alert.id == job.alert_id, Alert.message_ts.is_(None))
                .values(channel=outcome.delivered.channel, message_ts=outcome.delivered.ts)
                .execution_options(synchronize_session=False)
            )

    def _update_gauge(self) -> None:
        if time.monotonic() - self._gauge_at < PENDING_GAUGE_EVERY:
            return
        self._gauge_at = time.monotonic()
        with transaction(self.deps.sessions) as session:
            pending = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING.value)
            )
        OUTBOX_PENDING.set(pending or 0)


# -- helpers that write inside a caller's transaction ---------------------------------------


def _insert(session: Session) -> Callable[..., Any]:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _hold_channel(session: Session, channel: str, now: datetime, until: datetime) -> bool:
    """Take the channel for one write, until its result is recorded (`_free_channel`) or
    `until`; False when it is not free now.

    Both statements are conditional, so two processes racing for one channel cannot both
    win: on PostgreSQL the loser waits for the winner's row lock and then finds next_at moved.
    """
    taken = session.execute(
        update(ChannelPace)
        .where(ChannelPace.channel == channel, ChannelPace.next_at <= now)
        .values(next_at=until)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    insert = _insert(session)
    # RETURNING, not rowcount: on psycopg this INSERT … ON CONFLICT reports rowcount -1.
    created = session.execute(
        insert(ChannelPace)
        .values(channel=channel, next_at=until)
        .on_conflict_do_nothing(index_elements=["channel"])
        .returning(ChannelPace.channel)
    )
    return created.first() is not None


def _free_channel(
    session: Session, channel: str, *, held_until: datetime, free_at: datetime
) -> None:
    """End this claim's hold: the channel's next write may start at `free_at`.

    Only while the hold is still this claim's: one that ran out was free to be taken, and the
    new holder's (later) `held_until` must not be cut short by a result recorded this late.
    """
    session.execute(
        update(ChannelPace)
        .where(ChannelPace.channel == channel, ChannelPace.next_at <= held_until)
        .values(next_at=free_at)
        .execution_options(synchronize_session=False)
    )


def _release(
    row: OutboxMessage, *, due_at: datetime, error: str | None, unresolved: bool = False
) -> None:
    """Back to pending and unclaimed, so any worker may send it once it is due; clearing
    claimed_by also lets `enqueue` fold new updates into this one again.

    `unresolved` keeps claimed_by: Slack may have the message and nobody could look, so the
    next claim must see an earlier claim without a result and look first.
    """
    row.due_at = due_at
    if not unresolved:
        row.claimed_by = None
    row.claimed_until = None
    row.last_error = error


def _failures_before(session: Session, message_id: int) -> int:
    """Failed attempts that count towards backoff: 429s do not, Slack said when to return."""
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxAttempt)
            .where(
                OutboxAttempt.message_id == message_id,
                OutboxAttempt.ok.is_(False),
                or_(OutboxAttempt.http_status.is_(None), OutboxAttempt.http_status != 429),
            )
        )
        or 0
    )
