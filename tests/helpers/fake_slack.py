"""A small fake of the Slack Web API, served over real HTTP for tests.

Point a ``slack_sdk.WebClient(base_url=fake.url)`` (or ``SLACK_API_URL``) at it and the client
talks HTTP to a local server that answers like Slack does, records every call, and can be told
to fail the next call to a method (429 with ``Retry-After``, 5xx, or a Slack error).

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.url)
        client.chat_postMessage(channel="C111", text="hi")
        [call] = fake.calls_to("chat.postMessage")

Like Slack, it keeps what was posted: ``chat.postMessage`` (with any ``metadata``),
``chat.update`` and ``chat.delete`` change what ``conversations.history`` and
``conversations.replies`` return. A message's ts is the time it was posted, by ``clock``
(``time.time`` unless a test gives its own), kept unique and increasing as Slack keeps it.

Besides ``/api/<method>`` it serves:

- ``POST /upload/v1/<file_id>``: the upload URL that ``files.getUploadURLExternal`` hands out;
  the bytes land in ``fake.uploads[file_id]`` and the call is recorded as ``upload:<file_id>``.
- ``POST /response/<name>``: a stand-in for a ``response_url`` (what Bolt's ``respond()``
  posts to); build one with ``fake.response_url(name)``; posts are recorded as
  ``response:<name>``.

People: ``users.info`` answers any user id with a full member of ``team_id``, shaped as in
Slack's documentation; ``fake.users[user_id] = {...}`` changes fields (``profile`` is merged
field by field), ``fake.users[user_id] = None`` makes Slack not know the user
(``user_not_found``), and ``fake.guest(user_id)`` / ``fake.external(user_id)`` make a guest or
a member of another workspace. ``usergroups.users.list`` lists ``fake.usergroups[group_id]``.

Socket Mode: ``apps.connections.open`` answers an app-level token (``xapp-``) with the URL of a
``FakeSocketMode`` (``tests/helpers/fake_socket_mode.py``) once that is attached with
``sockets.attach(fake)``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import mimetypes
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.helpers import fake_slack_views as views
from tests.helpers.block_kit import message_errors

JSON = dict[str, Any]

ACCEPTED_TOKEN_PREFIXES = ("xoxb-", "xoxp-")
# App-level tokens are good for apps.connections.open alone (Socket Mode).
APP_TOKEN_PREFIX = "xapp-"


@dataclass(frozen=True)
class Call:
    """One request the fake received, and what it answered."""

    method: str  # "chat.postMessage", or "upload:<file_id>", or "response:<name>"
    args: JSON  # query string, form and JSON body fields merged
    headers: dict[str, str]  # keys lower-cased
    time: float  # time.time() when the answer was ready: the end of the call, as Slack sees it
    body: bytes
    status: int  # HTTP status answered
    response: JSON
    received: float = 0.0  # time.time() when the request arrived: the start of the call

    @property
    def answered(self) -> float:
        return self.time

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: int
    times: int
    delay: float = 0.0


@dataclass
class _Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlack:
    """A fake Slack Web API on 127.0.0.1, on a free port, served from a daemon thread."""

    def __init__(
        self,
        *,
        team_id: str = "T111",
        team_domain: str = "integ-test",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A111",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.clock = clock
        # Tests may put entries here to shape users.info / conversations.info answers; a user
        # set to None is one Slack does not know.
        self.users: dict[str, JSON | None] = {}
        self.channels: dict[str, JSON] = {}
        # User group id ("S...") -> the ids of its members, for usergroups.users.list.
        self.usergroups: dict[str, list[str]] = {}
        # What apps.connections.open hands an app-level token: a function giving a fresh
        # WebSocket URL each call (FakeSocketMode.attach sets it to its open_url).
        self.socket_mode_url: Callable[[], str] | None = None
        self.uploads: dict[str, bytes] = {}
        # Each person's Home tab as views.publish last left it.
        self.homes: dict[str, JSON] = {}
        self._calls: list[Call] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._files: dict[str, JSON] = {}
        self._delays: dict[str, deque[float]] = {}
        # What Slack holds: each channel's messages, oldest first, thread replies included.
        self._messages: dict[str, list[JSON]] = {}
        self._cond = threading.Condition()
        self._last_ts_micros = 0
        self._id_seq = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-slack", kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def url(self) -> str:
        """The Web API base URL, ending in ``/api/``."""
        return self.root_url + "api/"

    def response_url(self, name: str = "default") -> str:
        return f"{self.root_url}response/{name}"

    # -- inspection --------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every recorded call, oldest first."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def responses_to(self, name: str = "default") -> list[Call]:
        """The posts received at ``response_url(name)``."""
        return self.calls_to(f"response:{name}")

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until at least ``count`` calls to ``method`` were recorded; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self._calls})
                    raise TimeoutError(
                        f"{len(found)}/{count} calls to {method} after {timeout}s; seen: {seen}"
                    )
                self._cond.wait(left)

    def clear(self) -> None:
        """Forget recorded calls, uploads, pending failures and delays. The messages stay
        posted, as they would on Slack."""
        with self._cond:
            self._calls.clear()
            self._failures.clear()
            self._delays.clear()
            self.uploads.clear()
            self._files.clear()

    def messages(self, channel: str) -> list[JSON]:
        """A copy of what the channel holds now, oldest first, thread replies included."""
        with self._cond:
            return [dict(m) for m in self._messages.get(channel, [])]

    def add_message(
        self, channel: str, text: str, user: str, *, thread_ts: str | None = None
    ) -> JSON:
        """A person's message, as if they had written it in Slack; returns it (with its ts)."""
        message: JSON = {
            "type": "message",
            "user": user,
            "team": self.team_id,
            "text": text,
            "ts": self.next_ts(),
            "client_msg_id": self._next_id("msg-"),
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._store(channel, message)
        return dict(message)

    def guest(self, user_id: str, *, ultra: bool = False) -> None:
        """Make ``user_id`` a guest: ``is_restricted`` (a multi-channel guest), and with
        ``ultra`` also ``is_ultra_restricted`` (a single-channel guest, which Slack counts as
        a kind of restricted account too)."""
        self._override(user_id, is_restricted=True, is_ultra_restricted=ultra)

    def external(self, user_id: str, team_id: str = "T999OTHER") -> None:
        """Make ``user_id`` a member of another workspace (as in a Slack Connect channel):
        its ``team_id`` and ``profile.team`` are ``team_id``."""
        profile = dict((self.users.get(user_id) or {}).get("profile") or {})
        profile["team"] = team_id
        self._override(user_id, team_id=team_id, profile=profile)

    def _override(self, user_id: str, **fields: Any) -> None:
        self.users[user_id] = {**(self.users.get(user_id) or {}), **fields}

    # -- failure injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int | None = None,
        *,
        error: str | None = None,
        retry_after: int = 1,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail.

        - ``status=429`` (the default without ``error``): HTTP 429, ``Retry-After:
          retry_after``, body ``{"ok": false, "error": "ratelimited"}``.
        - ``status=500`` (or any 5xx): that status, ``{"ok": false, "error": "internal_error"}``.
        - ``error="channel_not_found"`` alone: HTTP 200 with ``{"ok": false, "error": ...}``,
          the way Slack reports most errors.
        - ``delay=seconds``: the failure is answered only after that long, so a client with a
          shorter timeout sees a timeout (the call is recorded when the answer is ready).
        """
        if status is None:
            status = 200 if error else 429
        if error is None:
            error = {200: "fatal_error", 429: "ratelimited"}.get(status, "internal_error")
        with self._cond:
            self._failures.setdefault(method, []).append(
                _Failure(
                    status=status,
                    error=error,
                    retry_after=retry_after,
                    times=times,
                    delay=delay,
                )
            )

    def delay_next(self, method: str, *seconds: float) -> None:
        """Make the next calls to ``method`` take this long each, in order, before Slack
        handles them (a failure injected with ``fail_next`` as well): a slow or jittery Slack.
        The call's ``received`` and ``time`` tell when it started and ended."""
        with self._cond:
            self._delays.setdefault(method, deque()).extend(seconds)

    def _take_delay(self, method: str) -> float:
        with self._cond:
            pending = self._delays.get(method)
            return pending.popleft() if pending else 0.0

    def _take_failure(self, method: str) -> _Failure | None:
        with self._cond:
            pending = self._failures.get(method)
            if not pending:
                return None
            failure = pending[0]
            failure.times -= 1
            if failure.times <= 0:
                pending.pop(0)
            return failure

    # -- request handling (called from server threads) ---------------------------------------

    def _handle(self, path: str, headers: Message, body: bytes) -> _Reply:
        received = time.time()
        split = urlsplit(path)
        args = _parse_args(split.query, headers.get("Content-Type", ""), body)
        parts = split.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            label = parts[1]
            delay = self._take_delay(label)
            if delay > 0:
                time.sleep(delay)  # a server thread per request: others are not held up
            reply = self._api(label, headers, args)
        elif len(parts) == 3 and parts[:2] == ["upload", "v1"]:
            label = f"upload:{parts[2]}"
            reply = self._failed(label) or self._upload(parts[2], headers, body)
        elif len(parts) >= 2 and parts[0] == "response":
            label = "response:" + "/".join(parts[1:])
            refused = _invalid_blocks(args)
            reply = self._failed(label) or _Reply(200, refused or {"ok": True})
        else:
            label = f"unknown:{split.path}"
            reply = _Reply(404, {"ok": False, "error": "not_found"})
        call = Call(
            method=label,
            args=args,
            headers={k.lower(): v for k, v in headers.items()},
            time=time.time(),
            body=body,
            status=reply.status,
            response=reply.body,
            received=received,
        )
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return reply

    def _failed(self, label: str) -> _Reply | None:
        failure = self._take_failure(label)
        if failure is None:
            return None
        if failure.delay > 0:
            time.sleep(failure.delay)  # a server thread per request: others are not held up
        reply = _Reply(failure.status, {"ok": False, "error": failure.error})
        if failure.status == 429:
            reply.headers["Retry-After"] = str(failure.retry_after)
        return reply

    def _api(self, method: str, headers: Message, args: JSON) -> _Reply:
        token = _bearer(headers.get("Authorization", "")) or str(args.get("token") or "")
        if not token:
            return _Reply(200, {"ok": False, "error": "not_authed"})
        if method == "apps.connections.open":
            return self._connections_open(headers, token)
        if not token.startswith(ACCEPTED_TOKEN_PREFIXES):
            return _Reply(200, {"ok": False, "error": "invalid_auth"})
        failed = self._failed(method)
        if failed is not None:
            return failed
        handler = _API_METHODS.get(method)
        data: JSON = {"ok": True}
        if handler is not None:
            data.update(handler(self, args, token))
        return _Reply(200, data)

    def _connections_open(self, headers: Message, token: str) -> _Reply:
        """apps.connections.open: a Socket Mode WebSocket URL, for an app-level token (xapp-)
        sent in the Authorization header only, as Slack's documentation of the method says;
        a bot or user token is ``not_allowed_token_type``. The URL comes from
        ``socket_mode_url`` (``FakeSocketMode.attach`` sets it); without it, the answer is
        ``internal_error``. ``fail_next`` and ``delay_next`` apply as to any method."""
        if not _bearer(headers.get("Authorization", "")):
            return _Reply(200, {"ok": False, "error": "invalid_auth"})
        if token.startswith(ACCEPTED_TOKEN_PREFIXES):
            return _Reply(200, {"ok": False, "error": "not_allowed_token_type"})
        if not token.startswith(APP_TOKEN_PREFIX):
            return _Reply(200, {"ok": False, "error": "invalid_auth"})
        failed = self._failed("apps.connections.open")
        if failed is not None:
            return failed
        if self.socket_mode_url is None:
            return _Reply(200, {"ok": False, "error": "internal_error"})
        return _Reply(200, {"ok": True, "url": self.socket_mode_url()})

    def _upload(self, file_id: str, headers: Message, body: bytes) -> _Reply:
        if file_id not in self._files:
            return _Reply(404, {"ok": False, "error": "file_not_found"})
        content_type = headers.get("Content-Type", "")
        data = body
        if content_type.startswith("multipart/form-data"):
            files = [p for p in _multipart(content_type, body) if p.get_filename() is not None]
            if files:
                data = files[0].get_payload(decode=True) or b""
        with self._cond:
            self.uploads[file_id] = data
        # Slack answers "OK - <length>" as plain text; slack_sdk only looks at the status.
        return _Reply(200, {"ok": True})

    # -- ids and shapes ----------------------------------------------------------------------

    def next_ts(self) -> str:
        """A message ts like ``1700000000.000100``: the time by ``clock``, moved on when
        needed so that every ts is unique and later than the one before, as on Slack."""
        with self._cond:
            micros = max(round(self.clock() * 1_000_000), self._last_ts_micros + 100)
            self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._id_seq):08d}"

    def _message(self, args: JSON, ts: str) -> JSON:
        message: JSON = {
            "type": "message",
            "subtype": "bot_message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text", ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata"):
            if key in args:
                message[key] = _json_arg(args[key])
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
            if args.get("reply_broadcast") in (True, "true", "1"):
                # A reply also sent to the channel: Slack lists it in the channel's history
                # as well as in its thread.
                message["subtype"] = "thread_broadcast"
        return message

    def _store(self, channel: str, message: JSON) -> None:
        with self._cond:
            held = self._messages.setdefault(channel, [])
            held.append(dict(message))
            thread_ts = message.get("thread_ts")
            parent = _find(held, thread_ts) if thread_ts else None
            if parent is not None:
                # The parent of a thread carries its own ts as thread_ts and a summary of the
                # replies, as Slack's does.
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = int(parent.get("reply_count") or 0) + 1
                parent["latest_reply"] = message["ts"]

    def _edit(self, channel: str, ts: str, args: JSON) -> bool:
        with self._cond:
            message = _find(self._messages.get(channel, []), ts)
            if message is None:
                return False
            message["text"] = args.get("text", message.get("text", ""))
            for key in ("blocks", "attachments", "metadata"):
                if key in args:
                    message[key] = _json_arg(args[key])
            message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
            return True

    def _remove(self, channel: str, ts: str) -> bool:
        with self._cond:
            held = self._messages.get(channel, [])
            message = _find(held, ts)
            if message is None:
                return False
            held.remove(message)
            return True

    def _listed(self, channel: str, keep: Callable[[JSON], bool]) -> list[JSON]:
        with self._cond:
            return [dict(m) for m in self._messages.get(channel, []) if keep(m)]

    def _permalink(self, channel: str, ts: str) -> str:
        return f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


# -- Web API methods -------------------------------------------------------------------------


def _channel(args: JSON) -> str:
    channel = str(args.get("channel", ""))
    # Posting to a user id goes to the DM with that user, as on Slack.
    if channel[:1] in ("U", "W"):
        return "D" + channel[1:]
    return channel


def _auth_test(fake: FakeSlack, args: JSON, token: str) -> JSON:
    data: JSON = {
        "url": f"https://{fake.team_domain}.slack.com/",
        "team": "Integ Test",
        "user": "integ-bot",
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "is_enterprise_install": False,
    }
    if token.startswith("xoxb-"):
        data["bot_id"] = fake.bot_id
    return data


def _post_message(fake: FakeSlack, args: JSON, token: str) -> JSON:
    if not args.get("channel"):
        return {"ok": False, "error": "channel_not_found"}
    if not any(args.get(k) for k in ("text", "blocks", "attachments")):
        return {"ok": False, "error": "no_text"}
    if "metadata" in args and not _valid_metadata(_json_arg(args["metadata"])):
        return {"ok": False, "error": "invalid_metadata_format"}
    refused = _invalid_blocks(args)
    if refused:
        return refused
    ts = fake.next_ts()
    channel = _channel(args)
    message = fake._message(args, ts)
    fake._store(channel, message)
    return {"channel": channel, "ts": ts, "message": message}


def _update(fake: FakeSlack, args: JSON, token: str) -> JSON:
    refused = _invalid_blocks(args)
    if refused:
        return refused
    ts = str(args.get("ts", ""))
    # Tests may update a message this fake never saw posted; Slack would answer
    # message_not_found, but answering ok keeps such tests short.
    fake._edit(_channel(args), ts, args)
    return {
        "channel": _channel(args),
        "ts": ts,
        "text": args.get("text", ""),
        "message": fake._message(args, ts),
    }


def _post_ephemeral(fake: FakeSlack, args: JSON, token: str) -> JSON:
    return _invalid_blocks(args) or {"message_ts": fake.next_ts()}


def _invalid_blocks(args: JSON) -> JSON | None:
    """Slack's answer to a message whose blocks it would refuse (tests/helpers/block_kit.py),
    or None when they are fine."""
    blocks = _json_arg(args["blocks"]) if "blocks" in args else []
    errors = message_errors(blocks if isinstance(blocks, list) else [blocks])
    if not errors:
        return None
    return {"ok": False, "error": "invalid_blocks", "errors": errors}


def _delete(fake: FakeSlack, args: JSON, token: str) -> JSON:
    fake._remove(_channel(args), str(args.get("ts", "")))
    return {"channel": _channel(args), "ts": str(args.get("ts", ""))}


def _history(fake: FakeSlack, args: JSON, token: str) -> JSON:
    """conversations.history: the channel's messages and thread parents, not the replies in
    threads, between ``oldest`` and ``latest``, newest first, paged by a cursor."""
    channel = _channel(args)
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    window = _window(args)
    if isinstance(window, str):
        return {"ok": False, "error": window}
    top_level = fake._listed(
        channel,
        lambda m: (
            (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
            and _inside(m, window)
        ),
    )
    newest_first = sorted(top_level, key=lambda m: _micros(m["ts"]), reverse=True)
    page = _page(newest_first, args, newest_first=True)
    if page is None:
        return {"ok": False, "error": "invalid_cursor"}
    messages, next_cursor = page
    data: JSON = {
        "messages": [_shown(m, args) for m in messages],
        "has_more": bool(next_cursor),
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }
    if next_cursor:
        data["response_metadata"] = {"next_cursor": next_cursor}
    return data


def _replies(fake: FakeSlack, args: JSON, token: str) -> JSON:
    """conversations.replies: a thread's parent first, then its replies, oldest first. `ts`
    may be the parent's or that of any message in the thread, as Slack's documentation has
    it: either way the whole thread is the answer (within `oldest` and `latest`)."""
    channel = _channel(args)
    thread_ts = str(args.get("ts", ""))
    window = _window(args)
    if isinstance(window, str):
        return {"ok": False, "error": window}
    named = fake._listed(channel, lambda m: m["ts"] == thread_ts)
    if named and named[0].get("thread_ts") not in (None, thread_ts):
        thread_ts = str(named[0]["thread_ts"])  # a reply: its thread is meant
    held = fake._listed(channel, lambda m: m["ts"] == thread_ts or m.get("thread_ts") == thread_ts)
    parent = next((m for m in held if m["ts"] == thread_ts), None)
    if parent is None:
        return {"ok": False, "error": "thread_not_found"}
    replies = [m for m in held if m is not parent and _inside(m, window)]
    thread = [parent, *sorted(replies, key=lambda m: _micros(m["ts"]))]
    page = _page(thread, args, newest_first=False)
    if page is None:
        return {"ok": False, "error": "invalid_cursor"}
    messages, next_cursor = page
    data: JSON = {"messages": [_shown(m, args) for m in messages], "has_more": bool(next_cursor)}
    if next_cursor:
        data["response_metadata"] = {"next_cursor": next_cursor}
    return data


def _valid_metadata(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("event_type"), str)
        and bool(value["event_type"])
        and isinstance(value.get("event_payload"), Mapping)
    )


def _find(messages: list[JSON], ts: str) -> JSON | None:
    return next((m for m in messages if m.get("ts") == ts), None)


def _micros(ts: Any) -> int:
    """A Slack ts (``"1700000000.000100"``) as whole microseconds, compared exactly."""
    seconds, _, fraction = str(ts).partition(".")
    return int(seconds or 0) * 1_000_000 + int((fraction + "000000")[:6])


def _flag(value: Any) -> bool:
    """Slack reads booleans sent as ``true``/``1`` (slack_sdk sends ``1`` in a query)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true")


def _window(args: JSON) -> tuple[int, int, bool] | str:
    """``oldest``, ``latest`` (default: now) in microseconds and ``inclusive``, or the error
    Slack answers for a time that is not a ts."""
    try:
        oldest = _micros(args.get("oldest") or 0)
    except ValueError:
        return "invalid_ts_oldest"
    try:
        latest = _micros(args["latest"]) if args.get("latest") else 1 << 62
    except ValueError:
        return "invalid_ts_latest"
    return oldest, latest, _flag(args.get("inclusive", False))


def _inside(message: JSON, window: tuple[int, int, bool]) -> bool:
    oldest, latest, inclusive = window
    ts = _micros(message["ts"])
    if inclusive:
        return oldest <= ts <= latest
    return oldest < ts < latest


def _page(messages: list[JSON], args: JSON, *, newest_first: bool) -> tuple[list[JSON], str] | None:
    """One page of at most ``limit`` messages from the ``cursor`` on, and the cursor of the
    next page ("" when this is the last). Slack's cursors are opaque; these are, like Slack's,
    base64 of ``next_ts:<ts without its dot>``. None for a cursor that is not one."""
    try:
        limit = int(args.get("limit") or 100)
    except ValueError:
        limit = 100
    limit = min(max(limit, 1), 999)  # Slack caps a page below 1,000
    start = 0
    if args.get("cursor"):
        try:
            decoded = base64.b64decode(str(args["cursor"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        prefix, _, at = decoded.partition(":")
        if prefix != "next_ts" or not at.isdigit():
            return None
        first = int(at)
        # The page starts at the message the cursor names, or where it would be.
        start = next(
            (
                i
                for i, m in enumerate(messages)
                if (_micros(m["ts"]) <= first if newest_first else _micros(m["ts"]) >= first)
            ),
            len(messages),
        )
    page = messages[start : start + limit]
    rest = messages[start + limit :]
    if not rest:
        return page, ""
    following = str(_micros(rest[0]["ts"]))
    return page, base64.b64encode(f"next_ts:{following}".encode()).decode()


def _shown(message: JSON, args: JSON) -> JSON:
    """A stored message as a read method shows it: metadata only to those who ask for it."""
    shown = dict(message)
    if not _flag(args.get("include_all_metadata", False)):
        shown.pop("metadata", None)
    return shown


def _permalink(fake: FakeSlack, args: JSON, token: str) -> JSON:
    channel = _channel(args)
    return {
        "channel": channel,
        "permalink": fake._permalink(channel, str(args.get("message_ts", ""))),
    }


def _users_info(fake: FakeSlack, args: JSON, token: str) -> JSON:
    """users.info: a full member of the fake's workspace unless ``fake.users`` says otherwise,
    shaped like the typical success response in Slack's documentation of the method."""
    user_id = str(args.get("user", ""))
    if not user_id or (user_id in fake.users and fake.users[user_id] is None):
        return {"ok": False, "error": "user_not_found"}
    name = user_id.lower()
    real_name = f"User {user_id}"
    image = f"https://secure.gravatar.com/avatar/{name}.jpg"
    user: JSON = {
        "id": user_id,
        "team_id": fake.team_id,
        "name": name,
        "deleted": False,
        "color": "9f69e7",
        "real_name": real_name,
        "tz": "America/New_York",
        "tz_label": "Eastern Standard Time",
        "tz_offset": -18000,
        "profile": {
            "avatar_hash": "ge3b51ca72de",
            "status_text": "",
            "status_emoji": "",
            "real_name": real_name,
            "display_name": name,
            "real_name_normalized": real_name,
            "display_name_normalized": name,
            "email": f"{name}@example.edu",
            "image_original": image,
            **{f"image_{size}": image for size in (24, 32, 48, 72, 192, 512)},
            "team": fake.team_id,
        },
        "is_admin": False,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": False,
        "is_app_user": False,
        "updated": 1_600_000_000,
        "has_2fa": False,
    }
    override = fake.users.get(user_id) or {}
    user.update({k: v for k, v in override.items() if k != "profile"})
    if isinstance(override.get("profile"), Mapping):
        user["profile"] = {**user["profile"], **override["profile"]}
    return {"user": user}


def _usergroup_members(fake: FakeSlack, args: JSON, token: str) -> JSON:
    """usergroups.users.list: the ids of a user group's members, ``{"ok": true, "users":
    [...]}`` as Slack documents it; a group the fake does not hold is ``no_such_subteam``.
    ``include_disabled`` is accepted and has no effect: no group here is disabled."""
    members = fake.usergroups.get(str(args.get("usergroup", "")))
    if members is None:
        return {"ok": False, "error": "no_such_subteam"}
    return {"users": list(members)}


def _conversations_info(fake: FakeSlack, args: JSON, token: str) -> JSON:
    channel_id = str(args.get("channel", ""))
    channel: JSON = {
        "id": channel_id,
        "name": channel_id.lower(),
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_private": False,
        "is_archived": False,
        "is_member": True,
        "created": 1_600_000_000,
        "creator": "W111",
    }
    channel.update(fake.channels.get(channel_id, {}))
    return {"channel": channel}


def _get_upload_url(fake: FakeSlack, args: JSON, token: str) -> JSON:
    file_id = fake._next_id("F")
    with fake._cond:
        fake._files[file_id] = {
            "filename": str(args.get("filename", "")),
            "length": int(args.get("length") or 0),
        }
    return {"upload_url": f"{fake.root_url}upload/v1/{file_id}", "file_id": file_id}


def _complete_upload(fake: FakeSlack, args: JSON, token: str) -> JSON:
    raw = _json_arg(args.get("files", []))
    items = raw if isinstance(raw, list) else []
    files: list[JSON] = []
    for item in items:
        file_id = str(item.get("id", ""))
        meta = fake._files.get(file_id, {})
        name = meta.get("filename", "")
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append(
            {
                "id": file_id,
                "name": name,
                "title": item.get("title") or name,
                "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
                "size": len(fake.uploads.get(file_id, b"")),
                "user": fake.bot_user_id,
                "url_private": f"https://files.slack.com/files-pri/{fake.team_id}-{file_id}/{name}",
                "permalink": f"https://{fake.team_domain}.slack.com/files/"
                f"{fake.bot_user_id}/{file_id}/{name}",
            }
        )
    return {"files": files}


_API_METHODS: dict[str, Callable[[FakeSlack, JSON, str], JSON]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "chat.delete": _delete,
    "conversations.history": _history,
    "conversations.replies": _replies,
    "chat.getPermalink": _permalink,
    "views.open": views.views_open,
    "views.push": views.views_open,
    "views.update": views.views_update,
    "views.publish": views.views_publish,
    "users.info": _users_info,
    "usergroups.users.list": _usergroup_members,
    "conversations.info": _conversations_info,
    "files.getUploadURLExternal": _get_upload_url,
    "files.completeUploadExternal": _complete_upload,
}


# -- HTTP plumbing ---------------------------------------------------------------------------


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json_arg(value: Any) -> Any:
    """Form bodies carry blocks, views and file lists as JSON strings; JSON bodies don't."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _multipart(content_type: str, body: bytes) -> list[Message]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    parts = message.get_payload()
    return [p for p in parts if isinstance(p, Message)] if isinstance(parts, list) else []


def _parse_args(query: str, content_type: str, body: bytes) -> JSON:
    args: JSON = dict(parse_qsl(query, keep_blank_values=True))
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if isinstance(data, dict):
            args.update(data)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif content_type.startswith("multipart/form-data"):
        for part in _multipart(content_type, body):
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str) and part.get_filename() is None:
                payload = part.get_payload(decode=True) or b""
                args[name] = payload.decode("utf-8", "replace")
    return args


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length else b"")

    def _serve(self, body: bytes) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        reply = fake._handle(self.path, self.headers, body)
        payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a delayed answer after its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
