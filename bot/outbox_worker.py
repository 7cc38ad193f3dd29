"""The outbox worker: the only code that writes to Slack.

Everything the bot means to say is first a row in `outbox` (committed together with the
change that caused it, by `commands.outbox.enqueue`). This worker claims due rows, sends
them and records each attempt, so a Slack outage, a 429 or a restart delays a message but
never loses it, and two workers (threads or processes on one database) never send one twice.

Each message takes three short steps and never holds a transaction across the Slack call:
claim (one transaction: a conditional UPDATE that must change exactly one row, plus the
channel's pace slot), send, record the result (one transaction).
"""

from __future__ import annotations

import http.client
import itertools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TextIO
from urllib.error import URLError

from prometheus_client import Counter, Gauge, Histogram
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import and_, exists, func, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from bot import wire_ids
from bot.deps import Deps
from bot.settings import Settings
from commands.alert_messages import AlertActions, render_current
from commands.outbox import MESSAGE, POST, REPLY, UPDATE
from commands.render.blocks import Block
from commands.render.plain import blocks_to_text
from storage.db import transaction
from storage.models import Alert, ChannelPace, OutboxAttempt, OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)

# A crashed worker's claims become claimable again after this. It is far longer than one
# Slack call can take (the client times out after 10 s), so a live worker never loses one.
LEASE = timedelta(seconds=60)
# Slack allows about one message per second per channel; beyond that it answers 429.
PACE = timedelta(seconds=1)
MAX_BACKOFF = timedelta(minutes=5)
# A Retry-After outside this range is a broken header, not advice worth following.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 3600.0
POLL_SECONDS = 0.2
MIN_PASS_GAP = 0.1
PENDING_GAUGE_EVERY = 5.0  # seconds between counts of pending rows for the gauge
RECORD_TRIES = 3

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
    ) -> Delivered: ...

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered: ...


class SlackSender:
    """The Web API without the SDK's retry handlers: a retry inside the SDK would sleep in
    the worker's thread and be forgotten on a restart, so every retry here is a row."""

    def __init__(self, token: str, base_url: str, *, timeout: float = 10) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Block] | None = None,
        thread_ts: str | None = None,
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
        return self._call("chat.postMessage", args, channel)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered:
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        # An empty list removes the blocks of the message; that is what "no blocks" means.
        args["blocks"] = blocks or []
        return self._call("chat.update", args, channel)

    def _call(self, method: str, args: dict[str, Any], channel: str) -> Delivered:
        try:
            response = self.client.api_call(method, json=args)
        except SlackApiError as exc:
            refused = exc.response
            raise classify(refused.status_code, refused.headers, refused.data) from None
        except (TimeoutError, URLError, ConnectionError, http.client.HTTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        data = response.data if isinstance(response.data, dict) else {}
        return Delivered(channel=str(data.get("channel") or channel), ts=str(data.get("ts") or ""))


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
    """Local mode (no token): messages meant for Slack are printed readably instead."""

    def __init__(self, stream: TextIO | None = None) -> None:
        # Resolved at each write, so a redirected sys.stdout (pytest's capsys) is honoured.
        self.stream = stream
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Block] | None = None,
        thread_ts: str | None = None,
    ) -> Delivered:
        where = f"#{channel}" + (f" thread {thread_ts}" if thread_ts else "")
        ts = self._next_ts()
        self._print(where, blocks_to_text(blocks or [], text))
        return Delivered(channel=channel, ts=ts)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered:
        self._print(f"#{channel} updated {ts}", blocks_to_text(blocks or [], text))
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


@dataclass(frozen=True)
class _Call:
    """One prepared Slack call: `ts` set means chat.update of that message."""

    channel: str
    text: str
    blocks: list[Block] | None = None
    thread_ts: str | None = None
    ts: str | None = None


@dataclass
class _Outcome:
    result: str  # ok | ratelimited | retry | failed
    delivered: Delivered | None = None
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None


class _Skip(Exception):
    """Roll back a claim: its channel is not ready or another worker got there first."""


