"""The fake Slack Web API of the tests, with Slack's per-channel write limit.

Slack lets an app write about one message a second to a channel and answers anything
faster with HTTP 429 and a `Retry-After` in whole seconds. `LimitedSlack` does the same for
the calls that write to a channel (`chat.postMessage`, `chat.update`): a token bucket per
channel that holds `burst` writes and refills at `per_second`. A refused call takes no
token, is recorded like every other call (status 429) and is answered with `Retry-After`
rounded up to a whole second, at least 1, as Slack does.

It subclasses `tests.helpers.fake_slack.FakeSlack` rather than changing it, so the tests' fake stays
as it is; every other behaviour (recording, `fail_next`, the answers) is the fake's own.
"""

from __future__ import annotations

import math
import threading
import time
from email.message import Message
from typing import Any

from tests.helpers.fake_slack import JSON, FakeSlack, _Reply

CHANNEL_WRITES = ("chat.postMessage", "chat.update")


class LimitedSlack(FakeSlack):
    def __init__(
        self,
        *,
        per_second: float | None = None,
        burst: float = 1.0,
        methods: tuple[str, ...] = CHANNEL_WRITES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.per_second = per_second  # None: no limit, the plain fake
        self.burst = burst
        self.methods = methods
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._bucket_lock = threading.Lock()

    def _wait_for_token(self, channel: str) -> float:
        """Take a token for `channel`; 0 when taken, else the seconds until one is free."""
        assert self.per_second is not None
        now = time.monotonic()
        with self._bucket_lock:
            tokens, at = self._buckets.get(channel, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.per_second)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, now)
                return 0.0
            self._buckets[channel] = (tokens, now)
            return (1.0 - tokens) / self.per_second

    def _api(self, method: str, headers: Message, args: JSON) -> _Reply:
        if self.per_second is not None and method in self.methods:
            wait = self._wait_for_token(str(args.get("channel", "")))
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                return _Reply(
                    429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
                )
        return super()._api(method, headers, args)
