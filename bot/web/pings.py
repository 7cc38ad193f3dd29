"""GET, HEAD or POST /ping/<key>, /ping/<key>/start, /ping/<key>/fail: heartbeats from jobs.

Batch jobs call these with curl or wget at the end of a run, so the answers are plain text
and any method works. A 200 means the ping is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot import metrics
from bot.deps import Deps
from commands.monitors.heartbeats import FAIL, MAX_BODY, START, SUCCESS, PingResult, record_ping
from storage.db import transaction

log = logging.getLogger(__name__)

# Pings are short writes; a few at a time keep SQLite's one writer busy without a queue of
# threads each holding a connection.
PING_WORKERS = 4


async def _read_head(request: Request, limit: int) -> bytes:
    """The first `limit` bytes of the body. The rest is read and dropped: a job that posts
    a long log still gets its ping counted, with the start of the log kept."""
    kept = bytearray()
    async for chunk in request.stream():
        if len(kept) < limit:
            kept.extend(chunk[: limit - len(kept)])
    return bytes(kept)


def make_ping_endpoint(
    deps: Deps, notify_outbox: Callable[[], None]
) -> Callable[[Request], Awaitable[Response]]:
    limiter = CapacityLimiter(PING_WORKERS)

    def store(
        key: str, kind: str, method: str, agent: str | None, addr: str | None, body: str | None
    ) -> PingResult | None:
        with transaction(deps.sessions) as session:
            return record_ping(
                session,
                key,
                kind,
                now=deps.clock(),
                method=method,
                user_agent=agent,
                remote_addr=addr,
                body=body,
            )

    async def endpoint(request: Request) -> Response:
        key = request.path_params["key"]
        kind = request.path_params.get("kind", SUCCESS)
        if kind not in (START, FAIL, SUCCESS) or kind == SUCCESS and "kind" in request.path_params:
            return PlainTextResponse("not found: use /ping/<key>, /start or /fail\n", 404)
        agent = request.headers.get("user-agent")
        if agent and "slackbot" in agent.lower():
            # Slack's link expander fetching a pasted ping URL is not the job reporting; if
            # it counted, a dead job would look alive whenever someone shared its URL.
            metrics.PINGS.labels("ignored").inc()
            return PlainTextResponse("ignored: requests from Slackbot do not count\n")
        raw = await _read_head(request, MAX_BODY) if request.method == "POST" else b""
        body = raw.decode("utf-8", errors="replace") if raw else None
        addr = request.client.host if request.client else None
        result = await anyio.to_thread.run_sync(
            store, key, kind, request.method, agent, addr, body, limiter=limiter
        )
        if result is None:
            metrics.PINGS.labels("unknown").inc()
            return PlainTextResponse("not found: no heartbeat has this key\n", status_code=404)
        metrics.PINGS.labels(kind).inc()
        if result.alert is not None:
            notify_outbox()
        return PlainTextResponse("OK\n" if kind != START else "OK: started\n")

    return endpoint