@dataclass
class OutboxWorker:
    deps: Deps
    sender: Sender
    worker_id: str
    poll_seconds: float = POLL_SECONDS
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
                # one write per channel per second, so looking every 100 ms loses nothing.
                self._stopping.wait(MIN_PASS_GAP)

    # -- one pass ---------------------------------------------------------------------------

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now; return how many messages Slack accepted."""
        now = self.deps.clock()
        self._update_gauge()
        sent = 0
        for message_id in self._candidates(now, limit):
            job = self._claim(message_id, now)
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
        claimed = session.execute(
            update(m)
            .where(
                m.id == message_id,
                m.status == OutboxStatus.PENDING.value,
                m.due_at <= now,
                or_(m.claimed_until.is_(None), m.claimed_until < now),
            )
            .values(claimed_by=self.worker_id, claimed_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise _Skip  # another worker claimed it between our look and our claim
        row = session.get_one(m, message_id)
        if not _take_pace(session, row.channel, now):
            raise _Skip  # rolls the claim back: the message stays pending for the next look
        job = _Job(
            id=row.id,
            kind=row.kind,
            channel=row.channel,
            alert_id=row.alert_id,
            payload=dict(row.payload or {}),
            created_at=row.created_at,
        )
        if job.kind in (POST, UPDATE) and job.alert_id is not None:
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
        except Exception as exc:
            log.exception("outbox #%d: could not be prepared", job.id)
            return self._record(job, _Outcome("retry", error=f"{type(exc).__name__}: {exc}"))
        try:
            if call.ts is not None:
                delivered = self.sender.update(
                    channel=call.channel, ts=call.ts, text=call.text, blocks=call.blocks
                )
            else:
                delivered = self.sender.post(
                    channel=call.channel,
                    text=call.text,
                    blocks=call.blocks,
                    thread_ts=call.thread_ts,
                )
        except RateLimited as exc:
            outcome = _Outcome(
                "ratelimited", error=exc.error, http_status=429, retry_after=exc.retry_after
            )
        except TransientError as exc:
            outcome = _Outcome("retry", error=exc.error, http_status=exc.http_status)
        except PermanentError as exc:
            outcome = _Outcome("failed", error=exc.error, http_status=exc.http_status)
        except Exception as exc:
            # Whatever else the transport raises (a reset socket, a proxy answering HTML):
            # retried, because a lost alert is worse than a late one.
            outcome = _Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        else:
            outcome = _Outcome("ok", delivered=delivered, http_status=200)
        return self._record(job, outcome)

    def _prepare(self, job: _Job) -> _Call:
        """Render what to send now; read-only, and done after the claim committed."""
        if job.kind == MESSAGE:
            text = str(job.payload.get("text") or "")
            blocks = job.payload.get("blocks") or None
            thread_ts = job.payload.get("thread_ts") or None
            return _Call(channel=job.channel, text=text, blocks=blocks, thread_ts=thread_ts)
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
                return _Call(channel=channel, text=text, blocks=blocks, thread_ts=alert.message_ts)
            reply = render_current(session, alert, now, ALERT_ACTIONS)
            if alert.message_ts:
                # Covers a post queued twice as well: an alert's message is updated in
                # place, never posted again.
                return _Call(
                    channel=channel, text=reply.text, blocks=reply.blocks, ts=alert.message_ts
                )
            return _Call(channel=job.channel, text=reply.text, blocks=reply.blocks)

    # -- recording --------------------------------------------------------------------------

    def _record(self, job: _Job, outcome: _Outcome) -> bool:
        # Slack has the message now (or said why not). If this record is lost, the lease
        # runs out and the message is sent again, so a database hiccup is worth a few tries.
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
            if outcome.result == "ok":
                self._record_sent(session, row, job, outcome, now)
            elif outcome.result == "ratelimited":
                retry_after = timedelta(seconds=outcome.retry_after or MIN_RETRY_AFTER)
                # Not a failure: Slack said when, so the message simply waits, and so does
                # every other message for that channel (in every process, via the table).
                _release(row, due_at=now + retry_after, error=outcome.error)
                _hold_channel(session, row.channel, now + retry_after)
                log.info("outbox #%d: rate limited on %s for %ss", job.id, row.channel, retry_after)
            elif outcome.result == "retry":
                backoff = min(timedelta(seconds=2 ** (failures - 1)), MAX_BACKOFF)
                _release(row, due_at=now + backoff, error=outcome.error)
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
            # Slack) never moves the alert off the message people already see.
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


def _take_pace(session: Session, channel: str, now: datetime) -> bool:
    """Take the channel's slot for this second; False when another write has it.

    Both statements are conditional, so two processes racing for one channel cannot both
    win: on PostgreSQL the loser waits for the winner's row lock and then finds next_at moved.
    """
    taken = session.execute(
        update(ChannelPace)
        .where(ChannelPace.channel == channel, ChannelPace.next_at <= now)
        .values(next_at=now + PACE)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    insert = _insert(session)
    # RETURNING, not rowcount: on psycopg this INSERT … ON CONFLICT reports rowcount -1.
    created = session.execute(
        insert(ChannelPace)
        .values(channel=channel, next_at=now + PACE)
        .on_conflict_do_nothing(index_elements=["channel"])
        .returning(ChannelPace.channel)
    )
    return created.first() is not None


def _hold_channel(session: Session, channel: str, until: datetime) -> None:
    """Keep every writer off the channel until `until` (never shortening a longer hold)."""
    moved = session.execute(
        update(ChannelPace)
        .where(ChannelPace.channel == channel, ChannelPace.next_at < until)
        .values(next_at=until)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        insert = _insert(session)
        session.execute(
            insert(ChannelPace)
            .values(channel=channel, next_at=until)
            .on_conflict_do_nothing(index_elements=["channel"])
        )


def _release(row: OutboxMessage, *, due_at: datetime, error: str | None) -> None:
    """Back to pending and unclaimed, so any worker may send it once it is due; clearing
    claimed_by also lets `enqueue` fold new updates into this one again."""
    row.due_at = due_at
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
