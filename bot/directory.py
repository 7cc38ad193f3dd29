"""Who people are, as Slack says: `users.info`, `usergroups.users.list`, `conversations.info`
and the workspace's own id (`auth.test`), cached.

Every permission check asks here, so it must answer fast and never hang a request: a fresh
answer is served from memory; a stale one is served while it is refreshed in the background;
with nothing known, Slack is asked and waited for at most `wait` seconds, after which the
answer is "unknown" (and the check refuses) while the call goes on to fill the cache. When
Slack fails, the last answer it gave keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import metrics
from commands.permissions.people import Person, UserKind

log = logging.getLogger(__name__)

# Slack's answers that are answers, not failures: cached like any other.
_NOT_FOUND = {"user_not_found", "users_not_found", "no_such_subteam", "channel_not_found"}
_WORKSPACE = ("team", "")


@dataclass(frozen=True)
class _User:
    team_id: str | None
    deleted: bool
    restricted: bool
    email: str | None


@dataclass(frozen=True)
class _Entry:
    value: Any
    at: float


class SlackDirectory:
    def __init__(
        self,
        client: WebClient,
        *,
        ttl: float = 300.0,
        wait: float = 1.5,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._wait = wait
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._pending: dict[tuple[str, str], Future[_Entry | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="directory")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- Directory ---------------------------------------------------------------------------

    def person(self, user_id: str) -> Person | None:
        if not user_id:
            return None
        deadline = self._clock() + self._wait
        # Both asked at once: two waits one after the other could outlast Slack's 3 seconds.
        workspace = self._start(_WORKSPACE, self._fetch_workspace)
        user = self._start(("user", user_id), lambda: self._fetch_user(user_id))
        team_id = self._finish("workspace", *workspace, deadline)
        found = self._finish("user", *user, deadline)
        if not isinstance(team_id, str) or not isinstance(found, _User):
            return None
        if found.deleted:
            kind = UserKind.DEACTIVATED
        elif found.restricted:
            kind = UserKind.GUEST
        elif found.team_id != team_id:
            kind = UserKind.EXTERNAL
        else:
            kind = UserKind.MEMBER
        return Person(user_id, kind, found.email)

    def group_members(self, group_id: str) -> frozenset[str] | None:
        started = self._start(("group", group_id), lambda: self._fetch_group(group_id))
        members = self._finish("group", *started, self._clock() + self._wait)
        return members if isinstance(members, frozenset) else None

    def channel_is_private(self, channel_id: str) -> bool | None:
        started = self._start(("channel", channel_id), lambda: self._fetch_channel(channel_id))
        private = self._finish("channel", *started, self._clock() + self._wait)
        return private if isinstance(private, bool) else None

    def channels_private(self, channel_ids: list[str]) -> dict[str, bool | None]:
        # All asked at once and waited for together: a list of a hundred integrations'
        # channels must not wait a hundred times.
        started = {
            channel: self._start(("channel", channel), partial(self._fetch_channel, channel))
            for channel in dict.fromkeys(channel_ids)
        }
        deadline = self._clock() + self._wait
        found = {channel: self._finish("channel", *s, deadline) for channel, s in started.items()}
        return {channel: v if isinstance(v, bool) else None for channel, v in found.items()}

    # -- the cache ---------------------------------------------------------------------------

    def _start(
        self, key: tuple[str, str], fetch: Callable[[], Any]
    ) -> tuple[_Entry | None, Future[_Entry | None] | None]:
        """What is known, and the refresh under way when it is missing or stale."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.at < self._ttl:
                return entry, None
            future = self._pending.get(key)
            if future is None:
                try:
                    future = self._pool.submit(self._refresh, key, fetch)
                except RuntimeError:  # closed: shutting down, what is known still serves
                    return entry, None
                self._pending[key] = future
            return entry, future

    def _finish(
        self,
        what: str,
        entry: _Entry | None,
        future: Future[_Entry | None] | None,
        deadline: float,
    ) -> Any:
        if future is None:
            metrics.DIRECTORY_LOOKUPS.labels(what, "cached").inc()
            return entry.value if entry is not None else None
        if entry is not None:
            metrics.DIRECTORY_LOOKUPS.labels(what, "stale").inc()
            return entry.value  # refreshed in the background meanwhile
        try:
            fetched = future.result(timeout=max(0.0, deadline - self._clock()))
        except (FutureTimeout, CancelledError):
            fetched = None
        metrics.DIRECTORY_LOOKUPS.labels(what, "asked" if fetched else "unknown").inc()
        return fetched.value if fetched is not None else None

    def _refresh(self, key: tuple[str, str], fetch: Callable[[], Any]) -> _Entry | None:
        try:
            value = fetch()
        except Exception as exc:  # a failed call keeps the last answer; nothing else to do
            log.warning("Slack could not tell %s %s: %s", key[0], key[1], _reason(exc))
            with self._lock:
                self._pending.pop(key, None)
            return None
        entry = _Entry(value, self._clock())
        with self._lock:
            self._pending.pop(key, None)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return entry

    # -- Slack -------------------------------------------------------------------------------

    def _fetch_workspace(self) -> str:
        return str(self._client.auth_test()["team_id"])

    def _fetch_user(self, user_id: str) -> _User | None:
        try:
            user = self._client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            if _not_found(exc):
                return None
            raise
        profile = user.get("profile") or {}
        return _User(
            team_id=user.get("team_id"),
            deleted=bool(user.get("deleted")),
            restricted=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
            email=profile.get("email") or None,
        )

    def _fetch_group(self, group_id: str) -> frozenset[str]:
        try:
            users = self._client.usergroups_users_list(usergroup=group_id)["users"]
        except SlackApiError as exc:
            if _not_found(exc):
                return frozenset()
            raise
        return frozenset(str(u) for u in users or ())

    def _fetch_channel(self, channel_id: str) -> bool:
        try:
            channel = self._client.conversations_info(channel=channel_id)["channel"]
        except SlackApiError as exc:
            if _not_found(exc):
                return True  # a private channel the bot is not in looks like this
            raise
        return bool(channel.get("is_private"))


def _not_found(exc: SlackApiError) -> bool:
    return exc.response.status_code == 200 and exc.response.get("error") in _NOT_FOUND


def _reason(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"{exc.response.status_code} {exc.response.get('error')}"
    return f"{type(exc).__name__}: {exc}"


def build_directory(token: str, base_url: str, ttl: float) -> SlackDirectory:
    # A client of its own: short timeouts and no retries, because a check waits for it and
    # the cache, not a retry, is what covers a Slack that is slow or failing.
    client = WebClient(token=token, base_url=base_url, timeout=5, retry_handlers=[])
    return SlackDirectory(client, ttl=ttl)
