"""Senders: the one place that calls Slack's Web API, and its stand-in for local mode.

A sender makes one call and says how it went, mapping every failure onto what the outbox
worker does about it (`RateLimited`: wait as told; `TransientError`: retry with backoff;
`PermanentError`: give up). It never retries by itself: a retry that sleeps in the worker's
thread would be forgotten on a restart, so every retry is a row.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import re
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.error import HTTPError, URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.settings import Settings
from commands.core.render.blocks import Block
from commands.core.render.plain import blocks_to_text
from commands.home.queue import home_channel
from commands.outbox.calls import Delivered, carries_outbox_id
from commands.outbox.results import MAX_RETRY_AFTER, MIN_RETRY_AFTER

log = logging.getLogger(__name__)

# Slack advises at most 200 messages a page. Five pages reach 1,000 messages back, more than
# an integration channel receives between a crash and the lease running out.
HISTORY_PAGE = 200
HISTORY_PAGES = 5

# Slack errors worth retrying; every other error code is a request Slack will refuse again
# (channel_not_found, not_in_channel, is_archived, invalid_blocks, msg_too_long,
# invalid_auth, ...), so retrying it would only hide the problem.
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)


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
        reply_broadcast: bool = False,
    ) -> Delivered: ...

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered: ...

    def workspace_url(self) -> str | None:
        """The workspace's address, for links to its messages; None when not known."""
        ...

    def publish_home(self, *, user_id: str, view: dict[str, Any]) -> Delivered:
        """Show `view` as the person's Home tab, replacing what it showed; the Delivered's
        ts is the view's id."""
        ...

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


def slack_ts(at: datetime) -> str:
    """A datetime as Slack writes times in `oldest`, `latest` and message ts."""
    return f"{at.timestamp():.6f}"


class SlackSender:
    """The Web API without the SDK's retry handlers: a retry inside the SDK would sleep in
    the worker's thread and be forgotten on a restart, so every retry here is a row."""

    def __init__(self, token: str, base_url: str, *, timeout: int = 10) -> None:
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
        reply_broadcast: bool = False,
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
            if reply_broadcast:
                args["reply_broadcast"] = True  # also shown in the channel
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

    def publish_home(self, *, user_id: str, view: dict[str, Any]) -> Delivered:
        # No `hash`: the outbox is the only writer of a Home, and it always sends the
        # newest state, so an older view is never worth keeping over it.
        data = self._api("views.publish", json={"user_id": user_id, "view": view})
        shown = data.get("view") or {}
        return Delivered(channel=home_channel(user_id), ts=str(shown.get("id") or ""))

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

    def workspace_url(self) -> str | None:
        """The workspace's address (`https://<name>.slack.com/`), for links to messages;
        None while Slack cannot be asked."""
        try:
            url = self._api("auth.test").get("url")
        except SendError as exc:
            log.warning("auth.test failed (%s): no links to earlier messages for now", exc.error)
            return None
        return str(url) if url else None

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
        reply_broadcast: bool = False,
    ) -> Delivered:
        # Metadata is for programs reading Slack; a person reading the console has no use for it.
        where = f"#{channel}" + (f" thread {thread_ts}" if thread_ts else "")
        if thread_ts and reply_broadcast:
            where += " (also sent to the channel)"
        ts = self._next_ts()
        self._print(where, blocks_to_text(blocks or [], text))
        return Delivered(channel=channel, ts=ts)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[Block] | None = None
    ) -> Delivered:
        self._print(f"#{channel} updated {ts}", blocks_to_text(blocks or [], text))
        return Delivered(channel=channel, ts=ts)

    def workspace_url(self) -> str | None:
        return None  # no workspace: the console shows no links

    def publish_home(self, *, user_id: str, view: dict[str, Any]) -> Delivered:
        self._print(f"Home of @{user_id}", blocks_to_text(view.get("blocks") or [], ""))
        return Delivered(channel=home_channel(user_id), ts=self._next_ts())

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
