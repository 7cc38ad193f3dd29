"""Links to messages the bot posted, as Slack's permalinks."""

from __future__ import annotations

import threading
from collections.abc import Callable


class MessageLinks:
    """Permalinks of the form `https://<workspace>.slack.com/archives/<channel>/p<ts>`, the
    form chat.getPermalink gives for a message outside a thread. The workspace's address
    is asked of Slack once, through the function bot/ gives (auth.test); until Slack has
    answered there are no links, and what would show one says something else."""

    def __init__(self, workspace_url: Callable[[], str | None] = lambda: None) -> None:
        self._ask = workspace_url
        self._url: str | None = None
        self._lock = threading.Lock()

    def to(self, channel: str, ts: str) -> str | None:
        base = self._workspace()
        if base is None or not ts:
            return None
        return f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

    def _workspace(self) -> str | None:
        with self._lock:
            if self._url is None:
                url = self._ask()
                # Only an https address is used in a link people click.
                if url and url.startswith("https://"):
                    self._url = url
            return self._url
